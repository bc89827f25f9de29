"""``bench_models.py seg``: the token mixers of the serialized U-Net on the real scene0000_00 at 2 cm.

Reports parameter counts of the paper-size models (PTv3, MEEPO and every mixer of
``pc3d.models.mixers`` in PTv3's layout, built from the shipped configs), inference latency and peak
memory on the whole scene, and one training step (forward + backward, cross-entropy) on a sphere
crop, with ratios against the PTv3 baselines (``ptv3-math`` and ``ptv3-sdpa``) measured in the same
run. ``meepo`` runs the token-major fused mixer, ``meepo-ref`` the same model on the channel-major
reference kernels. Each
measurement runs in a fresh subprocess;
peak memory is the peak RSS of the timed runs (``VmHWM``, reset after the warm-up: no sampling thread competes
with the model for the cores) minus the RSS before the warm-up, which
counts the freed blocks the heap keeps for reuse (``import pc3d``'s allocator setting) (``--device cuda``: the CUDA allocator's peak above what was allocated before the warm-up); on CPU, the
live peak is measured again in a process of its own whose allocator returns freed blocks
(``MALLOC_MMAP_THRESHOLD_=65536``): the peak RSS of one step above the RSS after a warm-up step, i.e. the
tensors alive at once without what glibc keeps of freed ones (what a GPU allocator's peak measures)
(the warm-up's own peak, which includes one-off numba compilation, is reported separately as
``warmup_peak_mem_gb``). Latencies (wall) and process CPU times (all threads) are medians over
``--repeats`` runs after one warm-up; ``--rounds K`` runs the whole model list K times in turn and pools every
round's timed runs (a slow spell of the host then touches every model, not just the one running), printing each
round's speed-ups as well. Inference
also reports the seconds of one instrumented forward spent in each part of the blocks (sparse conv,
mixer = PTv3's patch attention, MEEPO's Mamba or the block's token mixer, MLP) and outside those
modules ("other": the blocks' norms and residuals, PTv3's xCPE projection and patch building, stem,
pooling, serialization, head).

    python tools/bench_models.py seg [--repeats 3] [--threads 2] [--train-points 20000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pc3d.tools.bench.component_timer import ComponentTimer
from pc3d.tools.bench.model_configs import MIXERS, model_from_configs
from pc3d.tools.bench.process_memory import peak_rss_bytes, reset_peak_rss, rss_bytes

MODELS = {
    # name: (stacked shipped configs, init-argument overrides) -- all paper size: widths 32..512,
    # depths (2,2,2,6,2)/(2,2,2,2); the mixer configs swap the token mixer of PTv3's layout and recipe
    "ptv3-math": (["ptv3_scannet.yaml"], {"attn_impl": "math"}),
    "ptv3-sdpa": (["ptv3_scannet.yaml"], {"attn_impl": "sdpa"}),
    "meepo": (["meepo_scannet.yaml"], {}),
    "meepo-2dir": (["meepo_scannet.yaml"], {"directions": ["forward", "reverse"]}),
    # the same MEEPO on the channel-major reference kernels (sequence_depthwise_conv + selective_scan)
    "meepo-ref": (["meepo_scannet.yaml"], {"scan_backend": "numba"}),
    **{name: (["ptv3_scannet.yaml", f"mixers/{name}_scannet.yaml"], {}) for name in MIXERS},
}
BASELINE = "ptv3-math"
TARGET = "ptv3-sdpa"  # the second ratio column: the PTv3 the targets compare against
COMPONENTS = ("sparse conv", "mixer", "mlp", "other")


def load_scene(samples: Path, grid: float = 0.02, crop: int | None = None):
    """scene0000_00 as ``(coord (N,3), feat (N,6), segment (N,))`` torch tensors, one point per 2 cm voxel."""
    import numpy as np
    import torch

    from pc3d.data.scannet.preprocess import convert_scene
    from pc3d.data.scannet.raw import read_label_tsv
    from pc3d.kernels.points import grid_sample

    root = samples / "scannet"
    arrays = convert_scene(
        root / "scans" / "scene0000_00", read_label_tsv(root / "meta" / "scannetv2-labels.combined.tsv")
    )["arrays"]
    coord = arrays["coord"] - arrays["coord"].mean(0)
    keep, _ = grid_sample(torch.from_numpy(coord), grid, generator=torch.Generator().manual_seed(0))
    keep = keep.numpy()
    coord = coord[keep]
    feat = np.concatenate([arrays["color"][keep] / 127.5 - 1, arrays["normal"][keep]], 1).astype(np.float32)
    seg = arrays["segment20"][keep].astype(np.int64)
    if crop is not None and crop < len(coord):  # SphereCrop around the scene's middle point
        centre = coord[np.argsort(coord[:, 0])[len(coord) // 2]]
        near = np.argsort(((coord - centre) ** 2).sum(1))[:crop]
        coord, feat, seg = coord[near], feat[near], seg[near]
    return torch.from_numpy(coord.astype(np.float32)), torch.from_numpy(feat), torch.from_numpy(seg)


def build(name: str):
    configs, overrides = MODELS[name]
    return model_from_configs(*configs, **overrides)


def instrument(model, sync=None) -> ComponentTimer:
    """Time every block's sparse conv (MEEPO ``conv``, PTv3 ``cpe``), mixer (``mixer``/``attn``) and MLP.

    ``sync`` (e.g. ``torch.cuda.synchronize``) runs before every start and stop of a component's clock.
    """
    timer = ComponentTimer(COMPONENTS)
    for stage in [*model.enc, *model.dec]:
        for block in stage:
            for module, name in (
                (block.conv if hasattr(block, "conv") else block.cpe, "sparse conv"),
                (block.mixer if hasattr(block, "mixer") else block.attn, "mixer"),
                (block.mlp, "mlp"),
            ):
                if sync is not None:  # registered first, so they run before the timer's own hooks
                    module.register_forward_pre_hook(lambda *_: sync())
                    module.register_forward_hook(lambda *_: sync())
                timer.hook(module, name)
    return timer


def worker(args: argparse.Namespace) -> dict:
    """One (model, mode) measurement in this process."""
    import torch
    import torch.nn.functional as F

    from pc3d.data.batch import PointBatch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else None
    crop = args.train_points if args.mode == "train" else None
    coord, feat, seg = (t.to(device) for t in load_scene(Path(args.samples), crop=crop))
    batch = PointBatch(coord=coord, feat=feat, offsets=torch.tensor([0, coord.shape[0]], device=device))
    model = build(args.model).to(device)
    params = sum(p.numel() for p in model.parameters())

    def step() -> None:
        if args.mode == "infer":
            model.eval()
            with torch.no_grad():
                model(batch)
        else:
            model.train()
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(batch), seg, ignore_index=-1).backward()
        if sync is not None:
            sync()

    if args.live_memory:
        return _live_peak(args, step)
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base = rss_bytes()
    t = time.perf_counter()
    step()  # warm-up: numba/Triton JIT or cache loading, allocator
    warm_s = time.perf_counter() - t
    if cuda:
        warm_peak = torch.cuda.max_memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        warm_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        reset_peak_rss()
    times, cpu = [], []
    for _ in range(args.repeats):
        t, c = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    peak = torch.cuda.max_memory_allocated() if cuda else peak_rss_bytes()
    shares = None
    if args.mode == "infer":
        timer = instrument(model, sync)
        t = time.perf_counter()
        step()
        total = time.perf_counter() - t
        timer.t["other"] = total - sum(timer.t.values())
        shares = {k: round(v, 3) for k, v in timer.t.items()}
    return {
        "model": args.model,
        "mode": args.mode,
        "points": int(coord.shape[0]),
        "params": params,
        "median_s": statistics.median(times),
        "times_s": times,
        "cpu_s": statistics.median(cpu),
        "peak_mem_gb": (peak - base) / 1e9,
        "warmup_s": warm_s,
        "warmup_peak_mem_gb": (warm_peak - base) / 1e9,
        "component_s": shares,
    }


def _live_peak(args: argparse.Namespace, step) -> dict:
    """Peak RSS of one step above the RSS after a warm-up step, in a process whose allocator returns every
    freed block of 64 KiB or more (``MALLOC_MMAP_THRESHOLD_=65536``, set by :func:`_run_worker`): the
    tensors alive at once, without what glibc keeps of freed ones (on CUDA the allocator peak is that)."""
    step()
    base = rss_bytes()
    reset_peak_rss()
    step()
    return {"model": args.model, "mode": args.mode, "live_peak_mem_gb": (peak_rss_bytes() - base) / 1e9}


def _run_worker(model: str, mode: str, args: argparse.Namespace, live_memory: bool = False) -> dict:
    cmd = [sys.executable, "-m", "pc3d.tools.bench.models_seg", "--worker", "--model", model, "--mode", mode,
           "--repeats", str(args.repeats), "--threads", str(args.threads), "--samples", str(args.samples),
           "--train-points", str(args.train_points), "--device", args.device]  # fmt: skip
    env = None
    if live_memory:
        cmd.append("--live-memory")
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        return {"model": model, "mode": mode, "error": (res.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def _pool_rounds(rounds: list[list[dict]]) -> list[dict]:
    """One row per model from several rounds over the models: the median of every timed run of every round
    (rounds interleave the models, so a slow spell of the host touches all of them); CPU time the median of the
    rounds' medians; peak memory the highest; live peak and component times from the first round."""
    rows = []
    for runs in zip(*rounds):
        ok = [r for r in runs if "error" not in r]
        if len(ok) < len(runs):
            rows.append(next(r for r in runs if "error" in r))
            continue
        row = dict(ok[0])
        row["times_s"] = [t for r in ok for t in r["times_s"]]
        row["median_s"] = statistics.median(row["times_s"])
        row["cpu_s"] = statistics.median(r["cpu_s"] for r in ok)
        row["peak_mem_gb"] = max(r["peak_mem_gb"] for r in ok)
        rows.append(row)
    return rows


def _round_ratios(runs: list[dict], k: int) -> str:
    """One round's speed-ups against the target baseline (wall, medians of the round)."""
    ok = {r["model"]: r for r in runs if "error" not in r}
    if TARGET not in ok:
        return f"round {k + 1}: {TARGET} failed"
    cells = ", ".join(
        f"{m} {ok[TARGET]['median_s'] / r['median_s']:.2f}x" for m, r in ok.items() if m != TARGET
    )
    return f"round {k + 1}, speed-up vs {TARGET}: {cells}"


def _ratio(num: dict | None, den: dict, key: str) -> str:
    return f"{num[key] / max(den[key], 1e-9):.2f}x" if num else "–"


def _mem(r: dict, b: dict | None, key: str = "peak_mem_gb") -> str:
    if not b or r.get(key) is None or b.get(key) is None:
        return "–"
    return f"{r[key] / max(b[key], 1e-9):.2f}x"


def _gb(r: dict, key: str) -> str:
    return f"{r[key]:.2f}" if r.get(key) is not None else "–"


def _table(rows: list[dict], mode: str) -> str:
    """Speed-ups (baseline time / model time, wall and CPU) and memory ratios (model / baseline)."""
    ok = {r["model"]: r for r in rows if "error" not in r}
    base, target = ok.get(BASELINE), ok.get(TARGET)
    out = [
        f"| model | points | params (M) | {mode} median (s) | CPU (s) | speed-up vs {BASELINE} | "
        f"speed-up vs {TARGET} (wall / CPU) | peak mem (GB) | mem vs {BASELINE} | mem vs {TARGET} | "
        f"live peak (GB) | live vs {TARGET} |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['model']} | – | – | failed: {r['error']} | – | – | – | – | – | – | – | – |")
            continue
        out.append(
            f"| {r['model']} | {r['points']} | {r['params'] / 1e6:.2f} | {r['median_s']:.2f} | "
            f"{r.get('cpu_s', float('nan')):.2f} | {_ratio(base, r, 'median_s')} | "
            f"{_ratio(target, r, 'median_s')} / {_ratio(target, r, 'cpu_s')} | {r['peak_mem_gb']:.2f} | "
            f"{_mem(r, base)} | {_mem(r, target)} | {_gb(r, 'live_peak_mem_gb')} | "
            f"{_mem(r, target, 'live_peak_mem_gb')} |"
        )
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench_models.py seg", description=__doc__.split("\n\n")[0])
    default_samples = os.environ.get(
        "PC3D_SAMPLES", str(Path(__file__).resolve().parents[2].parent / "shared/data")
    )
    p.add_argument("--samples", default=default_samples, help="root of the real samples ($PC3D_SAMPLES)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (after one warm-up)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--train-points", type=int, default=20000, help="sphere-crop size for the training step")
    p.add_argument(
        "--device", default="cpu", choices=["cpu", "cuda"], help="on cuda, memory is the allocator's peak"
    )
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--modes", nargs="+", default=["infer", "train"], choices=["infer", "train"])
    p.add_argument(
        "--rounds", type=int, default=1, help="runs over the model list, interleaved; tables pool every round"
    )
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", choices=list(MODELS), help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=["infer", "train"], help=argparse.SUPPRESS)
    p.add_argument("--live-memory", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for flag in ("repeats", "threads", "train_points", "rounds"):
        if getattr(args, flag) < 1:
            name = "--" + flag.replace("_", "-")
            print(f"bench_models.py seg: {name} must be >= 1, got {getattr(args, flag)}", file=sys.stderr)
            return 2
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    if not (Path(args.samples) / "scannet" / "scans" / "scene0000_00").is_dir():
        print(
            f"bench_models.py seg: scene0000_00 not found under {args.samples} (set $PC3D_SAMPLES)",
            file=sys.stderr,
        )
        return 2
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_models.py seg: --device cuda, but torch sees no CUDA device", file=sys.stderr)
        return 2
    if args.device == "cuda":
        print(f"device: {torch.cuda.get_device_name()}")
    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, repeats {args.repeats}")
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    for name in args.models:
        print(f"parameters {name}: {sum(p.numel() for p in build(name).parameters()) / 1e6:.2f} M")
    for mode in args.modes:
        rounds: list[list[dict]] = []
        for k in range(args.rounds):
            rounds.append([])
            for name in args.models:
                r = _run_worker(name, mode, args)
                if k == 0 and args.device == "cpu" and "error" not in r:
                    live = _run_worker(name, mode, args, live_memory=True)
                    r["live_peak_mem_gb"] = live.get("live_peak_mem_gb")
                print(json.dumps(r), flush=True)
                rounds[-1].append(r)
            if args.rounds > 1:
                print(_round_ratios(rounds[-1], k), flush=True)
        rows = _pool_rounds(rounds)
        print(
            f"\n{mode} ({'whole scene' if mode == 'infer' else f'sphere crop of {args.train_points} points'}"
            f"{f', medians over {args.rounds} rounds' if args.rounds > 1 else ''}):"
        )
        print(_table(rows, mode))
        if mode == "infer":
            print("\nseconds per component in one instrumented inference forward:")
            print("| model | " + " | ".join(COMPONENTS) + " | total |")
            print("|---" * (len(COMPONENTS) + 2) + "|")
            for r in rows:
                if r.get("component_s"):
                    c = r["component_s"]
                    cells = " | ".join(f"{c[k]:.2f}" for k in COMPONENTS)
                    print(f"| {r['model']} | {cells} | {sum(c.values()):.2f} |")
    print("\nload average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
