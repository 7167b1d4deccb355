import json
import re
from pathlib import Path

import numpy as np
import pytest

from deepdx import __version__
from deepdx.cli import main


def write_csv(path: Path, n: int = 120, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    labels = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    lines = ["a,b,c,label"] + [
        f"{x[0]:.5f},{x[1]:.5f},{x[2]:.5f},{lab}" for x, lab in zip(X, labels, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"deepdx {__version__}"


def test_cli_datasets_lists_bundled_names(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("digits", "mnist5k", "mnist1d", "curves", "patches", "diabetes"):
        assert re.search(rf"^{name}\s", out, re.MULTILINE)


def test_cli_train_then_evaluate_csv(tmp_path, capsys):
    csv = write_csv(tmp_path / "data.csv")
    out = tmp_path / "run"
    argv = [
        "train",
        "--data",
        str(csv),
        "--target",
        "label",
        "--model",
        "mlp:16",
        "--epochs",
        "3",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"train", "val", "test"}
    assert (out / "model.safetensors").is_file()
    assert (out / "checkpoints" / "latest.json").is_file()
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert main(["evaluate", str(out), "--data", str(csv), "--target", "label"]) == 0
    assert json.loads(capsys.readouterr().out)["n_samples"] == 120


def test_cli_resume_extends_a_run(tmp_path):
    csv = write_csv(tmp_path / "data.csv")
    common = ["--data", str(csv), "--target", "label", "--model", "mlp:8", "--quiet"]
    assert main(["train", *common, "--epochs", "2", "--out", str(tmp_path / "r")]) == 0
    assert main(["train", *common, "--epochs", "4", "--out", str(tmp_path / "r"), "--resume"]) == 0
    history = json.loads((tmp_path / "r" / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2, 3, 4]
    assert any(e["kind"] == "resume" for e in history["events"])


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--data", "digitz", "--quiet", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deepdx: error:") and err.count("\n") == 1
    assert "digits" in err
    assert main(["train", "--set", "epoks=3", "--out", str(tmp_path)]) == 2
    assert "did you mean 'epochs'" in capsys.readouterr().err.lower()
    assert main(["evaluate", str(tmp_path / "missing")]) == 2


def test_cli_config_file_and_set_override(tmp_path):
    from deepdx.cli import build_parser, resolve_run_config

    config = tmp_path / "run.toml"
    config.write_text('data = "iris"\nmodel = "mlp:8"\n[train]\nepochs = 7\nlr = 0.5\n')
    args = build_parser().parse_args(
        ["train", "--config", str(config), "--epochs", "9", "--set", "momentum=0.5"]
    )
    resolved = resolve_run_config(args)
    assert (resolved.data, resolved.model) == ("iris", "mlp:8")
    assert (resolved.train.epochs, resolved.train.lr, resolved.train.momentum) == (9, 0.5, 0.5)


def test_readme_test_command_is_what_ci_runs():
    root = Path(__file__).resolve().parents[1]
    ci_command = (root / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci_command in (root / "README.md").read_text()


def test_cli_train_under_torchrun_two_processes(tmp_path):
    import os
    import subprocess
    import sys

    csv = write_csv(tmp_path / "data.csv", n=128)
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [
        str(torchrun),
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "deepdx.cli",
        "train",
        "--data",
        str(csv),
        "--target",
        "label",
        "--model",
        "mlp:8",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--out",
        str(tmp_path / "run"),
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("run saved in") == 1  # only rank 0 prints
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]["accuracy"] > 0.5
