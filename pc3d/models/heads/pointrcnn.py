"""PointRCNN-style two-stage head (Shi et al., CVPR 2019) on packed LiDAR point clouds.

Stage 1 (per point): foreground segmentation (sigmoid focal loss) and bin-based 3D box regression
from every point, decoded into proposals and filtered by rotated BEV NMS. Stage 2 (switchable with
``use_rcnn``): RoI point pooling in enlarged proposals, canonical transform, a PointNet++ encoder and
bin-based refinement with a confidence. Boxes are LiDAR ``[x, y, z, dx, dy, dz, yaw]`` (``dx`` along
the heading); bins live in the x-y ground plane, z is a direct residual.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pc3d.kernels.packing import offsets_from_counts
from pc3d.models.pointformer_layers import SetAbstraction

from .bins import BinCoder
from .common import box_ops, mlp, segments

#: KITTI class mean sizes (l, w, h) for Car, Pedestrian, Cyclist (mmdet3d PointRCNN).
KITTI_MEAN_SIZES: tuple[tuple[float, float, float], ...] = (
    (3.9, 1.6, 1.56),
    (0.8, 0.6, 1.73),
    (1.76, 0.6, 1.73),
)

DEFAULT_LOSS_WEIGHTS: dict[str, float] = {"rpn_cls": 1.0, "rpn_reg": 1.0, "rcnn_cls": 1.0, "rcnn_reg": 1.0}


def rotate_z(xyz: Tensor, angle: Tensor) -> Tensor:
    """Rotate ``xyz (..., 3)`` by ``angle`` (broadcast over the leading dims) about +z."""
    c, s = torch.cos(angle), torch.sin(angle)
    x, y = xyz[..., 0], xyz[..., 1]
    return torch.stack([x * c - y * s, x * s + y * c, xyz[..., 2]], -1)


def sigmoid_focal_loss(logits: Tensor, target: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Element-wise sigmoid focal loss (Lin et al. 2017)."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    pt = p * target + (1 - p) * (1 - target)
    w = alpha * target + (1 - alpha) * (1 - target)
    return w * (1 - pt) ** gamma * ce


class PointRCNNHead(nn.Module):
    """PointRCNN stage 1 + optional stage 2 on per-point features.

    ``forward(coord (N,3), intensity (N,1), point_feat (N,C), offsets (B+1,), boxes=None, labels=None,
    box_offsets=None)``; ground truth is needed in training (stage-2 RoI sampling). Output dict:
    ``seg_logits (N,K)``, ``reg (N,76)``, ``rois (R,7)``, ``roi_scores (R,)``, ``roi_labels (R,)``,
    ``roi_offsets (B+1,)`` and with stage 2 ``rcnn_cls (R',)``, ``rcnn_reg (R',46)``, ``rcnn_rois (R',7)``,
    ``rcnn_roi_labels``, ``rcnn_roi_offsets`` and (training) ``rcnn_targets``.

    Settings follow the PointRCNN paper / mmdet3d port: stage-1 bins S=3 m, delta=0.5 m, 12 heading bins,
    focal loss alpha 0.25 gamma 2, NMS 0.8 keeping 512 of 9000 in training and 0.85 keeping 100 at test;
    stage 2: 64 RoIs per frame at fg ratio 0.5 from the proposals and 4 jittered copies of each ground-truth
    box (``gt_roi_copies``; centre ±0.25 m, size ×(1±0.1), yaw ±0.2 rad: ``gt_roi_noise``), regression
    IoU 0.55, classification fg > 0.6 / bg < 0.45,
    pooling extra width 1.0 m and 512 points, bins S=1.5 m, delta=0.5 m, 9 heading bins over [-pi/4, pi/4],
    SA encoder (128, 32, all) points, radii (0.2, 0.4), 64 samples, channels (128,128,128)/(128,128,256)/
    (256,256,512), final rotated NMS 0.1.
    """

    def __init__(
        self,
        num_classes: int = 3,
        in_channels: int = 128,
        mean_sizes: Sequence[Sequence[float]] = KITTI_MEAN_SIZES,
        cls_channels: Sequence[int] = (128,),
        reg_channels: Sequence[int] = (128,),
        loc_scope: float = 3.0,
        loc_bin_size: float = 0.5,
        num_heading_bins: int = 12,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        nms_pre_train: int = 9000,
        nms_post_train: int = 512,
        nms_thr_train: float = 0.8,
        nms_pre_test: int = 9000,
        nms_post_test: int = 100,
        nms_thr_test: float = 0.85,
        use_rcnn: bool = True,
        rois_per_frame: int = 64,
        roi_fg_ratio: float = 0.5,
        gt_roi_copies: int = 4,
        gt_roi_noise: Sequence[float] = (0.25, 0.1, 0.2),
        reg_fg_thresh: float = 0.55,
        cls_fg_thresh: float = 0.6,
        cls_bg_thresh: float = 0.45,
        pool_extra_width: float = 1.0,
        pool_points: int = 512,
        depth_normalizer: float = 70.0,
        rcnn_loc_scope: float = 1.5,
        rcnn_loc_bin_size: float = 0.5,
        rcnn_heading_bins: int = 9,
        rcnn_local_channels: Sequence[int] = (128, 128),
        rcnn_sa_points: Sequence[int] = (128, 32),
        rcnn_sa_radii: Sequence[float] = (0.2, 0.4),
        rcnn_sa_samples: Sequence[int] = (64, 64),
        rcnn_sa_channels: Sequence[Sequence[int]] = ((128, 128, 128), (128, 128, 256), (256, 256, 512)),
        rcnn_fc_channels: Sequence[int] = (256, 256),
        final_nms_thr: float = 0.1,
        score_threshold: float = 0.1,
        max_detections: int = 100,
        loss_weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        ms = torch.as_tensor(mean_sizes, dtype=torch.float32)
        if ms.shape != (num_classes, 3) or bool((ms <= 0).any()):
            raise ValueError(f"mean_sizes: expected ({num_classes}, 3) positive sizes, got {tuple(ms.shape)}")
        if len(rcnn_sa_channels) != len(rcnn_sa_points) + 1:
            raise ValueError("rcnn_sa_channels: expected one channel list per SA layer plus the global one")
        unknown = set(loss_weights or {}) - set(DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise ValueError(
                f"loss_weights: unknown keys {sorted(unknown)}; valid: {sorted(DEFAULT_LOSS_WEIGHTS)}"
            )
        self.num_classes = num_classes
        self.register_buffer("mean_sizes", ms)
        self.coder = BinCoder(loc_scope, loc_bin_size, num_heading_bins, 2 * math.pi)
        self.rcnn_coder = BinCoder(rcnn_loc_scope, rcnn_loc_bin_size, rcnn_heading_bins, math.pi / 2)
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.nms_train = (nms_pre_train, nms_post_train, nms_thr_train)
        self.nms_test = (nms_pre_test, nms_post_test, nms_thr_test)
        self.use_rcnn = use_rcnn
        self.rois_per_frame, self.roi_fg_ratio = rois_per_frame, roi_fg_ratio
        if gt_roi_copies < 0 or len(gt_roi_noise) != 3 or min(gt_roi_noise) < 0 or gt_roi_noise[1] >= 1:
            raise ValueError(
                f"gt_roi_copies, gt_roi_noise: expected >= 0 copies and 3 noise scales >= 0 (centre m, "
                f"size fraction < 1, yaw rad), got {gt_roi_copies}, {list(gt_roi_noise)}"
            )
        self.gt_roi_copies, self.gt_roi_noise = gt_roi_copies, tuple(float(v) for v in gt_roi_noise)
        self.reg_fg_thresh, self.cls_fg_thresh, self.cls_bg_thresh = (
            reg_fg_thresh,
            cls_fg_thresh,
            cls_bg_thresh,
        )
        self.pool_extra_width, self.pool_points, self.depth_normalizer = (
            pool_extra_width,
            pool_points,
            depth_normalizer,
        )
        self.final_nms_thr, self.score_threshold, self.max_detections = (
            final_nms_thr,
            score_threshold,
            max_detections,
        )
        self.loss_weights = {**DEFAULT_LOSS_WEIGHTS, **(loss_weights or {})}
        self.cls_layer = nn.Sequential(
            mlp([in_channels, *cls_channels]), nn.Linear(cls_channels[-1], num_classes)
        )
        self.reg_layer = nn.Sequential(
            mlp([in_channels, *reg_channels]), nn.Linear(reg_channels[-1], self.coder.channels)
        )
        nn.init.constant_(self.cls_layer[-1].bias, -math.log((1 - 0.01) / 0.01))
        if use_rcnn:
            self.local_mlp = mlp([6, *rcnn_local_channels])
            c = rcnn_local_channels[-1]
            self.merge_mlp = mlp([c + in_channels, c])
            self.sa = nn.ModuleList()
            for i, ch in enumerate(rcnn_sa_channels):
                npts = rcnn_sa_points[i] if i < len(rcnn_sa_points) else None
                r = rcnn_sa_radii[i] if i < len(rcnn_sa_radii) else 1.0
                k = rcnn_sa_samples[i] if i < len(rcnn_sa_samples) else 1
                self.sa.append(SetAbstraction(c, ch, npts, r, k))
                c = ch[-1]
            self.rcnn_cls = nn.Sequential(mlp([c, *rcnn_fc_channels]), nn.Linear(rcnn_fc_channels[-1], 1))
            self.rcnn_reg = nn.Sequential(
                mlp([c, *rcnn_fc_channels]), nn.Linear(rcnn_fc_channels[-1], self.rcnn_coder.channels)
            )

    # ------------------------------------------------------------------ stage 1
    def decode_points(self, coord: Tensor, reg: Tensor, labels: Tensor) -> Tensor:
        """Per-point box predictions ``(N,7)`` from ``reg (N,76)`` and the class used for the anchor size."""
        off, yaw, size = self.coder.decode(reg, self.mean_sizes[labels])
        return torch.cat([coord + off, size, yaw[:, None]], 1)

    def proposals(self, coord: Tensor, seg: Tensor, reg: Tensor, offsets: Tensor) -> dict[str, Tensor]:
        """Rotated-NMS proposals per cloud: ``rois (R,7)``, ``roi_scores``, ``roi_labels``, ``roi_offsets``."""
        pre, post, thr = self.nms_train if self.training else self.nms_test
        with torch.no_grad():
            prob = torch.sigmoid(seg)
            scores, labels = prob.max(1)
            boxes = self.decode_points(coord, reg, labels)
            bops = box_ops()
            out_b, out_s, out_l, counts = [], [], [], []
            for s, e in segments(offsets):
                sc = scores[s:e]
                order = sc.argsort(descending=True)[:pre]
                keep = order[bops.nms_rotated(boxes[s:e][order], sc[order], thr).long()][:post]
                out_b.append(boxes[s:e][keep])
                out_s.append(sc[keep])
                out_l.append(labels[s:e][keep])
                counts.append(len(keep))
        c = torch.tensor(counts, device=coord.device)
        return {
            "rois": torch.cat(out_b),
            "roi_scores": torch.cat(out_s),
            "roi_labels": torch.cat(out_l),
            "roi_offsets": offsets_from_counts(c, device=c.device),
        }

    # ------------------------------------------------------------------ stage 2
    def sample_rois(
        self,
        rois: Tensor,
        roi_labels: Tensor,
        roi_offsets: Tensor,
        boxes: Tensor,
        labels: Tensor,
        box_offsets: Tensor,
    ) -> dict[str, Tensor]:
        """Training RoIs per frame, ``rois_per_frame`` each at ``roi_fg_ratio`` foreground (IoU >
        ``reg_fg_thresh``; background: IoU < ``cls_bg_thresh``), with their targets.

        Candidates are the proposals plus ``gt_roi_copies`` jittered copies of every ground-truth box
        (PointRCNN's RoI noise augmentation): exact copies would teach stage 2 to leave boxes unchanged.
        """
        bops = box_ops()
        out = {k: [] for k in ("rois", "labels", "iou", "gt", "gt_labels")}
        counts = []
        for (rs, re), (bs, be) in zip(segments(roi_offsets), segments(box_offsets)):
            cand, cl = rois[rs:re], roi_labels[rs:re]
            gt, gl = boxes[bs:be], labels[bs:be].long()
            if len(gt):
                jittered = self.jitter_boxes(gt.repeat(self.gt_roi_copies, 1))
                cand, cl = torch.cat([cand, jittered]), torch.cat([cl, gl.repeat(self.gt_roi_copies)])
                iou = bops.boxes_iou3d(cand, gt)
                iou_max, assign = iou.max(1)
            else:
                iou_max = cand.new_zeros(len(cand))
                assign = torch.zeros(len(cand), dtype=torch.long, device=cand.device)
            n = self.rois_per_frame
            fg = torch.nonzero(iou_max > self.reg_fg_thresh).flatten()
            bg = torch.nonzero(iou_max < self.cls_bg_thresh).flatten()
            n_fg = min(int(round(n * self.roi_fg_ratio)), len(fg)) if len(bg) else min(n, len(fg))
            pick = [fg[torch.randperm(len(fg), device=fg.device)[:n_fg]]] if n_fg else []
            n_bg = n - n_fg
            pool = bg if len(bg) else fg
            if n_bg and len(pool):
                pick.append(pool[torch.randint(len(pool), (n_bg,), device=pool.device)])
            if not pick:
                counts.append(0)
                continue
            sel = torch.cat(pick)
            out["rois"].append(cand[sel])
            out["labels"].append(cl[sel])
            out["iou"].append(iou_max[sel])
            gt_sel = gt[assign[sel]] if len(gt) else cand[sel]
            out["gt"].append(gt_sel)
            out["gt_labels"].append(gl[assign[sel]] if len(gt) else cl[sel])
            counts.append(len(sel))
        c = torch.tensor(counts, device=rois.device)
        res = {
            k: (torch.cat(v) if v else rois.new_zeros((0, 7) if k in ("rois", "gt") else (0,)))
            for k, v in out.items()
        }
        res["offsets"] = offsets_from_counts(c, device=c.device)
        return res

    def jitter_boxes(self, boxes: Tensor) -> Tensor:
        """``boxes (M, 7)`` with uniform noise: centre within ``±noise[0]`` m, sizes scaled by ``1 ± noise[1]``,
        yaw within ``±noise[2]`` rad."""
        shift, scale, rot = self.gt_roi_noise

        def uniform(*shape: int) -> Tensor:
            return torch.rand(*shape, device=boxes.device, dtype=boxes.dtype) * 2 - 1

        m = len(boxes)
        return torch.cat(
            [
                boxes[:, :3] + shift * uniform(m, 3),
                boxes[:, 3:6] * (1 + scale * uniform(m, 3)),
                boxes[:, 6:] + rot * uniform(m, 1),
            ],
            1,
        )

    def pool(
        self,
        coord: Tensor,
        point_in: Tensor,
        point_feat: Tensor,
        offsets: Tensor,
        rois: Tensor,
        roi_offsets: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Pool ``pool_points`` points per RoI from its enlarged box, in canonical coordinates.

        Returns ``(xyz (R*P,3) canonical, feat (R*P, 6 + C), empty (R,) bool)``; per point inputs are
        canonical xyz, intensity, stage-1 foreground score and normalised depth, then the point features.
        """
        bops = box_ops()
        P = self.pool_points
        xyz_out, feat_out, empty = [], [], []
        big = rois.clone()
        big[:, 3:6] += 2 * self.pool_extra_width
        for (s, e), (rs, re) in zip(segments(offsets), segments(roi_offsets)):
            if re == rs:
                continue
            mask = bops.points_in_boxes_mask(coord[s:e], big[rs:re])  # (n, r)
            for j in range(re - rs):
                idx = torch.nonzero(mask[:, j]).flatten()
                if len(idx) == 0:
                    empty.append(True)
                    xyz_out.append(coord.new_zeros(P, 3))
                    feat_out.append(coord.new_zeros(P, point_in.shape[1] + point_feat.shape[1]))
                    continue
                empty.append(False)
                if self.training:
                    pick = (
                        idx[torch.randint(len(idx), (P,), device=idx.device)]
                        if len(idx) < P
                        else idx[torch.randperm(len(idx), device=idx.device)[:P]]
                    )
                else:
                    pick = idx[torch.arange(P, device=idx.device) % len(idx)]
                pick = pick + s
                roi = rois[rs + j]
                local = rotate_z(coord[pick] - roi[:3], -roi[6])
                xyz_out.append(local)
                feat_out.append(torch.cat([point_in[pick], point_feat[pick]], 1))
        if not xyz_out:
            return (
                coord.new_zeros(0, 3),
                coord.new_zeros(0, point_in.shape[1] + point_feat.shape[1]),
                torch.zeros(0, dtype=torch.bool, device=coord.device),
            )
        return torch.cat(xyz_out), torch.cat(feat_out), torch.tensor(empty, device=coord.device)

    def rcnn_forward(self, xyz: Tensor, feat: Tensor, num_rois: int) -> tuple[Tensor, Tensor]:
        """``xyz (R*P,3)`` canonical, ``feat (R*P, 3 + C)`` -> ``(cls (R,), reg (R, 46))``."""
        P = self.pool_points
        n_in = 3
        local = self.local_mlp(torch.cat([xyz, feat[:, :n_in]], 1))
        x = self.merge_mlp(torch.cat([local, feat[:, n_in:]], 1))
        off = torch.arange(num_rois + 1, device=xyz.device) * P
        p = xyz
        for sa in self.sa:
            p, x, off = sa(p, x, off)
        return self.rcnn_cls(x)[:, 0], self.rcnn_reg(x)

    def rcnn_targets(self, rois: Tensor, gt: Tensor, gt_labels: Tensor) -> dict[str, Tensor]:
        """Stage-2 regression targets of ``gt (R,7)`` in the canonical frame of ``rois (R,7)``."""
        off = rotate_z(gt[:, :3] - rois[:, :3], -rois[:, 6])
        yaw = torch.remainder(gt[:, 6] - rois[:, 6] + math.pi, 2 * math.pi) - math.pi
        flip = yaw.abs() > math.pi / 2
        yaw = torch.where(flip, torch.remainder(yaw, 2 * math.pi) - math.pi, yaw)
        yaw = yaw.clamp(-math.pi / 4, math.pi / 4)
        return self.rcnn_coder.encode_targets(off, yaw, gt[:, 3:6], self.mean_sizes[gt_labels])

    # ------------------------------------------------------------------ forward / loss / predict
    def forward(
        self,
        coord: Tensor,
        intensity: Tensor,
        point_feat: Tensor,
        offsets: Tensor,
        boxes: Tensor | None = None,
        labels: Tensor | None = None,
        box_offsets: Tensor | None = None,
    ) -> dict[str, Tensor]:
        seg = self.cls_layer(point_feat)
        reg = self.reg_layer(point_feat)
        out = {"seg_logits": seg, "reg": reg, **self.proposals(coord, seg, reg, offsets)}
        if not self.use_rcnn:
            return out
        rois, roi_labels, roi_off = out["rois"], out["roi_labels"], out["roi_offsets"]
        if self.training:
            if boxes is None or labels is None or box_offsets is None:
                raise ValueError("boxes/labels/box_offsets: stage 2 needs ground truth in training")
            samp = self.sample_rois(rois, roi_labels, roi_off, boxes, labels, box_offsets)
            rois, roi_labels, roi_off = samp["rois"], samp["labels"], samp["offsets"]
            out["rcnn_iou"], out["rcnn_gt"], out["rcnn_gt_labels"] = (
                samp["iou"],
                samp["gt"],
                samp["gt_labels"],
            )
        fg = torch.sigmoid(seg).max(1).values.detach()
        depth = coord.norm(dim=1) / self.depth_normalizer - 0.5
        point_in = torch.cat([intensity, fg[:, None], depth[:, None]], 1)
        xyz, feat, empty = self.pool(coord, point_in, point_feat, offsets, rois, roi_off)
        if len(rois):
            cls, rreg = self.rcnn_forward(xyz, feat, len(rois))
        else:
            cls, rreg = rois.new_zeros(0), rois.new_zeros(0, self.rcnn_coder.channels)
        out.update(
            rcnn_cls=cls, rcnn_reg=rreg, rcnn_rois=rois, rcnn_roi_labels=roi_labels, rcnn_roi_offsets=roi_off
        )
        out["rcnn_empty"] = empty
        return out

    def loss(
        self,
        out: Mapping[str, Tensor],
        coord: Tensor,
        fg_box: Tensor,
        boxes: Tensor,
        labels: Tensor,
    ) -> dict[str, Tensor]:
        """Loss terms and their weighted sum ``loss``.

        ``fg_box (N,)`` is the global index into ``boxes (M,7)`` of the box containing each point (-1 for
        background); ``labels (M,)`` the box classes.
        """
        w = self.loss_weights
        seg = out["seg_logits"]
        fg = fg_box >= 0
        target = torch.zeros_like(seg)
        if bool(fg.any()):
            target[fg, labels[fg_box[fg]].long()] = 1.0
        n_fg = fg.sum().clamp_min(1).to(seg.dtype)
        rpn_cls = sigmoid_focal_loss(seg, target, self.focal_alpha, self.focal_gamma).sum() / n_fg
        terms: dict[str, Tensor] = {"rpn_cls": w["rpn_cls"] * rpn_cls}
        if bool(fg.any()):
            b = boxes[fg_box[fg]]
            lab = labels[fg_box[fg]].long()
            t = self.coder.encode_targets(b[:, :3] - coord[fg], b[:, 6], b[:, 3:6], self.mean_sizes[lab])
            parts = self.coder.loss(out["reg"][fg], t)
            terms["rpn_reg"] = w["rpn_reg"] * sum(parts.values())
        else:
            terms["rpn_reg"] = out["reg"].sum() * 0.0
        if self.use_rcnn and "rcnn_iou" in out:
            iou = out["rcnn_iou"]
            cls = out["rcnn_cls"]
            cls_t = (iou > self.cls_fg_thresh).to(cls.dtype)
            valid = (iou > self.cls_fg_thresh) | (iou < self.cls_bg_thresh)
            if bool(valid.any()):
                terms["rcnn_cls"] = w["rcnn_cls"] * F.binary_cross_entropy_with_logits(
                    cls[valid], cls_t[valid]
                )
            else:
                terms["rcnn_cls"] = cls.sum() * 0.0
            reg_m = (iou > self.reg_fg_thresh) & ~out["rcnn_empty"]
            if bool(reg_m.any()):
                t = self.rcnn_targets(
                    out["rcnn_rois"][reg_m], out["rcnn_gt"][reg_m], out["rcnn_gt_labels"][reg_m]
                )
                terms["rcnn_reg"] = w["rcnn_reg"] * sum(
                    self.rcnn_coder.loss(out["rcnn_reg"][reg_m], t).values()
                )
            else:
                terms["rcnn_reg"] = out["rcnn_reg"].sum() * 0.0
        terms["loss"] = sum(terms.values())
        return terms

    @torch.no_grad()
    def predict(self, out: Mapping[str, Tensor]) -> list[dict[str, Tensor]]:
        """Per-cloud detections ``{boxes (K,7), scores (K,), labels (K,)}`` (LiDAR frame).

        Without stage 2 these are the stage-1 proposals (score = foreground probability); with it the
        refined RoIs scored by the stage-2 confidence, filtered by ``score_threshold`` and class-wise
        rotated NMS (``final_nms_thr``), at most ``max_detections`` per cloud.
        """
        if not self.use_rcnn:
            res = []
            for s, e in segments(out["roi_offsets"]):
                sc = out["roi_scores"][s:e]
                k = torch.nonzero(sc > self.score_threshold).flatten()[: self.max_detections]
                res.append(
                    {"boxes": out["rois"][s:e][k], "scores": sc[k], "labels": out["roi_labels"][s:e][k]}
                )
            return res
        rois, labels = out["rcnn_rois"], out["rcnn_roi_labels"]
        off, yaw, size = self.rcnn_coder.decode(out["rcnn_reg"], self.mean_sizes[labels])
        centre = rois[:, :3] + rotate_z(off, rois[:, 6])
        yaw = torch.atan2(torch.sin(rois[:, 6] + yaw), torch.cos(rois[:, 6] + yaw))
        boxes = torch.cat([centre, size, yaw[:, None]], 1)
        scores = torch.sigmoid(out["rcnn_cls"])
        scores = torch.where(out["rcnn_empty"], torch.zeros_like(scores), scores)
        bops = box_ops()
        res = []
        for s, e in segments(out["rcnn_roi_offsets"]):
            b, sc, lab = boxes[s:e], scores[s:e], labels[s:e]
            m = sc > self.score_threshold
            b, sc, lab = b[m], sc[m], lab[m]
            keep_all = []
            for c in lab.unique():
                ci = torch.nonzero(lab == c).flatten()
                keep_all.append(ci[bops.nms_rotated(b[ci], sc[ci], self.final_nms_thr).long()])
            keep = torch.cat(keep_all) if keep_all else torch.zeros(0, dtype=torch.long, device=b.device)
            keep = keep[sc[keep].argsort(descending=True)][: self.max_detections]
            res.append({"boxes": b[keep], "scores": sc[keep], "labels": lab[keep]})
        return res
