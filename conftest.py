"""Test-wide settings: one torch thread keeps small-tensor tests fast and steady on shared CPUs."""

import torch

torch.set_num_threads(1)
