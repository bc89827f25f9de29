"""``pc3d-data scannet``: convert raw ScanNet v2 scans into the pc3d format (docs/data/scannet.md).

Usage: ``pc3d-data scannet --raw <scans dir> --meta <meta dir> --out <dir> [--workers N] [--overwrite]``
(or ``python -m pc3d.tools.data_scannet ...``). Scenes run in parallel; a finished scene
(``meta.json`` present) is skipped unless ``--overwrite``; every scene is written atomically. A
scene that fails is reported with its file and the others still finish; the exit status is 1
when any scene failed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from pc3d.data.scannet.preprocess import convert_scene, write_scene
from pc3d.data.scannet.raw import LabelTable, RawSceneError, read_label_tsv, read_split

SPLITS = ("train", "val", "test")
LABEL_TSV = "scannetv2-labels.combined.tsv"
_SCENE_RE = re.compile(r"^scene\d{4}_\d{2}$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``scannet`` subcommand's arguments to ``parser``."""
    parser.add_argument("--raw", required=True, type=Path, help="folder of raw scans (scene*/ subfolders)")
    parser.add_argument(
        "--meta",
        required=True,
        type=Path,
        help=f"folder with {LABEL_TSV} and scannetv2_{{train,val,test}}.txt",
    )
    parser.add_argument("--out", required=True, type=Path, help="output root (writes scans/ and splits/)")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="parallel processes (default: all cores)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="re-convert scenes that are already finished"
    )
    parser.add_argument(
        "--scenes", nargs="*", default=None, help="only these scene ids (default: all under --raw)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _convert_one(scene_dir: str, labels: LabelTable, with_labels: bool, out_scans: str) -> dict:
    """Worker: convert and write one scene; returns a JSON-able status dict (never raises)."""
    sid = Path(scene_dir).name
    t0 = time.perf_counter()
    try:
        result = convert_scene(scene_dir, labels, with_labels=with_labels)
        write_scene(out_scans, sid, result["arrays"], result["meta"])
    except RawSceneError as e:
        return {"scene": sid, "ok": False, "file": e.path, "error": str(e)}
    except Exception as e:  # one bad scene must not stop the others: report it with a traceback tail
        tb = traceback.format_exc(limit=3)
        return {"scene": sid, "ok": False, "file": scene_dir, "error": f"{type(e).__name__}: {e}\n{tb}"}
    meta = result["meta"]
    return {
        "scene": sid,
        "ok": True,
        "seconds": time.perf_counter() - t0,
        "unknown": meta["unknown_categories"],
        "unknown_points": meta["unknown_category_points"],
    }


def _clean_leftovers(out_scans: Path, sid: str) -> None:
    for p in out_scans.glob(f"{sid}.tmp-*"):
        shutil.rmtree(p, ignore_errors=True)
    for p in out_scans.glob(f"{sid}.old-*"):
        shutil.rmtree(p, ignore_errors=True)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    """Run the conversion; returns the exit status (0 ok, 1 some scenes failed, 2 bad arguments)."""
    raw, meta, out = Path(args.raw), Path(args.meta), Path(args.out)
    if not raw.is_dir():
        print(f"error: --raw {raw}: not a directory", file=sys.stderr)
        return 2
    if args.workers < 1:
        print(f"error: --workers must be >= 1, got {args.workers}", file=sys.stderr)
        return 2
    try:
        labels = read_label_tsv(meta / LABEL_TSV)
        split_lists = {
            s: read_split(meta / f"scannetv2_{s}.txt")
            for s in SPLITS
            if (meta / f"scannetv2_{s}.txt").exists()
        }
    except RawSceneError as e:
        print(f"error: --meta: {e}", file=sys.stderr)
        return 2
    test_scenes = set(split_lists.get("test", []))
    scenes = sorted(p.name for p in raw.iterdir() if p.is_dir() and _SCENE_RE.match(p.name))
    if args.scenes:
        unknown = sorted(set(args.scenes) - set(scenes))
        if unknown:
            print(f"error: --scenes: not found under {raw}: {unknown}", file=sys.stderr)
            return 2
        scenes = [s for s in scenes if s in set(args.scenes)]
    if not scenes:
        print(f"error: --raw {raw}: no scene folders (sceneXXXX_XX)", file=sys.stderr)
        return 2
    out_scans = out / "scans"
    out_scans.mkdir(parents=True, exist_ok=True)
    (out / "splits").mkdir(parents=True, exist_ok=True)

    todo, skipped = [], []
    for sid in scenes:
        if not args.overwrite and (out_scans / sid / "meta.json").is_file():
            skipped.append(sid)
            continue
        _clean_leftovers(out_scans, sid)
        todo.append(sid)

    results: list[dict] = []
    bar = tqdm(total=len(todo), desc="scannet", unit="scene", disable=args.no_progress or not todo)
    jobs = [(str(raw / sid), labels, sid not in test_scenes, str(out_scans)) for sid in todo]
    if args.workers == 1 or len(jobs) <= 1:
        for job in jobs:
            results.append(_convert_one(*job))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=min(args.workers, len(jobs))) as pool:
            futures = [pool.submit(_convert_one, *job) for job in jobs]
            for fut in as_completed(futures):
                results.append(fut.result())
                bar.update()
    bar.close()

    failed = sorted((r for r in results if not r["ok"]), key=lambda r: r["scene"])
    # Split lists name every scene finished on disk, not only this run's (``--scenes`` runs add up).
    done = {s for names in split_lists.values() for s in names if (out_scans / s / "meta.json").is_file()}
    for split, names in split_lists.items():
        _write_text_atomic(out / "splits" / f"{split}.txt", "".join(f"{s}\n" for s in names if s in done))

    unknown_total: dict[str, int] = {}
    unknown_points = 0
    for r in results:
        if r["ok"]:
            unknown_points += r["unknown_points"]
            for k, v in r["unknown"].items():
                unknown_total[k] = unknown_total.get(k, 0) + v
    print(
        f"scannet: {len(results) - len(failed)} converted, {len(skipped)} skipped (finished), {len(failed)} failed"
    )
    if unknown_total:
        cats = ", ".join(f"{k!r} x{v}" for k, v in sorted(unknown_total.items()))
        print(
            f"scannet: {sum(unknown_total.values())} object(s) with raw categories missing from {LABEL_TSV} "
            f"mapped to ignore ({unknown_points} points): {cats}"
        )
    if failed:
        print("scannet: failed scenes:", file=sys.stderr)
        for r in failed:
            print(f"  {r['scene']}: {r['error']}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pc3d-data scannet", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
