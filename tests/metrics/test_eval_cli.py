"""``pc3d-eval kitti`` argument and file errors (synthetic label files, no sample data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pc3d.tools.eval_cli import evaluate_kitti_dirs, main

LABEL = "Car 0.00 0 -1.58 587.01 150.00 650.00 220.00 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59"


def _dirs(tmp_path: Path, pred_line: str = LABEL + " 0.9") -> tuple[Path, Path]:
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    (gt / "000001.txt").write_text(LABEL + "\n")
    (pred / "000001.txt").write_text(pred_line + "\n")
    return gt, pred


def test_perfect_result_and_json(tmp_path, capsys):
    gt, pred = _dirs(tmp_path)
    js = tmp_path / "sub" / "r.json"
    assert main(["kitti", "--gt", str(gt), "--pred", str(pred), "--json", str(js), "--classes", "Car"]) == 0
    assert "Car" in capsys.readouterr().out
    got = json.loads(js.read_text())["Car"]
    want = evaluate_kitti_dirs(gt, pred, classes=["Car"])["Car"]
    assert set(got) == set(want) and len(got) == 8
    for k, v in want.items():
        assert got[k] == pytest.approx(v)


def test_result_without_score_column_is_an_error(tmp_path, capsys):
    gt, pred = _dirs(tmp_path, pred_line=LABEL)  # 15 columns: no score
    with pytest.raises(ValueError, match=r"000001\.txt:1: expected 16 columns.*got 15"):
        evaluate_kitti_dirs(gt, pred)
    assert main(["kitti", "--gt", str(gt), "--pred", str(pred)]) == 1
    err = capsys.readouterr().err
    assert "000001.txt:1" in err and "16 columns" in err


def test_missing_split_file(tmp_path, capsys):
    gt, pred = _dirs(tmp_path)
    missing = tmp_path / "nope.txt"
    assert main(["kitti", "--gt", str(gt), "--pred", str(pred), "--split", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "--split" in err and str(missing) in err


def test_bad_split_line_names_file_and_line(tmp_path, capsys):
    gt, pred = _dirs(tmp_path)
    split = tmp_path / "ids.txt"
    split.write_text("1\nabc\n")
    assert main(["kitti", "--gt", str(gt), "--pred", str(pred), "--split", str(split)]) == 2
    assert f"{split}:2" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["parent_is_file", "is_directory"])
def test_unwritable_json_path_fails_before_evaluating(tmp_path, capsys, kind):
    gt, pred = _dirs(tmp_path)
    if kind == "parent_is_file":
        (tmp_path / "f").write_text("x")
        js = tmp_path / "f" / "r.json"
    else:
        js = tmp_path / "adir"
        js.mkdir()
    assert main(["kitti", "--gt", str(gt), "--pred", str(pred), "--json", str(js)]) == 2
    cap = capsys.readouterr()
    assert "--json" in cap.err and str(js) in cap.err
    assert cap.out == ""  # no table printed before the error
