"""Test accuracy of `deepdx train` on the bundled sets, as documented (slow: -m slow)."""

import json

import pytest

from deepdx.cli import main


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "minimum"),
    [
        (["--data", "mnist5k", "--model", "mlp:256", "--epochs", "10"], 0.93),
        (["--data", "digits"], 0.96),
        (["--data", "mnist1d", "--model", "mlp:256,256"], 0.60),
    ],
    ids=["mnist5k", "digits", "mnist1d"],
)
def test_train_reaches_documented_test_accuracy(tmp_path, args, minimum):
    assert main(["train", *args, "--out", str(tmp_path), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= minimum
