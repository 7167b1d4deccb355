"""Measure training throughput (samples/s) on CPU and, when present, on a CUDA GPU.

Workloads: an MLP step (784-1024-1024-10, batch 256), a LeNet-style ConvNet step (28x28,
batch 256), both in float32 and, on CUDA, under bf16 autocast; and one Hessian-free step
with Gauss-Newton products (784-256-10, batch 1024, curvature on 256 samples). Random data
of MNIST's shape; the numbers measure speed only. Prints a Markdown table.

Run: python benchmarks/gpu.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from deepdx.nets import build_model
from deepdx.optim import HessianFree


def throughput(step: Callable[[], None], batch: int, seconds: float, device: str) -> float:
    """Return the samples per second of ``step`` after a warm-up, timed for ``seconds``."""
    for _ in range(3):
        step()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        n += 1
    sync()
    return n * batch / (time.perf_counter() - start)


def sgd_step(spec: str, device: str, batch: int, bf16: bool) -> Callable[[], None]:
    """One Adam step of the net ``spec`` on a random MNIST-shaped batch."""
    model = build_model(spec, (1, 28, 28), 10).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    X = torch.randn(batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def step() -> None:
        autocast = (
            torch.autocast(device, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        )
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = F.cross_entropy(model(X), y)
        loss.backward()
        optimizer.step()

    return step


def hf_step(device: str, batch: int) -> Callable[[], None]:
    """One Hessian-free step with Gauss-Newton products on a quarter of the batch."""
    model = build_model("mlp:256", (1, 28, 28), 10).to(device)
    optimizer = HessianFree(model.parameters(), cg_max_iter=50)
    X = torch.randn(batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    k = batch // 4

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(X), y)
        loss.backward()
        return loss

    def step() -> None:
        optimizer.step(
            closure,
            outputs_fn=lambda: model(X[:k]),
            loss_on_outputs=lambda z: F.cross_entropy(z, y[:k]),
        )

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per row")
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        name = (
            torch.cuda.get_device_name()
            if device == "cuda"
            else f"cpu ({torch.get_num_threads()} threads)"
        )
        for label, spec in (
            ("MLP 784-1024-1024-10", "mlp:1024,1024"),
            ("ConvNet (LeNet-5)", "conv"),
        ):
            for bf16 in (False, True) if device == "cuda" else (False,):
                rate = throughput(sgd_step(spec, device, 256, bf16), 256, args.seconds, device)
                rows.append((name, f"{label}, Adam step", "bf16" if bf16 else "fp32", rate))
        rate = throughput(hf_step(device, 1024), 1024, args.seconds, device)
        rows.append((name, "Hessian-free step (GGN, CG<=50), 784-256-10", "fp32", rate))
    print(f"torch {torch.__version__}\n")
    print("| device | workload | precision | samples/s |\n|---|---|---|---|")
    for device, workload, precision, rate in rows:
        print(f"| {device} | {workload} | {precision} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
