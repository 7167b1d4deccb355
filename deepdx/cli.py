"""The ``deepdx`` command: parses arguments and calls the library, nothing more.

Settings resolve in this order, later wins: defaults, ``--config FILE.toml``, explicit
flags, ``--set key=value``. Errors print as one line, without a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import deepdx
from deepdx._validation import check_keys
from deepdx.exceptions import DeepdxError, InvalidParameterError
from deepdx.train.config import SCHEDULES, TrainConfig

__all__ = ["build_parser", "main"]

_TRAIN_FLAGS = (
    "epochs",
    "lr",
    "optimizer",
    "batch_size",
    "seed",
    "schedule",
    "weight_decay",
    "early_stopping",
    "device",
    "clip_grad_norm",
)
_RUN_FLAGS = ("data", "target", "task", "model")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``deepdx`` command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except (DeepdxError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        message = str(exc).strip().replace("\n", " ")
        print(f"deepdx: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deepdx: interrupted; resume with --resume", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of every ``deepdx`` sub-command."""
    parser = argparse.ArgumentParser(
        prog="deepdx", description="Diagnose why a neural net does not work."
    )
    parser.add_argument("--version", action="version", version=f"deepdx {deepdx.__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_datasets(commands)
    _add_train(commands)
    _add_evaluate(commands)
    _add_diagnose(commands)
    _add_optimizers(commands)
    return parser


# ----------------------------------------------------------------------------- datasets


def _add_datasets(commands: argparse._SubParsersAction) -> None:
    sub = commands.add_parser(
        "datasets",
        help="list the bundled datasets",
        description="List the datasets `--data NAME` accepts.",
    )
    sub.set_defaults(handler=_run_datasets)


def _run_datasets(args: argparse.Namespace) -> int:
    from deepdx.data import list_datasets

    rows = [(d.name, d.task, d.description) for d in list_datasets()]
    width = max(len(r[0]) for r in rows) + 2
    for name, task, description in rows:
        print(f"{name:<{width}}{task:<16}{description}")
    print(
        "\nFiles: --data PATH with .csv (--target COL), .npz (X, y), IDX, or a folder of "
        "images with one sub-folder per class."
    )
    return 0


# ----------------------------------------------------------------------------- train


def _add_run_arguments(sub: argparse.ArgumentParser) -> None:
    """Add the flags of commands that train: data, model and training settings."""
    from deepdx.nets import describe_spec

    group = sub.add_argument_group("data and model")
    group.add_argument("--data", help="dataset name or path (default digits)")
    group.add_argument("--target", help="target column of a CSV file")
    group.add_argument("--task", choices=("classification", "regression", "unsupervised"))
    group.add_argument("--model", help=f"model spec (default mlp). {describe_spec()}")
    group = sub.add_argument_group("training")
    group.add_argument("--epochs", type=int)
    group.add_argument("--lr", type=float, help="learning rate (default: the optimizer's)")
    group.add_argument("--optimizer", help="sgd, momentum, nesterov, adam (default), adamw, ...")
    group.add_argument("--batch-size", type=int)
    group.add_argument("--seed", type=int)
    group.add_argument("--schedule", choices=SCHEDULES)
    group.add_argument("--weight-decay", type=float)
    group.add_argument("--early-stopping", type=int, metavar="PATIENCE")
    group.add_argument("--clip-grad-norm", type=float)
    group.add_argument(
        "--device",
        help="cpu (default), cuda, cuda:1, ...; under torchrun "
        "with several processes, training is data-parallel",
    )
    group.add_argument("--config", type=Path, help="TOML file of settings")
    group.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting (repeatable), e.g. --set momentum=0.5",
    )
    group.add_argument("--quiet", action="store_true", help="no progress output")


def _add_train(commands: argparse._SubParsersAction) -> None:
    sub = commands.add_parser(
        "train",
        help="train a model and save a resumable run",
        description="Train a model on a dataset; write checkpoints, history and metrics to --out.",
    )
    _add_run_arguments(sub)
    sub.add_argument("--out", type=Path, help="run directory (default runs/DATA-MODEL)")
    sub.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    sub.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from deepdx.runs import train_run
    from deepdx.train import ProgressBar

    config = resolve_run_config(args)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by torchrun with several ranks
        config = dataclasses.replace(config, train=config.train.replace(distributed=True))
    main = _is_rank_zero()
    out = args.out or Path("runs") / _slug(f"{Path(config.data).stem}-{config.model}")
    quiet = args.quiet or not main
    callbacks = [] if quiet else [ProgressBar(enabled=None if sys.stderr.isatty() else False)]
    result = train_run(config, out, resume=args.resume, callbacks=callbacks)
    if main:
        print(f"run saved in {result.directory}")
        _print_metrics(result.metrics)
    return 0


def _is_rank_zero() -> bool:
    """Return whether this process is rank 0 of a ``torchrun`` launch (or not launched by it)."""
    return os.environ.get("RANK", "0") == "0"


def resolve_run_config(args: argparse.Namespace) -> Any:
    """Merge defaults, ``--config``, explicit flags and ``--set`` into a ``RunConfig``."""
    from deepdx.runs import RunConfig

    values: dict[str, Any] = {}
    if args.config is not None:
        values.update(_flatten(tomllib.loads(args.config.read_text())))
    values.update(
        {
            k: getattr(args, k)
            for k in _RUN_FLAGS + _TRAIN_FLAGS
            if getattr(args, k, None) is not None
        }
    )
    values.update(dict(_parse_assignment(item) for item in args.set))
    run_keys = [f for f in RunConfig.__dataclass_fields__ if f != "train"]
    check_keys("deepdx train", values, run_keys + TrainConfig.field_names())
    train = TrainConfig(**{k: v for k, v in values.items() if k not in run_keys})
    return RunConfig(**{k: v for k, v in values.items() if k in run_keys}, train=train)


# ----------------------------------------------------------------------------- evaluate


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    sub = commands.add_parser(
        "evaluate",
        help="score a trained run",
        description="Score a run on its test split, or on --data.",
    )
    sub.add_argument("run", type=Path, help="run directory written by `deepdx train`")
    sub.add_argument("--data", help="dataset name or path to score instead of the test split")
    sub.add_argument("--target", help="target column of a CSV file")
    sub.add_argument(
        "--allow-code",
        action="store_true",
        help="allow a run whose model is a Python file (importing it runs it)",
    )
    sub.set_defaults(handler=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from deepdx.runs import evaluate_run

    scores = evaluate_run(args.run, args.data, target=args.target, allow_code=args.allow_code)
    print(json.dumps(scores, indent=2))
    return 0


# ----------------------------------------------------------------------------- diagnose


def _add_diagnose(commands: argparse._SubParsersAction) -> None:
    sub = commands.add_parser(
        "diagnose",
        help="find out why a net does not work (report.html + findings.json)",
        description="Run the diagnosis checklist (pre-flight checks, shallow baselines, a "
        "monitored training run, learning curves, capacity probes) and write the verdicts, "
        "evidence and advice to --out/report.html and --out/findings.json.",
    )
    _add_run_arguments(sub)
    sub.add_argument("--budget", type=float,
                     help="seconds for the checks (default 90; a deadline, overrun by at "
                     "most one training epoch); start-up, loading and the report come on "
                     "top")  # fmt: skip
    sub.add_argument("--n-jobs", type=int, default=1, help="parallel jobs for curves and probes")
    sub.add_argument("--out", type=Path, help="report directory (default runs/diagnose-DATA)")
    sub.set_defaults(handler=_run_diagnose)


def _run_diagnose(args: argparse.Namespace) -> int:
    from deepdx.diagnose.engine import DEFAULT_BUDGET, diagnose
    from deepdx.runs import load_dataset

    config = resolve_run_config(args)
    dataset = load_dataset(config)
    progress = None if args.quiet else (lambda line: print(f"  {line}", file=sys.stderr))
    result = diagnose(
        dataset,
        config.model,
        budget=args.budget or DEFAULT_BUDGET,
        val_size=config.val_size,
        test_size=config.test_size,
        n_jobs=args.n_jobs,
        progress=progress,
        **config.train.to_dict(),
    )
    out = args.out or Path("runs") / _slug(f"diagnose-{Path(config.data).stem}")
    result.save(out)
    print(result.summary_table())
    print(f"\nreport: {out / 'report.html'}\nfindings: {out / 'findings.json'}")
    return 0


# ----------------------------------------------------------------------------- optimizers


def _add_optimizers(commands: argparse._SubParsersAction) -> None:
    from deepdx.study.compare import DEFAULT_OPTIMIZERS
    from deepdx.study.problems import PROBLEMS

    sub = commands.add_parser(
        "optimizers",
        help="compare optimizers on one problem, or study local optima",
        description="Run several optimizers on one problem under the same budget and plot "
        "the loss against CPU time and gradient evaluations, with the Hessian's top "
        "eigenvalue and condition number at the start and at each end point. With "
        "--local-optima, train one MLP from many seeds next to logistic regression instead. "
        "Writes summary.md, PNG plots and a JSON of every trace to --out.",
    )
    sub.add_argument("--problem", choices=tuple(PROBLEMS), default="logreg",
                     help="the objective (default logreg)")  # fmt: skip
    sub.add_argument("--optimizers", default=",".join(DEFAULT_OPTIMIZERS),
                     help="comma-separated names (default %(default)s)")  # fmt: skip
    sub.add_argument("--budget", type=float,
                     help="CPU seconds of optimizer steps per optimizer (default: the "
                     "problem's, 1-3 s; 20 s for autoencoder)")  # fmt: skip
    sub.add_argument("--max-evals", type=float, help="gradient evaluations per optimizer")
    sub.add_argument("--data", help="data set of logreg, mlp, autoencoder, --local-optima")
    sub.add_argument("--batch-size", type=int, default=64, help="minibatch size (default 64)")
    sub.add_argument("--lr", action="append", default=[], metavar="NAME=VALUE",
                     help="learning rate of one optimizer, not swept (repeatable)")  # fmt: skip
    sub.add_argument("--no-sweep", action="store_true",
                     help="use the curvature-based learning rates without a sweep")  # fmt: skip
    sub.add_argument("--seed", type=int, default=0, help="seed of the start point (default 0)")
    sub.add_argument("--local-optima", action="store_true",
                     help="train the MLP and logistic regression from --seeds seeds")  # fmt: skip
    sub.add_argument("--seeds", type=int, default=10, help="seeds of --local-optima (10)")
    sub.add_argument("--max-iter", type=int, default=2000,
                     help="L-BFGS iterations per seed of --local-optima (2000)")  # fmt: skip
    sub.add_argument("--out", type=Path, help="output directory (default runs/optimizers-PROBLEM)")
    sub.add_argument("--quiet", action="store_true", help="no progress output")
    sub.set_defaults(handler=_run_optimizers)


def _run_optimizers(args: argparse.Namespace) -> int:
    from deepdx.study import compare_optimizers, local_optima, make_problem

    progress = None if args.quiet else (lambda line: print(f"  {line}", file=sys.stderr))
    data = {} if args.data is None else {"data": args.data}
    if args.local_optima:
        result = local_optima(n_seeds=args.seeds, max_iter=args.max_iter, progress=progress, **data)
        out = args.out or Path("runs") / "local-optima"
    else:
        lrs = dict(_parse_assignment(item) for item in args.lr)
        result = compare_optimizers(
            make_problem(args.problem, **data),
            [name.strip() for name in args.optimizers.split(",") if name.strip()],
            budget_seconds=args.budget,
            max_evals=args.max_evals,
            batch_size=args.batch_size,
            lrs={name.replace("_", "-"): value for name, value in lrs.items()},
            lr_sweep=not args.no_sweep,
            seed=args.seed,
            progress=progress,
        )
        out = args.out or Path("runs") / _slug(f"optimizers-{args.problem}")
    result.save(out)
    print(result.summary_table())
    print(f"\nsummary: {out / 'summary.md'}")
    return 0


# ----------------------------------------------------------------------------- helpers


def _print_metrics(metrics: dict[str, dict[str, float]]) -> None:
    names = sorted({k for scores in metrics.values() for k in scores})
    print(f"{'split':<8}" + "".join(f"{n:>12}" for n in names))
    for split, scores in metrics.items():
        print(f"{split:<8}" + "".join(f"{scores.get(n, float('nan')):>12.4f}" for n in names))


def _flatten(table: dict[str, Any]) -> dict[str, Any]:
    """Merge a TOML file's ``[train]`` table into the top level."""
    flat = {k: v for k, v in table.items() if not isinstance(v, dict)}
    for value in table.values():
        if isinstance(value, dict):
            flat.update(value)
    return flat


def _parse_assignment(item: str) -> tuple[str, Any]:
    """Parse ``key=value``; the value is read as TOML (numbers, booleans) or else a string."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise InvalidParameterError(f"--set expects KEY=VALUE; got {item!r}.")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip().replace("-", "_"), value


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.,-]+", "_", text)


if __name__ == "__main__":
    raise SystemExit(main())
