"""Benchmark of ``pc3d.kernels.selective_scan``: backend x shape x {fwd, fwd+bwd}.

Every measurement runs in a fresh worker process (``--worker``) so that JIT warm-up, allocator caches and earlier
cases cannot hide memory: the worker warms the backend up on a tiny problem, allocates the full-size inputs, resets
the kernel's peak-RSS counter (``/proc/self/clear_refs`` <- 5), runs the case once and reads ``VmHWM``; the peak
extra memory is ``VmHWM - VmRSS`` before the run (it includes the outputs and gradients themselves). Workers run
with ``MALLOC_MMAP_THRESHOLD_=65536`` so large buffers are mmap'ed and freed memory leaves the RSS at once. On CUDA
the peak is ``torch.cuda.max_memory_allocated`` above the inputs. Times are medians over ``--repeats`` runs after
one warm-up at full size; "CPU ms" is the median process CPU time of a run (all threads), and "M elem/s from CPU
time" divides the elements by CPU ms / threads: an estimate of the unloaded rate when the 2 cores are shared with
other jobs (wall times then inflate; spin-waiting threads inflate CPU time too, so the estimate is conservative).
The first table uses the full forward (softplus with delta_bias, D, z gate, variable B/C). The second
table is MEEPO's mixer scan (no gate, n = 1, packed clouds) in two of its directions: the channel-major
``selective_scan`` backends on ``(1, d, L)`` rows against the token-major fused ``mixer_scan``
(``fused``: numba on CPU, Triton on CUDA) on ``(L, d)`` rows, with ratios against the channel-major
numba (CPU) or Triton (CUDA) kernel of the same run.

Usage: ``python tools/bench_scan.py [--quick] [--backends torch,numba] [--repeats 5] [--device cpu]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from pc3d.tools.bench.process_memory import peak_rss_bytes, reset_peak_rss, rss_bytes

SHAPES = {
    "full": [((2, 256, 4096, 16), None), ((1, 192, 65536, 1), 4)],
    "quick": [((2, 64, 1024, 16), None), ((1, 48, 16384, 1), 4)],
}
MODES = ("fwd", "fwd+bwd")
# MEEPO's mixer scan: (b, d, L, n), clouds; directions as (reverse, stride)
MIXER_SHAPES = {"full": [((1, 192, 65536, 1), 4)], "quick": [((1, 48, 16384, 1), 4)]}
MIXER_ORDERS = ((False, 1), (True, 2))


def _make_case(shape, n_clouds, device, requires_grad, seed=0):
    import torch

    b, d, L, n = shape
    gen = torch.Generator().manual_seed(seed)
    inp = {
        "u": torch.randn(b, d, L, generator=gen),
        "delta": torch.rand(b, d, L, generator=gen) * 0.5,
        "A": -torch.rand(d, n, generator=gen) * 0.5 - 0.05,
        "B": torch.randn(b, n, L, generator=gen),
        "C": torch.randn(b, n, L, generator=gen),
        "D": torch.randn(d, generator=gen),
        "z": torch.randn(b, d, L, generator=gen),
        "delta_bias": torch.rand(d, generator=gen) * 0.5,
    }
    inp = {k: v.to(device).requires_grad_(requires_grad) for k, v in inp.items()}
    offsets = None
    if n_clouds:
        cuts = torch.linspace(0, 1, n_clouds + 1) ** 1.3  # clouds of unequal sizes
        offsets = (cuts * L).round().long()
        offsets[0], offsets[-1] = 0, L
    grad_out = torch.randn(b, d, L, generator=gen).to(device)
    return inp, offsets, grad_out


def _run_once(fn, inp, offsets, grad_out, mode, backend, order=(False, 1)):
    if backend == "fused":  # token-major (L, d) rows
        from pc3d.kernels.scan.fused import mixer_scan

        tm = {k: v for k, v in inp.items() if k != "z"}
        y = mixer_scan(**tm, offsets=offsets, reverse=order[0], stride=order[1])
    else:
        y = fn(
            **inp, delta_softplus=True, offsets=offsets, backend=backend, reverse=order[0], stride=order[1]
        )
    if mode == "fwd+bwd":
        y.backward(grad_out)
        for v in inp.values():
            if v is not None:
                v.grad = None
    return y


def _mixer_case(inp: dict, grad_out, token_major: bool):
    """MEEPO's scan inputs: no gate; ``(L, d)`` / ``(L, n)`` rows when ``token_major``."""
    import torch

    out = {}
    for k, v in inp.items():
        if k == "z":
            continue
        v = v.detach()
        if token_major and k in ("u", "delta", "B", "C"):
            v = v[0].t().contiguous()
        out[k] = v.requires_grad_(inp[k].requires_grad)
    if not token_major:
        out["z"] = None
        return out, grad_out
    return out, torch.as_tensor(grad_out)[0].t().contiguous()


def worker(spec: dict) -> dict:
    """Run one (backend, shape, mode) case; returns times, memory and byte counts."""
    import torch

    from pc3d.kernels import selective_scan

    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    cuda = device.type == "cuda"
    mode, backend = spec["mode"], spec["backend"]
    grad = mode == "fwd+bwd"
    shape = tuple(spec["shape"])
    # warm-up on a tiny problem (JIT compilation, lazy imports)
    tiny = (shape[0], min(shape[1], 4), 64, shape[3])
    order = tuple(spec.get("order", (False, 1)))
    mixer = spec.get("mixer", False)
    t_inp, t_offs, t_g = _make_case(tiny, spec["clouds"], device, grad)
    if mixer:
        t_inp, t_g = _mixer_case(t_inp, t_g, backend == "fused")
    _run_once(selective_scan, t_inp, t_offs, t_g, mode, backend, order)

    inp, offsets, grad_out = _make_case(shape, spec["clouds"], device, grad)
    if mixer:
        inp, grad_out = _mixer_case(inp, grad_out, backend == "fused")
    in_bytes = sum(v.numel() * v.element_size() for v in inp.values() if v is not None)
    b, d, L, _ = shape
    out_bytes = b * d * L * 4 + (in_bytes if grad else 0)  # y (+ one gradient per input)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        reset_peak_rss()
        base = rss_bytes()
    with torch.no_grad() if not grad else torch.enable_grad():
        y = _run_once(selective_scan, inp, offsets, grad_out, mode, backend, order)
        sync()
        peak = (torch.cuda.max_memory_allocated() if cuda else peak_rss_bytes()) - base
        del y
        times, cpu_times = [], []
        for _ in range(spec["repeats"]):
            sync()
            t0, c0 = time.perf_counter(), time.process_time()
            y = _run_once(selective_scan, inp, offsets, grad_out, mode, backend, order)
            sync()
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
            del y
    return {
        "ms": 1e3 * statistics.median(times),
        "cpu_ms": 1e3 * statistics.median(cpu_times),
        "peak": peak,
        "in_bytes": in_bytes,
        "out_bytes": out_bytes,
    }


def _spawn(spec: dict) -> dict:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed for {spec}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _machine(device: str) -> str:
    import numba
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    desc = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, numba {numba.__version__}"
    if device == "cuda":
        desc += f", {torch.cuda.get_device_name()}"
    return desc


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller shapes and fewer repeats (about 1 minute)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument(
        "--backends", default=None, help="comma list; default torch,numba (cpu) / torch,triton,mamba_ssm"
    )
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per case (median reported)")
    ap.add_argument("--ref-repeats", type=int, default=None, help="timed runs for the slow torch reference")
    ap.add_argument(
        "--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch and numba threads"
    )
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    default_backends = "torch,numba" if args.device == "cpu" else "torch,triton,mamba_ssm"
    backends = (args.backends or default_backends).split(",")
    repeats = args.repeats or (3 if args.quick else 5)
    ref_repeats = args.ref_repeats or (1 if args.quick else 3)
    print(
        f"# selective scan benchmark: {_machine(args.device)}; {args.threads} threads, fp32, median of runs"
    )
    print(f"# 1-min load average at start: {os.getloadavg()[0]:.1f}\n")
    print(
        "| shape (b, d, L, n) | clouds | mode | backend | median ms | M elem/s | x torch ref | CPU ms "
        "| M elem/s from CPU time | peak extra MB | peak / (in+out) |"
    )
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for shape, clouds in SHAPES["quick" if args.quick else "full"]:
        b, d, L, n = shape
        for mode in MODES:
            ref_ms = None
            for backend in backends:
                spec = {
                    "shape": shape,
                    "clouds": clouds,
                    "mode": mode,
                    "backend": backend,
                    "device": args.device,
                    "threads": args.threads,
                    "repeats": ref_repeats if backend == "torch" else repeats,
                }
                try:
                    res = _spawn(spec)
                except RuntimeError as err:
                    print(
                        f"| {shape} | {clouds or 1} | {mode} | {backend} | failed: {str(err).splitlines()[-1]} |"
                    )
                    continue
                if backend == "torch":
                    ref_ms = res["ms"]
                ratio = f"{ref_ms / res['ms']:.1f}" if ref_ms else "-"
                mel = b * d * L / res["ms"] / 1e3
                mel_cpu = b * d * L / (res["cpu_ms"] / args.threads) / 1e3  # as if the threads had the cores
                frac = res["peak"] / (res["in_bytes"] + res["out_bytes"])
                print(
                    f"| {shape} | {clouds or 1} | {mode} | {backend} | {res['ms']:.1f} | {mel:.1f} | {ratio} | "
                    f"{res['cpu_ms']:.1f} | {mel_cpu:.1f} | {res['peak'] / 2**20:.1f} | {frac:.2f} |",
                    flush=True,
                )
    _mixer_table(args, repeats)
    print(f"\n# 1-min load average at end: {os.getloadavg()[0]:.1f}")


def _mixer_table(args: argparse.Namespace, repeats: int) -> None:
    """MEEPO's mixer scan: channel-major kernels vs the token-major fused one, per direction."""
    ref = "numba" if args.device == "cpu" else "triton"
    print(
        "\n# MEEPO mixer scan (no gate, n = 1): channel-major selective_scan vs token-major fused mixer_scan\n"
    )
    print(
        "| shape (b, d, L, n) | clouds | direction (reverse, stride) | mode | backend | median ms | M elem/s "
        f"| x {ref} | CPU ms | M elem/s from CPU time | peak extra MB |"
    )
    print("|---|---|---|---|---|---:|---:|---:|---:|---:|---:|")
    for shape, clouds in MIXER_SHAPES["quick" if args.quick else "full"]:
        b, d, L, n = shape
        for order in MIXER_ORDERS:
            for mode in MODES:
                ref_ms = None
                for backend in (ref, "fused"):
                    spec = {"shape": shape, "clouds": clouds, "mode": mode, "backend": backend, "device": args.device,
                            "threads": args.threads, "repeats": repeats, "mixer": True, "order": order}  # fmt: skip
                    try:
                        res = _spawn(spec)
                    except RuntimeError as err:
                        print(
                            f"| {shape} | {clouds} | {order} | {mode} | {backend} | failed: {str(err).splitlines()[-1]} |"
                        )
                        continue
                    ref_ms = res["ms"] if backend == ref else ref_ms
                    ratio = f"{ref_ms / res['ms']:.2f}" if ref_ms else "-"
                    mel = b * d * L / res["ms"] / 1e3
                    mel_cpu = b * d * L / (res["cpu_ms"] / args.threads) / 1e3
                    print(
                        f"| {shape} | {clouds} | {order} | {mode} | {backend} | {res['ms']:.1f} | {mel:.1f} | {ratio} "
                        f"| {res['cpu_ms']:.1f} | {mel_cpu:.1f} | {res['peak'] / 2**20:.1f} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
