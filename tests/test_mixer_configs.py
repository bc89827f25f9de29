"""The shipped mixer overrides: each swaps only the token mixer of its base config, at equal size."""

from __future__ import annotations

import shlex

import pytest
import torch

from pc3d.cli import builtin_config_dir, builtin_configs, main
from pc3d.data.batch import PointBatch
from pc3d.tools.bench.model_configs import model_from_configs

MIXER_CONFIGS = [c for c in builtin_configs() if c.startswith("mixers/")]
#: base config of each kind of override, and the network it is compared with
BASES = {"_scannet.yaml": "ptv3_scannet.yaml", "_demo.yaml": "meepo_demo.yaml"}


def _base(name: str) -> str:
    (base,) = [b for suffix, b in BASES.items() if name.endswith(suffix)]
    return base


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_mixer_override_has_a_base():
    assert MIXER_CONFIGS
    for name in MIXER_CONFIGS:
        _base(name)


@pytest.mark.parametrize("name", MIXER_CONFIGS)
def test_mixer_override_matches_its_base_in_size_and_layout(name: str):
    base = model_from_configs(_base(name))
    model = model_from_configs(_base(name), name)
    assert abs(_params(model) / _params(base) - 1) < 0.05, (_params(model), _params(base))
    assert [len(s) for s in model.enc] == [len(s) for s in base.enc]
    assert [s[0].mlp.fc1.in_features for s in model.enc] == [s[0].mlp.fc1.in_features for s in base.enc]
    assert model.grid_size == base.grid_size


@pytest.mark.parametrize("name", [c for c in MIXER_CONFIGS if c.endswith("_demo.yaml")])
def test_demo_override_trains_a_step_and_its_header_commands_parse(name: str, capsys):
    model = model_from_configs(_base(name), name).train()
    coord = torch.rand(500, 3) * 2
    out = model(PointBatch(coord=coord, feat=torch.randn(500, 6), offsets=torch.tensor([0, 300, 500])))
    out.logsumexp(1).mean().backward()
    commands = [
        shlex.split(line[4:])
        for line in (builtin_config_dir() / name).read_text().splitlines()
        if line.startswith("#   pc3d ")
    ]
    assert [c[1] for c in commands] == ["fit", "test"]
    for command in commands:
        assert command[2:6] == ["-c", _base(name), "-c", name]
        with pytest.raises(SystemExit) as done:  # --print_config prints the merged config and exits
            main([*command[1:6], "--print_config"])
        assert done.value.code == 0
        assert "pc3d.models" in capsys.readouterr().out
