"""``bench_models.py seg-demo``: the token mixers at demo size, trained for the same number of steps.

Every model is ``meepo_demo.yaml`` with its mixer swapped by a shipped override
(``-c meepo_demo.yaml -c mixers/<name>_demo.yaml``): the same widths, depths, MLP ratio, data, recipe
and seed. Each is fitted for ``--steps`` optimizer steps (the schedule anneals over them, no
validation during the fit) and then validated once; the table gives parameters, validation mIoU,
fit time and seconds per step, with ratios against MEEPO measured in the same run. Each model runs
in a fresh subprocess at ``--threads`` threads; its logs and checkpoints go to a temporary folder.

    python tools/bench_models.py seg-demo [--steps 450] [--data pc3d_demo/data/scannet] [--models ...]

The data is the main job's (``pc3d demo`` makes it, or the header commands of meepo_demo.yaml).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pc3d.tools.bench.model_configs import MIXERS

#: name -> override configs stacked on meepo_demo.yaml
MODELS: dict[str, list[str]] = {
    "meepo": [],
    "ptv3": ["mixers/ptv3_demo.yaml"],
    **{name: [f"mixers/{name}_demo.yaml"] for name in MIXERS},
}
BASELINE = "meepo"


def worker(args: argparse.Namespace) -> dict:
    """Fit one model for ``args.steps`` steps, validate it, return the numbers."""
    import torch

    from pc3d.cli import PC3DCLI, resolve_config
    from pc3d.demo import budget_overrides

    torch.set_num_threads(args.threads)
    configs: list[str] = []
    for name in ["meepo_demo.yaml", *MODELS[args.model]]:
        configs += ["-c", resolve_config(name)]
    with tempfile.TemporaryDirectory(prefix="pc3d-bench-") as run_dir:
        common = [
            f"--data.init_args.root={args.data}",
            f"--trainer.default_root_dir={run_dir}",
            "--trainer.enable_progress_bar=false",
            "--trainer.callbacks=[]",
        ]
        t0 = time.perf_counter()
        fit = PC3DCLI(args=["fit", *configs, *common, *budget_overrides(args.steps)])
        fit_s = time.perf_counter() - t0
        ckpt = fit.trainer.checkpoint_callback.last_model_path
        params = sum(p.numel() for p in fit.model.model.parameters())
        val = PC3DCLI(args=["validate", *configs, *common, f"--ckpt_path={ckpt}"])
        metrics = {k: float(v) for k, v in val.trainer.callback_metrics.items() if v.numel() == 1}
    return {
        "model": args.model,
        "params": params,
        "steps": fit.trainer.global_step,
        "val_miou": metrics.get("val/mIoU", float("nan")),
        "val_macc": metrics.get("val/mAcc", float("nan")),
        "fit_s": fit_s,
        "s_per_step": fit_s / max(fit.trainer.global_step, 1),
    }


def _run_worker(model: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", "pc3d.tools.bench.models_seg_demo", "--worker", "--model", model,
           "--steps", str(args.steps), "--threads", str(args.threads), "--data", str(args.data)]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True)
    lines = res.stdout.strip().splitlines()
    if res.returncode != 0 or not lines:
        return {"model": model, "error": (res.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(lines[-1])


def _table(rows: list[dict]) -> str:
    base = next((r for r in rows if r["model"] == BASELINE and "error" not in r), None)
    out = [
        f"| model | params (M) | steps | val mIoU | val mAcc | fit (s) | s/step | speed vs {BASELINE} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['model']} | failed: {r['error']} | – | – | – | – | – | – |")
            continue
        speed = f"{base['s_per_step'] / r['s_per_step']:.2f}x" if base else "–"
        out.append(
            f"| {r['model']} | {r['params'] / 1e6:.3f} | {r['steps']} | {r['val_miou']:.3f} | "
            f"{r['val_macc']:.3f} | {r['fit_s']:.0f} | {r['s_per_step']:.2f} | {speed} |"
        )
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench_models.py seg-demo", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data", type=Path, default=Path("pc3d_demo/data/scannet"), help="preprocessed demo rooms"
    )
    p.add_argument("--steps", type=int, default=450, help="optimizer steps per model (the main job's)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", choices=list(MODELS), help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.steps < 1:
        print(f"bench_models.py seg-demo: --steps must be >= 1, got {args.steps}", file=sys.stderr)
        return 2
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    if not (args.data / "splits").is_dir():
        print(
            f"bench_models.py seg-demo: no preprocessed rooms under {args.data}; make them with `pc3d demo` "
            "or the data commands in the header of meepo_demo.yaml",
            file=sys.stderr,
        )
        return 2
    print(f"{args.threads} threads, {os.cpu_count()} CPUs, {args.steps} steps per model, data {args.data}")
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    rows = []
    for name in args.models:
        r = _run_worker(name, args)
        print(json.dumps(r), flush=True)
        rows.append(r)
    print()
    print(_table(rows))
    print("\nload average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
