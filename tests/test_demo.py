"""``pc3d demo`` (the README's main-job command) end to end, with tiny data and step budgets."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pc3d.callbacks.time_left import TimeLeft, format_duration
from pc3d.demo import (
    THREAD_VARIABLES,
    StageClock,
    budget_overrides,
    build_parser,
    default_jobs,
    describe_exit,
    headline_metrics,
    relay,
    thread_environment,
)

BIN = Path(sys.executable).parent
STAGES = ("synthetic raw data", "preprocessing with pc3d-data") + tuple(
    f"{name}: {what}"
    for name in ("meepo", "pointformer")
    for what in ("pc3d fit", "pc3d test", "pc3d predict", "pictures")
)


def test_headline_metrics_and_budgets():
    metrics = {"test/mIoU": 0.51234, "test/iou/wall": 0.9, "test/Car/3d_R40_moderate": 12.0, "test/loss": 1.0}
    assert headline_metrics(metrics) == {"test/Car/3d_R40_moderate": 12.0, "test/mIoU": 0.5123}
    assert budget_overrides(7) == [
        "--trainer.max_steps=7",
        "--trainer.max_epochs=-1",
        "--trainer.limit_val_batches=0",
    ]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--seg-steps", "0"])
    assert "--trainer.max_time" not in " ".join(budget_overrides(7))


def test_thread_environment_sizes_every_pool():
    env = thread_environment(1, {"PATH": "/bin", "OMP_NUM_THREADS": "4"})
    assert env == {"PATH": "/bin", **dict.fromkeys(THREAD_VARIABLES, "1")}
    assert thread_environment(1, env) is None  # already re-run with it: no second re-run
    assert build_parser().parse_args([]).threads == 1  # the same metrics on every machine by default


def test_default_jobs_fill_the_cores():
    assert default_jobs(["seg", "det"], threads=1, cores=2) == 2
    assert default_jobs(["seg", "det"], threads=1, cores=1) == 1  # one core: one task at a time
    assert default_jobs(["seg", "det"], threads=2, cores=2) == 1
    assert default_jobs(["seg", "det"], threads=1, cores=16) == 2
    assert default_jobs(["det"], threads=4, cores=2) == 1


def test_time_left_and_stage_table():
    line = TimeLeft("det fit").estimate(step=50, total=200, elapsed=100.0)
    assert line == "[det fit] step 50/200 (25%), 100 s so far, about 5.0 min left"
    assert TimeLeft().estimate(step=30, total=40, elapsed=20.0, start_step=20) == (
        "[fit] step 30/40 (75%), 20 s so far, about 20 s left"
    )
    assert format_duration(119) == "119 s" and format_duration(150) == "2.5 min"
    clock = StageClock()
    with clock.stage("a"):
        pass
    with clock.stage("longer name"):
        pass
    assert [row.split()[0] for row in clock.table()] == ["a", "longer"]
    with pytest.raises(ValueError, match="every"):
        TimeLeft(every=0)


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path):
    work = tmp_path / "demo"
    args = [
        "demo", "--workdir", str(work), "--scenes", "3", "--frames", "6", "--jobs", "2",
        "--seg-steps", "6", "--det-steps", "6", "--predict-batches", "1",
        "--override=--trainer.enable_model_summary=false",
    ]  # fmt: skip
    res = subprocess.run([str(BIN / "pc3d"), *args], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    out = res.stdout
    results = json.loads((work / "metrics.json").read_text())
    assert 0.0 <= results["meepo"]["test/mIoU"] <= 1.0
    assert any(k.endswith("3d_R40_moderate") for k in results["pointformer"])
    # progress with an estimate of the time left, during both fits
    for name in ("meepo", "pointformer"):
        assert re.search(rf"\[{name} fit\] step \d+/6 \(\d+%\), .* so far, about .* left", out), out[-3000:]
        assert "    6 optimizer steps" in out
    # the closing summary: every stage's time, then the headline metrics of both tasks
    summary = out[out.index("=== pc3d demo finished in") :]
    table = summary[summary.index("time per stage:\n") : summary.index("metrics:\n")].splitlines()[1:]
    assert [re.sub(r"\s+\d+(\.\d)? (s|min)$", "", row).strip() for row in table] == list(STAGES)
    printed = dict(re.findall(r"^  (meepo|pointformer): (\{.*\})$", summary, re.M))
    assert json.loads(printed["meepo"]) == headline_metrics(results["meepo"])
    assert json.loads(printed["pointformer"]) == headline_metrics(results["pointformer"])
    pictures = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("picture: ")]
    assert len(pictures) >= 2 and all(Path(p).stat().st_size > 1000 for p in pictures)
    assert list((work / "runs" / "pointformer" / "predictions" / "kitti").glob("*.txt"))
    assert list((work / "runs" / "meepo" / "predictions" / "scannet").glob("*.txt"))


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])
def test_demo_reports_a_failed_task_and_finishes_the_other(tmp_path: Path, jobs: int):
    work = tmp_path / "demo"
    stale = work / "runs" / "pointformer" / "demo_report.json"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"results": {"pointformer": {}}, "stages": [], "pictures": []}')  # an earlier run's
    args = [
        "demo", "--workdir", str(work), "--scenes", "3", "--frames", "6", "--jobs", str(jobs),
        "--tasks", "det", "seg", "--seg-steps", "2", "--predict-batches", "1",
        "--det-config", str(tmp_path / "missing.yaml"),
    ]  # fmt: skip
    res = subprocess.run([str(BIN / "pc3d"), *args], capture_output=True, text=True, timeout=900)
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    log = work / "runs" / "pointformer" / "demo.log"
    assert f"the pointformer task failed (exit 1); its output is in {log}" in res.stderr
    assert "missing.yaml" in log.read_text()
    results = json.loads((work / "metrics.json").read_text())
    assert list(results) == ["meepo"] and 0.0 <= results["meepo"]["test/mIoU"] <= 1.0
    assert re.search(r"^meepo +\|     2 optimizer steps$", res.stdout, re.M), res.stdout[-3000:]
    assert "    2 optimizer steps" in (work / "runs" / "meepo" / "demo.log").read_text()


def test_exit_descriptions():
    assert describe_exit(1) == "exit 1"
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(-200) == "killed by signal 200"


class _ClosedTerminal:
    def write(self, text: str) -> int:
        raise BrokenPipeError

    def flush(self) -> None:
        raise BrokenPipeError


def test_relay_drains_a_child_whose_output_is_not_text_or_whose_terminal_is_gone(tmp_path, monkeypatch):
    code = "import sys; out = sys.stdout.buffer; out.write(b'ok\\n\\xff\\xfe bad\\n'); out.write(b'x' * 200000 + b'\\nend\\n')"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, errors="replace", bufsize=1
    )
    monkeypatch.setattr(sys, "stdout", _ClosedTerminal())  # e.g. `pc3d demo | head` after head exits
    relay(proc.stdout, "t | ", tmp_path / "t.log")
    assert proc.wait(timeout=60) == 0  # read to the end: the child never blocked on a full pipe
    lines = (tmp_path / "t.log").read_text().splitlines()
    assert lines[0] == "ok" and "\ufffd" in lines[1] and lines[-1] == "end"
