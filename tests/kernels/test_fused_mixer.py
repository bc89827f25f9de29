"""Token-major fused mixer ops (``conv_silu``, ``conv_silu_sum``, ``mixer_scan``) against the channel-major torch
references."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from pc3d.kernels.scan.fused import conv_silu, conv_silu_sum, mixer_scan

# every direction of the mixer as (reverse, stride), plus a stride longer than some clouds
ORDERS = [(False, 1), (True, 1), (False, 2), (True, 2), (True, 5)]
# packed clouds of odd lengths and of lengths 0-3 (shorter than a conv window)
OFFSETS = torch.tensor([0, 7, 8, 8, 10, 13, 26, 38])
SCAN_NAMES = ("u", "delta", "A", "B", "C", "D", "delta_bias")


def _conv_inputs(length: int, nch: int, k: int, dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(length, nch, generator=g, dtype=dtype), torch.randn(nch, k, generator=g, dtype=dtype)


def _scan_inputs(length: int, dim: int, n: int, dtype: torch.dtype, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "u": torch.randn(length, dim, generator=g, dtype=dtype),
        "delta": torch.randn(length, dim, generator=g, dtype=dtype) * 0.5,
        "A": -torch.rand(dim, n, generator=g, dtype=dtype) - 0.1,
        "B": torch.randn(length, n, generator=g, dtype=dtype),
        "C": torch.randn(length, n, generator=g, dtype=dtype),
        "D": torch.randn(dim, generator=g, dtype=dtype),
        "delta_bias": torch.rand(dim, generator=g, dtype=dtype) + 0.5,  # large enough that the state matters
    }


def _with_grads(fn, inputs: list[torch.Tensor], seed: int = 3):
    """Output and the gradients of ``<out, random cotangent>`` w.r.t. every input."""
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*inputs)
    cot = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)).to(
        out.dtype
    )
    return (out.detach(), *torch.autograd.grad(out, inputs, cot))


def _assert_all_close(got, want, rtol, atol):
    for i, (a, b) in enumerate(zip(got, want)):
        torch.testing.assert_close(
            a.to(b.dtype), b, rtol=rtol, atol=atol, msg=lambda m, i=i: f"item {i}: {m}"
        )


def _check_conv(backend: str, dtype: torch.dtype, tol: tuple[float, float]) -> None:
    x, w = _conv_inputs(int(OFFSETS[-1]), 10, 5, dtype)
    for k in (5, 4, 3, 2, 1):  # up to 4 taps: the window kernels; 5: the general one
        for reverse, stride in ORDERS:
            kw = dict(reverse=reverse, stride=stride)

            def ref_fn(a, b, kw=kw):
                return conv_silu(a.double(), b.double(), OFFSETS, backend="torch", **kw)

            def fused_fn(a, b, kw=kw):
                return conv_silu(a, b, OFFSETS, backend=backend, **kw)

            ref = _with_grads(ref_fn, [x, w[:, :k]])
            got = _with_grads(fused_fn, [x, w[:, :k]])
            _assert_all_close(got, ref, *tol)


def _check_conv_proj(backend: str, dtype: torch.dtype, tol: tuple[float, float]) -> None:
    """``proj=``: ``(y, y @ proj.T)`` with gradients through both outputs, and into ``out=`` after earlier
    directions (``add_from``): the projection is of the whole buffer row."""
    x, w = _conv_inputs(int(OFFSETS[-1]), 10, 5, dtype, seed=8)
    g = torch.Generator().manual_seed(9)
    proj = torch.randn(7, 10, generator=g, dtype=dtype)
    cot_y, cot_p = torch.randn(x.shape, generator=g, dtype=dtype), torch.randn(x.shape[0], 7, generator=g)
    for k, m in ((5, 6), (4, 7), (4, 4), (3, 1)):  # 4 outputs per pass over a row, and what is left
        for reverse, stride in ORDERS[1:4]:
            kw = dict(reverse=reverse, stride=stride)

            def grads(fn, a, b, c):
                a, b, c = (t.detach().clone().requires_grad_() for t in (a, b, c))
                y, projected = fn(a, b, c)
                cot = cot_p[:, : projected.shape[1]].to(y.dtype)
                loss = (y * cot_y.to(y.dtype)).sum() + (projected * cot).sum()
                return (y.detach(), projected.detach(), *torch.autograd.grad(loss, (a, b, c)))

            ref = grads(
                lambda a, b, c, kw=kw: conv_silu(a.double(), b.double(), OFFSETS, backend="torch", proj=c.double(), **kw),
                x, w[:, :k], proj[:m],
            )  # fmt: skip
            got = grads(
                lambda a, b, c, kw=kw: conv_silu(a, b, OFFSETS, backend=backend, proj=c, **kw),
                x,
                w[:, :k],
                proj[:m],
            )
            _assert_all_close(got, ref, *tol)
            with torch.no_grad():
                buf = torch.full(
                    x.shape, 0.5, dtype=torch.float64 if dtype == torch.float64 else torch.float32
                )
                y, projected = conv_silu(
                    x, w[:, :k], OFFSETS, backend=backend, out=buf, add_from=3, proj=proj[:m], **kw
                )
            assert y is buf
            want = ref[0].clone()
            want[:, 3:] += 0.5
            torch.testing.assert_close(buf.to(want.dtype), want, rtol=tol[0], atol=tol[1])
            torch.testing.assert_close(
                projected.to(want.dtype), want @ proj[:m].double().t(), rtol=tol[0], atol=tol[1]
            )


def _check_conv_sum(backend: str, dtype: torch.dtype, tol: tuple[float, float]) -> None:
    """Every order's ``conv_silu`` added up, with gradients, for several subsets of the orders."""
    g = torch.Generator().manual_seed(6)
    x = torch.randn(int(OFFSETS[-1]), 10, generator=g, dtype=dtype)
    weights = torch.randn(len(ORDERS), 10, 5, generator=g, dtype=dtype)
    for orders, k in ((ORDERS, 4), (ORDERS[:4], 5), (ORDERS[2:3], 2)):
        w = weights[: len(orders), :, :k]

        def ref_fn(a, b, orders=orders):
            parts = [
                conv_silu(a.double(), b[k].double(), OFFSETS, reverse=r, stride=s, backend="torch")
                for k, (r, s) in enumerate(orders)
            ]
            return torch.stack(parts).sum(0)

        def fused_fn(a, b, orders=orders):
            return conv_silu_sum(a, b, OFFSETS, orders, backend=backend)

        ref = _with_grads(ref_fn, [x, w])
        got = _with_grads(fused_fn, [x, w])
        _assert_all_close(got, ref, *tol)
        with torch.no_grad():
            buf = torch.full(x.shape, 5.0, dtype=torch.float64 if dtype == torch.float64 else torch.float32)
            assert conv_silu_sum(x, w, OFFSETS, orders, backend=backend, out=buf) is buf
        torch.testing.assert_close(buf.to(ref[0].dtype), ref[0], rtol=tol[0], atol=tol[1])


def _check_scan(backend: str, dtype: torch.dtype, tol: tuple[float, float]) -> None:
    for n in (1, 3):
        inp = _scan_inputs(int(OFFSETS[-1]), 12, n, dtype)
        args = [inp[k] for k in SCAN_NAMES]
        for reverse, stride in ORDERS:
            kw = dict(reverse=reverse, stride=stride)

            def ref_fn(*t, kw=kw):
                return mixer_scan(*(a.double() for a in t), OFFSETS, backend="torch", **kw)

            def fused_fn(*t, kw=kw):
                return mixer_scan(*t, OFFSETS, backend=backend, **kw)

            ref = _with_grads(ref_fn, args)
            got = _with_grads(fused_fn, args)
            _assert_all_close(got, ref, *tol)


def _check_inference_buffers(backend: str) -> None:
    """``out=``: overwrite, then add (``add_from`` / ``accumulate``) like the mixer does across directions."""
    x, w = _conv_inputs(int(OFFSETS[-1]), 8, 4, torch.float32)
    inp = _scan_inputs(int(OFFSETS[-1]), 8, 1, torch.float32)
    with torch.no_grad():
        buf = torch.full_like(x, 7.0)
        conv_silu(x, w, OFFSETS, reverse=True, stride=2, backend=backend, out=buf, add_from=8)
        first = conv_silu(x, w, OFFSETS, reverse=True, stride=2, backend="torch")
        torch.testing.assert_close(buf, first, rtol=1e-5, atol=1e-6)
        conv_silu(x, w * 0.5, OFFSETS, stride=2, backend=backend, out=buf, add_from=5)
        second = conv_silu(x, w * 0.5, OFFSETS, stride=2, backend="torch")
        torch.testing.assert_close(buf[:, :5], second[:, :5], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(buf[:, 5:], first[:, 5:] + second[:, 5:], rtol=1e-5, atol=1e-6)

        args = [inp[k] for k in SCAN_NAMES]
        wide = torch.randn(int(OFFSETS[-1]), 20)
        wide[:, 4:12] = args[0]  # u as a column slice of a wider row buffer, like the mixer's conv output
        acc = torch.full((int(OFFSETS[-1]), 8), 3.0)
        mixer_scan(wide[:, 4:12], *args[1:], OFFSETS, reverse=True, backend=backend, out=acc)
        y1 = mixer_scan(*args, OFFSETS, reverse=True, backend="torch")
        torch.testing.assert_close(acc, y1, rtol=1e-5, atol=1e-5)
        mixer_scan(*args, OFFSETS, stride=2, backend=backend, out=acc, accumulate=True)
        y2 = mixer_scan(*args, OFFSETS, stride=2, backend="torch")
        torch.testing.assert_close(acc, y1 + y2, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- numba (CPU)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_numba_conv_silu_matches_reference(dtype):
    _check_conv("numba", dtype, (1e-10, 1e-10) if dtype == torch.float64 else (1e-5, 1e-5))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_numba_conv_silu_projection_matches_reference(dtype):
    _check_conv_proj("numba", dtype, (1e-10, 1e-10) if dtype == torch.float64 else (1e-5, 1e-4))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_numba_conv_silu_sum_matches_reference(dtype):
    _check_conv_sum("numba", dtype, (1e-10, 1e-10) if dtype == torch.float64 else (1e-5, 1e-5))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_numba_mixer_scan_matches_reference(dtype):
    _check_scan("numba", dtype, (1e-10, 1e-10) if dtype == torch.float64 else (6e-4, 2e-3))


def test_numba_inference_buffers():
    _check_inference_buffers("numba")


def test_packed_clouds_equal_each_cloud_alone():
    """Neither the conv taps nor the state cross a cloud boundary."""
    length = int(OFFSETS[-1])
    x, w = _conv_inputs(length, 6, 4, torch.float64)
    inp = _scan_inputs(length, 6, 1, torch.float64)
    kw = dict(reverse=True, stride=2, backend="numba")
    conv = conv_silu(x, w, OFFSETS, **kw)
    y = mixer_scan(*(inp[k] for k in SCAN_NAMES), OFFSETS, **kw)
    for a, e in zip(OFFSETS[:-1].tolist(), OFFSETS[1:].tolist()):
        if e == a:
            continue
        torch.testing.assert_close(conv[a:e], conv_silu(x[a:e], w, **kw), rtol=1e-12, atol=1e-12)
        part = {k: v[a:e] if k in ("u", "delta", "B", "C") else v for k, v in inp.items()}
        torch.testing.assert_close(
            y[a:e], mixer_scan(*(part[k] for k in SCAN_NAMES), **kw), rtol=1e-12, atol=1e-12
        )


@pytest.mark.parametrize("reverse, stride", [(False, 1), (True, 2)])
def test_gradcheck_float64(reverse, stride):
    offsets = torch.tensor([0, 5, 6, 13])
    x, w = _conv_inputs(13, 4, 4, torch.float64, seed=4)
    kw = dict(reverse=reverse, stride=stride, backend="numba")
    assert torch.autograd.gradcheck(
        lambda a, b: conv_silu(a, b, offsets, **kw), (x.requires_grad_(), w.requires_grad_())
    )
    orders = [(False, 1), (True, 2), (True, 1)]
    assert torch.autograd.gradcheck(
        lambda a, b: conv_silu_sum(a, b, offsets, orders, backend="numba"),
        (x, torch.randn(3, 4, 4, dtype=torch.float64).requires_grad_()),
    )
    for n in (1, 2):
        inp = _scan_inputs(13, 3, n, torch.float64, seed=5)
        args = tuple(inp[k].requires_grad_() for k in SCAN_NAMES)
        assert torch.autograd.gradcheck(lambda *t: mixer_scan(*t, offsets, **kw), args)


def test_threads_do_not_change_results():
    """Work is split by sequence and channel block (scan) or position tile (conv): sums are deterministic."""
    import numba

    length = 700  # several conv tiles
    offsets = torch.tensor([0, 300, length])
    x, w = _conv_inputs(length, 24, 4, torch.float32)
    inp = _scan_inputs(length, 24, 1, torch.float32)
    results = []
    old = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            results.append(
                _with_grads(lambda a, b: conv_silu(a, b, offsets, stride=2), [x, w])
                + _with_grads(lambda *t: mixer_scan(*t, offsets, reverse=True), [inp[k] for k in SCAN_NAMES])
            )
    finally:
        numba.set_num_threads(old)
    _assert_all_close(results[1], results[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dim", [40, 48])
def test_scan_channel_blocks_of_whole_vectors(dim):
    """One sequence on 2 threads: the channels split in blocks rounded up to 16 (32 + 8, 32 + 16), forward and
    backward, and the inference kernel that forms ``delta`` from ``delta_proj`` row by row."""
    import numba

    length = 90
    offsets = torch.tensor([0, length])
    inp = _scan_inputs(length, dim, 1, torch.float32)
    args = [inp[k] for k in SCAN_NAMES]
    g = torch.Generator().manual_seed(3)
    low, proj = torch.randn(length, 2, generator=g), torch.randn(dim, 2, generator=g) * 0.5
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(2)
        for reverse, stride in ORDERS:
            kw = dict(reverse=reverse, stride=stride)
            ref = _with_grads(
                lambda *t, kw=kw: mixer_scan(*(a.double() for a in t), offsets, backend="torch", **kw), args
            )
            got = _with_grads(lambda *t, kw=kw: mixer_scan(*t, offsets, **kw), args)
            _assert_all_close(got, ref, 1e-4, 1e-4)
            want = mixer_scan(args[0], low @ proj.t(), *args[2:], offsets, backend="torch", **kw)
            with torch.no_grad():
                out = torch.empty(length, dim)
                mixer_scan(args[0], low, *args[2:], offsets, out=out, delta_proj=proj, **kw)
            torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    finally:
        numba.set_num_threads(old)


def test_rejects_bad_arguments():
    x, w = _conv_inputs(10, 4, 4, torch.float32)
    inp = _scan_inputs(10, 4, 1, torch.float32)
    args = [inp[k] for k in SCAN_NAMES]
    with pytest.raises(ValueError, match="weight must have shape"):
        conv_silu(x, w[:3])
    with pytest.raises(ValueError, match="x must be"):
        conv_silu(x[None], w)
    with pytest.raises(ValueError, match="offsets must start at 0 and end at L"):
        conv_silu(x, w, torch.tensor([0, 4, 9]))
    with pytest.raises(ValueError, match="stride"):
        conv_silu(x, w, stride=0)
    with pytest.raises(ValueError, match="backend"):
        conv_silu(x, w, backend="cuda")
    with pytest.raises(ValueError, match="add_from needs out="):
        conv_silu(x, w, add_from=2)
    with pytest.raises(ValueError, match=r"proj must have shape \(m, c\) = \(m >= 1, 4\)"):
        conv_silu(x, w, proj=torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"weight must have shape \(orders, c, k\) = \(2, 4, k >= 1\)"):
        conv_silu_sum(x, w[None, :3], None, [(False, 1), (True, 1)])
    with pytest.raises(ValueError, match="orders: expected one"):
        conv_silu_sum(x, torch.stack([w, w]), None, [(False, 1)])
    with pytest.raises(ValueError, match="stride"):
        conv_silu_sum(x, torch.stack([w, w]), None, [(False, 1), (True, 0)])
    with pytest.raises(ValueError, match="out= is for inference only"):
        conv_silu_sum(x.clone().requires_grad_(), w[None], None, [(False, 1)], out=torch.empty(10, 4))
    with pytest.raises(ValueError, match="B must have shape"):
        mixer_scan(*args[:3], args[3][:5], *args[4:])
    with pytest.raises(ValueError, match="A must have shape"):
        mixer_scan(args[0], args[1], args[2][:2], *args[3:])
    with pytest.raises(ValueError, match="accumulate=True needs out="):
        mixer_scan(*args, accumulate=True)
    with pytest.raises(ValueError, match="out must be a contiguous torch.float32"):
        with torch.no_grad():
            mixer_scan(*args, out=torch.empty(10, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="inference only"):
        mixer_scan(args[0].requires_grad_(), *args[1:], out=torch.empty(10, 4))


# ----------------------------------------------------------------------------- Triton (interpreted on CPU)

_INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
_TRITON_CASES = ("conv", "conv_proj", "conv_sum", "scan", "buffers")


@pytest.mark.skipif(not _INTERPRETED, reason="runs in the TRITON_INTERPRET=1 subprocess of the test below")
@pytest.mark.parametrize("case", _TRITON_CASES)
def test_triton_interpreted_matches_reference(case):
    pytest.importorskip("triton")
    if case == "conv":
        _check_conv("triton", torch.float32, (1e-5, 1e-5))
    elif case == "conv_proj":
        _check_conv_proj("triton", torch.float32, (1e-5, 1e-4))
    elif case == "conv_sum":
        _check_conv_sum("triton", torch.float32, (1e-5, 1e-5))
    elif case == "scan":
        _check_scan("triton", torch.float32, (6e-4, 2e-3))
    else:
        _check_inference_buffers("triton")


@pytest.mark.skipif(_INTERPRETED, reason="the Triton parity cases run directly in this process")
def test_triton_interpreter_parity_subprocess():
    """Triton picks interpreted kernels when it is first imported, so run the cases in a fresh process."""
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        __file__,
        "-k",
        "triton_interpreted",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert f"{len(_TRITON_CASES)} passed" in proc.stdout, proc.stdout[-2000:]


@pytest.mark.parametrize(
    "reverse, stride, rank",
    [(False, 1, 3), (True, 2, 3), (False, 2, 1), (True, 1, 4), (True, 2, 9), (False, 1, 12)],
)
def test_delta_proj_equals_projected_delta(reverse, stride, rank):
    """``delta_proj``: formed row by row inside the numba forward kernel (inference and autograd; the backward
    forms it by one matmul), with gradients for every input. Ranks 1, 3, 4, 9 and 12: the kernel sums the rank
    terms in groups of 4, the first group inside the scan loop."""
    length = int(OFFSETS[-1])
    inp = _scan_inputs(length, 12, 1, torch.float32)
    g = torch.Generator().manual_seed(9)
    low, proj = torch.randn(length, rank, generator=g), torch.randn(12, rank, generator=g) * 0.5
    args = [inp[k] for k in SCAN_NAMES]
    kw = dict(reverse=reverse, stride=stride)
    want = mixer_scan(args[0], low @ proj.t(), *args[2:], OFFSETS, backend="torch", **kw)
    with torch.no_grad():
        out = torch.ones(length, 12)
        mixer_scan(args[0], low, *args[2:], OFFSETS, out=out, accumulate=True, delta_proj=proj, **kw)
        torch.testing.assert_close(out, want + 1, rtol=1e-5, atol=1e-5)
        mixer_scan(args[0], low, *args[2:], OFFSETS, out=out, delta_proj=proj, **kw)
        torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    inputs = [low, proj, args[0], *args[2:]]
    got = _with_grads(lambda lo, p, u, *t: mixer_scan(u, lo, *t, OFFSETS, delta_proj=p, **kw), inputs)
    ref = _with_grads(
        lambda lo, p, u, *t: mixer_scan(
            *(a.double() for a in (u, lo @ p.t(), *t)), OFFSETS, backend="torch", **kw
        ),
        inputs,
    )
    _assert_all_close(got, ref, 1e-4, 1e-4)
    with pytest.raises(ValueError, match="delta_proj must have shape"):
        mixer_scan(args[0], low, *args[2:], delta_proj=proj[:5])
