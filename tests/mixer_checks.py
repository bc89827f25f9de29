"""Checks every token mixer of the serialized U-Net must pass (MEEPO's, PTv3's and the mixers of
``pc3d.models.mixers``), shared by their tests.

A mixer is checked twice: alone on a serialized level (``level``), where its output can be compared
with a plain reference, and inside a small :class:`MixerUNet`, where packing, point order and
gradients are checked end to end, and a real crop of scene0000_00 is overfit.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pc3d.data.batch import PointBatch
from pc3d.models.mixer_unet import MixerUNet
from pc3d.models.point import ORDERS, SerializedPoints, build_points

SMALL_UNET: dict[str, Any] = dict(
    in_channels=6,
    num_classes=5,
    grid_size=0.1,
    strides=(2, 2),
    enc_depths=(1, 2, 1),
    enc_channels=(16, 24, 32),
    enc_num_heads=(2, 2, 4),
    dec_depths=(1, 1),
    dec_channels=(16, 24),
    dec_num_heads=(2, 2),
    mlp_ratio=2.0,
    drop_path=0.0,
)


def cloud(n: int, seed: int, extent=(2.0, 1.6, 1.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """A random cloud: ``coord (n, 3)`` in a box of ``extent`` metres and ``feat (n, 6)``."""
    g = torch.Generator().manual_seed(seed)
    coord = torch.rand(n, 3, generator=g) * torch.tensor(extent)
    return coord, torch.randn(n, 6, generator=g)


def logits(model: nn.Module, coord: Tensor, feat: Tensor, offsets: Tensor | list[int]) -> Tensor:
    """``model(batch)`` of the clouds ``coord (N, 3)``/``feat (N, C)`` packed by ``offsets (B+1,)``."""
    return model(PointBatch(coord=coord, feat=feat, offsets=torch.as_tensor(offsets)))


def level(sizes: list[int], seed: int = 0, orders=ORDERS) -> SerializedPoints:
    """A serialized level of ``len(sizes)`` clouds with ``sizes[b]`` distinct voxels each."""
    g = torch.Generator().manual_seed(seed)
    grids, batch = [], []
    for b, n in enumerate(sizes):
        cells = torch.randperm(16**3, generator=g)[:n]
        grids.append(torch.stack([cells // 256, cells // 16 % 16, cells % 16], 1))
        batch.append(torch.full((n,), b, dtype=torch.int64))
    grid = torch.cat(grids) if grids else torch.zeros(0, 3, dtype=torch.int64)
    batch_t = torch.cat(batch) if batch else torch.zeros(0, dtype=torch.int64)
    return build_points(grid.float() * 0.1 + 0.05, grid, batch_t, len(sizes), orders)


def warmed_up(model: nn.Module) -> nn.Module:
    """``model`` in eval mode after one training-mode forward, so BatchNorm is not an identity."""
    model.train()
    with torch.no_grad():
        logits(model, *cloud(400, 9), torch.tensor([0, 400]))
    return model.eval()


def small_unet(mixer: type[nn.Module] | str, mixer_args: Mapping[str, Any] | None = None, **kw) -> MixerUNet:
    """A seeded small MixerUNet in eval mode, with non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    return warmed_up(MixerUNet(mixer, mixer_args, **{**SMALL_UNET, **kw}))


def check_batch_invariance(model: nn.Module, atol: float = 1e-4) -> None:
    """A cloud's logits are the same alone, packed with others, and packed in another order."""
    clouds = [cloud(500, 1), cloud(230, 2, (1.0, 1.0, 0.5)), cloud(37, 3)]
    with torch.no_grad():
        alone = [logits(model, c, f, torch.tensor([0, c.shape[0]])) for c, f in clouds]
        packed = logits(
            model,
            torch.cat([c for c, _ in clouds]),
            torch.cat([f for _, f in clouds]),
            torch.tensor([0, 500, 730, 767]),
        )
        swapped = logits(
            model,
            torch.cat([clouds[2][0], clouds[0][0]]),
            torch.cat([clouds[2][1], clouds[0][1]]),
            torch.tensor([0, 37, 537]),
        )
    torch.testing.assert_close(packed, torch.cat(alone), rtol=atol, atol=atol)
    torch.testing.assert_close(swapped[37:], alone[0], rtol=atol, atol=atol)


def check_order_invariance(model: nn.Module, atol: float = 1e-4) -> None:
    """Permuting the rows of a cloud permutes its logits and changes nothing else."""
    coord, feat = cloud(600, 6)
    perm = torch.randperm(600, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = logits(model, coord, feat, torch.tensor([0, 600]))
        out = logits(model, coord[perm], feat[perm], torch.tensor([0, 600]))
    torch.testing.assert_close(out, ref[perm], rtol=atol, atol=atol)


def check_no_cross_cloud_gradient(model: nn.Module, min_reach: float = 0.99) -> None:
    """Cloud 0's logits have zero gradient in cloud 1's features, and non-zero in most of cloud 0's."""
    (c1, f1), (c2, f2) = cloud(300, 4), cloud(200, 5)
    feat = torch.cat([f1, f2]).requires_grad_(True)
    out = logits(model, torch.cat([c1, c2]), feat, torch.tensor([0, 300, 500]))
    out[:300].sum().backward()
    grad = feat.grad.abs().sum(1)
    assert grad[300:].max() == 0, "cloud 1 influences cloud 0"
    reach = float((grad[:300] > 0).float().mean())
    assert reach >= min_reach, f"only {reach:.2f} of cloud 0's points influence its logits"


def check_train_step(model: nn.Module) -> None:
    """In training mode every parameter gets a finite gradient."""
    model.train()
    out = logits(model, *cloud(300, 7), torch.tensor([0, 300]))
    out.logsumexp(1).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no finite gradient for {missing}"


def overfit_scene0000_crop(
    samples_dir: Path,
    mixer: type[nn.Module] | str,
    mixer_args: Mapping[str, Any] | None = None,
    steps: int = 60,
    lr: float = 0.01,
    **unet_args: Any,
) -> float:
    """Best labelled-point accuracy of a small MixerUNet trained on one real crop for ``steps`` steps."""
    from scene_crops import overfit_crop, scene0000_crop

    batch = scene0000_crop(samples_dir)
    torch.manual_seed(0)
    args = dict(grid_size=0.05, strides=(2, 2), enc_depths=(1, 1, 1), enc_channels=(16, 32, 48),
                enc_num_heads=(2, 2, 4), dec_depths=(1, 1), dec_channels=(32, 32), dec_num_heads=(2, 2),
                drop_path=0.0, num_classes=20)  # fmt: skip
    model = MixerUNet(mixer, mixer_args, **{**args, **unet_args})
    return overfit_crop(model, batch, steps, lr)


def check_pairs_built_once_per_level(model: nn.Module) -> None:
    """One forward builds the sparse-conv neighbour pairs once for the stem and once per level: every other
    conv of a level reuses them."""
    from spconv.pytorch import ops

    builds = []
    real = ops.get_indice_pairs

    def counting(*args, **kwargs):
        builds.append(1)
        return real(*args, **kwargs)

    ops.get_indice_pairs = counting
    try:
        with torch.no_grad():
            logits(model, *cloud(500, 1), [0, 500])
    finally:
        ops.get_indice_pairs = real
    assert len(builds) == 1 + len(model.enc), (
        f"{len(builds)} pair builds for {len(model.enc)} levels and a stem"
    )


def check_unet(model: nn.Module, min_reach: float = 0.99) -> None:
    """Every check of a mixer inside a U-Net: packing, point order, gradients across clouds, training."""
    check_pairs_built_once_per_level(model)
    check_batch_invariance(model)
    check_order_invariance(model)
    check_no_cross_cloud_gradient(model, min_reach)
    check_train_step(model)
