"""PTv3's block: xCPE, serialized patch attention, MLP (Pointcept ``point_transformer_v3m1_base``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pc3d.kernels.sparse import spconv
from pc3d.models.blocks.common import MLP, DropPath
from pc3d.models.point import SerializedPoints


def patch_index(order: Tensor, offsets: Tensor, patch_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Split every cloud's serialized sequence into patches of ``patch_size`` rows.

    ``order (N,)`` (rows in serialized order), ``offsets (B+1,)``. A cloud of ``n >= K`` rows gets
    ``ceil(n / K)`` patches; the last one is the cloud's last ``K`` rows (it overlaps the previous
    patch instead of duplicating keys, and owns only its new rows). A cloud of ``n < K`` rows gets
    one patch with ``K - n`` masked slots. Patches never cross clouds.

    Returns ``index (P, K)`` rows of every slot, ``valid (P, K)`` real slots, ``owned (P, K)`` slots
    whose output is kept (every row is owned exactly once).
    """
    device = order.device
    K = patch_size
    counts = offsets[1:] - offsets[:-1]
    num = torch.where(counts > 0, (counts + K - 1) // K, torch.zeros_like(counts))  # patches per cloud
    cloud = torch.repeat_interleave(torch.arange(counts.numel(), device=device), num)  # (P,)
    first = torch.cumsum(num, 0) - num
    j = torch.arange(cloud.numel(), device=device) - first[cloud]  # patch number inside its cloud
    n = counts[cloud]
    last = j == num[cloud] - 1
    start = torch.where(last, (n - K).clamp_min(0), j * K)
    own_from = torch.where(last & (n > K), K - (n - j * K), torch.zeros_like(n))
    slot = torch.arange(K, device=device)
    valid = slot[None, :] < n[:, None]
    owned = valid & (slot[None, :] >= own_from[:, None])
    pos = (
        offsets[cloud][:, None] + start[:, None] + torch.minimum(slot[None, :], (n - 1).clamp_min(0)[:, None])
    )
    return order[pos], valid, owned


class SerializedAttention(nn.Module):
    """Multi-head self-attention inside serialized patches; ``forward(x (N, C), index, valid, owned) -> (N, C)``."""

    def __init__(
        self,
        channels: int,
        num_heads: int,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        attn_impl: str = "sdpa",
    ) -> None:
        super().__init__()
        if attn_impl not in ("sdpa", "math"):
            raise ValueError(f"attn_impl: expected 'sdpa' or 'math', got {attn_impl!r}")
        self.attn_impl = attn_impl
        if channels % num_heads:
            raise ValueError(f"num_heads: channels {channels} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.scale = qk_scale or (channels // num_heads) ** -0.5
        self.qkv = nn.Linear(channels, 3 * channels, bias=qkv_bias)
        self.proj = nn.Linear(channels, channels)
        self.attn_drop = attn_drop
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, index: Tensor, valid: Tensor, owned: Tensor) -> Tensor:
        n, c = x.shape
        p, k = index.shape
        h = self.num_heads
        qkv = (
            self.qkv(x).index_select(0, index.reshape(-1)).reshape(p, k, 3, h, c // h).permute(2, 0, 3, 1, 4)
        )  # (3, P, H, K, c/h)
        mask = None if bool(valid.all()) else valid[:, None, None, :]
        out = F.scaled_dot_product_attention(
            qkv[0],
            qkv[1],
            qkv[2],
            attn_mask=mask,
            dropout_p=self.attn_drop if self.training else 0.0,
            scale=self.scale,
        )  # (P, H, K, c/h)
        out = out.transpose(1, 2).reshape(p, k, c)
        res = x.new_empty(n, c)
        res[index[owned]] = out[owned]
        return self.proj_drop(self.proj(res))


class PTv3Block(nn.Module):
    """``x += xCPE(x)``; ``x += DropPath(Attn(LN(x)))``; ``x += DropPath(MLP(LN(x)))`` (pre-norm).

    xCPE is ``SubMConv3d(k) -> Linear -> LayerNorm``. ``attn_impl``: ``"sdpa"`` (fused) or ``"math"``
    (explicit attention matrix, Pointcept's path without flash attention). ``forward(feat (N, C), point, order_index) -> (N, C)``.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int,
        drop_path: float = 0.0,
        indice_key: str | None = None,
        patch_size: int = 1024,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        cpe_kernel: int = 3,
        attn_impl: str = "sdpa",
    ) -> None:
        super().__init__()
        if patch_size < 1:
            raise ValueError(f"patch_size: expected >= 1, got {patch_size}")
        self.patch_size = patch_size
        self.cpe = spconv.SubMConv3d(channels, channels, cpe_kernel, bias=True, indice_key=indice_key)
        self.cpe_proj = nn.Linear(channels, channels)
        self.cpe_norm = nn.LayerNorm(channels)
        self.norm1 = nn.LayerNorm(channels)
        self.attn = SerializedAttention(
            channels, num_heads, qkv_bias, qk_scale, attn_drop, proj_drop, attn_impl
        )
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = MLP(channels, int(channels * mlp_ratio), drop=proj_drop)
        self.drop_path = DropPath(drop_path)

    def forward(self, feat: Tensor, point: SerializedPoints, order_index: int) -> Tensor:
        cpe = point.sparse_conv(self.cpe, feat)
        feat = feat + self.cpe_norm(self.cpe_proj(cpe))
        key = ("patch", order_index, self.patch_size)
        patches = point.cache.get(key)
        if patches is None:
            patches = point.cache[key] = patch_index(point.order[order_index], point.offsets, self.patch_size)
        feat = feat + self.drop_path(self.attn(self.norm1(feat), *patches), point.batch)
        return feat + self.drop_path(self.mlp(self.norm2(feat)), point.batch)


__all__ = ["PTv3Block", "SerializedAttention", "patch_index"]
