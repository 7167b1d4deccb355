"""Measure training throughput (samples/s) on the CPU and, when present, on a CUDA GPU.

Workloads, each one optimizer step on a random batch of MNIST's shape (the numbers measure
speed only), computed the way ``deepdx.train.fit`` computes it (the built-in
``cross_entropy_loss`` objective; ``mixed_precision_loss`` for bf16):

- MLP step: 784-1024-1024-10 (ReLU), Adam, batch 256;
- ConvNet step: LeNet-5 style (``conv`` spec), Adam, batch 256;
- Hessian-free step: 784-256-10, Gauss-Newton products on the first 256 rows of a
  1024-row batch, at most 50 CG iterations (``hf`` in ``fit``);
- the MLP and ConvNet steps again under bf16 autocast (``precision="bf16-mixed"``), on
  CUDA and on the CPU; each bf16 row also gives its rate relative to the float32 row of
  the same run (the reference figure; per CPU second on the CPU). Hessian-free has no
  bf16 row: ``fit`` refuses bf16 for curvature optimizers.

There is no RBM workload: deepdx has no RBM model yet. Without a CUDA device the CUDA
rows read "no CUDA device".

Timing: CPU rows use ``torch.set_num_threads(--threads)`` (1 by default) and report
samples per CPU second of this process (``time.process_time``, robust to other load)
and per wall second; CUDA rows report wall-clock samples/s after
``torch.cuda.synchronize``. Each row runs warm-up steps, then steps for at least
``--seconds`` and at least ``--min-steps`` steps.

Run: python benchmarks/gpu.py [--quick] [--seconds 3] [--threads 1] [--out FILE.md]
(``--quick``: 1 s per row, 1 warm-up step; under a minute on one CPU core, CPU only.)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from deepdx.nets import build_model
from deepdx.optim import HessianFree
from deepdx.train.objectives import cross_entropy_loss, mixed_precision_loss

INPUT_SHAPE = (1, 28, 28)
N_CLASSES = 10


@dataclass
class Row:
    """One measured workload: rates in samples/s, or a note where it could not run."""

    device: str
    workload: str
    precision: str
    per_cpu_s: float | None = None
    per_wall_s: float | None = None
    note: str = ""

    @property
    def rate(self) -> float:
        """The headline rate: per CPU second on the CPU, per wall second on CUDA."""
        rate = self.per_cpu_s if self.per_cpu_s is not None else self.per_wall_s
        assert rate is not None
        return rate


def random_batch(device: str, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return a seeded random batch ``X (batch, 1, 28, 28)``, ``y (batch,)`` on ``device``."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(batch, *INPUT_SHAPE, generator=gen)
    y = torch.randint(0, N_CLASSES, (batch,), generator=gen)
    return X.to(device), y.to(device)


def adam_step(spec: str, device: str, batch: int, bf16: bool) -> Callable[[], None]:
    """One Adam step of the net ``spec``, as ``fit`` takes it (bf16: forward under autocast)."""
    model = build_model(spec, INPUT_SHAPE, N_CLASSES, seed=0).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = random_batch(device, batch)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        if bf16:
            loss = mixed_precision_loss(cross_entropy_loss, model, data, device)
        else:
            loss = cross_entropy_loss(model, data)
        loss.backward()
        optimizer.step()

    return step


def hf_step(device: str, batch: int) -> Callable[[], None]:
    """One Hessian-free step, Gauss-Newton products on a quarter of the batch, as in ``fit``."""
    model = build_model("mlp:256", INPUT_SHAPE, N_CLASSES, seed=0).to(device)
    optimizer = HessianFree(model.parameters(), cg_max_iter=50)
    data = random_batch(device, batch)
    curvature_batch = tuple(t[: batch // 4] for t in data)

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = cross_entropy_loss(model, data)
        loss.backward()
        return loss

    def step() -> None:
        optimizer.step(
            closure,
            outputs_fn=lambda: cross_entropy_loss.outputs(model, curvature_batch),
            loss_on_outputs=lambda z: cross_entropy_loss.on_outputs(z, curvature_batch),
        )

    return step


def throughput(
    step: Callable[[], None], batch: int, device: str, args: argparse.Namespace
) -> tuple[float, float]:
    """Return ``(samples per CPU second, samples per wall second)`` of ``step``."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(args.warmup):
        step()
    sync()
    n, wall, cpu = 0, time.perf_counter(), time.process_time()
    while n < args.min_steps or time.perf_counter() - wall < args.seconds:
        step()
        n += 1
    sync()
    return n * batch / (time.process_time() - cpu), n * batch / (time.perf_counter() - wall)


def workloads() -> list[tuple[str, str, int, Callable[[str], Callable[[], None]]]]:
    """Return ``(workload, precision, batch, make_step(device))`` for every row."""
    rows = []
    for bf16 in (False, True):
        precision = "bf16-mixed" if bf16 else "32-true"
        for label, spec in (("MLP 784-1024-1024-10", "mlp:1024,1024"), ("ConvNet", "conv")):
            make_step = partial(adam_step, spec, batch=256, bf16=bf16)
            rows.append((f"{label}, Adam step", precision, 256, make_step))
    hf = partial(hf_step, batch=1024)
    rows.append(("Hessian-free step (GGN, CG<=50), 784-256-10", "32-true", 1024, hf))
    return rows


def measure(args: argparse.Namespace) -> list[Row]:
    """Run every workload on the CPU and on CUDA (rows marked when there is no device)."""
    torch.set_num_threads(args.threads)
    rows = []
    for device in ("cpu", "cuda"):
        for workload, precision, batch, make_step in workloads():
            if device == "cuda" and not torch.cuda.is_available():
                rows.append(Row("cuda", workload, precision, note="no CUDA device"))
                continue
            per_cpu, per_wall = throughput(make_step(device), batch, device, args)
            rows.append(
                Row(device, workload, precision, per_cpu if device == "cpu" else None, per_wall)
            )
            print(f"  measured {device} {workload} {precision}", file=sys.stderr)
    return rows


def table(rows: list[Row], args: argparse.Namespace) -> str:
    """Render the rows as a Markdown table, each bf16 row with its speed-up over float32."""
    fp32 = {(r.device, r.workload): r.rate for r in rows if not r.note and r.precision == "32-true"}
    device_names = {
        "cpu": f"cpu ({args.threads} thread{'s' if args.threads > 1 else ''})",
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else "cuda",
    }
    lines = [
        f"torch {torch.__version__}; command: python benchmarks/gpu.py " + " ".join(sys.argv[1:]),
        "",
        "| device | workload | precision | samples/CPU-s | samples/s (wall) | vs 32-true |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        if r.note:
            lines.append(f"| {r.device} | {r.workload} | {r.precision} | {r.note} | | |")
            continue
        base = fp32.get((r.device, r.workload))
        ratio = f"{r.rate / base:.2f}x" if r.precision != "32-true" and base else ""
        cpu = "" if r.per_cpu_s is None else f"{r.per_cpu_s:,.0f}"
        lines.append(
            f"| {device_names[r.device]} | {r.workload} | {r.precision} | {cpu} "
            f"| {r.per_wall_s or 0:,.0f} | {ratio} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per row")
    parser.add_argument("--min-steps", type=int, default=3, help="fewest timed steps per row")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per row")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="1 s per row, 1 warm-up step")
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.warmup, args.min_steps = 1.0, 1, 2
    text = table(measure(args), args)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
