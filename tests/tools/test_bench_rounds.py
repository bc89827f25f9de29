"""The segmentation benchmark's rounds: every round's timed runs pooled per model, each round's ratios shown; counts
below 1 refused."""

from __future__ import annotations

from pc3d.tools.bench.models_seg import TARGET, _pool_rounds, _round_ratios


def _run(model: str, times: list[float], cpu: float, peak: float, **extra) -> dict:
    return {"model": model, "mode": "infer", "times_s": times, "median_s": sorted(times)[1], "cpu_s": cpu,
            "peak_mem_gb": peak, **extra}  # fmt: skip


def test_rounds_pool_every_timed_run_per_model():
    first = [
        _run(TARGET, [5.0, 5.2, 5.1], 9.0, 0.5, live_peak_mem_gb=0.3),
        _run("meepo", [3.6, 3.7, 3.5], 6.0, 0.6),
    ]
    second = [_run(TARGET, [5.6, 5.5, 5.7], 9.8, 0.55), _run("meepo", [3.9, 4.0, 3.8], 6.4, 0.58)]
    target, meepo = _pool_rounds([first, second])
    assert target["times_s"] == [5.0, 5.2, 5.1, 5.6, 5.5, 5.7]
    assert target["median_s"] == 5.35  # over all six runs, not a median of the rounds' medians
    assert target["cpu_s"] == 9.4
    assert target["peak_mem_gb"] == 0.55  # the highest round
    assert target["live_peak_mem_gb"] == 0.3  # measured in the first round only
    assert meepo["median_s"] == 3.75
    assert _round_ratios(first, 0) == f"round 1, speed-up vs {TARGET}: meepo {5.1 / 3.6:.2f}x"


def test_a_failed_round_marks_the_model_failed():
    ok = [_run(TARGET, [5.0, 5.1, 5.2], 9.0, 0.5), _run("meepo", [3.6, 3.7, 3.5], 6.0, 0.6)]
    failed = [{"model": TARGET, "mode": "infer", "error": "killed"}, _run("meepo", [3.6, 3.7, 3.5], 6.0, 0.6)]
    rows = _pool_rounds([ok, failed])
    assert rows[0]["error"] == "killed"
    assert rows[1]["median_s"] == 3.6
    assert _round_ratios(failed, 1) == f"round 2: {TARGET} failed"


def test_counts_below_one_are_refused(capsys):
    from pc3d.tools.bench.models_seg import main

    for flag in ("--rounds", "--repeats", "--threads", "--train-points"):
        assert main([flag, "0"]) == 2
        assert f"{flag} must be >= 1, got 0" in capsys.readouterr().err
