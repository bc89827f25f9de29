"""``pc3d demo`` (the README's main-job command) end to end, with tiny data and time budgets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pc3d.demo import _max_time, headline_metrics

BIN = Path(sys.executable).parent


def test_max_time_and_headline_metrics():
    assert _max_time(3.5) == "00:00:03:30"
    assert _max_time(0.001) == "00:00:00:01"
    metrics = {"test/mIoU": 0.51234, "test/iou/wall": 0.9, "test/Car/3d_R40_moderate": 12.0, "test/loss": 1.0}
    assert headline_metrics(metrics) == {"test/Car/3d_R40_moderate": 12.0, "test/mIoU": 0.5123}


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path):
    work = tmp_path / "demo"
    args = [
        "demo", "--workdir", str(work), "--scenes", "3", "--frames", "6",
        "--seg-minutes", "0.25", "--det-minutes", "0.25", "--predict-batches", "1",
    ]  # fmt: skip
    res = subprocess.run([str(BIN / "pc3d"), *args], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    results = json.loads((work / "metrics.json").read_text())
    assert 0.0 <= results["meepo"]["test/mIoU"] <= 1.0
    assert any(k.endswith("3d_R40_moderate") for k in results["pointformer"])
    pictures = [line.split(": ", 1)[1] for line in res.stdout.splitlines() if line.startswith("picture: ")]
    assert len(pictures) >= 2 and all(Path(p).stat().st_size > 1000 for p in pictures)
    assert list((work / "runs" / "pointformer" / "predictions" / "kitti").glob("*.txt"))
    assert list((work / "runs" / "meepo" / "predictions" / "scannet").glob("*.txt"))
