import numpy as np
import pytest

from deepdx.data.csv import read_csv
from deepdx.exceptions import DataError


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_read_csv_encodes_string_labels(tmp_path):
    path = write(tmp_path, 'a,b,kind\n1,2,dog\n3,4,"cat"\n5,6.5,dog\n7,8,bird\n')
    ds = read_csv(path, target="kind")
    assert ds.task == "classification"
    assert ds.class_names == ("bird", "cat", "dog")
    assert ds.y.tolist() == [2, 1, 2, 0]
    np.testing.assert_array_equal(ds.X, [[1, 2], [3, 4], [5, 6.5], [7, 8]])
    assert ds.X.dtype == np.float32 and ds.name == "data"


def test_read_csv_infers_regression_from_fractional_target(tmp_path):
    path = write(tmp_path, "x,y\n1,0.5\n2,1.25\n3,2\n")
    ds = read_csv(path, target="y")
    assert ds.task == "regression" and ds.y.dtype == np.float32
    np.testing.assert_array_equal(ds.y, [0.5, 1.25, 2.0])


def test_read_csv_infers_classification_from_integer_target(tmp_path):
    path = write(tmp_path, "x,label\n1,0\n2,1\n3,1\n")
    ds = read_csv(path, target="label")
    assert ds.task == "classification" and ds.class_names == ("0", "1")


def test_read_csv_task_overrides_inference(tmp_path):
    path = write(tmp_path, "x,label\n1,0\n2,1\n3,1\n")
    ds = read_csv(path, target="label", task="regression")
    assert ds.task == "regression"


def test_read_csv_target_may_be_any_column(tmp_path):
    path = write(tmp_path, "kind,a,b\ncat,1,2\ndog,3,4\n")
    ds = read_csv(path, target="kind")
    np.testing.assert_array_equal(ds.X, [[1, 2], [3, 4]])


def test_read_csv_reads_tsv_with_tab_delimiter(tmp_path):
    path = write(tmp_path, "a\tb\tk\n1\t2\tx\n3\t4\ty\n", name="data.tsv")
    assert read_csv(path, target="k").X.shape == (2, 2)


def test_read_csv_unsupervised_without_target(tmp_path):
    path = write(tmp_path, "a,b\n1,2\n3,4\n")
    ds = read_csv(path, task="unsupervised")
    assert ds.task == "unsupervised" and ds.y is None and ds.X.shape == (2, 2)


def test_read_csv_rejects_missing_target_name(tmp_path):
    path = write(tmp_path, "a,b\n1,2\n3,4\n")
    with pytest.raises(DataError, match=r"target=<column> \(columns: a, b\)"):
        read_csv(path)


def test_read_csv_rejects_unknown_target_with_suggestion(tmp_path):
    path = write(tmp_path, "height,weight,species\n1,2,a\n3,4,b\n")
    with pytest.raises(DataError, match=r"'specie' is not in .*'height', 'weight', 'species'"):
        read_csv(path, target="specie")
    with pytest.raises(DataError, match="Did you mean 'species'"):
        read_csv(path, target="specie")


@pytest.mark.parametrize("token", ["", "NaN", "nan", "NA", "?", "null"])
def test_read_csv_rejects_missing_values_naming_columns(tmp_path, token):
    text = f"a,b,c,k\n1,{token},3,x\n4,5,{token},y\n7,8,9,x\n1,{token},2,y\n"
    path = write(tmp_path, text)
    with pytest.raises(
        DataError, match=r"in 3 of 4 rows, in columns 'b' \(2 rows\), 'c' \(1 rows\)"
    ):
        read_csv(path, target="k")


def test_read_csv_rejects_missing_labels(tmp_path):
    path = write(tmp_path, "a,k\n1,x\n2,\n3,y\n")
    with pytest.raises(DataError, match=r"in 1 of 3 rows, in columns 'k' \(1 rows\)"):
        read_csv(path, target="k")


def test_read_csv_rejects_infinite_values(tmp_path):
    path = write(tmp_path, "a,k\n1,x\ninf,y\n3,y\n")
    with pytest.raises(DataError, match="NaN or infinite"):
        read_csv(path, target="k")


def test_read_csv_rejects_non_numeric_features(tmp_path):
    path = write(tmp_path, "a,colour,size,k\n1,red,s,x\n2,blue,m,y\n")
    with pytest.raises(DataError, match=r"non-numeric feature columns \['colour', 'size'\]"):
        read_csv(path, target="k")


def test_read_csv_rejects_ragged_rows(tmp_path):
    path = write(tmp_path, "a,b,k\n1,2,x\n3,y\n")
    with pytest.raises(DataError, match="ragged"):
        read_csv(path, target="k")


@pytest.mark.parametrize(("text", "message"), [("", "is empty"), ("a,b\n", "no data rows")])
def test_read_csv_rejects_empty_table(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        read_csv(write(tmp_path, text), target="b")


def test_read_csv_rejects_duplicate_columns(tmp_path):
    path = write(tmp_path, "a,a,k\n1,2,x\n3,4,y\n")
    with pytest.raises(DataError, match=r"repeats the column names \['a'\]"):
        read_csv(path, target="k")


def test_read_csv_rejects_one_class_only(tmp_path):
    path = write(tmp_path, "a,k\n1,x\n2,x\n3,x\n")
    with pytest.raises(DataError, match="one class only"):
        read_csv(path, target="k")


def test_read_csv_rejects_target_only_file(tmp_path):
    path = write(tmp_path, "k\nx\ny\n")
    with pytest.raises(DataError, match="no feature columns"):
        read_csv(path, target="k")
