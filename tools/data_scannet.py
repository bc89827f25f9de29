"""``pc3d-data scannet``: convert raw ScanNet v2 scans into the pc3d format (docs/data/scannet.md).

Usage: ``pc3d-data scannet --raw <scans dir> --meta <meta dir> --out <dir> [--workers N] [--overwrite]``
(or ``python -m pc3d.tools.data_scannet ...``). Scenes run in parallel; every scene folder is
published atomically. A finished scene is skipped unless ``--overwrite``, after checking that its
arrays match the sizes and hashes in its ``meta.json``; a scene whose (re)conversion failed or was
interrupted is redone by the next run. A scene that fails, or whose worker process dies, is
reported with its file and the others still finish; the exit status is 1 when any scene failed,
2 for unusable arguments (including an ``--out`` that overlaps ``--raw`` or ``--meta``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from pc3d.data.scannet.preprocess import convert_scene, verify_scene, write_scene
from pc3d.data.scannet.raw import SCENE_ID_RE, LabelTable, RawSceneError, read_label_tsv, read_split
from pc3d.io import PendingJournal, UsageError, check_output_dir, clean_leftovers, run_items, write_text

SPLITS = ("train", "val", "test")
LABEL_TSV = "scannetv2-labels.combined.tsv"


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
    """Worker: convert and publish one scene; returns a small JSON-able summary."""
    t0 = time.perf_counter()
    result = convert_scene(scene_dir, labels, with_labels=with_labels)
    write_scene(out_scans, Path(scene_dir).name, result["arrays"], result["meta"])
    meta = result["meta"]
    return {
        "seconds": time.perf_counter() - t0,
        "unknown": meta["unknown_categories"],
        "unknown_points": meta["unknown_category_points"],
    }


def _check_args(args: argparse.Namespace) -> tuple[LabelTable, dict[str, list[str]], list[str]]:
    """Validate the arguments and read the meta files; raises ``UsageError``/``RawSceneError``."""
    raw, meta, out = Path(args.raw), Path(args.meta), Path(args.out)
    if not raw.is_dir():
        raise UsageError(f"--raw {raw}: not a directory")
    if not meta.is_dir():
        raise UsageError(f"--meta {meta}: not a directory")
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    check_output_dir(out, {"--raw": raw, "--meta": meta})
    labels = read_label_tsv(meta / LABEL_TSV)
    split_lists = {
        s: read_split(meta / f"scannetv2_{s}.txt") for s in SPLITS if (meta / f"scannetv2_{s}.txt").exists()
    }
    scenes = sorted(p.name for p in raw.iterdir() if p.is_dir() and SCENE_ID_RE.match(p.name))
    if args.scenes:
        unknown = sorted(set(args.scenes) - set(scenes))
        if unknown:
            raise UsageError(f"--scenes: not found under {raw}: {unknown}")
        scenes = [s for s in scenes if s in set(args.scenes)]
    if not scenes:
        raise UsageError(f"--raw {raw}: no scene folders (sceneXXXX_XX)")
    return labels, split_lists, scenes


def run(args: argparse.Namespace) -> int:
    """Run the conversion; returns the exit status (0 ok, 1 some scenes failed, 2 bad arguments)."""
    try:
        labels, split_lists, scenes = _check_args(args)
    except (UsageError, RawSceneError) as e:
        print(f"pc3d-data scannet: error: {e}", file=sys.stderr)
        return 2
    raw, out = Path(args.raw), Path(args.out)
    out_scans = out / "scans"
    out_scans.mkdir(parents=True, exist_ok=True)
    (out / "splits").mkdir(parents=True, exist_ok=True)
    for folder in (out, out_scans, out / "splits"):
        clean_leftovers(folder)
    journal = PendingJournal(out, "pc3d-data scannet")
    pending = journal.load()

    todo, skipped = [], []
    for sid in scenes:
        final = out_scans / sid
        if args.overwrite or sid in pending or not (final / "meta.json").is_file():
            todo.append(sid)
            continue
        reason = verify_scene(final)
        if reason is None:
            skipped.append(sid)
        else:
            print(f"scannet: {sid}: redoing, its output is not intact ({reason})")
            todo.append(sid)
    pending |= set(todo)
    journal.save(pending)

    test_scenes = set(split_lists.get("test", []))
    items = [(sid, (str(raw / sid), labels, sid not in test_scenes, str(out_scans))) for sid in todo]
    workers = args.workers if args.workers > 1 else 0
    results = []
    bar = tqdm(total=len(items), desc="scannet", unit="scene", disable=args.no_progress or not items)
    try:
        for r in run_items(_convert_one, items, workers, preload=["pc3d.tools.data_scannet"]):
            results.append(r)
            if r.ok:
                pending.discard(r.name)
            bar.update()
    finally:
        bar.close()
        journal.save(pending)

    failed = sorted((r for r in results if not r.ok), key=lambda r: r.name)
    # Split lists name every scene finished and intact on disk, not only this run's (``--scenes``
    # runs add up); pending (failed or interrupted) scenes are left out.
    done = {
        s
        for names in split_lists.values()
        for s in names
        if s not in pending and (out_scans / s / "meta.json").is_file()
    }
    for split, names in split_lists.items():
        write_text(out / "splits" / f"{split}.txt", "".join(f"{s}\n" for s in names if s in done))

    unknown_total: dict[str, int] = {}
    unknown_points = 0
    for r in results:
        if r.ok:
            unknown_points += r.value["unknown_points"]
            for k, v in r.value["unknown"].items():
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
            print(f"  {r.name}: {r.error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pc3d-data scannet", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
