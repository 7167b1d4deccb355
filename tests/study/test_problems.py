import math

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss

from deepdx.curvature import gauss_newton_matrix, hessian
from deepdx.exceptions import DataError, InvalidParameterError
from deepdx.study import (
    AutoencoderProblem,
    LogisticRegressionProblem,
    MLPProblem,
    QuadraticProblem,
    RosenbrockProblem,
    make_problem,
    measure_curvature,
)
from tests.optim.problems import ROSENBROCK_START, rosenbrock


@pytest.fixture(scope="module")
def logreg():
    return LogisticRegressionProblem(n_samples=120, l2=0.01)


@pytest.fixture(scope="module")
def mlp():
    return MLPProblem(n_samples=60, hidden=(5,), l2=0.01)


def closure_value_and_grad(problem, model, rows=None):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loss = problem.closure(model, optimizer, rows)()
    return float(loss.detach()), [p.grad.clone() for p in model.parameters()]


def theta_norm2(model):
    return sum(float(p.detach().square().sum()) for p in model.parameters())


def test_quadratic_closure_matches_direct_computation():
    problem = QuadraticProblem(dim=6, condition=50.0, seed=1)
    model = problem.init_model()
    with torch.no_grad():
        model.x.copy_(torch.linspace(-1.0, 2.0, 6, dtype=torch.float64))
    f, (g,) = closure_value_and_grad(problem, model)
    A, x_star, x = problem.A.numpy(), problem.x_star.numpy(), model.x.detach().numpy()
    assert f == pytest.approx(0.5 * (x - x_star) @ A @ (x - x_star), rel=1e-12)
    np.testing.assert_allclose(g.numpy(), A @ (x - x_star), rtol=1e-10, atol=1e-12)


def test_quadratic_curvature_matches_numpy_eigvalsh():
    problem = QuadraticProblem(dim=12, condition=300.0, seed=2)
    eigenvalues = np.linalg.eigvalsh(problem.A.numpy())
    kappa = eigenvalues.max() / eigenvalues.min()
    dense = measure_curvature(problem, problem.init_model())
    lanczos = measure_curvature(problem, problem.init_model(), dense_max_params=1, lanczos_steps=12)
    for summary in (dense, lanczos):
        assert summary.lambda_max == pytest.approx(eigenvalues.max(), rel=1e-9)
        assert summary.lambda_min == pytest.approx(eigenvalues.min(), rel=1e-7)
        assert summary.condition == pytest.approx(kappa, rel=1e-7)
    assert (dense.method, lanczos.method) == ("dense", "lanczos")


def test_quadratic_gauss_newton_matrix_is_A():
    problem = QuadraticProblem(dim=5, condition=20.0)
    model = problem.init_model()
    inputs = problem.ggn_inputs(model)
    G = gauss_newton_matrix(inputs["outputs_fn"], inputs["loss_on_outputs"], [model.x])
    torch.testing.assert_close(G, problem.A, rtol=1e-10, atol=1e-10)


def test_rosenbrock_closure_matches_reference_and_analytic_gradient():
    problem = RosenbrockProblem()
    model = problem.init_model()
    f, (g,) = closure_value_and_grad(problem, model)
    x0, x1 = ROSENBROCK_START
    reference = rosenbrock(torch.tensor(ROSENBROCK_START, dtype=torch.float64))
    assert f == pytest.approx(float(reference), rel=1e-12)
    expected = [-400 * x0 * (x1 - x0**2) - 2 * (1 - x0), 200 * (x1 - x0**2)]
    np.testing.assert_allclose(g.numpy(), expected, rtol=1e-12)


def test_logreg_loss_matches_sklearn_log_loss_plus_penalty(logreg):
    model = logreg.init_model(seed=3)
    f, _ = closure_value_and_grad(logreg, model)
    with torch.no_grad():
        probabilities = torch.softmax(model(logreg.X), dim=1).numpy()
    expected = log_loss(logreg.targets.numpy(), probabilities, labels=list(range(10)))
    expected += 0.5 * logreg.l2 * theta_norm2(model)
    assert f == pytest.approx(expected, rel=1e-10)


def test_logreg_minibatch_closure_uses_only_its_rows(logreg):
    model = logreg.init_model(seed=0)
    rows = torch.tensor([3, 17, 40, 99])
    f, grads = closure_value_and_grad(logreg, model, rows)
    sub = LogisticRegressionProblem(n_samples=120, l2=0.01)
    sub.X, sub.targets, sub.n_samples = logreg.X[rows], logreg.targets[rows], len(rows)
    f_sub, grads_sub = closure_value_and_grad(sub, model)
    assert f == pytest.approx(f_sub, rel=1e-14)
    for a, b in zip(grads, grads_sub, strict=True):
        torch.testing.assert_close(a, b)


def test_logreg_gauss_newton_equals_hessian(logreg):
    # z = [X W^T + b ; sqrt(l2) theta] is linear in theta, so G = H exactly
    model = logreg.init_model(seed=1)
    params = list(model.parameters())
    inputs = logreg.ggn_inputs(model)
    G = gauss_newton_matrix(inputs["outputs_fn"], inputs["loss_on_outputs"], params)
    H = hessian(lambda: logreg.loss(model), params)
    torch.testing.assert_close(G, H, rtol=1e-8, atol=1e-10)


def test_mlp_loss_matches_direct_computation(mlp):
    model = mlp.init_model(seed=2)
    f, _ = closure_value_and_grad(mlp, model)
    layers = model.layers
    X = mlp.X.reshape(len(mlp.X), -1)
    with torch.no_grad():
        h = torch.tanh(X @ layers.linear1.weight.T + layers.linear1.bias)  # (n, 5)
        logits = h @ layers.output.weight.T + layers.output.bias  # (n, 10)
        log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        expected = -log_p[torch.arange(len(X)), mlp.targets].mean()
    assert f == pytest.approx(float(expected) + 0.5 * mlp.l2 * theta_norm2(model), rel=1e-12)


def test_mlp_seeds_give_different_starts_and_same_seed_same_start(mlp):
    a, b, c = mlp.init_model(seed=0), mlp.init_model(seed=0), mlp.init_model(seed=1)
    flat = [torch.nn.utils.parameters_to_vector(m.parameters()) for m in (a, b, c)]
    assert torch.equal(flat[0], flat[1]) and not torch.equal(flat[0], flat[2])


def test_autoencoder_loss_matches_summed_pixel_cross_entropy():
    problem = AutoencoderProblem("digits", encoder_sizes=(8, 3), n_samples=20, l2=0.1)
    model = problem.init_model(seed=0)
    f, _ = closure_value_and_grad(problem, model)
    x = problem.targets.numpy()  # (20, 64) in [0, 1]
    with torch.no_grad():
        z = model(problem.X).numpy()  # (20, 64) logits
    log_p, log_q = -np.logaddexp(0.0, -z), -np.logaddexp(0.0, z)  # log sigmoid(z), log(1 - .)
    expected = -(x * log_p + (1 - x) * log_q).sum() / len(x)
    assert f == pytest.approx(expected + 0.5 * 0.1 * theta_norm2(model), rel=1e-10)


def test_ggn_split_reproduces_the_loss(logreg, mlp):
    rows = torch.arange(7)
    for problem in (logreg, mlp, RosenbrockProblem(), QuadraticProblem(dim=3)):
        model = problem.init_model(seed=0)
        for subset in (None, rows):
            inputs = problem.ggn_inputs(model, subset)
            with torch.no_grad():
                split = inputs["loss_on_outputs"](inputs["outputs_fn"]())
                direct = problem.loss(model, subset)
            assert float(split) == pytest.approx(float(direct), rel=1e-14)


def test_minibatches_cover_every_row_once_per_epoch(logreg):
    batches = logreg.minibatches(50, torch.Generator().manual_seed(0))
    epoch = torch.cat([next(batches) for _ in range(3)])  # 50 + 50 + 20 rows
    assert sorted(epoch.tolist()) == list(range(120))


def test_make_problem_rejects_unknown_names_and_options():
    with pytest.raises(InvalidParameterError, match="Did you mean 'rosenbrock'"):
        make_problem("rosenbrok")
    with pytest.raises(InvalidParameterError, match="has no option 'data'"):
        make_problem("quadratic", data="digits")
    with pytest.raises(InvalidParameterError, match="`condition` of QuadraticProblem"):
        make_problem("quadratic", condition=0.5)


def test_classification_problems_refuse_regression_data():
    with pytest.raises(DataError, match="classification data set"):
        LogisticRegressionProblem("diabetes")


def test_quadratic_start_gap_is_half_weighted_norm():
    problem = QuadraticProblem(dim=4, condition=10.0, seed=5)
    x_star = problem.x_star
    with torch.no_grad():
        f0 = float(problem.loss(problem.init_model()))
    assert f0 == pytest.approx(0.5 * float(x_star @ problem.A @ x_star), rel=1e-12)
    assert problem.optimum == 0.0 and math.isclose(float(problem.eigenvalues[-1]), 10.0)
