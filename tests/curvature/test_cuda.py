import pytest
import torch

from deepdx.curvature import ggn_vp, hessian_top_eigenvalue, hvp_flat, unflatten
from tests.curvature.conftest import make_mlp

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_hvp_on_cuda_matches_cpu():
    cpu, cuda = make_mlp("ce"), make_mlp("ce", device="cuda")
    v = cpu.random_direction(0)
    got = hvp_flat(cuda.loss, cuda.params, v.cuda())
    assert got.device.type == "cuda"
    want = hvp_flat(cpu.loss, cpu.params, v)
    torch.testing.assert_close(got.cpu(), want, rtol=0, atol=1e-10)


def test_ggn_vp_on_cuda_matches_cpu():
    cpu, cuda = make_mlp("squared"), make_mlp("squared", device="cuda")
    v = cpu.random_direction(1)
    got = ggn_vp(cuda.outputs, cuda.loss_on_outputs, cuda.params, unflatten(v.cuda(), cuda.params))
    want = ggn_vp(cpu.outputs, cpu.loss_on_outputs, cpu.params, unflatten(v, cpu.params))
    for g, w in zip(got, want, strict=True):
        assert g.device.type == "cuda"
        torch.testing.assert_close(g.cpu(), w, rtol=0, atol=1e-10)


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_hessian_top_eigenvalue_on_cuda_matches_cpu(method):
    cpu, cuda = make_mlp("ce"), make_mlp("ce", device="cuda")
    want = torch.linalg.eigvalsh(cpu.dense_hessian()).max().item()
    got = hessian_top_eigenvalue(cuda.loss, cuda.params, method=method, max_iter=5000)
    assert abs(got - want) <= 1e-6 * abs(want)
