"""Plant known faults in nets and data, run ``deepdx.diagnose`` on each, and check the verdicts.

Every scenario's truth is known by construction. A planted fault counts as found when any
of its expected kinds appears as a ``warning`` or ``problem``; a healthy run passes when it
has no ``problem`` finding. Prints one table row per scenario and the totals.

Run: python benchmarks/planted_faults.py [--budget 30] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from deepdx.data import Dataset, from_arrays, load
from deepdx.diagnose import diagnose
from deepdx.nets import MLP


@dataclass
class Scenario:
    """A planted fault (or none): data, model, training options and the kinds it must raise."""

    name: str
    data: Callable[[], Dataset]
    model: Callable[[Dataset], nn.Module | str]
    expected: tuple[str, ...]  # empty: a healthy run
    options: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- faulty models


def seeded(build: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    """Build a module under a fixed seed without touching the caller's RNG."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build()


def saturated_sigmoid_net(data: Dataset) -> nn.Module:
    """Return a sigmoid MLP whose initial weights are 30x too large: every unit saturates."""
    net = seeded(lambda: MLP(data.sample_shape, data.n_outputs, (128, 128), activation="sigmoid"))
    with torch.no_grad():
        for layer in net.hidden_layers():
            layer.layer.weight.mul_(30.0)
    return net


def dead_relu_net(data: Dataset) -> nn.Module:
    """Return a ReLU MLP with hidden biases of -10: (almost) every unit starts dead."""
    net = seeded(lambda: MLP(data.sample_shape, data.n_outputs, (128, 128)))
    with torch.no_grad():
        for layer in net.hidden_layers():
            layer.layer.bias.fill_(-10.0)
    return net


def deep_sigmoid_net(data: Dataset) -> nn.Module:
    """Twelve sigmoid layers with the default init: gradients vanish toward the input."""
    return seeded(lambda: MLP(data.sample_shape, data.n_outputs, (64,) * 12, activation="sigmoid"))


class _WrongTanh(torch.autograd.Function):
    """tanh whose backward forgets the (1 - tanh^2) factor."""

    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205, D102
        return torch.tanh(x)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205, D102
        return grad


class WrongBackwardNet(nn.Module):
    """A tanh MLP whose custom activation has a wrong backward pass."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(n_in, 64)
        self.out = nn.Linear(64, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.out(_WrongTanh.apply(self.hidden(x.flatten(1))))


class InputIgnoringNet(nn.Module):
    """Predicts a learned constant: the inputs never reach the output."""

    def __init__(self, n_out: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(n_out))
        self.unused = nn.Linear(4, 4)  # parameters that never see the data

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.logits.expand(len(x), -1)


# ----------------------------------------------------------------------------- faulty data


def shuffled_labels(name: str) -> Callable[[], Dataset]:
    """Return a loader of the dataset with its labels permuted: nothing can be learned."""

    def make() -> Dataset:
        data = load(name)
        y = np.random.default_rng(0).permutation(data.y)
        return Dataset(data.X, y, data.task, f"{name} (shuffled labels)", data.class_names)

    return make


def small_linear_task() -> Dataset:
    """Logistic-regression territory: 300 samples, 50 features, a linear boundary + noise."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 50)).astype(np.float32)
    w = rng.normal(size=50)
    y = (X @ w + rng.normal(scale=2.0, size=300) > 0).astype(int)
    return from_arrays(X, y, name="linear-300x50")


def tiny_subset(name: str, n: int) -> Callable[[], Dataset]:
    """Return a loader of ``n`` random rows of a bundled set."""

    def make() -> Dataset:
        data = load(name)
        rows = np.random.default_rng(0).permutation(len(data))[:n]
        return data.subset(rows, name=f"{name}[:{n}]")

    return make


SCENARIOS = [
    Scenario(
        "lr far too high",
        lambda: load("digits"),
        lambda d: "mlp",
        ("divergence", "learning_rate_too_high"),
        {"optimizer": "sgd", "lr": 50.0},
    ),
    Scenario(
        "lr far too low",
        lambda: load("wine"),
        lambda d: "mlp",
        ("learning_rate_too_low", "plateau", "underfitting"),
        {"optimizer": "sgd", "lr": 1e-6},
    ),
    Scenario(
        "saturated sigmoid init",
        lambda: load("digits"),
        saturated_sigmoid_net,
        ("saturated_units",),
    ),
    Scenario(
        "dead ReLUs (bias -10)", lambda: load("breast_cancer"), dead_relu_net, ("dead_units",)
    ),
    Scenario(
        "deep sigmoid net",
        lambda: load("digits"),
        deep_sigmoid_net,
        ("vanishing_gradients",),
        {"optimizer": "sgd", "lr": 0.1},
    ),
    Scenario(
        "wrong backward",
        lambda: load("iris"),
        lambda d: seeded(lambda: WrongBackwardNet(d.n_features, d.n_outputs)),
        ("wrong_gradient",),
    ),
    Scenario(
        "tiny train set, big net",
        tiny_subset("digits", 150),
        lambda d: "mlp:1024,1024",
        ("overfitting",),
        {"epochs": 60},
    ),
    Scenario(
        "net far too small",
        lambda: load("mnist1d"),
        lambda d: "mlp:2",
        ("underfitting", "more_units"),
    ),
    Scenario("shuffled labels", shuffled_labels("digits"), lambda d: "mlp", ("below_baseline",)),
    Scenario("linear task", small_linear_task, lambda d: "mlp:512,512", ("below_baseline",)),
    Scenario(
        "ignores its inputs",
        lambda: load("wine"),
        lambda d: seeded(lambda: InputIgnoringNet(d.n_outputs)),
        ("ignores_inputs",),
    ),
    Scenario("healthy: digits", lambda: load("digits"), lambda d: "mlp", ()),
    Scenario("healthy: iris", lambda: load("iris"), lambda d: "mlp:64", ()),
    Scenario("healthy: breast_cancer", lambda: load("breast_cancer"), lambda d: "mlp:64", ()),
    Scenario("healthy: mnist1d", lambda: load("mnist1d"), lambda d: "mlp:256,256", ()),
]


def run(scenario: Scenario, budget: float) -> tuple[bool, str, float]:
    """Diagnose one scenario; return (passed, the kinds found, seconds)."""
    data = scenario.data()
    start = time.perf_counter()
    result = diagnose(data, scenario.model(data), budget=budget, **scenario.options)
    seconds = time.perf_counter() - start
    flagged = {f.kind for f in result.findings if f.severity in ("warning", "problem")}
    problems = {f.kind for f in result.problems}
    passed = not problems if not scenario.expected else bool(flagged & set(scenario.expected))
    found = ", ".join(f"{f.kind}({f.severity[0]})" for f in result.findings if f.severity != "info")
    return passed, found or "-", seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=30.0, help="seconds per diagnosis")
    parser.add_argument("--only", nargs="*", help="run only scenarios whose name contains these")
    args = parser.parse_args()
    chosen = [s for s in SCENARIOS if not args.only or any(o in s.name for o in args.only)]
    print("| scenario | data | expected (any of) | found (w=warning, p=problem) | ok | s |")
    print("|---|---|---|---|---|---|")
    n_passed = 0
    for scenario in chosen:
        passed, found, seconds = run(scenario, args.budget)
        n_passed += passed
        expected = " / ".join(scenario.expected) or "no problem"
        print(
            f"| {scenario.name} | {scenario.data().name} | {expected} | {found} | "
            f"{'yes' if passed else 'NO'} | {seconds:.0f} |",
            flush=True,
        )
    print(f"\n{n_passed}/{len(chosen)} scenarios passed")


if __name__ == "__main__":
    main()
