"""Synthetic street frames in the KITTI object format, seen by a simulated HDL-64E.

A frame is a straight street (random heading, widths, kerbs, sidewalks, facades, an optional crossing
street, poles, trees) with parked and moving cars and vans, pedestrians and cyclists. The LiDAR is
ray cast with Open3D's ``RaycastingScene``; camera 2 (the real KITTI calibration) gets a rendered colour
image, 2D boxes, truncation and occlusion levels from ray visibility.

:func:`generate_frame` returns a :class:`SynthFrame`; :func:`write_frame` writes the four files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pc3d.data.synth import kitti_calib as K
from pc3d.data.synth import meshes as M
from pc3d.data.synth import street_objects as S
from pc3d.data.synth.lidar import HDL64, MOUNT_HEIGHT
from pc3d.io import write_bytes, write_png, write_text

DONTCARE_RANGE = 70.0  # labelled objects farther than this become DontCare
MIN_HEIGHT_PX = 15.0  # objects with a smaller 2D box become DontCare


@dataclass
class Agent:
    """A dynamic object; ``(a, s)`` street-frame centre, ``yaw`` street-frame heading."""

    cls: str  # Car, Van, Pedestrian, Cyclist
    a: float
    s: float
    yaw: float
    l: float
    w: float
    h: float


@dataclass
class Label:
    """One KITTI label row (camera frame), plus the object's LiDAR box and point count."""

    cls: str
    truncated: float
    occluded: int
    alpha: float
    bbox: np.ndarray  # (4,) left, top, right, bottom
    hwl: np.ndarray  # (3,)
    loc: np.ndarray  # (3,) bottom centre, rect camera frame
    ry: float
    box_lidar: np.ndarray = field(default_factory=lambda: np.zeros(7))  # [x, y, z, l, w, h, heading]
    num_points: int = 0
    agent: int = -1  # index into SynthFrame.agents

    def line(self) -> str:
        if self.cls == "DontCare":
            b = self.bbox
            return f"DontCare -1 -1 -10 {b[0]:.2f} {b[1]:.2f} {b[2]:.2f} {b[3]:.2f} -1 -1 -1 -1000 -1000 -1000 -10"
        v = [self.alpha, *self.bbox, *self.hwl, *self.loc, self.ry]
        return f"{self.cls} {self.truncated:.2f} {self.occluded:d} " + " ".join(f"{x:.2f}" for x in v)


@dataclass
class SynthFrame:
    """Attributes: ``points (P, 4) float32`` velodyne x, y, z, reflectance; ``point_object (P,)`` index of the
    agent hit (-1 static); ``labels``; ``image (375, 1242, 3) uint8``; ``agents``."""

    frame_id: str
    points: np.ndarray
    point_object: np.ndarray
    labels: list[Label]
    image: np.ndarray
    agents: list[Agent]


def _wrap(a: float) -> float:
    return float((a + np.pi) % (2 * np.pi) - np.pi)


def _rect_corners(a, s, yaw, l, w) -> np.ndarray:
    c, sn = np.cos(yaw), np.sin(yaw)
    loc = np.array([[l / 2, w / 2], [-l / 2, w / 2], [-l / 2, -w / 2], [l / 2, -w / 2]])
    return loc @ np.array([[c, sn], [-sn, c]]) + np.array([a, s])


def _overlap(p: np.ndarray, q: np.ndarray) -> bool:
    """Separating-axis test of two convex quads ``(4, 2)``."""
    for poly in (p, q):
        for i in range(4):
            e = poly[(i + 1) % 4] - poly[i]
            n = np.array([-e[1], e[0]])
            a, b = p @ n, q @ n
            if a.max() < b.min() or b.max() < a.min():
                return False
    return True


class _Street:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.g = -MOUNT_HEIGHT + rng.uniform(-0.04, 0.04)  # road height in the velodyne frame
        self.psi = rng.normal(0.0, 0.05)
        self.e = {-1: rng.uniform(2.2, 6.5), 1: rng.uniform(2.2, 10.0)}  # road edge distance per side
        self.park = {k: rng.random() < 0.7 and self.e[k] > 3.9 for k in (-1, 1)}
        self.kerb = rng.uniform(0.1, 0.18)
        self.sw = {k: rng.uniform(1.5, 5.0) for k in (-1, 1)}
        self.setback = {k: (rng.uniform(0.5, 6.0) if rng.random() < 0.5 else 0.0) for k in (-1, 1)}
        self.cross = (rng.uniform(12.0, 60.0), rng.uniform(9.0, 16.0)) if rng.random() < 0.35 else None
        self.rects: list[np.ndarray] = []
        self.centres: list[np.ndarray] = []
        self.radii: list[float] = []
        self.add_rect(_rect_corners(0.0, 0.0, 0.0, 8.0, 4.4))  # ego car and its clearance
        self.agents: list[Agent] = []

    def in_cross(self, a0: float, a1: float) -> bool:
        return (
            self.cross is not None
            and a1 > self.cross[0] - self.cross[1] / 2
            and a0 < self.cross[0] + self.cross[1] / 2
        )

    def spans(self, lo: float = -130.0, hi: float = 130.0) -> list[tuple[float, float]]:
        if self.cross is None:
            return [(lo, hi)]
        c, w = self.cross
        return [(lo, c - w / 2), (c + w / 2, hi)]

    def try_add(self, ag: Agent, margin: float = 0.3) -> bool:
        r = _rect_corners(ag.a, ag.s, ag.yaw, ag.l + 2 * margin, ag.w + 2 * margin)
        c, rad = r.mean(0), np.hypot(ag.l + 2 * margin, ag.w + 2 * margin) / 2
        for q, qc, qr in zip(self.rects, self.centres, self.radii):
            if np.hypot(*(c - qc)) < rad + qr and _overlap(r, q):  # bounding circles first
                return False
        self.add_rect(_rect_corners(ag.a, ag.s, ag.yaw, ag.l, ag.w))
        self.agents.append(ag)
        return True

    def add_rect(self, q: np.ndarray) -> None:
        self.rects.append(q)
        self.centres.append(q.mean(0))
        self.radii.append(float(np.linalg.norm(q - q.mean(0), axis=1).max()))


def _size(rng, cls: str) -> tuple[float, float, float]:
    n = rng.normal
    if cls == "Car":
        return (
            float(np.clip(n(3.9, 0.35), 3.3, 4.9)),
            float(np.clip(n(1.64, 0.09), 1.45, 1.9)),
            float(np.clip(n(1.52, 0.12), 1.3, 1.8)),
        )
    if cls == "Van":
        return (
            float(np.clip(n(4.9, 0.5), 4.3, 6.0)),
            float(np.clip(n(1.95, 0.1), 1.75, 2.2)),
            float(np.clip(n(2.15, 0.2), 1.8, 2.6)),
        )
    if cls == "Pedestrian":
        return (
            float(np.clip(n(0.85, 0.2), 0.5, 1.2)),
            float(np.clip(n(0.65, 0.08), 0.5, 0.85)),
            float(np.clip(n(1.75, 0.1), 1.45, 1.98)),
        )
    return (
        float(np.clip(n(1.76, 0.12), 1.5, 2.0)),
        float(np.clip(n(0.6, 0.08), 0.45, 0.8)),
        float(np.clip(n(1.74, 0.08), 1.55, 1.95)),
    )


def _static(st: _Street) -> S.Soup:
    rng, g = st.rng, st.g
    soup = S.Soup()
    ground = M.Mesh(
        np.array([[-140, -140, g], [140, -140, g], [140, 140, g], [-140, 140, g]], np.float64),
        np.array([[0, 1, 2], [0, 2, 3]]),
        np.zeros(4, np.int64),
    )
    soup.add(ground, "road", (85, 85, 90))
    # lane markings: dashed centre line and solid edge lines (flat, 5 mm proud)
    marks = []
    centre = 1.75 if st.e[1] > 4.5 else None
    for a0, a1 in st.spans(-100, 100):
        if centre is not None:
            for a in np.arange(a0, a1 - 3.0, 9.0):
                marks.append(((a, centre - 0.06), (a + 3.0, centre + 0.06)))
        for k in (-1, 1):
            s0 = k * (st.e[k] - 0.3)
            marks.append(((a0, s0 - 0.06), (a1, s0 + 0.06)))
    marks = [((a0, s0, g), (a1, s1, g + 0.005)) for (a0, s0), (a1, s1) in marks if a1 - a0 > 0.1]
    if marks:
        lo, hi = np.array(marks).transpose(1, 0, 2)
        soup.add(M.coarse_boxes(lo, hi, ("+z",)), "marking", (230, 230, 225))
    for k in (-1, 1):
        e, sw, sb = st.e[k], st.sw[k], st.setback[k]
        hk = st.kerb

        def band(s_in: float, s_out: float, k: int = k) -> tuple[float, float]:
            return (k * s_in, k * s_out) if k > 0 else (k * s_out, k * s_in)

        for a0, a1 in st.spans():
            lo, hi = band(e, e + 0.15)
            soup.add(
                S.cbox((a0, lo, g), (a1, hi, g + hk), 50.0, ("+z", "-y" if k > 0 else "+y", "-x", "+x")),
                "kerb",
                (160, 160, 155),
            )
            lo, hi = band(e + 0.15, e + sw)
            soup.add(
                S.cbox((a0, lo, g), (a1, hi, g + hk), 50.0, ("+z", "-x", "+x")), "sidewalk", (150, 146, 138)
            )
            if sb > 0:
                lo, hi = band(e + sw, e + sw + sb)
                soup.add(
                    S.cbox(
                        (a0, lo, g),
                        (a1, hi, g + hk + 0.03),
                        50.0,
                        ("+z", "-x", "+x", "-y" if k > 0 else "+y"),
                    ),
                    "terrain",
                    (80, 120, 60),
                )
            # facades or a fence with hedges
            s_front = e + sw + sb
            if rng.random() < 0.8:
                a = a0
                while a < a1 - 2.0:
                    bw = min(rng.uniform(8.0, 30.0), a1 - a)
                    bh = rng.uniform(3.0, 18.0)
                    col = np.array(
                        [[170, 160, 140], [140, 120, 100], [200, 195, 185], [120, 110, 110], [180, 150, 120]],
                        np.float64,
                    )[int(rng.integers(5))]
                    alb = rng.uniform(0.6, 1.6)
                    lo, hi = band(s_front, s_front + 8.0)
                    soup.add(
                        S.cbox(
                            (a, lo, g),
                            (a + bw, hi, g + bh),
                            50.0,
                            ("-x", "+x", "-y" if k > 0 else "+y", "+z"),
                        ),
                        "facade",
                        col,
                        alb,
                    )
                    wlo, whi = band(s_front - 0.05, s_front)  # windows, 5 cm proud of the facade
                    xs = np.arange(a + 1.0, a + bw - 1.6, rng.uniform(2.5, 4.0))
                    zs = np.arange(1.0, bh - 1.6, 3.0)
                    if len(xs) and len(zs):
                        xx, zz = (q.reshape(-1) for q in np.meshgrid(xs, zs))
                        one = np.ones_like(xx)
                        wl = np.stack([xx, wlo * one, g + zz + 0.3], 1)
                        wh = np.stack([xx + 1.2, whi * one, g + zz + 1.7], 1)
                        soup.add(M.coarse_boxes(wl, wh, ("-y" if k > 0 else "+y",)), "window", (60, 70, 80))
                    a += bw + (rng.uniform(2.0, 10.0) if rng.random() < 0.3 else 0.0)
            else:
                fh = rng.uniform(0.8, 2.0)
                lo, hi = band(s_front, s_front + 0.08)
                soup.add(
                    S.cbox((a0, lo, g), (a1, hi, g + hk + fh), 50.0, ("-y" if k > 0 else "+y", "+z")),
                    "facade",
                    (110, 110, 100),
                    0.8,
                )
                for a in np.arange(a0 + 1.0, a1 - 1.0, rng.uniform(2.0, 5.0)):
                    bush = M.icosphere(1.0, 1)
                    r = rng.uniform(0.5, 1.2)
                    v = bush.vertices * r + np.array([a, k * (s_front + 0.8), g + hk + r * 0.6])
                    soup.add(M.Mesh(v, bush.faces, bush.patch), "foliage", (50, 100, 45))
        # poles along the kerb, trees on the sidewalk
        a = rng.uniform(-100, -85)
        while a < 100:
            if not st.in_cross(a - 1, a + 1):
                sp = k * (e + 0.45)
                soup_p = S.pole(rng, (a, sp, g + hk), (0.0, -k))
                soup = _merge(soup, soup_p)
                st.add_rect(_rect_corners(a, sp, 0.0, 0.4, 0.4))
            a += rng.uniform(15.0, 40.0)
        if rng.random() < 0.65:
            a = rng.uniform(-100, -90)
            while a < 100:
                s_t = k * (e + min(sw - 0.5, 1.5)) if sb == 0 else k * (e + sw + sb / 2)
                if not st.in_cross(a - 2, a + 2):
                    soup = _merge(soup, S.tree(rng, (a, s_t, g + hk)))
                    st.add_rect(_rect_corners(a, s_t, 0.0, 0.6, 0.6))
                a += rng.uniform(6.0, 20.0)
    return soup


def _merge(a: S.Soup, b: S.Soup) -> S.Soup:
    base = a.n
    for v, f, m, al, c in zip(b.vertices, b.faces, b.mat, b.albedo, b.rgb):
        a.vertices.append(v)
        a.faces.append(f + base)
        a.mat.append(m)
        a.albedo.append(al)
        a.rgb.append(c)
    a.n = base + b.n
    return a


def _agents(st: _Street) -> None:
    rng = st.rng
    # parked cars along the kerbs
    for k in (-1, 1):
        if not st.park[k]:
            continue
        a = rng.uniform(-70, -60)
        lane_s = k * (st.e[k] - 1.15)
        while a < 75:
            cls = "Car" if rng.random() < 0.85 else "Van"
            l, w, h = _size(rng, cls)
            if rng.random() < 0.78 and not st.in_cross(a - 1, a + l + 1):
                yaw = (
                    (0.0 if k < 0 else np.pi) + rng.normal(0, 0.04) + (np.pi if rng.random() < 0.15 else 0.0)
                )
                st.try_add(Agent(cls, a + l / 2, lane_s + rng.normal(0, 0.12), yaw, l, w, h), margin=0.2)
            a += l + rng.uniform(0.6, 5.0)
    # moving traffic in the driving lanes
    s_min = -(st.e[-1] - (2.3 if st.park[-1] else 0.0))
    s_max = st.e[1] - (2.3 if st.park[1] else 0.0)
    lanes = [c for c in np.arange(-7.0, 14.0, 3.5) if s_min + 1.2 < c < s_max - 1.2]
    for _ in range(int(rng.integers(2, 11))):
        if not lanes:
            break
        c = float(lanes[int(rng.integers(len(lanes)))])
        yaw = 0.0 if c < 1.0 or rng.random() < 0.3 else np.pi
        cls = "Car" if rng.random() < 0.88 else "Van"
        l, w, h = _size(rng, cls)
        a = rng.uniform(-50, 80)
        st.try_add(Agent(cls, a, c + rng.normal(0, 0.25), yaw + rng.normal(0, 0.03), l, w, h), margin=1.0)
    if st.cross is not None:
        ac, cw = st.cross
        for _ in range(int(rng.integers(0, 4))):
            cls = "Car" if rng.random() < 0.85 else "Van"
            l, w, h = _size(rng, cls)
            side = 1 if rng.random() < 0.5 else -1
            s = rng.uniform(-45, 45)
            st.try_add(
                Agent(cls, ac + side * cw / 4, s, side * np.pi / 2 + rng.normal(0, 0.05), l, w, h), margin=0.8
            )
    # pedestrians on the sidewalks (some crossing), cyclists near the kerb
    for _ in range(int(rng.integers(2, 13))):
        k = 1 if rng.random() < 0.5 else -1
        l, w, h = _size(rng, "Pedestrian")
        if rng.random() < 0.15:
            s = rng.uniform(-st.e[-1], st.e[1])
            yaw = np.pi / 2 * (1 if rng.random() < 0.5 else -1) + rng.normal(0, 0.2)
        else:
            s = (
                k * rng.uniform(st.e[k] + 0.5, st.e[k] + st.sw[k] - 0.4)
                if st.sw[k] > 1.0
                else k * (st.e[k] + 0.6)
            )
            yaw = (
                (0.0 if rng.random() < 0.5 else np.pi) + rng.normal(0, 0.25)
                if rng.random() < 0.8
                else rng.uniform(-np.pi, np.pi)
            )
        a = rng.uniform(-15, 50)
        st.try_add(Agent("Pedestrian", a, s, yaw, l, w, h), margin=0.15)
    for _ in range(int(rng.integers(1, 5))):
        l, w, h = _size(rng, "Cyclist")
        if rng.random() < 0.6:
            s, yaw = s_min + 0.7, 0.0
        else:
            s, yaw = s_max - 0.7, np.pi
        st.try_add(
            Agent(
                "Cyclist", rng.uniform(-30, 60), s + rng.normal(0, 0.2), yaw + rng.normal(0, 0.05), l, w, h
            ),
            margin=0.4,
        )


def _agent_soup(rng, ag: Agent) -> S.Soup:
    if ag.cls in ("Car", "Van"):
        return S.car(rng, ag.l, ag.w, ag.h, van=ag.cls == "Van")
    if ag.cls == "Pedestrian":
        return S.pedestrian(rng, ag.l, ag.w, ag.h)
    return S.cyclist(rng, ag.l, ag.w, ag.h)


def _to_velo(st: _Street, a, s) -> tuple[float, float]:
    c, sn = np.cos(st.psi), np.sin(st.psi)
    return float(c * a - sn * s), float(sn * a + c * s)


def generate_frame(
    index: int, seed: int, lidar: HDL64 | None = None, render_image: bool = True, nthreads: int = 1
) -> SynthFrame:
    """Generate frame ``index`` of the dataset with ``seed`` (independent of other frames).

    Args:
        lidar: sensor model (default :class:`HDL64`).
        render_image: render image_2 (otherwise a black image).
        nthreads: threads for Open3D ray casting (1 in worker processes).
    """
    import open3d as o3d

    lidar = lidar or HDL64()
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), 0x0C1771]))
    st = _Street(rng)
    static = _static(st)
    _agents(st)
    # static geometry is built in the street frame; rotate it into the velodyne frame
    static = static.transformed(st.psi, (0.0, 0.0, 0.0))
    scene = o3d.t.geometry.RaycastingScene()
    geoms = []  # (vertices, faces, mat, albedo, rgb)
    v, f, m, al, rgb = static.arrays()
    geoms.append((m, al, rgb))
    scene.add_triangles(o3d.core.Tensor(v), o3d.core.Tensor(f))
    boxes = []
    for ag in st.agents:
        x, y = _to_velo(st, ag.a, ag.s)
        heading = _wrap(ag.yaw + st.psi)
        soup = _agent_soup(rng, ag).transformed(heading, (x, y, st.g))
        v, f, m, al, rgb = soup.arrays()
        geoms.append((m, al, rgb))
        scene.add_triangles(o3d.core.Tensor(v), o3d.core.Tensor(f))
        boxes.append(np.array([x, y, st.g + ag.h / 2, ag.l, ag.w, ag.h, heading]))
    face_off = np.cumsum([0] + [len(g[0]) for g in geoms])
    mat_all = np.concatenate([g[0] for g in geoms])
    alb_all = np.concatenate([g[1] for g in geoms])
    rgb_all = np.concatenate([g[2] for g in geoms])

    def lookup(res) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        gid = res["geometry_ids"].numpy().astype(np.int64)
        prim = res["primitive_ids"].numpy().astype(np.int64)
        ok = gid != o3d.t.geometry.RaycastingScene.INVALID_ID
        gid = np.where(ok, gid, 0)
        face = np.where(ok, face_off[gid] + np.where(ok, prim, 0), 0)
        return np.where(ok, gid, -1), face, ok

    # LiDAR sweep
    dirs = lidar.rays()
    rays = np.concatenate([np.zeros_like(dirs), dirs], 1).astype(np.float32)
    res = scene.cast_rays(o3d.core.Tensor(rays), nthreads=nthreads)
    t_hit = res["t_hit"].numpy().astype(np.float64)
    gid, face, ok = lookup(res)
    normals = res["primitive_normals"].numpy().astype(np.float64)
    points, keep, _ = lidar.returns(rng, dirs, t_hit, normals, mat_all[face], alb_all[face])
    point_object = gid[keep] - 1  # geometry 0 is the static world

    labels = _labels(st, scene, boxes, point_object, nthreads)
    image = (
        _render(scene, rgb_all, lookup, rng, nthreads)
        if render_image
        else np.zeros((K.IMAGE_HEIGHT, K.IMAGE_WIDTH, 3), np.uint8)
    )
    return SynthFrame(f"{index:06d}", points, point_object, labels, image, st.agents)


def _labels(
    st: _Street, scene, boxes: list[np.ndarray], point_object: np.ndarray, nthreads: int
) -> list[Label]:
    """KITTI labels of the agents visible in image 2 (DontCare when far, tiny or without LiDAR points)."""
    import open3d as o3d

    counts = np.bincount(point_object[point_object >= 0], minlength=len(boxes))
    cam = K.camera2_center_velo()
    g = np.linspace(-0.5, 0.5, 6)
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    unit_corners = np.array([[sx, sy, sz] for sx in (-0.5, 0.5) for sy in (-0.5, 0.5) for sz in (-0.5, 0.5)])
    pending = []
    for i, (ag, b) in enumerate(zip(st.agents, boxes)):
        x, y, zc, l, w, h, hd = b
        # the written (2-decimal) label values define the camera-frame box used for the 2D quantities
        ry = round(_wrap(-hd - np.pi / 2), 2)
        loc = np.round(K.velo_to_rect(np.array([[x, y, zc - h / 2]]))[0], 2)
        l, w, h = round(l, 2), round(w, 2), round(h, 2)
        # the label's box in the camera frame (KITTI convention: upright about camera y, bottom centre)
        c, s = np.cos(ry), np.sin(ry)
        rot = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])

        dims = np.array([l, h, w])

        def to_rect(u: np.ndarray, rot=rot, loc=loc, dims=dims) -> np.ndarray:
            return (u * dims - np.array([0.0, 0.5 * dims[1], 0.0])) @ rot.T + loc

        uv, depth = K.rect_to_image(to_rect(grid))
        front = depth > 0.1
        inside = (
            front
            & (uv[:, 0] >= 0)
            & (uv[:, 0] < K.IMAGE_WIDTH)
            & (uv[:, 1] >= 0)
            & (uv[:, 1] < K.IMAGE_HEIGHT)
        )
        if not inside.any():
            continue
        trunc = round(1.0 - inside.mean(), 2)
        cuv, cdep = K.rect_to_image(to_rect(unit_corners))
        pts_uv = cuv if np.all(cdep > 0.1) else uv[front]
        x1, y1 = np.clip(pts_uv.min(0), 0, [K.IMAGE_WIDTH - 1, K.IMAGE_HEIGHT - 1])
        x2, y2 = np.clip(pts_uv.max(0), 0, [K.IMAGE_WIDTH - 1, K.IMAGE_HEIGHT - 1])
        if x2 - x1 < 1 or y2 - y1 < 1:
            continue
        bbox = np.array([x1, y1, x2, y2])
        # occlusion: camera rays through the 2D box, evaluated for all objects at once below
        uu, vv = np.meshgrid(np.linspace(x1 + 0.5, x2 - 0.5, 10), np.linspace(y1 + 0.5, y2 - 0.5, 10))
        pending.append((i, ag, b, trunc, bbox, loc, ry, np.array([h, w, l]), uu.reshape(-1), vv.reshape(-1)))
    if not pending:
        return []
    d = K.pixel_rays_velo(np.concatenate([p[8] for p in pending]), np.concatenate([p[9] for p in pending]))
    rays = o3d.core.Tensor(np.concatenate([np.broadcast_to(cam, d.shape), d], 1).astype(np.float32))
    owner = np.repeat([p[0] + 1 for p in pending], [len(p[8]) for p in pending])  # geometry id per ray
    lx = scene.list_intersections(rays, nthreads=nthreads)
    ray_ids = lx["ray_ids"].numpy().astype(np.int64)
    on_object = lx["geometry_ids"].numpy().astype(np.int64) == owner[ray_ids]
    potential = np.bincount(ray_ids[on_object], minlength=len(owner)) > 0  # the ray meets the object
    first = scene.cast_rays(rays, nthreads=nthreads)["geometry_ids"].numpy().astype(np.int64)
    visible = potential & (first == owner)  # ... and the object is the first thing it meets
    labels: list[Label] = []
    for k, (i, ag, b, trunc, bbox, loc, ry, hwl, _, _) in enumerate(pending):
        sel = slice(k * 100, (k + 1) * 100)
        npot = int(potential[sel].sum())
        vis = visible[sel].sum() / npot if npot else 0.0
        if np.hypot(b[0], b[1]) > DONTCARE_RANGE or bbox[3] - bbox[1] < MIN_HEIGHT_PX or counts[i] == 0:
            dc = Label(
                "DontCare", -1, -1, -10, bbox, -np.ones(3), np.full(3, -1000.0), -10, b, int(counts[i]), i
            )
            labels.append(dc)
            continue
        occ_frac = 1.0 - vis
        occ = 0 if occ_frac < 0.2 else 1 if occ_frac < 0.5 else 2 if occ_frac < 0.95 else 3
        alpha = _wrap(ry - np.arctan2(loc[0], loc[2]))
        labels.append(Label(ag.cls, trunc, occ, alpha, bbox, hwl, loc, ry, b, int(counts[i]), i))
    return labels


def _render(scene, rgb_all: np.ndarray, lookup, rng, nthreads: int) -> np.ndarray:
    """Ray-traced colour image of camera 2 ``(375, 1242, 3) uint8`` with a sky gradient, Lambert shading
    and distance haze."""
    import open3d as o3d

    H, W = (K.IMAGE_HEIGHT + 1) // 2, K.IMAGE_WIDTH // 2  # rendered at half resolution, then upsampled
    uu, vv = np.meshgrid(2.0 * np.arange(W) + 1.0, 2.0 * np.arange(H) + 1.0)
    d = K.pixel_rays_velo(uu.reshape(-1), vv.reshape(-1))
    cam = K.camera2_center_velo()
    rays = np.concatenate([np.broadcast_to(cam, d.shape), d], 1).astype(np.float32)
    res = scene.cast_rays(o3d.core.Tensor(rays), nthreads=nthreads)
    t = res["t_hit"].numpy()
    _, face, ok = lookup(res)
    n = res["primitive_normals"].numpy()
    n = np.where((np.einsum("ij,ij->i", n, d) > 0)[:, None], -n, n)
    sun = np.array([0.4, 0.3, 0.86])
    sun /= np.linalg.norm(sun)
    shade = 0.45 + 0.55 * np.clip(n @ sun, 0, 1)
    col = rgb_all[face].astype(np.float64) * shade[:, None]
    sky_t = np.clip(vv.reshape(-1) / (K.IMAGE_HEIGHT * 0.5), 0, 1)[:, None]
    sky = np.array([120.0, 160, 215]) * (1 - sky_t) + np.array([205.0, 215, 228]) * sky_t
    haze = np.where(ok, 1.0 - np.exp(-np.where(ok, t, 0.0) / 180.0), 1.0)[:, None]
    img = col * (1 - haze) + sky * haze + rng.normal(0.0, 3.0, col.shape)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8).reshape(H, W, 3)
    return np.repeat(np.repeat(img, 2, axis=0), 2, axis=1)[: K.IMAGE_HEIGHT, : K.IMAGE_WIDTH]


def write_frame(frame: SynthFrame, training_dir: str | os.PathLike, png_level: int = 1) -> None:
    """Write ``velodyne/``, ``calib/``, ``label_2/`` and ``image_2/`` files of ``frame``."""
    root = Path(training_dir)
    fid = frame.frame_id
    write_bytes(root / "velodyne" / f"{fid}.bin", np.ascontiguousarray(frame.points, dtype="<f4").tobytes())
    write_text(root / "calib" / f"{fid}.txt", K.calib_text())
    write_text(root / "label_2" / f"{fid}.txt", "".join(lb.line() + "\n" for lb in frame.labels))
    write_png(root / "image_2" / f"{fid}.png", frame.image, png_level)


__all__ = ["Agent", "Label", "SynthFrame", "generate_frame", "write_frame"]
