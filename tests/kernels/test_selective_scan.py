"""Selective scan: reference vs an independent naive loop, every backend vs the float64 reference, gradcheck,
packed-sequence state resets and argument validation."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from pc3d.kernels import selective_scan
from pc3d.kernels.scan import numba_cpu, scan_order, selective_scan_ref, triton_gpu
from pc3d.kernels.scan.interface import _resolve_backend

RTOL, ATOL = 6e-4, 2e-3  # mamba-ssm fp32 tolerances (kernels.md §5)
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def make_inputs(b, d, L, n, groups=0, z=True, D=True, bias=True, dtype=torch.float64, seed=0):
    """Random inputs in the regime of mamba-ssm's tests; ``groups=0`` means B/C of shape (b, n, L)."""
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0, shift=0.0, uniform=False):
        x = torch.rand(*shape, generator=gen) if uniform else torch.randn(*shape, generator=gen)
        return (x * scale + shift).to(dtype)

    bc_shape = (b, n, L) if groups == 0 else (b, groups, n, L)
    return {
        "u": rnd(b, d, L),
        "delta": rnd(b, d, L, scale=0.5, uniform=True),
        "A": rnd(d, n, scale=-0.5, shift=-0.05, uniform=True),
        "B": rnd(*bc_shape),
        "C": rnd(*bc_shape),
        "D": rnd(d) if D else None,
        "z": rnd(b, d, L) if z else None,
        "delta_bias": rnd(d, scale=0.5, uniform=True) if bias else None,
    }


def naive_scan(inp, softplus, offsets, reverse, stride):
    """Independent float64 per-step loop: every cloud alone, scan order built from explicit phase lists."""
    u, delta, A = inp["u"].double(), inp["delta"].double(), inp["A"].double()
    b, d, L = u.shape
    B, C = inp["B"].double(), inp["C"].double()
    if B.dim() == 3:
        B, C = B[:, None], C[:, None]
    chan_group = torch.arange(d) // (d // B.shape[1])
    B, C = B[:, chan_group], C[:, chan_group]  # (b, d, n, L)
    bias = (
        inp["delta_bias"].double() if inp["delta_bias"] is not None else torch.zeros(d, dtype=torch.float64)
    )
    bounds = [0, L] if offsets is None else offsets.tolist()
    y = torch.zeros(b, d, L, dtype=torch.float64)
    lasts = []
    for s0, e0 in zip(bounds[:-1], bounds[1:]):
        # phases 0, s, 2s, ... then 1, 1 + s, ... (empty clouds give an empty order)
        phases = [torch.arange(r, e0 - s0, stride) for r in range(min(stride, e0 - s0))]
        order = torch.cat(phases) if phases else torch.zeros(0, dtype=torch.int64)
        if reverse:
            order = order.flip(0)
        h = torch.zeros(b, d, A.shape[1], dtype=torch.float64)
        for t in (s0 + order).tolist():
            dl = delta[:, :, t] + bias
            if softplus:
                dl = torch.log1p(torch.exp(dl))
            h = torch.exp(dl[..., None] * A) * h + (dl * u[:, :, t])[..., None] * B[..., t]
            y[:, :, t] = (h * C[..., t]).sum(-1)
        lasts.append(h)
    if inp["D"] is not None:
        y = y + inp["D"].double()[:, None] * u
    if inp["z"] is not None:
        z = inp["z"].double()
        y = y * z * torch.sigmoid(z)
    last = torch.stack(lasts, 1)
    return y, (last[0] if offsets is not None else last[:, 0])


# (b, d, L, n, groups, z, D, bias, softplus, reverse, stride, offsets)
CASES = {
    "n1-stride2-all": (2, 4, 17, 1, 0, True, True, True, True, False, 2, None),
    "n1-packed-grouped-reverse-stride3-noz": (
        1,
        4,
        23,
        1,
        2,
        False,
        True,
        False,
        True,
        True,
        3,
        [0, 1, 8, 8, 23],
    ),
    "n1-reverse-nosoftplus-noD": (2, 4, 15, 1, 0, True, False, True, False, True, 1, None),
    "n4-grouped-reverse-stride3-noz": (2, 4, 19, 4, 2, False, True, False, False, True, 3, None),
    "n16-reverse-stride8-noD": (1, 4, 21, 16, 0, True, False, True, True, True, 8, None),
    "packed-len1-empty-reverse-stride3": (1, 4, 23, 4, 2, True, True, True, True, True, 3, [0, 1, 8, 8, 23]),
    "packed-stride2": (1, 4, 31, 16, 0, True, True, True, True, False, 2, [0, 9, 20, 31]),
    "L1": (2, 4, 1, 4, 0, True, True, True, True, False, 2, None),
    "plain": (2, 4, 13, 4, 0, False, False, False, False, False, 1, None),
}


def _case(name, dtype=torch.float64, seed=0):
    b, d, L, n, g, z, D, bias, sp, rev, stride, offs = CASES[name]
    inp = make_inputs(b, d, L, n, g, z, D, bias, dtype=dtype, seed=seed)
    offsets = torch.tensor(offs, dtype=torch.int64) if offs is not None else None
    return inp, dict(delta_softplus=sp, offsets=offsets, reverse=rev, stride=stride)


def _run(inp, kw, backend, grad_seed=1):
    """Output, last state and the gradients of a random loss on both, for every given input."""
    leaves = {k: (v.detach().clone().requires_grad_() if v is not None else None) for k, v in inp.items()}
    y, last = selective_scan(*(leaves[k] for k in NAMES), **kw, return_last_state=True, backend=backend)
    gen = torch.Generator().manual_seed(grad_seed)
    gy = torch.randn(y.shape, generator=gen, dtype=torch.float64).to(y.dtype)
    gl = torch.randn(last.shape, generator=gen, dtype=torch.float64).to(last.dtype)
    ((y * gy).sum() + (last * gl).sum()).backward()
    grads = {k: v.grad for k, v in leaves.items() if v is not None}
    return y.detach(), last.detach(), grads


def _assert_matches(case, backend, rtol=RTOL, atol=ATOL, dtype=torch.float32):
    inp64, kw = _case(case)
    y_ref, last_ref, g_ref = _run(inp64, kw, "torch")
    inp = {k: (v.to(dtype) if v is not None else None) for k, v in inp64.items()}
    y, last, grads = _run(inp, kw, backend)
    assert y.dtype == dtype and y.shape == y_ref.shape
    torch.testing.assert_close(y.double(), y_ref, rtol=rtol, atol=atol, msg=lambda m: f"{backend} out: {m}")
    torch.testing.assert_close(
        last.double(), last_ref, rtol=rtol, atol=atol, msg=lambda m: f"{backend} last: {m}"
    )
    assert set(grads) == set(g_ref)
    for k in g_ref:
        assert grads[k].dtype == inp[k].dtype and grads[k].shape == inp[k].shape
        torch.testing.assert_close(
            grads[k].double(), g_ref[k], rtol=rtol, atol=atol, msg=lambda m, k=k: f"{backend} d{k}: {m}"
        )


# ----------------------------------------------------------------------------- scan order and reference


@pytest.mark.parametrize("L,s", [(12, 3), (12, 4), (8, 8), (6, 1)])
def test_scan_order_divisible_is_view_transpose(L, s):
    expected = torch.arange(L).view(L // s, s).T.reshape(L)  # meepo.md §5 closed form when s | L
    assert torch.equal(scan_order(L, s), expected)
    assert torch.equal(scan_order(L, s, reverse=True), expected.flip(0))


@pytest.mark.parametrize("L,s", [(7, 2), (10, 3), (5, 8), (1, 3), (23, 8)])
def test_scan_order_is_permutation_of_phases(L, s):
    expected = torch.cat([torch.arange(r, L, s) for r in range(min(s, L))])
    assert torch.equal(scan_order(L, s), expected)
    assert sorted(scan_order(L, s, reverse=True).tolist()) == list(range(L))
    assert scan_order(7, 2).tolist() == [0, 2, 4, 6, 1, 3, 5]  # the paper's 1,3,5,7,2,4,6 (0-based)


@pytest.mark.parametrize("case", list(CASES))
def test_reference_matches_naive_loop(case):
    inp, kw = _case(case)
    y, last = selective_scan_ref(*(inp[k] for k in NAMES), **kw, return_last_state=True)
    y_naive, last_naive = naive_scan(inp, kw["delta_softplus"], kw["offsets"], kw["reverse"], kw["stride"])
    torch.testing.assert_close(y, y_naive, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(last, last_naive, rtol=1e-10, atol=1e-10)


def test_direction_and_stride_change_the_result():
    """Guards against a backend silently ignoring reverse/stride: the orders give different outputs."""
    inp, kw = _case("n1-stride2-all")
    outs = [
        selective_scan(*(inp[k] for k in NAMES), delta_softplus=True, reverse=r, stride=s, backend="numba")
        for r, s in ((False, 1), (True, 1), (False, 2), (True, 2))
    ]
    for i in range(len(outs)):
        for j in range(i + 1, len(outs)):
            assert not torch.allclose(outs[i], outs[j], atol=1e-3)


# ----------------------------------------------------------------------------- backend parity


@pytest.fixture
def small_chunks(monkeypatch):
    """Checkpoint every 5 steps so the chunked backward crosses several chunk boundaries per sequence."""
    monkeypatch.setattr(numba_cpu, "DEFAULT_CHUNK", 5)
    monkeypatch.setattr(triton_gpu, "DEFAULT_CHUNK", 5)


@pytest.mark.parametrize("case", list(CASES))
def test_torch_fp32_matches_float64_reference(case):
    _assert_matches(case, "torch")


@pytest.mark.parametrize("case", list(CASES))
def test_numba_matches_float64_reference(case, small_chunks):
    _assert_matches(case, "numba")


def test_numba_default_chunks_long_packed_sequences():
    inp64 = make_inputs(1, 6, 700, 4, groups=3, seed=3)
    kw = dict(delta_softplus=True, offsets=torch.tensor([0, 300, 301, 700]), reverse=True, stride=3)
    y_ref, last_ref, g_ref = _run(inp64, kw, "torch")
    y, last, grads = _run({k: v.float() for k, v in inp64.items()}, kw, "numba")
    torch.testing.assert_close(y.double(), y_ref, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(last.double(), last_ref, rtol=RTOL, atol=ATOL)
    for k in g_ref:
        torch.testing.assert_close(
            grads[k].double(), g_ref[k], rtol=RTOL, atol=ATOL, msg=lambda m, k=k: f"d{k}: {m}"
        )


def test_numba_non_contiguous_inputs_and_softplus_threshold():
    """Strided views are accepted, and delta + bias > 20 takes softplus's linear branch like the reference."""
    inp64 = make_inputs(2, 4, 15, 4, groups=2, seed=11)
    inp64["delta"] = inp64["delta"] * 80.0 - 10.0  # spans both softplus branches
    inp64["A"] = inp64["A"] * 0.05
    kw = dict(delta_softplus=True, reverse=True, stride=2)
    y_ref, last_ref, g_ref = _run(inp64, kw, "torch")
    views = {k: v.float() for k, v in inp64.items()}
    for k in ("u", "delta", "z"):
        views[k] = views[k].transpose(0, 1).contiguous().transpose(0, 1)  # same values, non-contiguous
    views["B"] = views["B"].transpose(-1, -2).contiguous().transpose(-1, -2)
    assert not views["u"].is_contiguous() and not views["B"].is_contiguous()
    y, last, grads = _run(views, kw, "numba")
    torch.testing.assert_close(y.double(), y_ref, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(last.double(), last_ref, rtol=RTOL, atol=ATOL)
    for k in g_ref:
        torch.testing.assert_close(
            grads[k].double(), g_ref[k], rtol=RTOL, atol=ATOL, msg=lambda m, k=k: f"d{k}: {m}"
        )


def test_numba_bfloat16_inputs():
    inp64, kw = _case("packed-stride2")
    y_ref, _, g_ref = _run(inp64, kw, "torch")
    inp = {
        k: v.to(torch.bfloat16) if k in ("u", "delta", "B", "C", "z") else v.float() for k, v in inp64.items()
    }
    y, _, grads = _run(inp, kw, "numba")
    assert (
        y.dtype == torch.bfloat16 and grads["u"].dtype == torch.bfloat16 and grads["A"].dtype == torch.float32
    )
    torch.testing.assert_close(y.double(), y_ref, rtol=3e-2, atol=5e-2)


_INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


@pytest.mark.skipif(not _INTERPRETED, reason="runs in the TRITON_INTERPRET=1 subprocess of the test below")
@pytest.mark.parametrize("case", list(CASES))
def test_triton_interpreted_matches_float64_reference(case, small_chunks):
    pytest.importorskip("triton")
    _assert_matches(case, "triton")


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
        "triton_interpreted_matches",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert f"{len(CASES)} passed" in proc.stdout, proc.stdout[-2000:]


# ----------------------------------------------------------------------------- packing and gradcheck


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_packed_batch_equals_each_cloud_alone(backend):
    """State resets at cloud boundaries: scanning the packed batch equals scanning every cloud separately."""
    inp = make_inputs(1, 4, 30, 4, groups=2, dtype=torch.float32, seed=5)
    offsets = torch.tensor([0, 7, 8, 19, 30])
    kw = dict(delta_softplus=True, reverse=True, stride=3, backend=backend)
    y, last = selective_scan(*(inp[k] for k in NAMES), offsets=offsets, return_last_state=True, **kw)
    for i, (s0, e0) in enumerate(zip(offsets[:-1].tolist(), offsets[1:].tolist())):
        part = {k: (v[..., s0:e0] if k in ("u", "delta", "z", "B", "C") else v) for k, v in inp.items()}
        y_i, last_i = selective_scan(*(part[k] for k in NAMES), return_last_state=True, **kw)
        torch.testing.assert_close(y[..., s0:e0], y_i, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(last[i], last_i[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", ["torch", "numba"])
@pytest.mark.parametrize("packed", [False, True, "n1"])
def test_gradcheck_float64(backend, packed, monkeypatch):
    monkeypatch.setattr(numba_cpu, "DEFAULT_CHUNK", 2)
    if packed == "n1":  # n = 1 has its own numba kernels
        inp = make_inputs(1, 2, 9, 1, groups=2, seed=9)
        kw = dict(delta_softplus=True, offsets=torch.tensor([0, 4, 9]), reverse=False, stride=2)
    elif packed:
        inp = make_inputs(1, 2, 7, 2, groups=2, seed=7)
        kw = dict(delta_softplus=True, offsets=torch.tensor([0, 3, 7]), reverse=True, stride=2)
    else:
        inp = make_inputs(2, 2, 5, 3, groups=0, seed=8)
        kw = dict(delta_softplus=False, reverse=False, stride=3)
    leaves = [inp[k].clone().requires_grad_() for k in NAMES]

    def fn(*args):
        return selective_scan(*args, **kw, return_last_state=True, backend=backend)

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-7, rtol=1e-5)


# ----------------------------------------------------------------------------- dispatch and validation


def test_auto_backend_is_numba_on_cpu():
    inp, kw = _case("packed-stride2", dtype=torch.float32)
    assert _resolve_backend("auto", inp["u"], 16, kw["offsets"], True, 2) == "numba"
    args = [inp[k] for k in NAMES]
    assert torch.equal(selective_scan(*args, **kw), selective_scan(*args, **kw, backend="numba"))


def test_mamba_backend_refuses_cpu_tensors():
    inp, _ = _case("plain", dtype=torch.float32)
    with pytest.raises(ValueError, match="mamba_ssm"):
        selective_scan(*(inp[k] for k in NAMES), backend="mamba_ssm")


def _valid():
    return make_inputs(1, 4, 9, 2, dtype=torch.float32)


BAD = [
    ("u", lambda i: i["u"][0], "u"),
    ("delta", lambda i: i["delta"][..., :-1], "delta"),
    ("delta", lambda i: i["delta"].double(), "delta"),
    ("A", lambda i: i["A"][:, None], "A"),
    ("A", lambda i: i["A"][:3], "A"),
    ("B", lambda i: i["B"][..., :-1], "B"),
    ("B", lambda i: torch.randn(1, 3, 2, 9), "B"),  # d = 4 not divisible by 3 groups
    ("C", lambda i: i["C"].to(torch.float16), "C"),
    ("D", lambda i: torch.randn(5), "D"),
    ("z", lambda i: torch.randn(1, 4, 8), "z"),
    ("delta_bias", lambda i: torch.randn(4, 1), "delta_bias"),
    ("u", lambda i: i["u"].to(torch.int32), "u"),
    ("z", lambda i: i["z"].to("meta"), "z"),
]


@pytest.mark.parametrize("name,mutate,match", BAD, ids=[f"{n}-{k}" for k, (n, _, _) in enumerate(BAD)])
def test_bad_tensor_raises_value_error(name, mutate, match):
    inp = _valid()
    inp[name] = mutate(inp)
    with pytest.raises(ValueError, match=match):
        selective_scan(*(inp[k] for k in NAMES), backend="numba")


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(stride=0), "stride"),
        (dict(stride=True), "stride"),
        (dict(stride=1.5), "stride"),
        (dict(reverse=1), "reverse"),
        (dict(backend="cuda"), "backend"),
        (dict(offsets=torch.tensor([0, 5, 3, 9])), "offsets"),
        (dict(offsets=torch.tensor([0, 5, 8])), "offsets"),
        (dict(offsets=torch.tensor([1, 9])), "offsets"),
        (dict(offsets=torch.tensor([0.0, 9.0])), "offsets"),
        (dict(offsets=torch.tensor([9])), "offsets"),
    ],
)
def test_bad_option_raises_value_error(kw, match):
    inp = _valid()
    with pytest.raises(ValueError, match=match):
        selective_scan(*(inp[k] for k in NAMES), **kw)


def test_offsets_need_batch_of_one():
    inp = make_inputs(2, 4, 9, 2, dtype=torch.float32)
    with pytest.raises(ValueError, match="offsets"):
        selective_scan(*(inp[k] for k in NAMES), offsets=torch.tensor([0, 4, 9]))


def test_numba_backend_refuses_non_cpu_tensors():
    inp = {k: v.to("meta") for k, v in _valid().items()}
    with pytest.raises(ValueError, match="numba"):
        selective_scan(*(inp[k] for k in NAMES), backend="numba")


def test_triton_backend_refuses_cpu_tensors_without_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    inp = _valid()
    with pytest.raises(ValueError, match="triton"):
        selective_scan(*(inp[k] for k in NAMES), backend="triton")
