import json
import math

import numpy as np
import pytest
import torch

from deepdx.exceptions import InvalidParameterError
from deepdx.study import (
    LogisticRegressionProblem,
    MLPProblem,
    QuadraticProblem,
    compare_optimizers,
    run_optimizer,
)
from deepdx.study.methods import stability_limit


@pytest.fixture(scope="module")
def rosenbrock_comparison():
    return compare_optimizers(
        "rosenbrock", ["lbfgs", "gd", "hf", "sgd"], budget_seconds=0.3, lr_sweep=False
    )


def test_compare_rosenbrock_traces_are_monotone_and_lbfgs_descends(rosenbrock_comparison):
    for trace in rosenbrock_comparison.traces:
        assert trace.status in ("budget", "converged"), trace.reason
        for series in (trace.evals, trace.cpu_seconds, trace.wall_seconds):
            assert np.all(np.diff(series) >= 0)
        assert np.all(np.diff(trace.steps) > 0)
        assert len(trace.loss) == len(trace.evals) == len(trace.points)
    lbfgs = rosenbrock_comparison.trace("lbfgs")
    assert lbfgs.final_loss < lbfgs.loss[0]
    assert lbfgs.final_loss < 1e-8  # (1, 1) is reached well within the budget


def test_compare_budget_is_respected_up_to_one_step(rosenbrock_comparison):
    gd = rosenbrock_comparison.trace("gd")
    assert gd.status == "budget"  # gradient descent needs thousands of steps here
    assert 0.3 <= gd.cpu_seconds[-1] < 0.6


def test_compare_counts_curvature_products_of_hessian_free(rosenbrock_comparison):
    hf, gd = rosenbrock_comparison.trace("hf"), rosenbrock_comparison.trace("gd")
    assert hf.curvature_products[-1] > 0 and gd.curvature_products[-1] == 0


def test_compare_measures_curvature_at_start_and_ends(rosenbrock_comparison):
    start = rosenbrock_comparison.curvature_start
    # Hessian of Rosenbrock at (-1.2, 1): [[1330, 480], [480, 200]]
    expected = np.linalg.eigvalsh(np.array([[1330.0, 480.0], [480.0, 200.0]]))
    assert start.lambda_max == pytest.approx(expected[1], rel=1e-12)
    assert start.condition == pytest.approx(expected[1] / expected[0], rel=1e-12)
    lbfgs = rosenbrock_comparison.trace("lbfgs").curvature
    # at the minimum (1, 1): [[802, -400], [-400, 200]]
    expected = np.linalg.eigvalsh(np.array([[802.0, -400.0], [-400.0, 200.0]]))
    assert lbfgs.lambda_max == pytest.approx(expected[1], rel=1e-5)


def test_newton_beyond_max_params_is_skipped_with_the_reason():
    problem = MLPProblem(n_samples=40, hidden=(64,))  # 4,810 parameters > 4,096
    result = compare_optimizers(problem, ["newton", "lbfgs"], max_evals=3)
    newton = result.trace("newton")
    assert newton.status == "skipped" and "max_params" in newton.reason
    assert newton.loss == [] and newton.curvature is None
    assert result.trace("lbfgs").status in ("budget", "converged")


def test_divergence_is_recorded_and_the_comparison_goes_on():
    problem = QuadraticProblem(dim=10, condition=100.0)
    result = compare_optimizers(problem, ["sgd", "newton"], lrs={"sgd": 0.1}, max_evals=200)
    sgd = result.trace("sgd")  # lr 0.1 > 2 / λ_max = 0.02
    assert sgd.status == "diverged" and "objective reached" in sgd.reason
    assert stability_limit("sgd", sgd.lr) < result.curvature_start.lambda_max
    newton = result.trace("newton")
    assert newton.final_loss < 1e-12 * newton.loss[0]  # f* = 0 after a few Newton steps


def test_sweep_never_picks_a_diverging_rate_for_sgd():
    problem = QuadraticProblem(dim=10, condition=100.0)
    result = compare_optimizers(problem, ["sgd"], max_evals=400)
    sgd = result.trace("sgd")
    rates = {row[0]: row[2] for row in result.sweeps["sgd"]}
    assert sgd.lr_source == "sweep" and rates[sgd.lr] != "diverged"
    assert sgd.lr < 2.0 / result.curvature_start.lambda_max  # the stability limit
    assert any(status == "diverged" for status in rates.values())  # 3/λ_max and 10/λ_max


def test_minibatch_evaluations_count_in_full_batch_equivalents():
    problem = LogisticRegressionProblem(n_samples=100)
    trace, _ = run_optimizer(problem, "sgd", lr=0.01, batch_size=25, max_evals=3.0)
    assert trace.evals[-1] == pytest.approx(0.25 * trace.steps[-1])
    assert trace.evals[-1] == pytest.approx(3.0)


def test_newton_counts_one_hessian_per_iteration():
    problem = QuadraticProblem(dim=8, condition=10.0)
    trace, _ = run_optimizer(problem, "newton", max_evals=50)
    assert trace.status == "converged"
    assert trace.curvature_products[-1] % 8 == 0 and trace.curvature_products[-1] >= 8


def test_compare_rejects_bad_names_and_budgets():
    with pytest.raises(InvalidParameterError, match="Did you mean 'lbfgs'"):
        compare_optimizers("rosenbrock", ["lbgfs"])
    with pytest.raises(InvalidParameterError, match="no optimizers"):
        compare_optimizers("rosenbrock", [])
    with pytest.raises(InvalidParameterError, match=r"`lrs\['sgd'\]`"):
        compare_optimizers("rosenbrock", ["sgd"], lrs={"sgd": -1.0})


def test_comparison_save_writes_json_plots_and_summary(rosenbrock_comparison, tmp_path):
    out = rosenbrock_comparison.save(tmp_path / "cmp")
    data = json.loads((out / "comparison.json").read_text())
    assert [t["optimizer"] for t in data["traces"]] == ["lbfgs", "gd", "hf", "sgd"]
    assert data["traces"][0]["loss"] == rosenbrock_comparison.trace("lbfgs").loss
    for name in ("loss.png", "curvature.png", "paths.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (out / "summary.md").read_text()
    assert "| lbfgs | converged |" in summary and "![paths](paths.png)" in summary
    table = rosenbrock_comparison.summary_table()
    assert table.splitlines()[0].startswith("optimizer") and "start: f 24.2" in table


def test_comparison_landscape_is_the_objective_on_a_grid(rosenbrock_comparison):
    land = rosenbrock_comparison.landscape
    x, y, loss = land["x"][7], land["y"][11], land["loss"][11][7]
    assert loss == pytest.approx(100 * (y - x**2) ** 2 + (1 - x) ** 2, rel=1e-12)
    assert not math.isnan(loss)


def test_compare_without_a_budget_uses_the_problem_default():
    problem = QuadraticProblem(dim=30, condition=1e3)
    problem.default_budget = 0.05
    result = compare_optimizers(problem, ["gd"])
    assert result.settings["budget_seconds"] == 0.05 and result.settings["max_evals"] is None
    gd = result.trace("gd")
    assert gd.status == "budget" and 0.05 <= gd.cpu_seconds[-1] < 0.3


def test_compare_with_an_evaluation_budget_is_reproducible():
    problem = QuadraticProblem(dim=10, condition=100.0)
    runs = [compare_optimizers(problem, ["sgd", "adam"], max_evals=60) for _ in range(2)]
    assert runs[0].sweeps == runs[1].sweeps
    for a, b in zip(runs[0].traces, runs[1].traces, strict=True):
        assert (a.lr, a.loss, a.evals) == (b.lr, b.loss, b.evals)


class _Exploding(torch.optim.SGD):
    def step(self, closure=None):
        raise RuntimeError("out of memory (simulated)")


def test_an_optimizer_that_raises_is_recorded_as_failed(monkeypatch):
    from deepdx.study import trace as trace_module

    build = trace_module.build_optimizer

    def fake_build(name, model, *, lr):
        if name == "sgd":
            return _Exploding(model.parameters(), lr=0.1)
        return build(name, model, lr=lr)

    monkeypatch.setattr(trace_module, "build_optimizer", fake_build)
    result = compare_optimizers("quadratic", ["sgd", "lbfgs"], lrs={"sgd": 0.1}, max_evals=20)
    sgd = result.trace("sgd")
    assert sgd.status == "failed" and "simulated" in sgd.reason
    assert sgd.loss == [sgd.loss[0]] * len(sgd.loss)  # recorded at the start, then stopped
    assert result.trace("lbfgs").final_loss < result.trace("lbfgs").loss[0]
