"""VoteNet detection head (Qi et al., ICCV 2019) with the mmdet3d loss recipe, on packed seeds."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import angle_to_class, box_ops, class_to_angle, mlp, point_ops, segments

DEFAULT_LOSS_WEIGHTS: dict[str, float] = {
    "vote": 10.0,
    "objectness": 5.0,
    "center": 10.0,
    "center_dst": 10.0,
    "dir_class": 1.0,
    "dir_res": 10.0,
    "size_class": 1.0,
    "size_res": 10.0 / 3.0,
    "semantic": 1.0,
}


class VoteNetHead(nn.Module):
    """Voting, vote aggregation and proposal generation, with losses and decoding.

    ``forward(seed_xyz (S,3), seed_feat (S,C), seed_offsets (B+1,))`` returns a dict of packed tensors:
    ``vote_xyz (S,3)``, ``agg_xyz (P,3)``, ``proposal_offsets (B+1,)``, ``objectness (P,2)``,
    ``center (P,3)``,
    ``dir_class (P,NH)``, ``dir_res_norm (P,NH)``, ``size_class (P,NS)``, ``size_res_norm (P,NS,3)``,
    ``sem (P,num_classes)``.

    One size cluster per class: ``mean_sizes (num_classes, 3)``, the dataset's per-class mean box sizes
    in its class order, a required argument (e.g. ScanNet's
    :data:`pc3d.data.scannet.classes.SCANNET_DET_MEAN_SIZES`, given in the ScanNet configs, or
    :func:`~pc3d.models.heads.common.class_mean_sizes` of the training boxes); the loss stops with a
    clear error when the data's class ids do not fit them. Proposals: D-FPS on
    votes in training (``sample_mode_train``) and on seeds at test (``sample_mode_test``), ball query
    of ``agg_radius`` / ``agg_samples`` over votes with xyz normalised by the radius, PointNet MLP,
    max-pool, then a proposal MLP. Losses follow mmdet3d's VoteNet (weights ``loss_weights``): vote
    L1 x10, objectness CE [0.2, 0.8] x5 (positive < 0.3 m, negative > 0.6 m), two-way center L2 10/10,
    heading bin CE / SmoothL1 residual, size cluster CE / SmoothL1 normalised residual x10/3, semantic CE.
    """

    def __init__(
        self,
        num_classes: int = 18,
        in_channels: int = 256,
        *,
        mean_sizes: Sequence[Sequence[float]],
        num_heading_bins: int = 1,
        with_rot: bool = False,
        vote_channels: Sequence[int] = (256, 256),
        num_proposals: int = 256,
        agg_radius: float = 0.3,
        agg_samples: int = 16,
        agg_channels: Sequence[int] = (128, 128, 128),
        proposal_channels: Sequence[int] = (128, 128),
        sample_mode_train: str = "vote",
        sample_mode_test: str = "seed",
        pos_distance: float = 0.3,
        neg_distance: float = 0.6,
        objectness_class_weights: Sequence[float] = (0.2, 0.8),
        loss_weights: Mapping[str, float] | None = None,
        nms_iou: float = 0.25,
        score_threshold: float = 0.05,
        min_points: int = 5,
        per_class_proposal: bool = True,
    ) -> None:
        super().__init__()
        ms = torch.as_tensor(mean_sizes, dtype=torch.float32)
        if ms.dim() != 2 or ms.shape[1] != 3 or ms.shape[0] != num_classes:
            raise ValueError(f"mean_sizes: expected ({num_classes}, 3), got {tuple(ms.shape)}")
        if bool((ms <= 0).any()):
            raise ValueError("mean_sizes: every mean size must be positive")
        for name, mode in (("sample_mode_train", sample_mode_train), ("sample_mode_test", sample_mode_test)):
            if mode not in ("vote", "seed"):
                raise ValueError(f"{name}: expected 'vote' or 'seed', got {mode!r}")
        unknown = set(loss_weights or {}) - set(DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise ValueError(
                f"loss_weights: unknown keys {sorted(unknown)}; valid: {sorted(DEFAULT_LOSS_WEIGHTS)}"
            )
        self.num_classes, self.num_heading_bins, self.with_rot = num_classes, num_heading_bins, with_rot
        self.register_buffer("mean_sizes", ms)
        self.num_proposals, self.agg_radius, self.agg_samples = num_proposals, agg_radius, agg_samples
        self.sample_mode_train, self.sample_mode_test = sample_mode_train, sample_mode_test
        self.pos_distance, self.neg_distance = pos_distance, neg_distance
        self.register_buffer("obj_weights", torch.as_tensor(objectness_class_weights, dtype=torch.float32))
        self.loss_weights = {**DEFAULT_LOSS_WEIGHTS, **(loss_weights or {})}
        self.nms_iou, self.score_threshold, self.min_points = nms_iou, score_threshold, min_points
        self.per_class_proposal = per_class_proposal
        self.vote_mlp = nn.Sequential(
            mlp([in_channels, *vote_channels]), nn.Linear(vote_channels[-1], 3 + in_channels)
        )
        self.agg_mlp = mlp([in_channels + 3, *agg_channels])
        nh, ns = num_heading_bins, num_classes
        self.num_out = 2 + 3 + 2 * nh + 4 * ns + num_classes
        self.proposal = nn.Sequential(
            mlp([agg_channels[-1], *proposal_channels]), nn.Linear(proposal_channels[-1], self.num_out)
        )

    # ------------------------------------------------------------------ forward
    def forward(self, seed_xyz: Tensor, seed_feat: Tensor, seed_offsets: Tensor) -> dict[str, Tensor]:
        c = seed_feat.shape[1]
        v = self.vote_mlp(seed_feat)
        vote_xyz = seed_xyz + v[:, :3]
        vote_feat = F.normalize(seed_feat + v[:, 3:], dim=1)
        counts = seed_offsets[1:] - seed_offsets[:-1]
        if counts.numel() and int(counts.min()) < self.num_proposals:
            raise ValueError(
                f"num_proposals: every cloud needs >= {self.num_proposals} seeds, got {counts.tolist()}"
            )
        mode = self.sample_mode_train if self.training else self.sample_mode_test
        ops = point_ops()
        with torch.no_grad():
            src = (vote_xyz if mode == "vote" else seed_xyz).detach()
            idx, p_off = ops.furthest_point_sample(src, seed_offsets, self.num_proposals)
            idx, p_off = idx.long(), p_off.long()
        agg_xyz = vote_xyz[idx]
        with torch.no_grad():
            nbr = ops.ball_query(
                vote_xyz.detach(), seed_offsets, agg_xyz.detach(), p_off, self.agg_radius, self.agg_samples
            ).long()
            nbr = torch.where(nbr < 0, idx.unsqueeze(1).expand_as(nbr), nbr)
        rel = (vote_xyz[nbr] - agg_xyz.unsqueeze(1)) / self.agg_radius
        g = torch.cat([rel, vote_feat[nbr]], -1)  # (P, k, 3 + C)
        p, k = g.shape[:2]
        h = self.agg_mlp(g.reshape(p * k, 3 + c)).reshape(p, k, -1).max(1).values
        out = self.proposal(h)
        nh, ns = self.num_heading_bins, self.num_classes
        o = 0

        def take(n: int) -> Tensor:
            nonlocal o
            t = out[:, o : o + n]
            o += n
            return t

        res = {
            "vote_xyz": vote_xyz,
            "agg_xyz": agg_xyz,
            "proposal_offsets": p_off,
            "objectness": take(2),
            "center": agg_xyz + take(3),
            "dir_class": take(nh),
            "dir_res_norm": take(nh),
            "size_class": take(ns),
            "size_res_norm": take(3 * ns).reshape(-1, ns, 3),
            "sem": take(self.num_classes),
        }
        return res

    # ------------------------------------------------------------------ targets / loss
    def vote_targets(
        self, seed_xyz: Tensor, seed_indices: Tensor, coord: Tensor, vote_target: Tensor, vote_mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Vote targets against the (possibly refined) seeds.

        ``vote_target (N,3)`` is the offset from each input point to its object centre and ``vote_mask (N,)``
        marks points on objects. The object centre of seed ``s`` is ``coord[src] + vote_target[src]`` with
        ``src = seed_indices[s]``; the returned target is that centre (absolute, ``(S,3)``), so the vote
        offset is learned relative to the seed's actual (refined) position.
        Returns ``(centre (S,3), mask (S,))``.
        """
        src = seed_indices.long()
        return coord[src] + vote_target[src], vote_mask[src].bool()

    def loss(
        self,
        out: Mapping[str, Tensor],
        vote_center: Tensor,
        vote_mask: Tensor,
        boxes: Tensor,
        labels: Tensor,
        box_offsets: Tensor,
    ) -> dict[str, Tensor]:
        """Loss terms (already weighted) and their sum ``loss``.

        ``vote_center (S,3)`` / ``vote_mask (S,)`` from :meth:`vote_targets`; ``boxes (M,7)``,
        ``labels (M,)``, ``box_offsets (B+1,)`` the ground truth.
        """
        w = self.loss_weights
        eps = 1e-6
        vm = vote_mask.float()
        vote = (out["vote_xyz"] - vote_center).abs().sum(1)
        loss_vote = (vote * vm).sum() / (vm.sum() + eps)

        centers = out["center"]
        agg = out["agg_xyz"]
        P = agg.shape[0]
        dev = agg.device
        obj_t = torch.zeros(P, dtype=torch.long, device=dev)
        obj_m = torch.ones(P, device=dev)
        assign = torch.zeros(P, dtype=torch.long, device=dev)
        center_dst = agg.new_zeros(())
        n_gt = 0
        for (ps, pe), (bs, be) in zip(segments(out["proposal_offsets"]), segments(box_offsets)):
            if be == bs:
                continue
            gt = boxes[bs:be, :3]
            d = torch.cdist(agg[ps:pe].detach(), gt)
            dmin, a = d.min(1)
            assign[ps:pe] = a + bs
            obj_t[ps:pe] = (dmin < self.pos_distance).long()
            obj_m[ps:pe] = ((dmin < self.pos_distance) | (dmin > self.neg_distance)).float()
            d2 = ((centers[ps:pe].unsqueeze(1) - gt.unsqueeze(0)) ** 2).sum(-1)
            center_dst = center_dst + d2.min(0).values.sum()
            n_gt += be - bs
        obj_w = obj_m / (obj_m.sum() + eps)
        ce = F.cross_entropy(out["objectness"], obj_t, weight=self.obj_weights, reduction="none")
        loss_obj = (ce * obj_w).sum()

        pos = obj_t.float()
        bw = pos / (pos.sum() + eps)
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < self.num_classes:
            raise ValueError(
                f"box_labels: class ids {int(labels.min())}..{int(labels.max())} do not fit the head's "
                f"{self.num_classes} classes (mean_sizes has one row per class of the data, in its order)"
            )
        if len(boxes):
            tgt = boxes[assign]
            tlab = labels[assign].long()
        else:
            tgt = agg.new_zeros(P, 7)
            tlab = torch.zeros(P, dtype=torch.long, device=dev)
        loss_center = (((centers - tgt[:, :3]) ** 2).sum(1) * bw).sum()
        loss_center_dst = center_dst / (n_gt + eps)
        dcls, dres = angle_to_class(tgt[:, 6], self.num_heading_bins)
        loss_dir_cls = (F.cross_entropy(out["dir_class"], dcls, reduction="none") * bw).sum()
        dres_pred = out["dir_res_norm"].gather(1, dcls[:, None])[:, 0]
        dres_t = dres / (math.pi / self.num_heading_bins)
        loss_dir_res = (F.smooth_l1_loss(dres_pred, dres_t, reduction="none") * bw).sum()
        loss_size_cls = (F.cross_entropy(out["size_class"], tlab, reduction="none") * bw).sum()
        mean = self.mean_sizes[tlab]
        sres_t = (tgt[:, 3:6] - mean) / mean
        sres_pred = out["size_res_norm"][torch.arange(P, device=dev), tlab]
        loss_size_res = (F.smooth_l1_loss(sres_pred, sres_t, reduction="none").sum(1) * bw).sum()
        loss_sem = (F.cross_entropy(out["sem"], tlab, reduction="none") * bw).sum()
        terms = {
            "vote": w["vote"] * loss_vote,
            "objectness": w["objectness"] * loss_obj,
            "center": w["center"] * loss_center + w["center_dst"] * loss_center_dst,
            "dir_class": w["dir_class"] * loss_dir_cls,
            "dir_res": w["dir_res"] * loss_dir_res,
            "size_class": w["size_class"] * loss_size_cls,
            "size_res": w["size_res"] * loss_size_res,
            "semantic": w["semantic"] * loss_sem,
        }
        terms["loss"] = sum(terms.values())
        return terms

    # ------------------------------------------------------------------ decoding
    def decode(self, out: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Packed proposals -> ``(boxes (P,7), objectness (P,), class probabilities (P,num_classes))``."""
        P = out["center"].shape[0]
        ar = torch.arange(P, device=out["center"].device)
        dcls = out["dir_class"].argmax(1)
        dres = out["dir_res_norm"][ar, dcls] * (math.pi / self.num_heading_bins)
        yaw = class_to_angle(dcls, dres, self.num_heading_bins) if self.with_rot else torch.zeros_like(dres)
        scls = out["size_class"].argmax(1)
        mean = self.mean_sizes[scls]
        size = (mean + out["size_res_norm"][ar, scls] * mean).clamp_min(1e-3)
        boxes = torch.cat([out["center"], size, yaw[:, None]], 1)
        return boxes, out["objectness"].softmax(1)[:, 1], out["sem"].softmax(1)

    @torch.no_grad()
    def predict(self, out: Mapping[str, Tensor], coord: Tensor, offsets: Tensor) -> list[dict[str, Tensor]]:
        """Per-cloud detections ``{boxes (K,7), scores (K,), labels (K,)}`` after post-processing.

        Boxes containing ``<= min_points`` of the cloud's points (``coord (N,3)``, ``offsets``) are dropped,
        class-aware axis-aligned 3D NMS (``nms_iou``, class = argmax of the semantic scores, score =
        objectness), then with ``per_class_proposal`` each kept box is emitted once per class with score
        ``objectness x P(class)``, keeping scores ``> score_threshold``.
        """
        boxes, obj, sem = self.decode(out)
        bops = box_ops()
        results = []
        for (ps, pe), (s, e) in zip(segments(out["proposal_offsets"]), segments(offsets)):
            b, o, p = boxes[ps:pe], obj[ps:pe], sem[ps:pe]
            if self.min_points > 0:
                inside = bops.points_in_boxes_mask(coord[s:e], b).sum(0)
                keep = inside > self.min_points
                b, o, p = b[keep], o[keep], p[keep]
            lab = p.argmax(1)
            if len(b):
                shift = b.clone()
                shift[:, 0] += lab.to(b.dtype) * (b[:, :3].abs().max() * 4 + 1e3)
                keep = bops.nms_aligned(shift, o, self.nms_iou).long()
                b, o, p, lab = b[keep], o[keep], p[keep], lab[keep]
            if self.per_class_proposal:
                sc = o[:, None] * p  # (K, C)
                ki, kc = torch.nonzero(sc > self.score_threshold, as_tuple=True)
                res = {"boxes": b[ki], "scores": sc[ki, kc], "labels": kc}
            else:
                sc = o * p.gather(1, lab[:, None])[:, 0]
                k = sc > self.score_threshold
                res = {"boxes": b[k], "scores": sc[k], "labels": lab[k]}
            results.append(res)
        return results
