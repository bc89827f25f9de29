"""MixerBlock: the injected mixer sees the normed features, the level and the order; per-stage heads reach it."""

import torch
from torch import nn

from pc3d.data.batch import PointBatch
from pc3d.models.blocks import MixerBlock
from pc3d.models.serialized_unet import SerializedUNet


class RecordingMixer(nn.Module):
    built: list[dict] = []

    def __init__(self, channels: int, num_heads: int = 1, scale: float = 1.0) -> None:
        super().__init__()
        self.proj = nn.Linear(channels, channels)
        self.calls: list[int] = []
        RecordingMixer.built.append({"channels": channels, "num_heads": num_heads, "scale": scale})

    def forward(self, x, point, order_index):
        assert x.shape == (point.num_points, self.proj.in_features)
        self.calls.append(order_index)
        return self.proj(x)


def test_mixer_block_builds_mixer_with_stage_heads_and_runs_in_the_unet():
    RecordingMixer.built.clear()
    torch.manual_seed(0)
    model = SerializedUNet(
        MixerBlock,
        block_args={"mixer": RecordingMixer, "mixer_args": {"scale": 2.0}, "mlp_ratio": 2.0},
        enc_depths=[2, 1],
        enc_channels=[16, 32],
        enc_block_args=[{"num_heads": 2}, {"num_heads": 4}],
        dec_depths=[1],
        dec_channels=[16],
        dec_block_args=[{"num_heads": 2}],
        strides=[2],
        grid_size=0.1,
        num_classes=5,
    )
    assert RecordingMixer.built == [
        {"channels": 16, "num_heads": 2, "scale": 2.0},
        {"channels": 16, "num_heads": 2, "scale": 2.0},
        {"channels": 32, "num_heads": 4, "scale": 2.0},
        {"channels": 16, "num_heads": 2, "scale": 2.0},
    ]
    coord, feat = torch.rand(600, 3), torch.rand(600, 6)
    out = model(PointBatch(coord=coord, feat=feat, offsets=torch.tensor([0, 250, 600])))
    assert out.shape == (600, 5) and torch.isfinite(out).all()
    assert model.enc[0][0].mixer.calls == [0] and model.enc[0][1].mixer.calls == [1]
    out.sum().backward()
    assert model.enc[1][0].mixer.proj.weight.grad.abs().sum() > 0


def test_mixer_block_accepts_a_dotted_mixer_path():
    block = MixerBlock(8, "torch.nn.Identity")
    assert type(block.mixer) is nn.Identity


def test_mixer_block_refuses_heads_in_mixer_args_when_the_stage_gives_them():
    import pytest

    with pytest.raises(ValueError, match="mixer_args"):
        MixerBlock(8, RecordingMixer, mixer_args={"num_heads": 4}, num_heads=2)
