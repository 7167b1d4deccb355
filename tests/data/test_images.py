import numpy as np
import pytest
from PIL import Image

from deepdx.data.images import read_image_folder
from deepdx.exceptions import DataError, InvalidParameterError


def save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return array


@pytest.fixture
def gray_folder(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for label, count in (("cat", 3), ("dog", 2)):
        for i in range(count):
            arrays[label, i] = save(
                tmp_path / label / f"{i}.png", rng.integers(0, 256, (5, 7), dtype=np.uint8)
            )
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    return tmp_path, arrays


def test_read_image_folder_reads_grayscale_pngs(gray_folder):
    root, arrays = gray_folder
    ds = read_image_folder(root)
    assert ds.X.shape == (5, 1, 5, 7) and ds.X.dtype == np.float32
    assert ds.class_names == ("cat", "dog") and ds.y.tolist() == [0, 0, 0, 1, 1]
    expected = np.stack([arrays["cat", 0], arrays["cat", 1], arrays["cat", 2]]) / 255.0
    np.testing.assert_allclose(ds.X[:3, 0], expected, rtol=1e-6)
    assert ds.name == root.name


def test_read_image_folder_reads_rgb_as_channels_first(tmp_path):
    rng = np.random.default_rng(1)
    red = save(tmp_path / "a" / "x.png", rng.integers(0, 256, (4, 6, 3), dtype=np.uint8))
    save(tmp_path / "b" / "y.png", rng.integers(0, 256, (4, 6), dtype=np.uint8))
    ds = read_image_folder(tmp_path)
    assert ds.X.shape == (2, 3, 4, 6)
    np.testing.assert_allclose(ds.X[0], red.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    np.testing.assert_allclose(ds.X[1, 0], ds.X[1, 2])  # gray promoted to equal channels


def test_read_image_folder_forces_gray(tmp_path):
    rng = np.random.default_rng(2)
    save(tmp_path / "a" / "x.png", rng.integers(0, 256, (4, 6, 3), dtype=np.uint8))
    save(tmp_path / "b" / "y.png", rng.integers(0, 256, (4, 6, 3), dtype=np.uint8))
    assert read_image_folder(tmp_path, color="gray").X.shape == (2, 1, 4, 6)


def test_read_image_folder_resizes_to_size(tmp_path):
    save(tmp_path / "a" / "x.png", np.full((10, 20), 200, np.uint8))
    save(tmp_path / "b" / "y.png", np.full((7, 3), 100, np.uint8))
    ds = read_image_folder(tmp_path, size=(8, 9))
    assert ds.X.shape == (2, 1, 8, 9)
    np.testing.assert_allclose(ds.X[:, 0, 0, 0], [200 / 255, 100 / 255], rtol=1e-6)


def test_read_image_folder_rejects_mixed_shapes_without_size(tmp_path):
    save(tmp_path / "a" / "x.png", np.zeros((10, 20), np.uint8))
    save(tmp_path / "b" / "y.png", np.zeros((7, 3), np.uint8))
    with pytest.raises(DataError, match=r"'x.png' is \(10, 20\) but 'y.png' is \(7, 3\).*size="):
        read_image_folder(tmp_path)


def test_read_image_folder_rejects_one_class_only(tmp_path):
    save(tmp_path / "only" / "x.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match="at least two; found only 'only'"):
        read_image_folder(tmp_path)


def test_read_image_folder_rejects_class_without_images(tmp_path):
    save(tmp_path / "a" / "x.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match="class folder 'b' .* has no image files"):
        read_image_folder(tmp_path)


def test_read_image_folder_rejects_unreadable_image(tmp_path):
    save(tmp_path / "a" / "x.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png' cannot be read"):
        read_image_folder(tmp_path)


def test_read_image_folder_rejects_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_image_folder(tmp_path / "nope")


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"size": 0}, "size must be"), ({"color": "cmyk"}, "color must")]
)
def test_read_image_folder_rejects_bad_options(gray_folder, kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        read_image_folder(gray_folder[0], **kwargs)
