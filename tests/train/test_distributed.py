import socket

import pytest
import torch
import torch.multiprocessing as mp

from deepdx.exceptions import InvalidParameterError
from deepdx.io import load_tensors
from deepdx.train import fit
from tests.train import _ddp_worker as worker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_two_gloo_ranks_agree_match_one_process_and_resume_exactly(tmp_path):
    mp.spawn(worker.train, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    weights = {
        f"{run}{r}": load_tensors(tmp_path / f"{run}-rank{r}.safetensors")
        for run in "ab"
        for r in range(2)
    }
    reference = worker.make_model()
    fit(reference, worker.blobs(), epochs=worker.EPOCHS, **worker.OPTIONS)
    for name, value in weights["a0"].items():
        assert torch.equal(value, weights["a1"][name])  # DDP keeps the replicas identical
        assert torch.equal(value, weights["b0"][name])  # 2 epochs + resume to 4 == 4 epochs
        torch.testing.assert_close(value, reference.state_dict()[name], rtol=1e-5, atol=1e-6)
    # only rank 0 writes: the run directory holds one set of checkpoints
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "epoch-000003",
        "epoch-000004",
        "latest.json",
    ]


def test_distributed_without_process_group_says_how_to_start(monkeypatch, blobs):
    for variable in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(InvalidParameterError, match="torchrun --nproc-per-node"):
        fit(worker.make_model(), blobs[0], epochs=1, distributed=True)
