"""``pc3d-eval kitti`` on corrupted copies of the real KITTI labels: truncated, NaN/inf, non-UTF-8,
BOM, unknown object types, missing and empty files; bad arguments exit 2, unusable frames exit 1."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from pc3d.tools.eval_cli import main


@pytest.fixture
def dirs(samples_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """``gt/`` = the real label_2 files, ``pred/`` = the same objects as results with score 0.9."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    for label in sorted((samples_dir / "kitti/training/label_2").glob("*.txt")):
        text = label.read_text()
        (gt / label.name).write_text(text)
        lines = [
            f"{line} 0.9" for line in text.splitlines() if line.split() and line.split()[0] != "DontCare"
        ]
        (pred / label.name).write_text("\n".join(lines) + "\n")
    return gt, pred


def run_eval(gt: Path, pred: Path, *extra: str) -> list[str]:
    return ["kitti", "--gt", str(gt), "--pred", str(pred), "--classes", "Car", *extra]


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("pc3d-eval: error:")]


def test_clean_copy_is_perfect(dirs, tmp_path: Path, capsys):
    gt, pred = dirs
    js = tmp_path / "r.json"
    assert main([*run_eval(gt, pred), "--json", str(js)]) == 0
    easy, moderate, hard = json.loads(js.read_text())["Car"]["3d_R11"]  # no Car is tall enough for easy
    assert easy == 0.0 and moderate == hard > 0.0


def test_truncated_result_at_seeded_random_offsets(dirs, capsys):
    gt, pred = dirs
    target = sorted(pred.glob("*.txt"))[0]
    data = target.read_bytes()
    rng = random.Random(18)
    for offset in sorted({0, 1, len(data) - 2, *(rng.randrange(2, len(data) - 2) for _ in range(10))}):
        target.write_bytes(data[:offset])
        rc = main(run_eval(gt, pred))
        _, err = capsys.readouterr()
        assert "Traceback" not in err
        tail = data[:offset].decode().rsplit("\n", 1)[-1].split()
        if tail and len(tail) != 16:  # a cut inside a line's columns
            assert rc == 1, offset
            lines = error_lines(err)
            assert len(lines) == 1 and f"{target}:" in lines[0] and "expected 16 columns" in lines[0], err
        else:
            assert rc in (0, 1)
            assert rc == 0 or all(str(target) in line for line in error_lines(err))


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda t: t.replace(" 0.9\n", " nan\n", 1), "non-finite value"),
        (lambda t: t.replace(" 0.9\n", " inf\n", 1), "non-finite value"),
        (lambda t: "car " + t.split(" ", 1)[1], "unknown class 'car'"),
        (lambda t: t.replace(" ", ",", 3), "expected 16 columns"),
        (lambda t: t.replace("0.9", "high", 1), "non-numeric value"),
    ],
    ids=["nan_score", "inf_score", "lowercase_class", "commas", "word_score"],
)
def test_bad_result_file_fails_its_frame(dirs, capsys, mutate, needle):
    gt, pred = dirs
    target = sorted(pred.glob("*.txt"))[-1]
    target.write_text(mutate(target.read_text()))
    assert main(run_eval(gt, pred)) == 1
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert (
        len(lines) == 1 and lines[0].startswith(f"pc3d-eval: error: {target}:1: ") and needle in lines[0]
    ), err
    assert "1 frame file(s) unusable; nothing evaluated" in err


def test_every_bad_frame_is_reported(dirs, capsys):
    gt, pred = dirs
    first, second = sorted(pred.glob("*.txt"))
    first.write_bytes(b"\xff\xfe" + first.read_bytes())  # UTF-16 BOM: not UTF-8
    second.unlink()
    (gt / first.name).write_text((gt / first.name).read_text().replace("Car", "Automobile", 1))
    assert main(run_eval(gt, pred)) == 1
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 2
    assert (
        lines[0].startswith(f"pc3d-eval: error: {gt / first.name}:")
        and "unknown class 'Automobile'" in lines[0]
    )
    assert lines[1] == (
        f"pc3d-eval: error: {second}: missing result file for frame {second.stem} "
        "(write an empty file for no detections)"
    )


def test_non_utf8_result_names_file_and_byte(dirs, capsys):
    gt, pred = dirs
    target = sorted(pred.glob("*.txt"))[0]
    target.write_bytes(b"Car \xe9" + target.read_bytes())
    assert main(run_eval(gt, pred)) == 1
    (line,) = error_lines(capsys.readouterr().err)
    assert line == f"pc3d-eval: error: {target}:1: result file is not UTF-8 text (byte 0xe9)"


def test_utf8_bom_and_crlf_are_read_as_plain_text(dirs, tmp_path, capsys):
    gt, pred = dirs
    clean = tmp_path / "clean.json"
    assert main([*run_eval(gt, pred), "--json", str(clean)]) == 0
    for f in [*gt.glob("*.txt"), *pred.glob("*.txt")]:
        f.write_bytes(b"\xef\xbb\xbf" + f.read_bytes().replace(b"\n", b"\r\n"))
    bom = tmp_path / "bom.json"
    assert main([*run_eval(gt, pred), "--json", str(bom)]) == 0
    assert json.loads(bom.read_text()) == json.loads(clean.read_text())


def test_empty_result_file_is_a_frame_without_detections(dirs, capsys):
    gt, pred = dirs
    for f in pred.glob("*.txt"):
        f.write_bytes(b"")
    assert main(run_eval(gt, pred)) == 0
    assert "Car" in capsys.readouterr().out


def test_nan_in_a_ground_truth_label(dirs, capsys):
    gt, pred = dirs
    target = sorted(gt.glob("*.txt"))[0]
    parts = target.read_text().splitlines()[0].split()
    parts[11] = "nan"
    target.write_text(" ".join(parts) + "\n")
    assert main(run_eval(gt, pred)) == 1
    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith(f"pc3d-eval: error: {target}:1: non-finite value")


def test_unreadable_result(dirs, capsys, monkeypatch):
    gt, pred = dirs
    target = sorted(pred.glob("*.txt"))[0]
    target.chmod(0)
    if os.geteuid() == 0:  # root reads anyway; check what an ordinary user gets
        real_read = Path.read_bytes

        def locked_read(self):
            if self == target:
                raise PermissionError(13, "Permission denied", str(self))
            return real_read(self)

        monkeypatch.setattr(Path, "read_bytes", locked_read)
    assert main(run_eval(gt, pred)) == 1
    (line,) = error_lines(capsys.readouterr().err)
    assert line == f"pc3d-eval: error: {target}: cannot read result file (Permission denied)"


def test_bad_arguments_exit_2(dirs, tmp_path: Path, capsys):
    gt, pred = dirs
    ids = sorted(p.stem for p in gt.glob("*.txt"))
    twice = tmp_path / "twice.txt"
    twice.write_text(f"{ids[0]}\n{ids[1]}\n{ids[0]}\n")
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"\xe9\n")
    as_dir = tmp_path / "out.json"
    as_dir.mkdir()
    cases = [
        (["kitti", "--gt", str(tmp_path / "nope"), "--pred", str(pred)], f"--gt {tmp_path / 'nope'}: not a directory"),
        ([*run_eval(gt, pred), "--split", str(tmp_path / "none.txt")], "--split"),
        ([*run_eval(gt, pred), "--split", str(twice)], f"--split {twice}: frame(s) ['{ids[0]}'] listed more than once"),
        ([*run_eval(gt, pred), "--split", str(latin)], f"{latin}:1: split file is not UTF-8 text"),
        ([*run_eval(gt, pred), "--json", str(as_dir)], f"--json {as_dir}: is a directory"),
        (["kitti", "--gt", str(gt), "--pred", str(pred), "--classes", "Car", "Bus"], "--classes: unknown ['Bus']"),
    ]  # fmt: skip
    for args, needle in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        lines = error_lines(err)
        assert len(lines) == 1 and needle in lines[0], err
        assert "Traceback" not in err
    assert main(["kitti", "--gt", str(gt)]) == 2  # argparse: --pred is required
    assert "--pred" in capsys.readouterr().err
