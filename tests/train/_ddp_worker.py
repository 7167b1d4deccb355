"""A worker process of the distributed-training tests (run by torch.multiprocessing.spawn).

Each rank trains 4 epochs straight (run ``a``), then 2 epochs and a resume to 4 (run ``b``),
and saves its final weights of both runs.
"""

import os

import numpy as np
import torch
import torch.distributed as dist

from deepdx.data.dataset import from_arrays
from deepdx.io import save_tensors
from deepdx.train import fit

EPOCHS, BATCH = 4, 32
OPTIONS = dict(batch_size=BATCH, optimizer="momentum", lr=0.05)


def blobs():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 256)
    X = (rng.normal(size=(256, 4)) + 2.0 * y[:, None]).astype(np.float32)
    return from_arrays(X, y)


def make_model():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))


def train(rank, world_size, port, out):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size)
    )
    torch.set_num_threads(1)
    try:
        for run, schedule in (("a", [EPOCHS]), ("b", [EPOCHS // 2, EPOCHS])):
            for i, epochs in enumerate(schedule):
                model = make_model()
                fit(
                    model,
                    blobs(),
                    epochs=epochs,
                    distributed=True,
                    resume=i > 0,
                    checkpoint_dir=os.path.join(out, run),
                    **OPTIONS,
                )
            save_tensors(
                os.path.join(out, f"{run}-rank{rank}.safetensors"), dict(model.state_dict())
            )
    finally:
        dist.destroy_process_group()
