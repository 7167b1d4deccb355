import numpy as np
import pytest
import torch

from deepdx.data.dataset import from_arrays


@pytest.fixture
def blobs():
    """Two Gaussian blobs in 4-D: (train, val), linearly separable, 256 + 64 rows."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 320)
    X = (rng.normal(size=(320, 4)) + 2.0 * y[:, None]).astype(np.float32)
    return from_arrays(X[:256], y[:256]), from_arrays(X[256:], y[256:])


def make_mlp(seed: int = 0, dropout: float = 0.0) -> torch.nn.Module:
    gen_state = torch.get_rng_state()
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Dropout(dropout), torch.nn.Linear(16, 2)
    )
    torch.set_rng_state(gen_state)
    return model
