"""User-level tests: the console scripts in sequence, and multi-process (DDP) training.

``pc3d-data synth`` → ``pc3d-data scannet`` → ``pc3d fit`` → ``pc3d test`` → ``pc3d predict`` →
``pc3d-viz --out``, on two tiny synthetic rooms with a tiny MEEPO, driven exactly as a user would.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from tiny_meepo import TINY_MEEPO_ARGS

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def run(*args: str | Path, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600)
    if ok:
        assert res.returncode == 0, f"{args[:3]} failed:\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}"
    return res


@pytest.fixture(scope="module")
def scannet_root(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("e2e")
    raw = work / "raw"
    run(BIN / "pc3d-data", "synth", "scannet", "--out", raw, "--scenes", "3", "--seed", "3", "--workers", "1",
        "--no-progress", cwd=work)  # fmt: skip
    run(BIN / "pc3d-data", "scannet", "--raw", raw / "scans", "--meta", raw / "meta", "--out", work / "data",
        "--workers", "1", "--no-progress", cwd=work)  # fmt: skip
    return work / "data"


def lightning_args(root: Path, run_dir: Path) -> list[str]:
    return [
        "-c", "meepo_demo.yaml",
        f"--data.init_args.root={root}",
        f"--trainer.default_root_dir={run_dir}",
        *TINY_MEEPO_ARGS,
    ]  # fmt: skip


def test_fit_test_predict_viz(scannet_root: Path, tmp_path: Path):
    run_dir = tmp_path / "run"
    base = lightning_args(scannet_root, run_dir)
    fit = [BIN / "pc3d", "fit", *base, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2"]
    run(*fit, cwd=tmp_path)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    # Re-running fit in the same directory must not crash on the saved config, and resumes.
    res = run(*fit[:-2], "--trainer.max_epochs=2", "--trainer.limit_train_batches=2", "--ckpt_path=last",
              cwd=tmp_path)  # fmt: skip
    assert "Restored all states" in res.stdout + res.stderr

    run(BIN / "pc3d", "test", *base, "--ckpt_path=last", cwd=tmp_path)
    rows = [r for p in run_dir.glob("csv/version_*/metrics.csv") for r in csv.DictReader(p.open())]
    mious = [float(r["test/mIoU"]) for r in rows if r.get("test/mIoU")]
    assert mious and 0.0 <= mious[-1] <= 1.0

    out = tmp_path / "pred"
    writer = tmp_path / "writer.yaml"
    writer.write_text(yaml.safe_dump({"trainer": {"logger": False, "callbacks": [
        {"class_path": "pc3d.callbacks.PredictionWriter",
         "init_args": {"output_dir": str(out), "formats": ["npz", "scannet"]}}]}}))  # fmt: skip
    run(BIN / "pc3d", "predict", *base, "-c", writer, "--ckpt_path=last", cwd=tmp_path)
    npz = sorted((out / "npz").glob("*.npz"))
    assert npz, "predict wrote no npz"
    rec = np.load(npz[0])
    assert rec["pred"].shape == (rec["coord"].shape[0],)
    labels = (out / "scannet" / f"{npz[0].stem}.txt").read_text().split()
    assert len(labels) == rec["coord"].shape[0]

    png = tmp_path / "pic.png"
    run(
        BIN / "pc3d-viz",
        npz[0],
        "--out",
        png,
        "--side-by-side",
        "--width",
        "320",
        "--height",
        "240",
        cwd=tmp_path,
    )
    assert png.stat().st_size > 1000


def test_checkpoint_of_another_model_is_a_clear_error(scannet_root: Path, tmp_path: Path):
    bogus = tmp_path / "other.ckpt"
    import torch

    torch.save(
        {"state_dict": {"something.else": torch.zeros(1)}, "pytorch-lightning_version": "2.6.0"}, bogus
    )
    res = run(BIN / "pc3d", "test", *lightning_args(scannet_root, tmp_path / "r"), f"--ckpt_path={bogus}",
              cwd=tmp_path, ok=False)  # fmt: skip
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert str(bogus) in res.stderr


def test_ddp_two_processes_synchronise_metrics(scannet_root: Path, tmp_path: Path):
    """fit + test with 2 gloo processes; the DDP test metric equals a single-process test of the same weights."""
    ddp_dir = tmp_path / "ddp"
    ddp = ["--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu"]
    base = lightning_args(scannet_root, ddp_dir)
    run(BIN / "pc3d", "fit", *base, *ddp, "--trainer.max_epochs=1", "--trainer.limit_train_batches=1",
        cwd=tmp_path)  # fmt: skip
    ckpt = ddp_dir / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    splits = scannet_root / "splits"
    both = [s for name in ("train", "val") for s in (splits / f"{name}.txt").read_text().split()][:2]
    test_split = f"--data.init_args.test_split=[{', '.join(both)}]"  # one scene per process

    run(BIN / "pc3d", "test", *base, *ddp, test_split, f"--ckpt_path={ckpt}", cwd=tmp_path)
    single_dir = tmp_path / "single"
    run(BIN / "pc3d", "test", *lightning_args(scannet_root, single_dir), test_split, f"--ckpt_path={ckpt}",
        cwd=tmp_path)  # fmt: skip

    def test_miou(run_dir: Path) -> float:
        rows = [r for p in run_dir.glob("csv/version_*/metrics.csv") for r in csv.DictReader(p.open())]
        values = [float(r["test/mIoU"]) for r in rows if r.get("test/mIoU")]
        assert values, f"no test/mIoU logged under {run_dir}"
        return values[-1]

    assert test_miou(ddp_dir) == pytest.approx(test_miou(single_dir), abs=1e-6)
