"""KITTI object detection evaluation, official protocol, pure CPU (numba, no ``numba.cuda``).

Re-implements the protocol of the KITTI devkit as ported to Python by OpenPCDet / mmdet3d
(``kitti_object_eval_python/eval.py``; datasets.md B4):

* metrics: 2D ``bbox`` (image IoU), ``bev`` (rotated IoU in the camera x–z plane), ``3d``
  (BEV intersection × y-overlap) and ``aos`` (average orientation similarity, with ``bbox``);
* difficulties easy/moderate/hard (cumulative; a GT is ignored when occluded > max, truncated > max
  or bbox height ≤ min; detections with height < min are ignored);
* neighbour classes: a Van GT for Car, a Person_sitting GT for Pedestrian is ignored (neither TP
  nor FN, a detection matched to it is not an FP);
* DontCare regions suppress unmatched detections for the 2D bbox metric only
  (intersection / detection area > threshold);
* greedy matching per GT with strict ``IoU > threshold``, 41 recall-sampled score thresholds,
  interpolated precision, AP R11 (every 4th sample / 11) and AP R40 (samples 1..40 / 40).

Inputs are annotation dicts as produced by :func:`pc3d.data.kitti.labels.read_label`
(``name, truncated, occluded, alpha, bbox (N,4), dimensions (N,3) l,h,w, location (N,3),
rotation_y, score``). Rotated-rectangle IoU comes from :mod:`pc3d.kernels.boxes`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np

METRICS = ("bbox", "bev", "3d")
#: Main IoU thresholds per class for (bbox, bev, 3d).
MIN_OVERLAPS = {
    "Car": (0.7, 0.7, 0.7),
    "Pedestrian": (0.5, 0.5, 0.5),
    "Cyclist": (0.5, 0.5, 0.5),
    "Van": (0.7, 0.7, 0.7),
    "Person_sitting": (0.5, 0.5, 0.5),
    "Truck": (0.7, 0.7, 0.7),
}
#: The second, loose set of OpenPCDet's report.
MIN_OVERLAPS_LOOSE = {
    "Car": (0.7, 0.5, 0.5),
    "Pedestrian": (0.5, 0.25, 0.25),
    "Cyclist": (0.5, 0.25, 0.25),
    "Van": (0.7, 0.5, 0.5),
    "Person_sitting": (0.5, 0.25, 0.25),
    "Truck": (0.5, 0.5, 0.5),
}
DIFFICULTIES = ("easy", "moderate", "hard")
MIN_HEIGHT = (40.0, 25.0, 25.0)
MAX_OCCLUSION = (0, 1, 2)
MAX_TRUNCATION = (0.15, 0.3, 0.5)
NEIGHBOUR = {"car": "van", "pedestrian": "person_sitting"}
N_SAMPLE_PTS = 41
_NO_DETECTION = -10000000.0


# --------------------------------------------------------------------------- IoU
@numba.njit(cache=True)
def image_box_overlap(boxes: np.ndarray, qboxes: np.ndarray, criterion: int = -1) -> np.ndarray:
    """Pairwise 2D overlap ``(N, K)`` of ``[x1, y1, x2, y2]`` boxes.

    ``criterion`` −1: IoU; 0: intersection / area of ``boxes[i]``; 1: intersection / area of ``qboxes[j]``.
    """
    n, k = boxes.shape[0], qboxes.shape[0]
    out = np.zeros((n, k), dtype=np.float64)
    for j in range(k):
        qa = (qboxes[j, 2] - qboxes[j, 0]) * (qboxes[j, 3] - qboxes[j, 1])
        for i in range(n):
            iw = min(boxes[i, 2], qboxes[j, 2]) - max(boxes[i, 0], qboxes[j, 0])
            if iw > 0:
                ih = min(boxes[i, 3], qboxes[j, 3]) - max(boxes[i, 1], qboxes[j, 1])
                if ih > 0:
                    a = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
                    if criterion == -1:
                        ua = a + qa - iw * ih
                    elif criterion == 0:
                        ua = a
                    else:
                        ua = qa
                    out[i, j] = iw * ih / ua
    return out


def _rotated_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection areas ``(N, M)`` of rotated rectangles ``(cx, cy, l, w, ry)`` (camera x–z plane).

    Uses :func:`pc3d.kernels.boxes.rotated_polygon_intersection_2d` (exact polygon clipping, float64).
    Rows/columns with a non-positive size (DontCare's ``-1``) get 0.
    """
    out = np.zeros((a.shape[0], b.shape[0]), dtype=np.float64)
    va = (a[:, 2] > 0) & (a[:, 3] > 0)
    vb = (b[:, 2] > 0) & (b[:, 3] > 0)
    if not va.any() or not vb.any():
        return out
    from pc3d.kernels.boxes import rotated_polygon_intersection_2d

    inter = rotated_polygon_intersection_2d(np.ascontiguousarray(a[va]), np.ascontiguousarray(b[vb]))
    out[np.ix_(va, vb)] = np.asarray(inter, dtype=np.float64)
    return out


@numba.njit(cache=True)
def _bev_3d_from_intersection(inter: np.ndarray, boxes: np.ndarray, qboxes: np.ndarray):
    """BEV IoU and 3D IoU ``(N, K)`` from BEV intersections; camera boxes ``[x, y, z, l, h, w, ry]``
    whose y spans ``[y − h, y]`` (official ``d3_box_overlap``)."""
    n, k = boxes.shape[0], qboxes.shape[0]
    bev = np.zeros((n, k), dtype=np.float64)
    iou3d = np.zeros((n, k), dtype=np.float64)
    for i in range(n):
        ai = boxes[i, 3] * boxes[i, 5]
        for j in range(k):
            inc = inter[i, j]
            if inc <= 0:
                continue
            aj = qboxes[j, 3] * qboxes[j, 5]
            bev[i, j] = inc / (ai + aj - inc)
            ih = min(boxes[i, 1], qboxes[j, 1]) - max(boxes[i, 1] - boxes[i, 4], qboxes[j, 1] - qboxes[j, 4])
            if ih > 0:
                vol = ih * inc
                iou3d[i, j] = vol / (ai * boxes[i, 4] + aj * qboxes[j, 4] - vol)
    return bev, iou3d


def frame_overlaps(dt: dict, gt: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Overlaps ``(num_dt, num_gt)`` of one frame for bbox, bev and 3d (all classes)."""
    dbb = np.asarray(dt["bbox"], np.float64).reshape(-1, 4)
    ov_bbox = image_box_overlap(dbb, np.asarray(gt["bbox"], np.float64).reshape(-1, 4), -1)
    dbox = _camera_boxes(dt)
    gbox = _camera_boxes(gt)
    inter = _rotated_intersection(dbox[:, [0, 2, 3, 5, 6]], gbox[:, [0, 2, 3, 5, 6]])
    bev, ov_3d = _bev_3d_from_intersection(inter, dbox, gbox)
    return ov_bbox, bev, ov_3d


def _camera_boxes(anno: dict) -> np.ndarray:
    loc = np.asarray(anno["location"], np.float64).reshape(-1, 3)
    dims = np.asarray(anno["dimensions"], np.float64).reshape(-1, 3)
    ry = np.asarray(anno["rotation_y"], np.float64).reshape(-1, 1)
    return np.concatenate([loc, dims, ry], axis=1)


# ----------------------------------------------------------------- statistics
@numba.njit(cache=True)
def _frame_statistics(
    ov: np.ndarray,  # (nd, ng)
    ignored_gt: np.ndarray,  # (ng,) int8: 0 valid, 1 ignored, -1 other class
    ignored_dt: np.ndarray,  # (nd,)
    dt_score: np.ndarray,
    gt_alpha: np.ndarray,
    dt_alpha: np.ndarray,
    dt_bbox: np.ndarray,  # (nd, 4)
    dc_bbox: np.ndarray,  # (ndc, 4)
    metric: int,
    min_overlap: float,
    thresh: float,
    compute_fp: bool,
    compute_aos: bool,
    thresholds_out: np.ndarray,  # (ng,) scores of TPs (compute_fp=False)
):
    nd = ov.shape[0]
    ng = ov.shape[1]
    assigned = np.zeros(nd, dtype=np.bool_)
    below = np.zeros(nd, dtype=np.bool_)
    if compute_fp:
        for j in range(nd):
            if dt_score[j] < thresh:
                below[j] = True
    tp = 0
    fp = 0
    fn = 0
    n_thr = 0
    delta = np.zeros(ng, dtype=np.float64)
    n_delta = 0
    for i in range(ng):
        if ignored_gt[i] == -1:
            continue
        det_idx = -1
        valid = _NO_DETECTION
        max_overlap = 0.0
        assigned_ignored_det = False
        for j in range(nd):
            if ignored_dt[j] == -1 or assigned[j] or below[j]:
                continue
            o = ov[j, i]
            s = dt_score[j]
            if not compute_fp and o > min_overlap and s > valid:
                det_idx = j
                valid = s
            elif (
                compute_fp
                and o > min_overlap
                and (o > max_overlap or assigned_ignored_det)
                and ignored_dt[j] == 0
            ):
                max_overlap = o
                det_idx = j
                valid = 1.0
                assigned_ignored_det = False
            elif compute_fp and o > min_overlap and valid == _NO_DETECTION and ignored_dt[j] == 1:
                det_idx = j
                valid = 1.0
                assigned_ignored_det = True
        if valid == _NO_DETECTION and ignored_gt[i] == 0:
            fn += 1
        elif valid != _NO_DETECTION and (ignored_gt[i] == 1 or ignored_dt[det_idx] == 1):
            assigned[det_idx] = True
        elif valid != _NO_DETECTION:
            tp += 1
            thresholds_out[n_thr] = dt_score[det_idx]
            n_thr += 1
            if compute_aos:
                delta[n_delta] = gt_alpha[i] - dt_alpha[det_idx]
                n_delta += 1
            assigned[det_idx] = True
    similarity = -1.0
    if compute_fp:
        for j in range(nd):
            if not (assigned[j] or ignored_dt[j] == -1 or ignored_dt[j] == 1 or below[j]):
                fp += 1
        nstuff = 0
        if metric == 0 and dc_bbox.shape[0] > 0:
            ov_dc = image_box_overlap(dt_bbox, dc_bbox, 0)
            for i in range(dc_bbox.shape[0]):
                for j in range(nd):
                    if assigned[j] or ignored_dt[j] == -1 or ignored_dt[j] == 1 or below[j]:
                        continue
                    if ov_dc[j, i] > min_overlap:
                        assigned[j] = True
                        nstuff += 1
        fp -= nstuff
        if compute_aos:
            s = 0.0
            for k in range(n_delta):
                s += (1.0 + math.cos(delta[k])) / 2.0
            if tp > 0 or fp > 0:
                similarity = s
    return tp, fp, fn, similarity, n_thr


@numba.njit(cache=True)
def _collect_tp_scores(
    ov_flat,
    ov_off,
    gt_off,
    dt_off,
    ignored_gt,
    ignored_dt,
    dt_score,
    gt_alpha,
    dt_alpha,
    dt_bbox,
    dc_bbox,
    dc_off,
    metric,
    min_overlap,
):
    """Scores of the detections matched (compute_fp=False) over all frames, concatenated."""
    nf = gt_off.shape[0] - 1
    out = np.empty(gt_off[-1], dtype=np.float64)
    n = 0
    for f in range(nf):
        g0, g1, d0, d1 = gt_off[f], gt_off[f + 1], dt_off[f], dt_off[f + 1]
        ov = ov_flat[ov_off[f] : ov_off[f + 1]].reshape(d1 - d0, g1 - g0)
        buf = np.empty(g1 - g0, dtype=np.float64)
        _, _, _, _, k = _frame_statistics(
            ov,
            ignored_gt[g0:g1],
            ignored_dt[d0:d1],
            dt_score[d0:d1],
            gt_alpha[g0:g1],
            dt_alpha[d0:d1],
            dt_bbox[d0:d1],
            dc_bbox[dc_off[f] : dc_off[f + 1]],
            metric,
            min_overlap,
            0.0,
            False,
            False,
            buf,
        )
        out[n : n + k] = buf[:k]
        n += k
    return out[:n]


@numba.njit(cache=True, parallel=True)
def _pr_curve(
    ov_flat,
    ov_off,
    gt_off,
    dt_off,
    ignored_gt,
    ignored_dt,
    dt_score,
    gt_alpha,
    dt_alpha,
    dt_bbox,
    dc_bbox,
    dc_off,
    metric,
    min_overlap,
    thresholds,
    compute_aos,
):
    """``(T, 4)`` summed (tp, fp, fn, similarity) per score threshold over all frames."""
    nf = gt_off.shape[0] - 1
    nt = thresholds.shape[0]
    pr = np.zeros((nt, 4), dtype=np.float64)
    for t in numba.prange(nt):
        tp = 0.0
        fp = 0.0
        fn = 0.0
        sim = 0.0
        for f in range(nf):
            g0, g1, d0, d1 = gt_off[f], gt_off[f + 1], dt_off[f], dt_off[f + 1]
            ov = ov_flat[ov_off[f] : ov_off[f + 1]].reshape(d1 - d0, g1 - g0)
            buf = np.empty(g1 - g0, dtype=np.float64)
            a, b, c, s, _ = _frame_statistics(
                ov,
                ignored_gt[g0:g1],
                ignored_dt[d0:d1],
                dt_score[d0:d1],
                gt_alpha[g0:g1],
                dt_alpha[d0:d1],
                dt_bbox[d0:d1],
                dc_bbox[dc_off[f] : dc_off[f + 1]],
                metric,
                min_overlap,
                thresholds[t],
                True,
                compute_aos,
                buf,
            )
            tp += a
            fp += b
            fn += c
            if s != -1.0:
                sim += s
        pr[t, 0] = tp
        pr[t, 1] = fp
        pr[t, 2] = fn
        pr[t, 3] = sim
    return pr


def get_thresholds(scores: np.ndarray, num_gt: int, num_sample_pts: int = N_SAMPLE_PTS) -> np.ndarray:
    """Score thresholds at (approximately) evenly spaced recall positions (official ``get_thresholds``)."""
    scores = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    out = []
    current = 0.0
    n = len(scores)
    for i, s in enumerate(scores):
        l_recall = (i + 1) / num_gt
        r_recall = (i + 2) / num_gt if i < n - 1 else l_recall
        if (r_recall - current) < (current - l_recall) and i < n - 1:
            continue
        out.append(s)
        current += 1.0 / (num_sample_pts - 1.0)
    return np.asarray(out, dtype=np.float64)


def ap_r11(prec: np.ndarray) -> np.ndarray:
    """AP over 11 recall points: samples 0, 4, …, 40 of the 41-point curve, ×100."""
    return prec[..., 0::4].sum(-1) / 11 * 100


def ap_r40(prec: np.ndarray) -> np.ndarray:
    """AP over 40 recall points: samples 1..40 of the 41-point curve, ×100."""
    return prec[..., 1:].sum(-1) / 40 * 100


# ------------------------------------------------------------------ cleaning
def _clean(packed: dict, cls: str, difficulty: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-box ignore flags (0 valid, 1 ignored, −1 other class) for one class and difficulty
    (official ``clean_data``), vectorised over the packed frames."""
    c = cls.lower()
    neighbour = NEIGHBOUR.get(c)
    names, bbox = packed["gt_name"], packed["gt_bbox"]
    ignore = (
        (packed["gt_occluded"] > MAX_OCCLUSION[difficulty])
        | (packed["gt_truncated"] > MAX_TRUNCATION[difficulty])
        | ((bbox[:, 3] - bbox[:, 1]) <= MIN_HEIGHT[difficulty])
    )
    same = names == c
    neigh = names == neighbour if neighbour is not None else np.zeros_like(same)
    ig_gt = np.full(len(names), -1, dtype=np.int8)
    ig_gt[neigh | (same & ignore)] = 1
    ig_gt[same & ~ignore] = 0
    dbox = packed["dt_bbox"]
    ig_dt = np.full(len(dbox), -1, dtype=np.int8)
    ig_dt[packed["dt_name"] == c] = 0
    ig_dt[np.abs(dbox[:, 3] - dbox[:, 1]) < MIN_HEIGHT[difficulty]] = 1
    return ig_gt, ig_dt, int((same & ~ignore).sum())


def _check_anno(a: dict, what: str, i: int, need_score: bool) -> None:
    keys = ["name", "truncated", "occluded", "alpha", "bbox", "dimensions", "location", "rotation_y"]
    if need_score:
        keys.append("score")
    for k in keys:
        if k not in a:
            raise ValueError(f"{what}[{i}]: missing key {k!r}; expected {keys}")
    n = len(a["name"])
    for k in keys[1:]:
        if len(a[k]) != n:
            raise ValueError(f"{what}[{i}][{k!r}]: has {len(a[k])} rows, 'name' has {n}")


# ------------------------------------------------------------------ public
def kitti_eval(
    gt_annos: Sequence[dict],
    dt_annos: Sequence[dict],
    classes: Sequence[str] = ("Car", "Pedestrian", "Cyclist"),
    min_overlaps: dict[str, tuple[float, float, float]] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Official KITTI AP for ``classes``.

    Args:
        gt_annos: one anno dict per frame (``label_2`` content, including DontCare rows).
        dt_annos: one anno dict per frame, same order, with ``score``; ``alpha = −10`` (as
            checked on the first non-empty frame, like the official code) disables AOS.
        classes: class names (``Car``, ``Pedestrian``, ``Cyclist``, ``Van``, ``Person_sitting``, ``Truck``).
        min_overlaps: per class (bbox, bev, 3d) IoU thresholds; default :data:`MIN_OVERLAPS`.

    Returns:
        ``{class: {"bbox_R11"|"bev_R11"|"3d_R11"|"aos_R11"|"bbox_R40"|…: [easy, moderate, hard]}}``
        in percent. ``aos_*`` are NaN when the detections carry no alpha.
    """
    if len(gt_annos) != len(dt_annos):
        raise ValueError(
            f"gt_annos/dt_annos: {len(gt_annos)} ground-truth frames but {len(dt_annos)} prediction frames"
        )
    overlaps_table = dict(MIN_OVERLAPS if min_overlaps is None else min_overlaps)
    for c in classes:
        if c not in overlaps_table:
            raise ValueError(f"classes: unknown class {c!r}; expected one of {sorted(overlaps_table)}")
    for i, a in enumerate(gt_annos):
        _check_anno(a, "gt_annos", i, need_score=False)
    for i, a in enumerate(dt_annos):
        _check_anno(a, "dt_annos", i, need_score=True)
    packed = pack_annos(gt_annos, dt_annos)
    # official rule: the first non-empty prediction frame decides (alpha == -10 means "no alpha")
    first = next((a for a in dt_annos if len(a["alpha"]) > 0), None)
    compute_aos = first is not None and float(first["alpha"][0]) != -10
    results: dict[str, dict[str, list[float]]] = {}
    for c in classes:
        res: dict[str, list[float]] = {}
        flags = [_clean(packed, c, d) for d in range(3)]
        for m, metric in enumerate(METRICS):
            prec = np.zeros((3, N_SAMPLE_PTS))
            aos = np.zeros((3, N_SAMPLE_PTS))
            for d in range(3):
                thr = overlaps_table[c][m]
                prec[d], aos[d] = _precision_curve(packed, *flags[d], m, thr, compute_aos and m == 0)
            res[f"{metric}_R11"] = ap_r11(prec).tolist()
            res[f"{metric}_R40"] = ap_r40(prec).tolist()
            if m == 0:
                res["aos_R11"] = ap_r11(aos).tolist() if compute_aos else [math.nan] * 3
                res["aos_R40"] = ap_r40(aos).tolist() if compute_aos else [math.nan] * 3
        order = [f"{k}_{r}" for r in ("R11", "R40") for k in ("bbox", "bev", "3d", "aos")]
        results[c] = {k: res[k] for k in order}
    return results


def pack_annos(gt_annos: Sequence[dict], dt_annos: Sequence[dict]) -> dict[str, np.ndarray]:
    """Concatenate per-frame boxes and overlaps (all classes) into flat arrays with offsets."""
    ng = np.array([len(a["name"]) for a in gt_annos], dtype=np.int64)
    nd = np.array([len(a["name"]) for a in dt_annos], dtype=np.int64)
    gt_off = np.concatenate([[0], np.cumsum(ng)]).astype(np.int64)
    dt_off = np.concatenate([[0], np.cumsum(nd)]).astype(np.int64)
    ov_off = np.concatenate([[0], np.cumsum(ng * nd)]).astype(np.int64)
    flats = [np.zeros(int(ov_off[-1])) for _ in METRICS]
    dcs, ndc = [], []
    for f, (gt, dt) in enumerate(zip(gt_annos, dt_annos)):
        if ng[f] and nd[f]:
            for flat, ov in zip(flats, frame_overlaps(dt, gt)):
                flat[ov_off[f] : ov_off[f + 1]] = ov.ravel()
        gbb = np.asarray(gt["bbox"], np.float64).reshape(-1, 4)
        dc = gbb[np.asarray(gt["name"]).astype(str) == "DontCare"]
        dcs.append(dc)
        ndc.append(len(dc))

    def cat(annos, key, shape, dtype=np.float64):
        arrs = [np.asarray(a[key], dtype).reshape(shape) for a in annos]
        return np.ascontiguousarray(np.concatenate(arrs)) if arrs else np.zeros((0, *shape[1:]), dtype)

    def names(annos):
        arrs = [np.char.lower(np.asarray(a["name"]).astype(str)).reshape(-1) for a in annos]
        return np.concatenate(arrs) if arrs else np.zeros(0, dtype="<U16")

    return {
        "ov": flats,
        "ov_off": ov_off,
        "gt_off": gt_off,
        "dt_off": dt_off,
        "gt_name": names(gt_annos),
        "dt_name": names(dt_annos),
        "gt_bbox": cat(gt_annos, "bbox", (-1, 4)),
        "gt_occluded": cat(gt_annos, "occluded", (-1,), np.int64),
        "gt_truncated": cat(gt_annos, "truncated", (-1,)),
        "gt_alpha": cat(gt_annos, "alpha", (-1,)),
        "dt_alpha": cat(dt_annos, "alpha", (-1,)),
        "dt_score": cat(dt_annos, "score", (-1,)),
        "dt_bbox": cat(dt_annos, "bbox", (-1, 4)),
        "dc_bbox": np.ascontiguousarray(np.concatenate(dcs)) if dcs else np.zeros((0, 4)),
        "dc_off": np.concatenate([[0], np.cumsum(ndc)]).astype(np.int64),
    }


def _precision_curve(packed, ig_gt, ig_dt, nvalid, metric, min_overlap, compute_aos):
    args = (
        packed["ov"][metric],
        packed["ov_off"],
        packed["gt_off"],
        packed["dt_off"],
        ig_gt,
        ig_dt,
        packed["dt_score"],
        packed["gt_alpha"],
        packed["dt_alpha"],
        packed["dt_bbox"],
        packed["dc_bbox"],
        packed["dc_off"],
        metric,
        float(min_overlap),
    )
    prec = np.zeros(N_SAMPLE_PTS)
    aos = np.zeros(N_SAMPLE_PTS)
    if nvalid == 0:
        return prec, aos
    scores = _collect_tp_scores(*args)
    thresholds = get_thresholds(scores, nvalid)
    if len(thresholds) == 0:
        return prec, aos
    pr = _pr_curve(*args, thresholds, compute_aos)
    nt = len(thresholds)
    denom = pr[:, 0] + pr[:, 1]
    safe = np.where(denom > 0, denom, 1.0)
    prec[:nt] = np.where(denom > 0, pr[:, 0] / safe, 0.0)
    if compute_aos:
        aos[:nt] = np.where(denom > 0, pr[:, 3] / safe, 0.0)
    prec[:nt] = np.maximum.accumulate(prec[:nt][::-1])[::-1]
    aos[:nt] = np.maximum.accumulate(aos[:nt][::-1])[::-1]
    return prec, aos


def format_results(results: dict[str, dict[str, list[float]]], min_overlaps: dict | None = None) -> str:
    """The familiar OpenPCDet-style text table."""
    table = MIN_OVERLAPS if min_overlaps is None else min_overlaps
    lines = []
    for c, res in results.items():
        ov = ", ".join(f"{x:.2f}" for x in table.get(c, (math.nan,) * 3))
        for r, tag in (("R11", "AP"), ("R40", "AP_R40")):
            lines.append(f"{c} {tag}@{ov}:")
            for k, label in (("bbox", "bbox"), ("bev", "bev "), ("3d", "3d  "), ("aos", "aos ")):
                v = res[f"{k}_{r}"]
                if k == "aos" and any(math.isnan(x) for x in v):
                    continue
                lines.append(f"{label} AP:{v[0]:.4f}, {v[1]:.4f}, {v[2]:.4f}")
    return "\n".join(lines)
