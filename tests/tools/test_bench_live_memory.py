"""The segmentation benchmark's live peak: tensors alive at once in one step, not what glibc keeps."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = """
import argparse, json
import torch
from pc3d.tools.bench.models_seg import _live_peak

held = []

def step():
    a = torch.ones(25_000_000)  # 100 MB
    b = torch.ones(25_000_000)  # another 100 MB, alive with the first
    del a, b
    c = torch.ones(12_500_000)  # 50 MB, after both were freed
    held.append(c.sum())

print(json.dumps(_live_peak(argparse.Namespace(model="m", mode="infer"), step)))
"""


def test_live_peak_counts_tensors_alive_at_once():
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    peak = json.loads(res.stdout.strip().splitlines()[-1])["live_peak_mem_gb"]
    assert 0.195 <= peak <= 0.23, peak
