import pytest
import torch

from deepdx.curvature import flatten, unflatten
from deepdx.exceptions import InvalidParameterError


def test_flatten_unflatten_roundtrip_over_several_tensors():
    gen = torch.Generator().manual_seed(0)
    tensors = [torch.randn(2, 3, generator=gen), torch.randn(4, generator=gen), torch.ones(())]
    flat = flatten(tensors)
    assert flat.shape == (11,)
    for got, want in zip(unflatten(flat, tensors), tensors, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_flatten_keeps_row_major_order():
    W = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    b = torch.tensor([5.0])
    assert flatten([W, b]).tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_unflatten_rejects_wrong_length():
    with pytest.raises(InvalidParameterError, match=r"shape \(5,\).*got \(4,\)"):
        unflatten(torch.zeros(4), [torch.zeros(2, 2), torch.zeros(1)])


def test_flatten_rejects_empty_sequence():
    with pytest.raises(InvalidParameterError, match="at least one tensor"):
        flatten([])
