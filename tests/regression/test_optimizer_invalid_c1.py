"""Regression: an invalid ``c1`` gave a bare TypeError from the ``c1 < c2`` check."""

import pytest
import torch

from deepdx.exceptions import InvalidParameterError
from deepdx.optim import LBFGS, GradientDescent


@pytest.mark.parametrize("c1", [None, "x"])
@pytest.mark.parametrize("cls", [GradientDescent, LBFGS])
def test_optimizer_invalid_c1_raises_invalid_parameter_error(cls, c1):
    with pytest.raises(InvalidParameterError, match="`c1` of"):
        cls([torch.zeros(2, requires_grad=True)], c1=c1)
