"""GPU check: every GPU parity test plus the scan and segmentation benchmarks, in one report.

On a machine with a CUDA GPU this runs, each in its own process with its share of the time budget:

1. the GPU parity tests (``tests/kernels/test_fused_gpu.py``): the Triton selective scan vs the torch
   reference vs mamba-ssm (when installed), the fused mixer ops and the whole mixer (Triton) against the
   torch reference and the CPU path, and the point ops on CUDA against their CPU kernels;
2. the scan benchmark (``tools/bench_scan.py --device cuda``);
3. the segmentation benchmark on the real scene0000_00 (``tools/bench_models.py seg --device cuda``).

and writes a Markdown report (device, versions, every step's command, exit status, duration and output).
Without a CUDA device it says so and exits 1 without running anything. Exit status: 0 when every step
passed, 1 when one failed or ran out of time, 2 for bad arguments.

    python tools/gpu_check.py [--out gpu_report.md] [--budget 480]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# (title, command, share of the budget)
STEPS = (
    (
        "GPU parity tests",
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "tests/kernels/test_fused_gpu.py",
        ],
        0.30,
    ),
    (
        "scan benchmark",
        [sys.executable, "tools/bench_scan.py", "--device", "cuda", "--ref-repeats", "1"],
        0.30,
    ),
    (
        "segmentation benchmark (scene0000_00, 2 cm)",
        [
            sys.executable,
            "tools/bench_models.py",
            "seg",
            "--device",
            "cuda",
            "--repeats",
            "3",
            "--models",
            "ptv3-sdpa",
            "meepo",
            "meepo-ref",
        ],  # fmt: skip
        0.40,
    ),
)


def _versions() -> str:
    import torch

    parts = [f"python {platform.python_version()}", f"torch {torch.__version__} (CUDA {torch.version.cuda})"]
    for mod in ("triton", "numba", "mamba_ssm"):
        try:
            parts.append(f"{mod} {__import__(mod).__version__}")
        except Exception:  # noqa: BLE001 - an optional package that does not import is reported as absent
            parts.append(f"{mod} absent")
    return ", ".join(parts)


def _run(cmd: list[str], timeout: float) -> tuple[int | None, float, str]:
    """Exit status (None on timeout), seconds and combined output of ``cmd`` run from the repository root."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        return proc.returncode, time.perf_counter() - t0, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"") + (err.stderr or b"")
        text = out.decode(errors="replace") if isinstance(out, bytes) else out
        return None, time.perf_counter() - t0, text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("gpu_report.md"), help="report file (Markdown)")
    ap.add_argument(
        "--budget", type=float, default=480.0, help="seconds for all steps together (default 8 min)"
    )
    args = ap.parse_args(argv)
    if args.budget <= 0:
        ap.error(f"--budget: expected a positive number of seconds, got {args.budget}")
    if args.out.exists() and args.out.is_dir():
        ap.error(f"--out: {args.out} is a directory, expected a file path")

    import torch

    if not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA device (torch.cuda.is_available() is False); nothing was run", file=sys.stderr
        )
        return 1
    lines = [
        "# pc3d GPU check",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"- device: {torch.cuda.get_device_name()} ({torch.cuda.device_count()} visible)",
        f"- host: {platform.node()}, {os.cpu_count()} CPUs",
        f"- versions: {_versions()}",
        f"- budget: {args.budget:.0f} s",
        "",
    ]
    failed = []
    start = time.perf_counter()
    saved = 0.0  # time earlier steps left unused, passed on to the next ones
    for title, cmd, share in STEPS:
        left = args.budget - (time.perf_counter() - start)
        timeout = max(10.0, min(left, share * args.budget + saved))
        print(f"gpu_check: {title} (up to {timeout:.0f} s) ...", flush=True)
        rc, secs, out = _run(cmd, timeout)
        saved = max(0.0, timeout - secs)
        status = "passed" if rc == 0 else ("timed out" if rc is None else f"failed (exit {rc})")
        if rc != 0:
            failed.append(title)
        print(f"gpu_check: {title}: {status} in {secs:.0f} s", flush=True)
        lines += [
            f"## {title}: {status} in {secs:.0f} s",
            "",
            f"`{' '.join(cmd[1:])}`",
            "",
            "```",
            out.rstrip(),
            "```",
            "",
        ]
    lines.append(
        f"Total: {time.perf_counter() - start:.0f} s; "
        + (f"failed: {', '.join(failed)}" if failed else "all passed")
    )
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(args.out)  # never leaves a half-written report
    print(f"gpu_check: report written to {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
