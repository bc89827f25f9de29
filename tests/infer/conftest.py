"""Tiny checkpoints written by the real ``pc3d fit`` path from the real sample scans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_meepo import TINY_MEEPO_ARGS

QUICK_FIT = [
    "--trainer.max_steps=2",
    "--trainer.logger=false",
    "--trainer.callbacks=[]",
    "--trainer.num_sanity_val_steps=0",
    "--trainer.limit_val_batches=0",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]


def _fit(config: str, root: Path, run_dir: Path, extra: list[str]) -> Path:
    from pc3d.cli import PC3DCLI, resolve_config

    PC3DCLI(
        args=[
            "fit",
            "-c",
            resolve_config(config),
            f"--data.init_args.root={root}",
            f"--trainer.default_root_dir={run_dir}",
            *QUICK_FIT,
            *extra,
        ]
    )
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    return ckpt


@pytest.fixture(scope="session")
def scannet_data(samples_dir, tmp_path_factory) -> Path:
    """scene0000_00 preprocessed by ``pc3d-data scannet``."""
    from pc3d.tools.data_cli import main as data_main

    out = tmp_path_factory.mktemp("infer_scannet")
    raw = samples_dir / "scannet"
    code = data_main(
        ["scannet", "--raw", str(raw / "scans"), "--meta", str(raw / "meta"), "--out", str(out),
         "--workers", "1", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    return out


@pytest.fixture(scope="session")
def seg_ckpt(scannet_data, tmp_path_factory) -> Path:
    """A tiny MEEPO (meepo_demo.yaml, 10 cm voxels) after two training steps on scene0000_00."""
    run_dir = tmp_path_factory.mktemp("infer_seg_run")
    return _fit(
        "meepo_demo.yaml",
        scannet_data,
        run_dir,
        ["--data.init_args.val_split=[scene0000_00]", *TINY_MEEPO_ARGS],
    )


@pytest.fixture(scope="session")
def kitti_data(samples_dir, tmp_path_factory) -> Path:
    """The two KITTI sample frames preprocessed by ``pc3d-data kitti``."""
    from pc3d.tools.data_cli import main as data_main

    out = tmp_path_factory.mktemp("infer_kitti")
    code = data_main(["kitti", "--root", str(samples_dir / "kitti"), "--out", str(out), "--workers", "0",
                      "--no-progress"])  # fmt: skip
    assert code == 0
    return out


@pytest.fixture(scope="session")
def det_ckpt(kitti_data, tmp_path_factory) -> Path:
    """The Pointformer KITTI demo model (1024 points per frame) after two training steps."""
    run_dir = tmp_path_factory.mktemp("infer_det_run")
    return _fit(
        "pointformer_demo_kitti.yaml",
        kitti_data,
        run_dir,
        [
            "--data.init_args.num_points=1024",
            "--data.init_args.batch_size=1",
            "--data.init_args.gt_sampling=false",
        ],
    )


TINY_POINTFORMER_VOTENET = [
    "--data.init_args.num_points=1024",
    "--data.init_args.batch_size=1",
    "--model.init_args.model.init_args.backbone.init_args.num_points=[256, 128, 64, 32]",
    "--model.init_args.model.init_args.backbone.init_args.stem_channels=16",
    "--model.init_args.model.init_args.backbone.init_args.dims=[16, 32, 32, 32]",
    "--model.init_args.model.init_args.backbone.init_args.out_channels=[32, 32, 32, 32]",
    "--model.init_args.model.init_args.backbone.init_args.fp_channels=[[32, 32], [32, 32]]",
    "--model.init_args.model.init_args.backbone.init_args.num_samples=[8, 8, 8, 8]",
    "--model.init_args.model.init_args.head.init_args.in_channels=32",
    "--model.init_args.model.init_args.head.init_args.vote_channels=[32, 32]",
    "--model.init_args.model.init_args.head.init_args.num_proposals=32",
    "--model.init_args.model.init_args.head.init_args.agg_samples=8",
    "--model.init_args.model.init_args.head.init_args.agg_channels=[32, 32]",
    "--model.init_args.model.init_args.head.init_args.proposal_channels=[32, 32]",
    "--model.init_args.model.init_args.head.init_args.score_threshold=0.01",  # untrained: low scores
]


def data_mean_sizes_arg(root: Path) -> str:
    """The head's ``mean_sizes`` for the data under ``root``: its train split's per-class means."""
    from pc3d.data.scannet import data_mean_sizes
    from pc3d.data.scannet.dataset import resolve_scenes

    sizes = data_mean_sizes(root, resolve_scenes(root, "train", None))
    return f"--model.init_args.model.init_args.head.init_args.mean_sizes={json.dumps(sizes)}"


@pytest.fixture(scope="session")
def indoor_det_ckpt(scannet_data, tmp_path_factory) -> Path:
    """A tiny Pointformer + VoteNet (pointformer_demo_scannet.yaml, 1024 points) after two training
    steps on scene0000_00."""
    run_dir = tmp_path_factory.mktemp("infer_indoor_det_run")
    return _fit(
        "pointformer_demo_scannet.yaml",
        scannet_data,
        run_dir,
        [*TINY_POINTFORMER_VOTENET, data_mean_sizes_arg(scannet_data)],
    )


@pytest.fixture(scope="session")
def indoor_color_det_ckpt(scannet_data, tmp_path_factory) -> Path:
    """As ``indoor_det_ckpt``, trained with colour (``use_color_det``, 4 input channels)."""
    run_dir = tmp_path_factory.mktemp("infer_indoor_color_det_run")
    return _fit(
        "pointformer_demo_scannet.yaml",
        scannet_data,
        run_dir,
        [
            *TINY_POINTFORMER_VOTENET,
            data_mean_sizes_arg(scannet_data),
            "--data.init_args.use_color_det=true",
            "--model.init_args.model.init_args.feat_channels=[0, 1, 2, 3]",
            "--model.init_args.model.init_args.backbone.init_args.in_channels=4",
        ],
    )
