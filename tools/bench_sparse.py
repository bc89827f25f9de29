"""Benchmark of the CPU sparse conv (``pc3d.kernels.sparse``) at every level of the segmentation U-Net.

The input is the real scene0000_00 grid-sampled at 2 cm (``$PC3D_SAMPLES``); level ``l`` keeps one
voxel per ``2^l`` cells, as grid pooling does, with the channels of the paper-size encoder
(32, 64, 128, 256, 512). Each level runs a 3x3x3 ``SubMConv3d`` on spconv's own indice pairs:

- **baseline**: the plain-torch gather-GEMM-scatter (advanced-index gather, GEMM, ``index_add_``);
- **pc3d**: :func:`pc3d.kernels.sparse.indice_conv_cpu` / ``indice_conv_backward_cpu``
  (``index_select`` into reused buffers, GEMM, a parallel numba scatter-add).

The ``pairs`` rows time building the submanifold pairs: spconv's own CPU builder (baseline) against
:func:`pc3d.kernels.sparse.subm_indice_pairs_cpu`, for the 3x3x3 kernel of every level and the
5x5x5 stem kernel of level 0.

Both run on the same pairs in the same process; times are medians over ``--repeats`` runs after
one warm-up. GF/s counts the multiply-adds of the real pairs, the centre offset included (2 flops each).

Usage: ``python tools/bench_sparse.py [--repeats 7] [--threads 2]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from spconv.pytorch import ops

from pc3d.kernels.sparse import indice_conv_backward_cpu, indice_conv_cpu, spconv, subm_indice_pairs_cpu

CHANNELS = (32, 64, 128, 256, 512)


def baseline_forward(features, filters, pairs, counts):
    """Plain-torch submanifold conv: ``out = x W_c^T + sum_k index_add(x[in_k] W_k^T)``."""
    w = filters.reshape(filters.shape[0], -1, filters.shape[-1])
    centre = w.shape[1] // 2
    out = features @ w[:, centre].T
    for k, n in enumerate(counts):
        if n and k != centre:
            out.index_add_(0, pairs[1, k, :n].long(), features[pairs[0, k, :n].long()] @ w[:, k].T)
    return out


def baseline_backward(features, filters, grad, pairs, counts):
    w = filters.reshape(filters.shape[0], -1, filters.shape[-1])
    centre = w.shape[1] // 2
    d_w = torch.zeros_like(w)
    d_x = grad @ w[:, centre]
    d_w[:, centre] = grad.T @ features
    for k, n in enumerate(counts):
        if n and k != centre:
            rows_in = pairs[0, k, :n].long()
            g = grad[pairs[1, k, :n].long()]
            d_x.index_add_(0, rows_in, g @ w[:, k])
            d_w[:, k] = g.T @ features[rows_in]
    return d_x, d_w


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def level_grid(coord: torch.Tensor, level: int) -> tuple[torch.Tensor, list[int]]:
    """``indices (M, 4)`` (batch 0, voxel) of ``coord (N, 3)`` at 2 cm pooled ``level`` times, and the grid shape."""
    grid = torch.unique(torch.floor((coord - coord.min(0).values) / 0.02).int() >> level, dim=0)
    indices = torch.cat([torch.zeros(len(grid), 1, dtype=torch.int32), grid], 1).contiguous()
    return indices, (grid.max(0).values + 1).tolist()


def level_inputs(coord: torch.Tensor, level: int, channels: int, gen: torch.Generator):
    """Features, filters and the submanifold pairs of ``coord (N, 3)`` pooled ``level`` times."""
    indices, shape = level_grid(coord, level)
    conv = spconv.SubMConv3d(channels, channels, 3, bias=False, indice_key="b").eval()
    x = spconv.SparseConvTensor(torch.randn(len(indices), channels, generator=gen), indices, shape, 1)
    with torch.no_grad():
        out = conv(x)
    data = out.indice_dict["b"]
    counts = data.indice_pair_num.tolist()
    kv = len(counts)
    counts = [counts[kv - i - 1] if i > kv // 2 else counts[i] for i in range(kv)]
    return x.features, conv.weight.detach().contiguous(), data.indice_pairs, data.indice_pair_num, counts


def measure_level(coord: torch.Tensor, level: int, c: int, gen: torch.Generator, repeats: int) -> list[dict]:
    """Forward and backward of one level: both implementations on the same pairs (checked equal first)."""
    feats, filters, pairs, pair_num, counts = level_inputs(coord, level, c, gen)
    n_pairs = sum(counts) + feats.shape[0]  # the centre offset pairs every voxel with itself
    grad = torch.randn(feats.shape[0], c, generator=gen)
    ref = baseline_forward(feats, filters, pairs, counts)
    got = indice_conv_cpu(feats, filters, pairs, pair_num, feats.shape[0], subm=True)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-3)
    runs = {
        "forward": (
            lambda: baseline_forward(feats, filters, pairs, counts),
            lambda: indice_conv_cpu(feats, filters, pairs, pair_num, feats.shape[0], subm=True),
            2 * n_pairs * c * c,
        ),
        "backward": (
            lambda: baseline_backward(feats, filters, grad, pairs, counts),
            lambda: indice_conv_backward_cpu(feats, filters, grad, pairs, pair_num, subm=True),
            4 * n_pairs * c * c,
        ),
    }
    indices, shape = level_grid(coord, level)
    for k in (3, 5) if level == 0 else (3,):
        args = (indices, 1, shape, [k] * 3)
        runs[f"pairs {k}x{k}x{k}"] = (
            lambda args=args: ops.get_indice_pairs.__wrapped__(
                *args[:3],
                ops.ConvAlgo.Native,
                args[3],
                [1] * 3,
                [args[3][0] // 2] * 3,
                [1] * 3,
                [0] * 3,
                True,
                False,
            ),
            lambda args=args: subm_indice_pairs_cpu(*args, [1] * 3),
            0,
        )
    rows = []
    for name, (base, ours, flops) in runs.items():
        t_base = _median_ms(base, repeats)
        t_ours = _median_ms(ours, repeats)
        rows.append({
            "pass": name, "voxels": feats.shape[0], "pairs": n_pairs, "baseline": t_base, "pc3d": t_ours,
            "gflops": f"{flops / t_ours / 1e6:.0f}" if flops else "",
        })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", default=os.environ.get("PC3D_SAMPLES", "../shared/data"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if not (Path(args.samples) / "scannet" / "scans" / "scene0000_00").is_dir():
        print(
            f"bench_sparse.py: scene0000_00 not found under {args.samples} (set $PC3D_SAMPLES)",
            file=sys.stderr,
        )
        return 2
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tools.bench.models_seg import load_scene

    torch.set_num_threads(args.threads)
    coord, _, _ = load_scene(Path(args.samples))
    gen = torch.Generator().manual_seed(0)
    print(
        f"# SubMConv3d 3x3x3 on scene0000_00 at 2 cm; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cpus, torch {torch.__version__}, {args.threads} threads; medians of {args.repeats}"
    )
    print("| level | voxels | C | pairs | pass | baseline (ms) | pc3d (ms) | speed-up | pc3d GF/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    totals = {"forward": [0.0, 0.0], "backward": [0.0, 0.0]}
    for level, c in enumerate(CHANNELS):
        for row in measure_level(coord, level, c, gen, args.repeats):
            total = totals.setdefault(row["pass"].split()[0], [0.0, 0.0])
            total[0] += row["baseline"]
            total[1] += row["pc3d"]
            print(
                f"| {level} | {row['voxels']:,} | {c} | {row['pairs']:,} | {row['pass']} | {row['baseline']:.1f} | "
                f"{row['pc3d']:.1f} | {row['baseline'] / row['pc3d']:.2f}x | {row['gflops']} |"
            )
    for name, (t_base, t_ours) in totals.items():
        print(f"| all | | | | {name} | {t_base:.1f} | {t_ours:.1f} | {t_base / t_ours:.2f}x | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
