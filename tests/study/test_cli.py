import json

from deepdx.cli import main


def test_cli_optimizers_writes_the_comparison(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["optimizers", "--problem", "rosenbrock", "--optimizers", "lbfgs,sgd",
            "--budget", "0.2", "--lr", "sgd=0.001", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    data = json.loads((out / "comparison.json").read_text())
    assert [t["optimizer"] for t in data["traces"]] == ["lbfgs", "sgd"]
    assert data["traces"][1]["lr"] == 0.001 and data["traces"][1]["lr_source"] == "given"
    assert data["sweeps"] == {}
    for name in ("summary.md", "loss.png", "curvature.png", "paths.png"):
        assert (out / name).is_file()
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].startswith("optimizer") and "summary.md" in printed


def test_cli_optimizers_local_optima_writes_the_study(tmp_path, capsys):
    out = tmp_path / "lo"
    argv = ["optimizers", "--local-optima", "--seeds", "2", "--data", "iris",
            "--max-iter", "100", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    data = json.loads((out / "local_optima.json").read_text())
    assert data["settings"]["data"] == "iris" and len(data["mlp"]["seeds"]) == 2
    assert (out / "distances.png").is_file()
    assert "mlp [16] tanh" in capsys.readouterr().out


def test_cli_optimizers_errors_are_one_line(tmp_path, capsys):
    argv = ["optimizers", "--problem", "quadratic", "--optimizers", "adma", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("deepdx: error:") and err.count("\n") == 1
    assert "Did you mean 'adam'" in err
    assert main(["optimizers", "--problem", "quadratic", "--data", "digits"]) == 2
    assert "has no option 'data'" in capsys.readouterr().err
