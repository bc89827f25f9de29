"""Class names are a dataset fact: ``pc3d`` links the datamodule's ``class_names`` into the task, no
shipped config lists them, and names that do not fit the network or the datamodule are one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tiny_meepo import TINY_MEEPO_ARGS

from pc3d.cli import PC3DCLI, builtin_config_dir, builtin_configs, main, resolve_config
from pc3d.data.scannet.classes import SCANNET20_CLASSES, SCANNET_DET_CLASSES
from pc3d.tools.bench.model_configs import task_from_configs

KITTI = ["Car", "Pedestrian", "Cyclist"]
#: every shipped base config (mixer overrides stacked on one) and the names its task gets
EXPECTED = {
    ("meepo_demo.yaml",): list(SCANNET20_CLASSES),
    ("meepo_demo.yaml", "mixers/ptv3_demo.yaml"): list(SCANNET20_CLASSES),
    ("meepo_scannet.yaml",): list(SCANNET20_CLASSES),
    ("ptv3_scannet.yaml",): list(SCANNET20_CLASSES),
    ("pointformer_demo_scannet.yaml",): list(SCANNET_DET_CLASSES),
    ("pointformer_votenet_scannet.yaml",): list(SCANNET_DET_CLASSES),
    ("pointformer_demo_kitti.yaml",): KITTI,
    ("pointformer_pointrcnn_kitti.yaml",): KITTI,
}
#: settings every config accepts on a CPU-only test machine
CPU = [
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.precision=32-true",
    "--trainer.logger=false",
]


def _keys(node) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for v in node.values() for k in _keys(v)}
    if isinstance(node, list):
        return {k for v in node for k in _keys(v)}
    return set()


def _cli(tmp_path: Path, monkeypatch, *args: str) -> PC3DCLI:
    monkeypatch.chdir(tmp_path)
    return PC3DCLI(args=[*args, *CPU], run=False)


def _configs(names: tuple[str, ...]) -> list[str]:
    return [arg for name in names for arg in ("-c", resolve_config(name))]


def test_every_base_config_is_checked():
    assert {c for names in EXPECTED for c in names if "/" not in c} == {
        c for c in builtin_configs() if "/" not in c
    }


@pytest.mark.parametrize("name", builtin_configs())
def test_no_shipped_config_lists_class_names(name: str):
    assert "class_names" not in _keys(yaml.safe_load((builtin_config_dir() / name).read_text()))


@pytest.mark.parametrize("names", list(EXPECTED), ids="+".join)
def test_each_config_gets_the_class_names_of_its_datamodule(tmp_path, monkeypatch, names):
    cli = _cli(tmp_path, monkeypatch, *_configs(names))
    expected = EXPECTED[names]
    assert cli.datamodule.class_names == expected
    assert cli.model.class_names == expected
    assert cli.model.hparams["class_names"] == expected  # what its checkpoints keep
    assert task_from_configs(*names).class_names == expected  # the benchmarks' builder links them alike


def test_class_names_follow_the_datamodule_settings(tmp_path, monkeypatch):
    cli = _cli(
        tmp_path,
        monkeypatch,
        *_configs(("pointformer_demo_kitti.yaml",)),
        "--data.init_args.classes=[Car, Cyclist, Pedestrian]",
    )
    assert cli.model.class_names == ["Car", "Cyclist", "Pedestrian"]


def error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pc3d: error:")]
    assert len(lines) == 1
    return lines[0]


def test_datamodule_classes_that_do_not_fit_the_network_name_both(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "-c", "meepo_demo.yaml", "--data.init_args.task=det", *CPU]) == 1
    assert error_line(capsys) == (
        "pc3d: error: the datamodule ScanNetDataModule has 18 classes (cabinet, bed, chair, sofa, table, …, "
        "garbagebin) and the network MEEPO 20 classes: the task's class names come from the datamodule, so "
        "configure both for the same classes"
    )
    assert main(["fit", "-c", "pointformer_demo_kitti.yaml", "--data.init_args.classes=[Car]", *CPU]) == 1
    assert error_line(capsys).startswith(
        "pc3d: error: the datamodule KittiDataModule has 1 class (Car) and the network PointformerPointRCNN 3 classes:"
    )


def test_configured_names_that_differ_from_the_datamodule_are_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = [
        "fit",
        "-c",
        "pointformer_demo_kitti.yaml",
        "--model.init_args.class_names=[car, pedestrian, cyclist]",
    ]
    assert main([*args, *CPU]) == 1
    assert error_line(capsys) == (
        "pc3d: error: model.init_args.class_names (car, pedestrian, cyclist) differ from those of the datamodule "
        "KittiDataModule (Car, Pedestrian, Cyclist): the task's class names come from the datamodule; drop "
        "them, or configure the datamodule for those classes"
    )
    # The same names as the datamodule's are accepted.
    cli = _cli(
        tmp_path,
        monkeypatch,
        *_configs(("pointformer_demo_kitti.yaml",)),
        f"--model.init_args.class_names={KITTI}",
    )
    assert cli.model.class_names == KITTI


def test_a_datamodule_without_class_names_takes_the_configured_ones(tmp_path, monkeypatch, capsys):
    """ScanNet200 has no shipped names: the config's are used, and their count is still checked."""
    tiny = [*_configs(("meepo_demo.yaml",)), *TINY_MEEPO_ARGS, "--data.init_args.segment_key=segment200"]
    three = "--model.init_args.model.init_args.num_classes=3"
    cli = _cli(tmp_path, monkeypatch, *tiny, three, "--model.init_args.class_names=[low, mid, high]")
    assert cli.datamodule.class_names is None
    assert cli.model.class_names == ["low", "mid", "high"]
    assert _cli(tmp_path, monkeypatch, *tiny, three).model.class_names is None
    assert main(["fit", *tiny, three, "--model.init_args.class_names=[low, high]", *CPU]) == 1
    assert error_line(capsys) == (
        "pc3d: error: model.init_args.class_names: 2 names (low, high) for the 3 classes of the network MEEPO"
    )
