"""The demo configs: step budgets, header commands that run as pasted, one data-path convention, and a
one-line error naming the data commands when the data is missing."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from pc3d.cli import builtin_config_dir, main
from pc3d.data.kitti.datamodule import KittiDataModule
from pc3d.data.scannet.datamodule import ScanNetDataModule

DEMO_CONFIGS = ("meepo_demo.yaml", "pointformer_demo_kitti.yaml", "pointformer_demo_scannet.yaml")


def header_commands(name: str) -> list[list[str]]:
    """The ``#   <command>`` lines of a config's header comment, split as a shell would."""
    out = []
    for line in (builtin_config_dir() / name).read_text().splitlines():
        if not line.startswith("#"):
            break
        if line.startswith("#   "):
            out.append(shlex.split(line[4:]))
    return out


@pytest.mark.parametrize("name", DEMO_CONFIGS)
def test_demo_config_budget_and_data_convention(name: str):
    cfg = yaml.safe_load((builtin_config_dir() / name).read_text())
    trainer = cfg["trainer"]
    assert "max_time" not in trainer
    assert trainer.get("max_epochs", -1) > 0 or trainer.get("max_steps", -1) > 0
    commands = header_commands(name)
    assert [c[:2] for c in commands] == [
        ["pc3d-data", "synth"],
        ["pc3d-data", commands[0][2]],
        ["pc3d", "fit"],
        ["pc3d", "test"],
    ]
    synth, prep, fit, test = commands
    assert not any("<" in arg or ">" in arg for cmd in commands for arg in cmd)  # no placeholders
    raw = synth[synth.index("--out") + 1]
    root = cfg["data"]["init_args"]["root"]
    assert prep[prep.index("--out") + 1] == root
    assert raw.startswith("pc3d_demo/raw/") and root.startswith("pc3d_demo/data/")
    assert raw.rsplit("/", 1)[1] == root.rsplit("/", 1)[1]  # pc3d_demo/{raw,data}/<dataset>
    assert fit[-2:] == ["-c", name] and test[2:4] == ["-c", name]


@pytest.mark.parametrize(
    ("module", "command"),
    [
        (lambda root: KittiDataModule(str(root)), "pc3d-data kitti --root"),
        (lambda root: ScanNetDataModule(str(root), task="seg"), "pc3d-data scannet --raw"),
    ],
)
def test_missing_data_names_the_commands(tmp_path: Path, module, command: str):
    root = tmp_path / "nothing_here"
    with pytest.raises(FileNotFoundError) as err:
        module(root).setup("fit")
    message = str(err.value)
    assert (
        "\n" not in message and str(root) in message and command in message and "pc3d-data synth" in message
    )


@pytest.mark.parametrize("name", ["meepo_demo.yaml", "pointformer_demo_kitti.yaml"])
def test_fit_without_data_says_which_command_makes_it(tmp_path: Path, monkeypatch, capsys, name: str):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "-c", name]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("pc3d: error: data.init_args.root: pc3d_demo/data/") and "pc3d-data" in err[0]
