"""GPU parity: Triton scan vs torch vs mamba-ssm, the fused mixer and the point ops on CUDA against CPU.

Every test needs a CUDA device and skips without one; ``tools/gpu_check.py`` runs them on a GPU machine.
"""

from __future__ import annotations

import pytest
import torch

from pc3d.kernels import selective_scan
from pc3d.kernels.scan import selective_scan_ref
from pc3d.kernels.scan.fused import conv_silu, conv_silu_sum, mixer_scan

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SCAN_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
MIXER_NAMES = ("u", "delta", "A", "B", "C", "D", "delta_bias")


def _scan_inputs(b, d, length, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "u": torch.randn(b, d, length, generator=g),
        "delta": torch.rand(b, d, length, generator=g) * 0.5,
        "A": -torch.rand(d, n, generator=g) * 0.5 - 0.05,
        "B": torch.randn(b, n, length, generator=g),
        "C": torch.randn(b, n, length, generator=g),
        "D": torch.randn(d, generator=g),
        "z": torch.randn(b, d, length, generator=g),
        "delta_bias": torch.rand(d, generator=g) * 0.5,
    }


def _grads(fn, tensors, seed=7):
    tensors = [t.detach().clone().requires_grad_() for t in tensors]
    out = fn(*tensors)
    cot = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed)).to(out.device, out.dtype)
    return [out.detach().cpu().double()] + [g.cpu().double() for g in torch.autograd.grad(out, tensors, cot)]


def _close(got, want, rtol=6e-4, atol=2e-3):
    for i, (a, b) in enumerate(zip(got, want)):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=lambda m, i=i: f"item {i}: {m}")


SCAN_CASES = {
    "plain n16": dict(shape=(2, 8, 300, 16), offsets=None, reverse=False, stride=1),
    "packed reverse strided n4": dict(
        shape=(1, 8, 301, 4), offsets=[0, 40, 41, 41, 301], reverse=True, stride=3
    ),
    "packed strided n1": dict(shape=(1, 24, 257, 1), offsets=[0, 100, 257], reverse=False, stride=2),
}


@pytest.mark.parametrize("case", list(SCAN_CASES))
def test_triton_scan_cuda_matches_torch_reference(case):
    pytest.importorskip("triton")
    c = SCAN_CASES[case]
    inp = _scan_inputs(*c["shape"])
    offs = torch.tensor(c["offsets"]) if c["offsets"] is not None else None
    kw = dict(delta_softplus=True, reverse=c["reverse"], stride=c["stride"])
    args = [inp[k] for k in SCAN_NAMES]
    ref = _grads(lambda *t: selective_scan_ref(*(a.double() for a in t), offsets=offs, **kw), args)
    offs_cuda = offs.cuda() if offs is not None else None
    got = _grads(
        lambda *t: selective_scan(*t, offsets=offs_cuda, backend="triton", **kw), [a.cuda() for a in args]
    )
    _close(got, ref)


def test_mamba_ssm_matches_triton_and_torch_reference():
    from pc3d.kernels.scan import mamba_cuda

    if not mamba_cuda.available():
        pytest.skip("mamba_ssm (with its CUDA extension) is not installed")
    inp = _scan_inputs(2, 16, 512, 16)
    args = [inp[k] for k in SCAN_NAMES]
    ref = _grads(lambda *t: selective_scan_ref(*(a.double() for a in t), delta_softplus=True), args)
    for backend in ("mamba_ssm", "triton"):
        got = _grads(
            lambda *t, backend=backend: selective_scan(*t, delta_softplus=True, backend=backend),
            [a.cuda() for a in args],
        )
        _close(got, ref)


@pytest.mark.parametrize("reverse, stride", [(False, 1), (True, 1), (False, 2), (True, 2)])
def test_fused_mixer_ops_cuda_match_torch_reference(reverse, stride):
    pytest.importorskip("triton")
    offs = torch.tensor([0, 7, 8, 8, 150, 333])
    length = int(offs[-1])
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(length, 40, generator=g), torch.randn(40, 4, generator=g)
    kw = dict(reverse=reverse, stride=stride)
    ref = _grads(lambda a, b: conv_silu(a.double(), b.double(), offs, backend="torch", **kw), [x, w])
    got = _grads(lambda a, b: conv_silu(a, b, offs.cuda(), **kw), [x.cuda(), w.cuda()])
    _close(got, ref, 1e-5, 1e-5)
    for n in (1, 2):
        inp = _scan_inputs(1, 20, length, n, seed=n)
        args = [inp[k][0].t() if k in ("u", "delta", "B", "C") else inp[k] for k in MIXER_NAMES]
        ref = _grads(lambda *t: mixer_scan(*(a.double() for a in t), offs, backend="torch", **kw), args)
        got = _grads(lambda *t: mixer_scan(*t, offs.cuda(), **kw), [a.cuda() for a in args])
        _close(got, ref)


def test_conv_silu_sum_cuda_matches_numba_and_torch_reference():
    """The gate branch's summed conv + SiLU: Triton per direction on CUDA, one numba pass on CPU."""
    pytest.importorskip("triton")
    offs = torch.tensor([0, 7, 8, 8, 150, 333])
    orders = [(False, 1), (True, 1), (False, 2), (True, 2)]
    g = torch.Generator().manual_seed(2)
    x, w = torch.randn(333, 40, generator=g), torch.randn(4, 40, 4, generator=g)

    def ref_fn(a, b):
        return sum(
            conv_silu(a.double(), b[k].double(), offs, reverse=r, stride=s, backend="torch")
            for k, (r, s) in enumerate(orders)
        )

    ref = _grads(ref_fn, [x, w])
    _close(
        _grads(lambda a, b: conv_silu_sum(a, b, offs.cuda(), orders), [x.cuda(), w.cuda()]), ref, 1e-5, 1e-5
    )
    _close(_grads(lambda a, b: conv_silu_sum(a, b, offs, orders), [x, w]), ref, 1e-5, 1e-5)


def test_bimamba_cuda_matches_cpu():
    """The whole mixer (Triton fused path on CUDA, numba fused path on CPU): inference and training gradients."""
    from pc3d.models.blocks.bimamba import BiMamba

    torch.manual_seed(0)
    m = BiMamba(32)
    offs = torch.tensor([0, 500, 1201])
    n = int(offs[-1])
    x = torch.randn(n, 32)
    order = torch.cat([torch.randperm(500), 500 + torch.randperm(701)])
    inverse = torch.argsort(order)
    results = []
    for dev in ("cpu", "cuda"):
        md = m.to(dev)
        md.zero_grad()
        xd = x.to(dev).requires_grad_()
        args = (offs.to(dev), order.to(dev), inverse.to(dev))
        out = md(xd, *args)
        out.square().sum().backward()
        with torch.no_grad():
            infer = md(xd, *args)
        results.append(
            [out.detach().cpu(), infer.cpu(), xd.grad.cpu()] + [p.grad.cpu() for p in md.parameters()]
        )
    _close(results[1], results[0], 1e-3, 1e-3)


def test_point_ops_cuda_match_cpu():
    """The torch implementations the point ops run on CUDA equal the numba kernels on CPU."""
    from pc3d.kernels import points as P

    g = torch.Generator().manual_seed(0)
    xyz = torch.rand(700, 3, generator=g) * 4
    offs = torch.tensor([0, 300, 700])
    q = torch.rand(90, 3, generator=g) * 4
    q_offs = torch.tensor([0, 40, 90])
    feat = torch.randn(700, 5, generator=g)

    def both(fn):
        cpu = fn(lambda t: t)
        gpu = fn(lambda t: t.cuda() if isinstance(t, torch.Tensor) else t)
        cpu = cpu if isinstance(cpu, tuple) else (cpu,)
        gpu = gpu if isinstance(gpu, tuple) else (gpu,)
        for a, b in zip(cpu, gpu):
            b = b.cpu()
            if a.is_floating_point():
                torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
            else:
                torch.testing.assert_close(b, a)

    both(lambda d: P.voxelize(d(xyz), 0.25, d(offs)))
    both(lambda d: P.furthest_point_sample(d(xyz), d(offs), [20, 30]))
    both(lambda d: P.ball_query(d(xyz), d(offs), d(q), d(q_offs), 0.6, 8))
    both(lambda d: P.knn(d(xyz), d(offs), d(q), d(q_offs), 5))
    both(lambda d: P.three_nn(d(xyz), d(offs), d(q), d(q_offs)))
    cells = torch.randint(0, 1000, (700, 3), generator=g)
    batch = torch.repeat_interleave(torch.arange(2), torch.tensor([300, 400]))
    for order in P.ORDERS:
        both(lambda d, order=order: P.serialize(d(cells), d(batch), order, depth=10))
    idx = torch.randint(0, 700, (90, 3), generator=g)
    w = torch.rand(90, 3, generator=g)
    both(lambda d: P.three_interpolate(d(feat), d(idx), d(w)))
    both(lambda d: P.gather_points(d(feat), d(idx[:, 0])))
