import numpy as np
import pytest
from PIL import Image

from deepdx.data import Dataset, DatasetInfo, list_datasets, load
from deepdx.data.idx import write_idx
from deepdx.exceptions import DataError, InvalidParameterError

EXPECTED_NAMES = {
    "digits", "iris", "wine", "breast_cancer", "diabetes", "mnist5k", "mnist1d",
    "curves", "patches", "mnist", "fashion_mnist",
}  # fmt: skip
FAST_NAMES = ["digits", "iris", "wine", "breast_cancer", "diabetes", "mnist5k"]


def test_list_datasets_describes_every_name():
    infos = list_datasets()
    assert {info.name for info in infos} == EXPECTED_NAMES
    for info in infos:
        assert isinstance(info, DatasetInfo)
        assert info.task in ("classification", "regression", "unsupervised")
        assert info.n_samples > 0 and all(s > 0 for s in info.sample_shape)
        assert info.description and info.source and "\n" not in info.description


@pytest.mark.parametrize("name", FAST_NAMES)
def test_list_datasets_matches_loaded_data(name):
    info = next(i for i in list_datasets() if i.name == name)
    ds = load(name)
    assert (ds.task, ds.n_samples, ds.sample_shape) == (
        info.task,
        info.n_samples,
        info.sample_shape,
    )


def test_list_datasets_matches_generated_data_with_small_options():
    infos = {i.name: i for i in list_datasets()}
    curves = load("curves", n_train=3, n_test=2)
    patches = load("patches", n_patches=5)
    assert curves.sample_shape == infos["curves"].sample_shape
    assert patches.sample_shape == infos["patches"].sample_shape
    assert infos["curves"].n_samples == 30000 and infos["patches"].n_samples == 10000


def test_dataset_info_lists_loader_options():
    infos = {i.name: i for i in list_datasets()}
    assert infos["iris"].options == ()
    assert infos["patches"].options == ("size", "n_patches", "whiten", "epsilon", "seed")
    assert infos["mnist"].options == ("root",)


def test_load_normalises_case_and_dashes(mnist_folder):
    root, _ = mnist_folder()
    assert load("Fashion-MNIST", root=root).name == "fashion_mnist"
    assert load(" IRIS ").name == "iris"


def test_load_unknown_name_suggests_close_names():
    with pytest.raises(InvalidParameterError, match=r"unknown dataset 'irsi'.*Did you mean 'iris'"):
        load("irsi")


def test_load_unknown_name_lists_all_names():
    with pytest.raises(InvalidParameterError, match="Known datasets: digits, iris, wine"):
        load("zzzz")


def test_load_rejects_unknown_option_with_suggestion():
    with pytest.raises(
        InvalidParameterError, match=r"'n_trian' \(did you mean 'n_train'\?\).*n_train, n_test"
    ):
        load("curves", n_trian=5)


def test_load_rejects_every_unknown_option_at_once():
    with pytest.raises(InvalidParameterError, match=r"'foo', 'bar'.*accepts: none"):
        load("iris", foo=1, bar=2)


def test_load_missing_file_is_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load(str(tmp_path / "missing.csv"))


def test_load_unknown_suffix_is_data_error(tmp_path):
    (tmp_path / "table.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError, match="cannot tell the format of 'table.parquet'"):
        load(tmp_path / "table.parquet")


def test_load_dispatches_csv_with_options(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,k\n1,2,x\n3,4,y\n")
    ds = load(tmp_path / "t.csv", target="k")
    assert isinstance(ds, Dataset) and ds.class_names == ("x", "y")
    with pytest.raises(InvalidParameterError, match=r"'traget' \(did you mean 'target'\?\)"):
        load(tmp_path / "t.csv", traget="k")


def test_load_dispatches_npz(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.eye(4), y=np.array([0, 1, 0, 1]))
    assert load(str(tmp_path / "d.npz")).n_classes == 2


def test_load_dispatches_idx_with_labels(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((4, 3, 3), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([0, 1, 1, 0], np.uint8))
    ds = load(
        tmp_path / "train-images-idx3-ubyte.gz", labels=tmp_path / "train-labels-idx1-ubyte.gz"
    )
    assert ds.X.shape == (4, 1, 3, 3) and ds.y.tolist() == [0, 1, 1, 0]


def test_load_dispatches_mnist_folder(mnist_folder):
    root, _ = mnist_folder(n_train=5, n_test=3)
    ds = load(root)
    assert ds.n_samples == 8 and int(ds.is_test.sum()) == 3


def test_load_dispatches_image_folder(tmp_path):
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        Image.new("L", (4, 4), 0).save(tmp_path / label / "x.png")
    assert load(tmp_path, size=2).X.shape == (2, 1, 2, 2)


def test_load_mnist_without_root_is_clear():
    with pytest.raises(DataError, match=r"load\('mnist', root=FOLDER\)"):
        load("mnist")
