"""Time ``deepdx.train.fit`` against a hand-written PyTorch loop and scikit-learn's MLPClassifier.

Same data (mnist5k, standardized train split), same architecture (784-256-10, ReLU), same
optimizer (Adam, lr 1e-3), batch size, seed and number of epochs. Prints the seconds of each
(median of ``--repeats`` runs), the ratios and the test accuracies.

Run: python benchmarks/train_overhead.py [--epochs 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from deepdx.data import load, prepare
from deepdx.nets import build_model
from deepdx.train import evaluate, fit


def hand_written(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, args) -> None:
    """Train with the loop a PyTorch user writes by hand: shuffle, slice, step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)
    for _ in range(args.epochs):
        perm = torch.randperm(len(X), generator=generator)
        for i in range(0, len(X), args.batch_size):
            index = perm[i : i + args.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(X[index]), y[index])
            loss.backward()
            optimizer.step()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    splits, _ = prepare(load("mnist5k"), seed=args.seed)
    train, test = splits.train, splits.test
    X, y = torch.from_numpy(train.X), torch.from_numpy(train.y)
    new_model = lambda: build_model("mlp:256", train.sample_shape, 10, seed=args.seed)  # noqa: E731
    options = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)

    runners = {
        "deepdx fit": lambda m: fit(m, train, optimizer="adam", **options),
        "hand-written loop": lambda m: hand_written(m, X, y, args),
    }
    for run in runners.values():  # warm-up: first optimizer and kernel use pay one-off costs
        run(new_model())
    times: dict[str, list[float]] = {"deepdx fit": [], "hand-written loop": [], "sklearn": []}
    accuracy: dict[str, float] = {}
    for repeat in range(args.repeats):
        order = list(runners) if repeat % 2 == 0 else list(reversed(runners))
        for name in order:  # alternate the order so drifting machine load hits both alike
            model = new_model()
            times[name].append(timed(lambda m=model, run=runners[name]: run(m)))
            accuracy[name] = evaluate(model, test)["accuracy"]
    sk = MLPClassifier(
        hidden_layer_sizes=(256,),
        solver="adam",
        batch_size=args.batch_size,
        learning_rate_init=args.lr,
        max_iter=args.epochs,
        alpha=0.0,
        random_state=args.seed,
        tol=0.0,
        n_iter_no_change=10**6,
    )
    flat_train, flat_test = train.X.reshape(len(train), -1), test.X.reshape(len(test), -1)
    for _ in range(max(1, args.repeats // 2)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            times["sklearn"].append(timed(lambda: sk.fit(flat_train, train.y)))
    accuracy["sklearn"] = float(np.mean(sk.predict(flat_test) == test.y))

    base = statistics.median(times["hand-written loop"])
    print(
        f"mnist5k train {len(train)} x 784, MLP 784-256-10, Adam lr {args.lr}, "
        f"batch {args.batch_size}, {args.epochs} epochs, torch threads {torch.get_num_threads()}"
    )
    print(f"{'runner':<20}{'median s':>10}{'vs loop':>10}{'test acc':>10}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<20}{median:>10.3f}{median / base:>9.3f}x{accuracy[name]:>10.4f}")


if __name__ == "__main__":
    main()
