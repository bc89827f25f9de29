"""``pc3d demo``: the main job, end to end, on the embedded synthetic data.

1. Generates synthetic ScanNet rooms and KITTI frames in their raw formats (if absent).
2. Preprocesses them with ``pc3d-data scannet`` / ``pc3d-data kitti`` (idempotent).
3. Trains the MEEPO demo (``pc3d fit``), tests it (``pc3d test``) and prints mIoU.
4. Trains and tests the Pointformer demo on synthetic KITTI.
5. Predicts on the test split (npz, ScanNet label files, KITTI result files) and renders
   prediction-vs-ground-truth pictures with the headless visualizer.

Everything lands under ``--workdir`` (default ``./pc3d_demo``); re-running reuses the data. The
training budgets are optimizer steps (``--seg-steps``/``--det-steps``) and each task trains with one
thread by default (``--threads``), so every machine prints the same metrics; only the time differs. With
two or more cores the two tasks run side by side, one process each (``--jobs``), their output lines
prefixed with the task's name. Each fit prints its progress with an estimate of the time left, and the
demo ends with the time of every stage and the headline metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from pc3d.callbacks.time_left import format_duration
from pc3d.io import write_text
from pc3d.viz.cli import score_arg


class StageClock:
    """Times the demo's stages: prints a header when one starts and its time when it ends."""

    def __init__(self) -> None:
        self.times: list[tuple[str, float]] = []

    @contextmanager
    def stage(self, title: str) -> Iterator[None]:
        print(f"\n=== pc3d demo: {title}", flush=True)
        t0 = time.perf_counter()
        yield
        seconds = time.perf_counter() - t0
        self.times.append((title, seconds))
        print(f"    ({format_duration(seconds)})", flush=True)

    def table(self) -> list[str]:
        """One line per stage, ``title  time``, aligned."""
        width = max((len(t) for t, _ in self.times), default=0)
        return [f"  {t:<{width}}  {format_duration(sec):>9}" for t, sec in self.times]


def _data_cli(args: list[str]) -> None:
    from pc3d.tools.data_cli import main as data_main

    code = data_main(args)
    if code != 0:
        raise SystemExit(f"pc3d demo: 'pc3d-data {' '.join(args)}' failed with exit code {code}")


def _lightning(subcommand: str, config: str, overrides: list[str], extra_config: dict | None, tmp: Path):
    """Run ``pc3d <subcommand> -c config [-c extra] overrides`` in-process; return the CLI object."""
    from pc3d.cli import PC3DCLI, resolve_config

    args = [subcommand, "-c", resolve_config(config)]
    if extra_config:
        extra = tmp / f"{subcommand}_{Path(config).stem}_extra.yaml"
        extra.write_text(yaml.safe_dump(extra_config))
        args += ["-c", str(extra)]
    print("    $ pc3d " + " ".join(args + overrides), flush=True)
    argv = sys.argv
    sys.argv = argv[:1]  # the demo's own arguments are not the CLI's (LightningCLI warns about both)
    try:
        return PC3DCLI(args=args + overrides)
    finally:
        sys.argv = argv


def _metrics(cli: Any) -> dict[str, float]:
    return {
        k: float(v) for k, v in cli.trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1
    }


def _checkpoint(cli: Any) -> str:
    ckpt = cli.trainer.checkpoint_callback
    path = (ckpt.best_model_path or ckpt.last_model_path) if ckpt is not None else ""
    if not path:
        raise SystemExit("pc3d demo: fit wrote no checkpoint (is a ModelCheckpoint callback configured?)")
    return path


def budget_overrides(steps: int) -> list[str]:
    """LightningCLI arguments that make ``steps`` optimizer steps the fit's budget, without validation
    (the test that follows scores the same split)."""
    return [f"--trainer.max_steps={steps}", "--trainer.max_epochs=-1", "--trainer.limit_val_batches=0"]


def run_task(
    name: str,
    config: str,
    data_root: Path,
    work: Path,
    formats: list[str],
    overrides: list[str],
    steps: int,
    predict_batches: int,
    clock: StageClock,
) -> tuple[dict[str, float], Path]:
    """fit (``steps`` optimizer steps) → test → predict one demo config.

    Returns the test metrics and the folder of the npz predictions.
    """
    run_dir = work / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    common = [f"--data.init_args.root={data_root}", f"--trainer.default_root_dir={run_dir}"]

    progress = ["--trainer.callbacks+=pc3d.callbacks.TimeLeft", f"--trainer.callbacks.label={name} fit"]
    with clock.stage(f"{name}: pc3d fit"):
        fit_args = [*common, *budget_overrides(steps), *progress, *overrides]  # the user's come last
        fit = _lightning("fit", config, fit_args, None, run_dir)
        ckpt = _checkpoint(fit)
        print(f"    {fit.trainer.global_step} optimizer steps", flush=True)

    with clock.stage(f"{name}: pc3d test"):
        test = _lightning("test", config, [*common, f"--ckpt_path={ckpt}", *overrides], None, run_dir)
        metrics = _metrics(test)

    with clock.stage(f"{name}: pc3d predict"):
        pred_dir = run_dir / "predictions"
        writer = {
            "trainer": {
                "callbacks": [
                    {
                        "class_path": "pc3d.callbacks.PredictionWriter",
                        "init_args": {"output_dir": str(pred_dir), "formats": formats},
                    }
                ],
                "logger": False,
            }
        }
        predict_args = [
            *common,
            f"--ckpt_path={ckpt}",
            f"--trainer.limit_predict_batches={predict_batches}",
            *overrides,
        ]
        _lightning("predict", config, predict_args, writer, run_dir)
    return metrics, pred_dir / "npz"


def render(npz_dir: Path, out_dir: Path, view: str, min_score: float, limit: int = 2) -> list[Path]:
    """Side-by-side GT | prediction PNGs for the first ``limit`` prediction files; predicted boxes
    scoring below ``min_score`` are not drawn."""
    from pc3d.viz.cli import main as viz_main

    out_dir.mkdir(parents=True, exist_ok=True)
    pictures = []
    for npz in sorted(npz_dir.glob("*.npz"))[:limit]:
        png = out_dir / f"{npz.stem}.png"
        code = viz_main(
            [str(npz), "--out", str(png), "--side-by-side", "--view", view, "--min-score", str(min_score)]
        )
        if code == 0:
            pictures.append(png)
        else:
            print(f"    warning: rendering {npz} failed (exit {code})", file=sys.stderr)
    return pictures


#: Score threshold of the predicted boxes in the demo's pictures.
MIN_SCORE = 0.5

#: Training budgets of the main job, in optimizer steps (the learning-rate schedules anneal over them).
SEG_STEPS = 600
DET_STEPS = 600

#: The shipped config of each task.
DEFAULT_CONFIGS = {"seg": "meepo_demo.yaml", "det": "pointformer_demo_kitti.yaml"}

#: The main job's own settings of each task, on top of its shipped config (not of a ``--seg-config``/
#: ``--det-config`` of the user's) and before the user's ``--override``s: MEEPO trains on 7,500-point
#: crops (the config's 10,000 suit its longer schedule), so that both tasks finish at about the same
#: time when they run side by side.
TASK_OVERRIDES = {"seg": ["--data.init_args.sphere_crop_points=7500"], "det": []}

HEADLINE = ("test/mIoU", "test/mAcc", "test/allAcc", "test/map_25", "test/map_50")


def headline_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The metrics a person reads first: mIoU/mAcc/allAcc, indoor mAP, KITTI moderate AP (R40)."""
    keep = {k: v for k, v in metrics.items() if k in HEADLINE}
    keep.update({k: v for k, v in metrics.items() if k.endswith(("3d_R40_moderate", "bev_R40_moderate"))})
    return {k: round(v, 4) for k, v in sorted(keep.items())}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")

#: Threads of each task's process: one thread gives the same metrics on every machine, and at the
#: demo's sizes a second thread speeds a step up by far less than a second task running beside it.
THREADS = 1

#: task: (run name, prediction formats, picture view)
TASKS = {"seg": ("meepo", ["npz", "scannet"], "oblique"), "det": ("pointformer", ["npz", "kitti"], "bev")}


def thread_environment(threads: int, environ: dict[str, str]) -> dict[str, str] | None:
    """The environment to re-run the demo in so that every thread pool (torch, OpenMP, MKL, numba)
    has ``threads`` threads; ``None`` when ``environ`` already says so.

    The pools size themselves when their library loads, before the demo parses its arguments.
    """
    if all(environ.get(v) == str(threads) for v in THREAD_VARIABLES):
        return None
    return {**environ, **dict.fromkeys(THREAD_VARIABLES, str(threads))}


def set_threads(threads: int) -> int:
    """Use ``threads`` torch and numba threads; return the count."""
    import numba
    import torch

    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return torch.get_num_threads()


def available_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_jobs(tasks: list[str], threads: int, cores: int) -> int:
    """Tasks to run at the same time: as many as the cores hold at ``threads`` threads each, at least one."""
    return max(1, min(len(tasks), cores // threads))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pc3d demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workdir", type=Path, default=Path("pc3d_demo"), help="where data, runs and pictures go"
    )
    parser.add_argument("--scenes", type=int, default=24, help="synthetic ScanNet rooms to generate")
    parser.add_argument(
        "--frames",
        type=int,
        default=100,
        help="synthetic KITTI frames to generate; every second one is a val frame (R40 AP needs >= 41 "
        "objects per class and difficulty to reach 100)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument(
        "--seg-config",
        default=DEFAULT_CONFIGS["seg"],
        help="segmentation config (shipped name or path); with the shipped one the demo trains on "
        "7,500-point crops",
    )
    parser.add_argument("--det-config", default=DEFAULT_CONFIGS["det"], help="detection config")
    parser.add_argument(
        "--tasks",
        nargs="+",
        choices=tuple(TASKS),
        default=list(TASKS),
        help="which demos to run (default: both)",
    )
    parser.add_argument(
        "--seg-steps",
        type=_positive_int,
        default=SEG_STEPS,
        metavar="N",
        help=f"training budget of the MEEPO demo in optimizer steps (default: {SEG_STEPS})",
    )
    parser.add_argument(
        "--det-steps",
        type=_positive_int,
        default=DET_STEPS,
        metavar="N",
        help=f"training budget of the Pointformer demo in optimizer steps (default: {DET_STEPS})",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=THREADS,
        metavar="N",
        help=f"threads of torch, OpenMP, MKL and numba in each task's process (default: {THREADS}, which "
        "gives identical metrics on every machine; other counts change the backward's summation order "
        "slightly)",
    )
    parser.add_argument(
        "--jobs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="tasks run at the same time, one process each (default: as many as the cores hold at "
        "--threads threads each); the metrics do not depend on it",
    )
    parser.add_argument(
        "--min-score",
        type=score_arg,
        default=MIN_SCORE,
        help=f"draw predicted boxes scoring at least this in the pictures (default {MIN_SCORE}; 0 draws all)",
    )
    parser.add_argument("--predict-batches", type=int, default=2, help="test batches to predict and render")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="ARG",
        help="extra LightningCLI argument for every run, after the demo's own, e.g. "
        "--override=--trainer.enable_model_summary=false",
    )
    # A task's process of a side-by-side run: train, test, predict and render one task on data that
    # the parent made, then write what it measured to this JSON file.
    parser.add_argument("--report", type=Path, default=None, help=argparse.SUPPRESS)
    return parser


def make_data(args: argparse.Namespace, raw: Path, data: Path, clock: StageClock) -> None:
    """Synthetic raw data (when absent), then ``pc3d-data`` preprocessing (idempotent)."""
    with clock.stage("synthetic raw data"):
        if "seg" in args.tasks and not (raw / "scannet" / "scans").is_dir():
            _data_cli(["synth", "scannet", "--out", str(raw / "scannet"), "--scenes", str(args.scenes),
                       "--seed", str(args.seed)])  # fmt: skip
        if "det" in args.tasks and not (raw / "kitti" / "training" / "velodyne").is_dir():
            _data_cli(["synth", "kitti", "--out", str(raw / "kitti"), "--frames", str(args.frames),
                       "--val-fraction", "0.5", "--seed", str(args.seed)])  # fmt: skip

    with clock.stage("preprocessing with pc3d-data"):
        if "seg" in args.tasks:
            _data_cli(["scannet", "--raw", str(raw / "scannet" / "scans"), "--meta", str(raw / "scannet" / "meta"),
                       "--out", str(data / "scannet")])  # fmt: skip
        if "det" in args.tasks:
            _data_cli(["kitti", "--root", str(raw / "kitti"), "--out", str(data / "kitti")])


def run_tasks(args: argparse.Namespace, work: Path, clock: StageClock) -> tuple[dict[str, dict], list[Path]]:
    """Train, test, predict and render each of ``args.tasks`` in turn, in this process."""
    data = work / "data"
    plans = {  # task: (config, data root, step budget)
        "seg": (args.seg_config, data / "scannet", args.seg_steps),
        "det": (args.det_config, data / "kitti", args.det_steps),
    }
    results: dict[str, dict[str, float]] = {}
    pictures: list[Path] = []
    for task in dict.fromkeys(args.tasks):
        name, formats, view = TASKS[task]
        config, root, steps = plans[task]
        own = TASK_OVERRIDES[task] if config == DEFAULT_CONFIGS[task] else []
        overrides = [*own, *args.override]
        metrics, npz = run_task(
            name, config, root, work, formats, overrides, steps, args.predict_batches, clock
        )
        results[name] = metrics
        with clock.stage(f"{name}: pictures"):
            pictures += render(npz, work / "pictures" / name, view=view, min_score=args.min_score)
    return results, pictures


def relay(stream: Any, prefix: str, log: Path) -> None:
    """Print a child's output lines with ``prefix`` as they come, and keep them in ``log``.

    Reads ``stream`` to its end whatever happens to the terminal or the log, so that the child never
    blocks on a full pipe.
    """
    try:
        f = open(log, "w", encoding="utf-8")
    except OSError as e:
        print(f"pc3d demo: cannot write {log} ({e}); the output of {prefix.strip(' |')} goes only here")
        f = None
    terminal = True
    try:
        for line in stream:
            if f is not None:
                f.write(line)
                f.flush()
            if terminal:
                try:
                    print(f"{prefix}{line}", end="", flush=True)
                except (BrokenPipeError, OSError):  # e.g. `pc3d demo | head`: the log still gets it
                    terminal = False
    finally:
        if f is not None:
            f.close()


def describe_exit(code: int) -> str:
    """``"exit 1"``, or ``"killed by SIGKILL"`` for a child that a signal ended."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def run_side_by_side(
    args: argparse.Namespace, argv: list[str], work: Path, jobs: int, clock: StageClock
) -> tuple[dict[str, dict], list[Path], list[str]]:
    """Run each task in its own process (``jobs`` at a time, ``args.threads`` threads each) and gather
    their reports. A task that fails is reported and does not stop the others.

    Returns the metrics, the pictures and the names of the tasks that failed.
    """
    env = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, str(args.threads)), "PYTHONUNBUFFERED": "1"}
    width = max(len(TASKS[t][0]) for t in args.tasks)
    pending = list(dict.fromkeys(args.tasks))
    running: list[tuple[str, subprocess.Popen, threading.Thread, Path]] = []
    finished: list[tuple[str, int, Path]] = []

    def start(task: str) -> None:
        name = TASKS[task][0]
        run_dir = work / "runs" / name
        run_dir.mkdir(parents=True, exist_ok=True)
        report = run_dir / "demo_report.json"
        report.unlink(missing_ok=True)  # the demo's own file: a stale one must not pass for this run's
        cmd = [sys.executable, "-m", "pc3d.demo", *argv, "--tasks", task, "--report", str(report),
               "--override=--trainer.enable_progress_bar=false"]  # fmt: skip
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )
        reader = threading.Thread(
            target=relay, args=(proc.stdout, f"{name:<{width}} | ", run_dir / "demo.log"), daemon=True
        )
        reader.start()
        running.append((task, proc, reader, report))

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop) if main_thread else None  # stop the tasks too
    try:
        while pending or running:
            while pending and len(running) < jobs:
                start(pending.pop(0))
            time.sleep(0.2)
            for entry in [e for e in running if e[1].poll() is not None]:
                running.remove(entry)
                task, proc, reader, report = entry
                reader.join()
                finished.append((task, proc.returncode, report))
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        for _, proc, _, _ in running:  # interrupted: no orphan keeps training
            proc.terminate()
        for _, proc, reader, _ in running:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            reader.join(timeout=5)

    results: dict[str, dict[str, float]] = {}
    pictures: list[Path] = []
    failed: list[str] = []
    reports = {}
    for task, code, report in finished:
        name = TASKS[task][0]
        if code != 0 or not report.is_file():
            log = work / "runs" / name / "demo.log"
            how = describe_exit(code) if code != 0 else "exit 0 without its report"
            print(f"pc3d demo: the {name} task failed ({how}); its output is in {log}", file=sys.stderr)
            failed.append(name)
            continue
        reports[task] = json.loads(report.read_text())
    for task in dict.fromkeys(args.tasks):  # stages and results in the order the tasks were asked for
        if task in reports:
            rep = reports[task]
            clock.times += [(title, sec) for title, sec in rep["stages"]]
            results.update(rep["results"])
            pictures += [Path(p) for p in rep["pictures"]]
    return results, pictures, failed


def main(argv: list[str] | None = None, command_line: bool | None = None) -> int:
    """``pc3d demo``. Run from the command line (``command_line``, by default ``argv is None``), a
    process that trains first re-runs itself with every thread pool sized; called from Python it
    trains in the caller's process with the pools it has."""
    command_line = argv is None if command_line is None else command_line
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    tasks = list(dict.fromkeys(args.tasks))
    jobs = args.jobs or default_jobs(tasks, args.threads, available_cores())
    # Two or more tasks always run in processes of their own (``jobs`` at a time), so that one that
    # fails does not stop the others; a single task trains in this process.
    separate = args.report is None and len(tasks) > 1
    if not separate:  # this process trains: size its thread pools before they start
        env = thread_environment(args.threads, dict(os.environ))
        if env is not None and command_line:
            os.execve(sys.executable, [sys.executable, "-m", "pc3d.demo", *argv], env)
        set_threads(args.threads)
    work: Path = args.workdir.resolve()
    start = time.perf_counter()
    clock = StageClock()

    if args.report is not None:  # one task of a side-by-side run
        results, pictures = run_tasks(args, work, clock)
        report = {"results": results, "stages": clock.times, "pictures": [str(p) for p in pictures]}
        write_text(args.report, json.dumps(report, indent=2))
        return 0

    make_data(args, work / "raw", work / "data", clock)
    failed: list[str] = []
    how = f"{len(tasks)} tasks side by side" if jobs > 1 else "one task at a time"
    if separate:
        print(f"\n=== pc3d demo: {' and '.join(TASKS[t][0] for t in tasks)}, {how}, one process and "
              f"{args.threads} thread(s) each", flush=True)  # fmt: skip
        results, pictures, failed = run_side_by_side(args, argv, work, jobs, clock)
    else:
        how = "one task"
        results, pictures = run_tasks(args, work, clock)

    summary = work / "metrics.json"
    write_text(summary, json.dumps(results, indent=2, sort_keys=True))
    print(f"\n=== pc3d demo finished in {format_duration(time.perf_counter() - start)} "
          f"({how}, {args.threads} thread(s) each)")  # fmt: skip
    print("time per stage:")
    for line in clock.table():
        print(line)
    print("metrics:")
    for task, metrics in results.items():
        print(f"  {task}: {json.dumps(headline_metrics(metrics))}")
    print(f"all metrics: {summary}")
    for png in pictures:
        print(f"picture: {png}")
    if failed:
        print(f"pc3d demo: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
