"""Synthetic indoor rooms written in ScanNet v2's raw scan format.

A room is laid out in its own axis-aligned frame (floor ``[0, W] x [0, D]`` at ``z = 0``): walls with
door and window openings, then furniture placed against walls or free-standing with a 3D
bounding-box collision test (children such as pillows on a bed or a sink on a vanity are stacked on
their parent). The whole room is then rotated by a random angle about +z and shifted, like a raw
scan; ``axisAlignment`` in ``<scene>.txt`` maps it back to the aligned frame (centred on the floor).

:func:`generate_room` returns a :class:`SynthRoom`; :func:`write_room` writes the five raw files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pc3d.data.synth import meshes as M
from pc3d.data.synth.ply import write_ply_mesh
from pc3d.data.synth.scannet_catalog import (
    CATEGORIES,
    PALETTE,
    Part,
    bed_mattress_top,
    kitchen_cabinet,
    nyu40_of,
    pick,
    scannet_id_of,
)
from pc3d.io import write_text

DEFAULT_SPACING = 0.045  # mesh edge length (m); ScanNet vh_clean_2 has a median edge of ~0.049 m
SEG_CELL = 0.5  # over-segmentation cell size (m)


@dataclass
class Placed:
    """An object instance in the room frame.

    ``parts`` are in the object's local frame (x width, y depth with the back at +y, z up, origin at
    the footprint centre on ``z = 0``); ``pos`` is that origin in the room frame and ``yaw`` its
    rotation about +z.
    """

    key: str
    raw: str | None
    size: np.ndarray
    pos: np.ndarray
    yaw: float
    parts: list[Part]
    on_floor: bool = True
    wall: int = -1
    t: float = 0.0
    lo: np.ndarray = field(init=False)
    hi: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        w, d, h = self.size
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        corners = np.array([[-w / 2, -d / 2], [w / 2, -d / 2], [w / 2, d / 2], [-w / 2, d / 2]])
        xy = corners @ np.array([[c, s], [-s, c]]) + self.pos[:2]
        self.lo = np.array([*xy.min(0), self.pos[2]])
        self.hi = np.array([*xy.max(0), self.pos[2] + h])


@dataclass
class SynthRoom:
    """One generated scan.

    Attributes:
        scene_id: ``sceneXXXX_YY``.
        xyz: ``(V, 3) float32`` vertex positions in the (unaligned) scan frame.
        rgba: ``(V, 4) uint8`` vertex colours (alpha 255).
        faces: ``(F, 3) int32`` triangles.
        seg: ``(V,) int64`` over-segmentation id of each vertex (a member vertex index, as in ScanNet).
        groups: ``[(raw_label, [segment ids])]`` the aggregation's segGroups in order.
        instance: ``(V,) int64`` segGroup index of each vertex, -1 when unannotated.
        axis_align: ``(4, 4) float64`` row-major ``axisAlignment`` (scan frame -> aligned frame).
        boxes_aligned: ``(K, 6)`` per segGroup ``[xmin, ymin, zmin, xmax, ymax, zmax]`` of the generated
            geometry in the aligned frame (before vertex noise).
        scene_type: ScanNet ``sceneType`` string.
    """

    scene_id: str
    xyz: np.ndarray
    rgba: np.ndarray
    faces: np.ndarray
    seg: np.ndarray
    groups: list[tuple[str, list[int]]]
    instance: np.ndarray
    axis_align: np.ndarray
    boxes_aligned: np.ndarray
    scene_type: str


# ------------------------------------------------------------------------------------------ layout
class _Layout:
    """Room-frame placement with 3D AABB collision tests."""

    def __init__(self, rng: np.random.Generator, W: float, D: float, H: float, sp: float) -> None:
        self.rng, self.W, self.D, self.H, self.sp = rng, W, D, H, sp
        self.objects: list[Placed] = []
        self.blockers: list[tuple[np.ndarray, np.ndarray]] = []  # door swings, window recesses
        self.openings: list[tuple[int, float, float, float, float]] = []  # wall, t0, t1, z0, z1

    # wall k: origin, along, inward normal, length, yaw that turns local +y (back) towards the wall
    def wall(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
        W, D = self.W, self.D
        return [
            (np.array([0.0, 0.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0]), W, np.pi),
            (np.array([W, 0.0]), np.array([0.0, 1.0]), np.array([-1.0, 0.0]), D, -np.pi / 2),
            (np.array([W, D]), np.array([-1.0, 0.0]), np.array([0.0, -1.0]), W, 0.0),
            (np.array([0.0, D]), np.array([0.0, -1.0]), np.array([1.0, 0.0]), D, np.pi / 2),
        ][k]

    def free(
        self,
        lo: np.ndarray,
        hi: np.ndarray,
        ignore: tuple[Placed, ...] = (),
        margin: float = 0.03,
        blockers: bool = True,
    ) -> bool:
        if (
            lo[0] < -0.005
            or lo[1] < -0.005
            or hi[0] > self.W + 0.005
            or hi[1] > self.D + 0.005
            or hi[2] > self.H - 0.05
        ):
            return False
        for o in self.objects:
            if any(o is i for i in ignore):
                continue
            if np.all(lo < o.hi + margin) and np.all(hi > o.lo - margin):
                return False
        for blo, bhi in self.blockers if blockers else ():
            if np.all(lo < bhi) and np.all(hi > blo):
                return False
        return True

    def add(self, p: Placed, ignore: tuple[Placed, ...] = (), check: bool = True) -> Placed | None:
        if check and not self.free(p.lo, p.hi, ignore):
            return None
        self.objects.append(p)
        return p

    def make(self, key: str, size=None, pos=(0.0, 0.0, 0.0), yaw=0.0, **kw) -> Placed:
        cat = CATEGORIES[key]
        size = cat.sample_size(self.rng) if size is None else np.asarray(size, np.float64)
        parts = cat.build(self.rng, size, self.sp)
        return Placed(key, cat.raw, size, np.asarray(pos, np.float64), float(yaw), parts, **kw)

    def on_wall(
        self, key: str, size=None, z0: float = 0.0, gap: float = 0.01, wall: int | None = None,
        t: float | None = None, tries: int = 25, ignore: tuple[Placed, ...] = (), blockers: bool = True,
    ) -> Placed | None:  # fmt: skip
        cat = CATEGORIES[key]
        for _ in range(tries):
            sz = cat.sample_size(self.rng) if size is None else np.asarray(size, np.float64)
            k = int(self.rng.integers(4)) if wall is None else wall
            o, a, n, L, yaw = self.wall(k)
            if L < sz[0] + 0.1:
                continue
            tt = self.rng.uniform(sz[0] / 2 + 0.05, L - sz[0] / 2 - 0.05) if t is None else t
            xy = o + a * tt + n * (sz[1] / 2 + gap)
            p = Placed(
                key, cat.raw, sz, np.array([xy[0], xy[1], z0]), yaw, [], on_floor=z0 < 0.05, wall=k, t=tt
            )
            if self.free(p.lo, p.hi, ignore, blockers=blockers):
                p.parts = cat.build(self.rng, sz, self.sp)
                self.objects.append(p)
                return p
            if t is not None and wall is not None:
                return None
        return None

    def anywhere(
        self, key: str, size=None, yaw: float | None = None, tries: int = 25, z0: float = 0.0
    ) -> Placed | None:
        cat = CATEGORIES[key]
        for _ in range(tries):
            sz = cat.sample_size(self.rng) if size is None else np.asarray(size, np.float64)
            y = (
                (
                    self.rng.integers(4) * np.pi / 2
                    if self.rng.random() < 0.7
                    else self.rng.uniform(-np.pi, np.pi)
                )
                if yaw is None
                else yaw
            )
            r = np.hypot(sz[0], sz[1]) / 2
            if self.W < 2 * r + 0.1 or self.D < 2 * r + 0.1:
                continue
            x = self.rng.uniform(0.05 + sz[0] / 2, self.W - 0.05 - sz[0] / 2)
            yy = self.rng.uniform(0.05 + sz[1] / 2, self.D - 0.05 - sz[1] / 2)
            p = Placed(key, cat.raw, sz, np.array([x, yy, z0]), float(y), [])
            if self.free(p.lo, p.hi):
                p.parts = cat.build(self.rng, sz, self.sp)
                self.objects.append(p)
                return p
        return None

    def on_top(
        self, parent: Placed, key: str, size=None, rel=(0.0, 0.0), yaw: float = 0.0, z: float | None = None
    ) -> Placed:
        """Stack a child on ``parent`` at local offset ``rel`` (no collision test)."""
        c, s = np.cos(parent.yaw), np.sin(parent.yaw)
        off = np.array([c * rel[0] - s * rel[1], s * rel[0] + c * rel[1]])
        zz = parent.pos[2] + parent.size[2] if z is None else z
        p = self.make(
            key, size, (parent.pos[0] + off[0], parent.pos[1] + off[1], zz), parent.yaw + yaw, on_floor=False
        )
        self.objects.append(p)
        return p

    def beside(self, anchor: Placed, key: str, side: int, gap: float = 0.05) -> Placed | None:
        """Place ``key`` against the same wall as ``anchor``, next to it on ``side`` (+1 / -1)."""
        if anchor.wall < 0:
            return None
        sz = CATEGORIES[key].sample_size(self.rng)
        t = anchor.t + side * (anchor.size[0] / 2 + sz[0] / 2 + gap)
        return self.on_wall(key, sz, wall=anchor.wall, t=t, tries=1)


# ------------------------------------------------------------------------------- walls and openings
def _opening_parts(kind: str, w: float, h: float, depth: float, rng, sp) -> list[Part]:
    if kind == "door":
        col = pick(rng, "wood") if rng.random() < 0.6 else pick(rng, "white")
        frame = col * 0.9
        t = 0.06
        parts = [
            (M.box((-w / 2, -depth / 2, 0), (-w / 2 + t, depth / 2, h), sp, ("-y", "+x", "+y")), frame),
            (M.box((w / 2 - t, -depth / 2, 0), (w / 2, depth / 2, h), sp, ("-y", "-x", "+y")), frame),
            (M.box((-w / 2, -depth / 2, h - t), (w / 2, depth / 2, h), sp, ("-y", "-z", "+y")), frame),
            (M.box((-w / 2 + t, -0.02, 0), (w / 2 - t, 0.02, h - t), sp, ("-y", "+y")), col),
        ]
        hx = w / 2 - t - 0.08
        parts.append((M.box((hx - 0.1, -0.08, 1.0), (hx, -0.02, 1.03), sp), pick(rng, "metal")))
        return parts
    frame = pick(rng, "white") if rng.random() < 0.7 else pick(rng, "wood")
    glass = pick(rng, "glass")
    t = 0.05
    parts = [
        (M.box((-w / 2, -depth / 2, 0), (-w / 2 + t, depth / 2, h), sp, ("-y", "+x")), frame),
        (M.box((w / 2 - t, -depth / 2, 0), (w / 2, depth / 2, h), sp, ("-y", "-x")), frame),
        (M.box((-w / 2, -depth / 2, h - t), (w / 2, depth / 2, h), sp, ("-y", "-z")), frame),
        (M.box((-w / 2 - 0.05, -depth / 2 - 0.1, 0), (w / 2 + 0.05, depth / 2, t), sp, ("-y", "+z")), frame),
        (M.box((-w / 2 + t, depth / 2 - 0.02, t), (w / 2 - t, depth / 2 - 0.01, h - t), sp, ("-y",)), glass),
    ]
    if w > 1.0:
        parts.append(
            (
                M.box(
                    (-0.025, -depth / 2 + 0.02, t), (0.025, depth / 2 - 0.02, h - t), sp, ("-y", "-x", "+x")
                ),
                frame,
            )
        )
    return parts


def _add_openings(L: _Layout) -> None:
    rng = L.rng
    # doors
    for _door in range(1 + int(rng.random() < 0.3)):
        for _ in range(20):
            k = int(rng.integers(4))
            o, a, n, length, yaw = L.wall(k)
            w, h = rng.uniform(0.8, 0.95), rng.uniform(2.0, min(2.15, L.H - 0.15))
            if length < w + 0.4:
                continue
            t = rng.uniform(w / 2 + 0.1, length - w / 2 - 0.1)
            if any(
                ok == k and t - w / 2 - 0.2 < t1 and t + w / 2 + 0.2 > t0 for ok, t0, t1, _, _ in L.openings
            ):
                continue
            depth = 0.12
            xy = o + a * t + n * 0.0
            p = Placed("door", "door", np.array([w, depth, h]), np.array([xy[0], xy[1], 0.0]), yaw,
                       _opening_parts("door", w, h, depth, rng, L.sp), on_floor=True, wall=k, t=t)  # fmt: skip
            L.objects.append(p)
            L.openings.append((k, t - w / 2, t + w / 2, 0.0, h))
            swing = xy + n * 0.5
            half = np.abs(a) * (w / 2 + 0.1) + np.abs(n) * 0.5
            L.blockers.append((np.array([*(swing - half), 0.0]), np.array([*(swing + half), h])))
            break
    # windows with curtains
    nwin = int(rng.integers(0, 4)) if rng.random() < 0.3 else int(rng.integers(1, 4))
    for _ in range(nwin):
        for _ in range(20):
            k = int(rng.integers(4))
            o, a, n, length, yaw = L.wall(k)
            w = rng.uniform(0.7, min(2.0, length - 0.6))
            sill = rng.uniform(0.75, 1.05)
            h = min(rng.uniform(1.0, 1.5), L.H - sill - 0.15)
            if length < w + 0.6 or h < 0.6:
                continue
            t = rng.uniform(w / 2 + 0.3, length - w / 2 - 0.3)
            if any(
                ok == k and t - w / 2 - 0.3 < t1 and t + w / 2 + 0.3 > t0 for ok, t0, t1, _, _ in L.openings
            ):
                continue
            depth = 0.12
            xy = o + a * t
            p = Placed("window", "window", np.array([w, depth, h]), np.array([xy[0], xy[1], sill]), yaw,
                       _opening_parts("window", w, h, depth, rng, L.sp), on_floor=False, wall=k, t=t)  # fmt: skip
            L.objects.append(p)
            L.openings.append((k, t - w / 2, t + w / 2, sill, sill + h))
            front = xy + n * 0.09
            half = np.abs(a) * (w / 2 + 0.05) + np.abs(n) * 0.09
            L.blockers.append(
                (np.array([*(front - half), sill - 0.05]), np.array([*(front + half), sill + h]))
            )
            if rng.random() < 0.65:  # curtains hang in front of the window, left and right
                top = min(L.H - 0.05, sill + h + rng.uniform(0.1, 0.3))
                z0 = 0.02 if rng.random() < 0.6 else sill - 0.15
                for side in (-1, 1) if rng.random() < 0.7 else (0,):
                    cw = rng.uniform(0.6, 1.0) if side else w + 0.3
                    ct = t + side * (w / 2 + 0.1 - cw / 2 + 0.05) if side else t
                    L.on_wall("curtain", np.array([cw, rng.uniform(0.1, 0.18), top - z0]), z0=z0, gap=0.1,
                              wall=k, t=ct, tries=1, blockers=False)  # fmt: skip
            break


def _wall_meshes(L: _Layout) -> list[M.Mesh]:
    out = []
    sp = L.sp
    for k in range(4):
        o, a, n, length, _ = L.wall(k)
        nu, nv = int(np.ceil(length / sp)), int(np.ceil(L.H / sp))
        tc = (np.arange(nu) + 0.5) * length / nu
        zc = (np.arange(nv) + 0.5) * L.H / nv
        keep = np.ones((nv, nu), bool)
        for ok, t0, t1, z0, z1 in L.openings:
            if ok == k:
                keep &= ~(
                    (tc[None, :] > t0 + 0.02)
                    & (tc[None, :] < t1 - 0.02)
                    & (zc[:, None] > z0 + 0.02)
                    & (zc[:, None] < z1 - 0.02)
                )
        origin = np.array([o[0], o[1], 0.0])
        v, f = M.grid(
            origin, np.array([a[0] * length, a[1] * length, 0.0]), np.array([0.0, 0.0, L.H]), nu, nv, keep
        )
        used = np.unique(f)
        remap = np.full(len(v), -1, np.int64)
        remap[used] = np.arange(len(used))
        out.append(M.Mesh(v[used], remap[f][:, ::-1], np.zeros(len(used), np.int64)))
    return out


def _floor_mesh(L: _Layout) -> M.Mesh:
    sp = L.sp
    nu, nv = int(np.ceil(L.W / sp)), int(np.ceil(L.D / sp))
    xc = (np.arange(nu) + 0.5) * L.W / nu
    yc = (np.arange(nv) + 0.5) * L.D / nv
    keep = np.ones((nv, nu), bool)
    for p in L.objects:  # the scanner never sees the floor under furniture
        if p.on_floor and p.key not in (
            "door",
            "curtain",
            "chair",
            "office chair",
            "table",
            "desk",
            "coffee table",
        ):
            keep &= ~(
                (xc[None, :] > p.lo[0] + 0.04)
                & (xc[None, :] < p.hi[0] - 0.04)
                & (yc[:, None] > p.lo[1] + 0.04)
                & (yc[:, None] < p.hi[1] - 0.04)
            )
    v, f = M.grid(np.zeros(3), np.array([L.W, 0.0, 0.0]), np.array([0.0, L.D, 0.0]), nu, nv, keep)
    used = np.unique(f)
    remap = np.full(len(v), -1, np.int64)
    remap[used] = np.arange(len(used))
    return M.Mesh(v[used], remap[f], np.zeros(len(used), np.int64))


# --------------------------------------------------------------------------------------- room types
def _bedroom(L: _Layout) -> None:
    rng = L.rng
    b = L.on_wall("bed", gap=0.0)
    if b is not None:
        w = b.size[0]
        n = 1 if w < 1.3 else 2
        for i in range(n):
            x = 0.0 if n == 1 else (i - 0.5) * w / 2
            L.on_top(b, "pillow", rel=(x, b.size[1] / 2 - 0.35), z=b.pos[2] + bed_mattress_top(b.size[2]))
        for side in (-1, 1):
            if rng.random() < 0.7:
                ns = L.beside(b, "nightstand", side)
                if ns is not None and rng.random() < 0.6:
                    L.on_top(ns, "lamp")
    if rng.random() < 0.6:
        d = L.on_wall("dresser")
        if d is not None and rng.random() < 0.5:
            L.on_top(d, "tv", rel=(0.0, 0.05))
    if rng.random() < 0.5:
        L.on_wall("tall cabinet")
    if rng.random() < 0.4:
        _desk_with_chair(L, "chair")


def _desk_with_chair(L: _Layout, chair: str) -> None:
    d = L.on_wall("desk")
    if d is None:
        return
    rng = L.rng
    c = CATEGORIES[chair].sample_size(rng)
    dist = d.size[1] / 2 + c[1] / 2 - 0.1 + 0.15 * rng.random()
    yaw = d.yaw + rng.uniform(-0.4, 0.4)
    off = np.array([np.sin(d.yaw), -np.cos(d.yaw)]) * dist  # towards the desk's front (-y local)
    p = L.make(chair, c, (d.pos[0] + off[0], d.pos[1] + off[1], 0.0), yaw)
    L.add(p, ignore=(d,))
    if rng.random() < 0.5:
        L.on_top(d, "clutter", rel=(rng.uniform(-0.3, 0.3), 0.1))
    if rng.random() < 0.4:
        L.on_top(d, "box" if rng.random() < 0.5 else "lamp", rel=(d.size[0] / 2 - 0.25, 0.1))


def _table_with_chairs(L: _Layout, key: str = "table") -> None:
    t = L.anywhere(key, yaw=float(L.rng.integers(2) * np.pi / 2))
    if t is None:
        return
    rng = L.rng
    w, d, _ = t.size
    seats = [(0.0, -1.0), (0.0, 1.0)]
    if w > 1.3:
        seats = [(-w / 4, -1.0), (w / 4, -1.0), (-w / 4, 1.0), (w / 4, 1.0)]
    seats += [(-1.0, 0.0), (1.0, 0.0)] if rng.random() < 0.4 else []
    for sx, sy in seats:
        if rng.random() < 0.2:
            continue
        c = CATEGORIES["chair"].sample_size(rng)
        if sy != 0:
            local = np.array([sx, sy * (d / 2 + c[1] / 2 - 0.12 + 0.2 * rng.random())])
        else:
            local = np.array([sx * (w / 2 + c[1] / 2 - 0.12 + 0.2 * rng.random()), 0.0])
        cs, sn = np.cos(t.yaw), np.sin(t.yaw)
        pos = t.pos[:2] + np.array([cs * local[0] - sn * local[1], sn * local[0] + cs * local[1]])
        u = t.pos[:2] - pos
        yaw = np.arctan2(u[0], -u[1]) + rng.uniform(-0.35, 0.35)
        L.add(L.make("chair", c, (pos[0], pos[1], 0.0), yaw), ignore=(t,))
    if rng.random() < 0.4:
        L.on_top(t, "clutter", rel=(rng.uniform(-0.2, 0.2), rng.uniform(-0.1, 0.1)))


def _living(L: _Layout) -> None:
    rng = L.rng
    for _ in range(1 + int(rng.random() < 0.3)):
        s = L.on_wall("couch", gap=0.05)
        if s is not None:
            ct = CATEGORIES["coffee table"].sample_size(rng)
            dist = s.size[1] / 2 + 0.4 + ct[1] / 2
            off = np.array([np.sin(s.yaw), -np.cos(s.yaw)]) * dist
            L.add(L.make("coffee table", ct, (s.pos[0] + off[0], s.pos[1] + off[1], 0.0), s.yaw))
            if rng.random() < 0.6:
                L.on_top(s, "pillow", rel=(rng.uniform(-0.4, 0.4), s.size[1] / 2 - 0.3), z=0.5)
    for _ in range(int(rng.integers(0, 3))):
        L.on_wall("bookshelf")
    if rng.random() < 0.6:
        c = L.on_wall("cabinet")
        if c is not None and rng.random() < 0.7:
            L.on_top(c, "tv", rel=(0.0, 0.05))
    if rng.random() < 0.5:
        _table_with_chairs(L)
    for _ in range(int(rng.integers(0, 3))):
        L.anywhere("chair", yaw=float(rng.uniform(-np.pi, np.pi)))


def _office(L: _Layout) -> None:
    rng = L.rng
    for _ in range(int(rng.integers(1, 4))):
        _desk_with_chair(L, "office chair" if rng.random() < 0.7 else "chair")
    for _ in range(int(rng.integers(0, 3))):
        L.on_wall("bookshelf")
    for _ in range(int(rng.integers(1, 3))):
        L.on_wall("cabinet" if rng.random() < 0.6 else "tall cabinet")
    if rng.random() < 0.4:
        L.on_wall("whiteboard", z0=float(rng.uniform(0.8, 1.0)), gap=0.0)
    if rng.random() < 0.3:
        _table_with_chairs(L)
    if rng.random() < 0.3:
        L.on_wall("refrigerator", size=np.array([0.5, 0.55, rng.uniform(0.8, 1.0)]))


def _kitchen(L: _Layout) -> None:
    rng = L.rng
    for _ in range(1 + int(rng.random() < 0.5)):
        _counter_run(L)
    L.on_wall("refrigerator")
    if rng.random() < 0.8:
        _table_with_chairs(L)
    if rng.random() < 0.4:
        L.on_wall("cabinet")


def _counter_run(L: _Layout) -> None:
    for _ in range(6):
        if _try_counter_run(L):
            return


def _try_counter_run(L: _Layout) -> bool:
    rng = L.rng
    k = int(rng.integers(4))
    _, _, _, length, _ = L.wall(k)
    n = int(rng.integers(2, 6))
    cw = rng.uniform(0.5, 0.8)
    run = n * cw
    if run > length - 0.2:
        n = int((length - 0.2) // cw)
        run = n * cw
    if n < 1:
        return False
    t0 = rng.uniform(0.05, length - run - 0.05)
    h, depth = rng.uniform(0.84, 0.88), 0.6
    col = pick(rng, "white" if rng.random() < 0.5 else "wood")
    cabs = []
    for i in range(n):
        sz = np.array([cw - 0.005, depth, h])
        p = L.on_wall("kitchen cabinet", sz, wall=k, t=t0 + (i + 0.5) * cw, tries=1, ignore=tuple(cabs))
        if p is None:
            break
        p.parts = kitchen_cabinet(rng, sz, L.sp, col)  # one colour for the whole run
        cabs.append(p)
    if not cabs:
        return False
    first, last = cabs[0], cabs[-1]
    tc = (first.t + last.t) / 2
    width = last.t - first.t + cw + 0.02
    top = np.array([width, depth + 0.03, 0.04])
    o, a, nn, _, yaw = L.wall(k)
    xy = o + a * tc + nn * (top[1] / 2)
    ctr = L.make("counter", top, (xy[0], xy[1], h), yaw, on_floor=False, wall=k, t=tc)
    L.objects.append(ctr)
    if rng.random() < 0.8:
        L.on_top(
            ctr, "sink", rel=(rng.uniform(-width / 2 + 0.35, width / 2 - 0.35) if width > 0.8 else 0.0, 0.0)
        )
    if rng.random() < 0.5:  # wall cabinets above the counter
        uh = rng.uniform(0.6, 0.75)
        upper: list[Placed] = []
        for c in cabs:
            if rng.random() < 0.85:
                sz = np.array([cw - 0.005, 0.35, uh])
                p = L.on_wall("kitchen cabinet", sz, z0=h + 0.55, wall=k, t=c.t, tries=1, ignore=tuple(upper))
                if p is not None:
                    p.parts = kitchen_cabinet(rng, p.size, L.sp, col)
                    upper.append(p)
    return True


def _bathroom(L: _Layout) -> None:
    rng = L.rng
    L.on_wall("toilet", gap=0.02)
    if rng.random() < 0.4:
        _counter_run(L)
    for _ in range(int(rng.random() < 0.7) + int(rng.random() < 0.3)):
        v = L.on_wall(
            "cabinet",
            size=np.array([rng.uniform(0.55, 1.0), rng.uniform(0.42, 0.55), rng.uniform(0.75, 0.85)]),
        )
        if v is not None:
            L.on_top(v, "sink", rel=(0.0, -0.02))
    if rng.random() < 0.75:
        _tub_with_curtain(L)
    if rng.random() < 0.4:
        L.on_wall("cabinet")


def _tub_with_curtain(L: _Layout) -> None:
    rng = L.rng
    tub = None
    for _ in range(10):  # tubs go into a corner
        k = int(rng.integers(4))
        sz = CATEGORIES["bathtub"].sample_size(rng)
        _, _, _, length, _ = L.wall(k)
        t = sz[0] / 2 + 0.02 if rng.random() < 0.5 else length - sz[0] / 2 - 0.02
        tub = L.on_wall("bathtub", sz, wall=k, t=t, tries=1, gap=0.02)
        if tub is not None:
            break
    if tub is not None and rng.random() < 0.85:
        sc = CATEGORIES["shower curtain"].sample_size(rng)
        sc[0] = tub.size[0] - 0.05
        off = np.array([np.sin(tub.yaw), -np.cos(tub.yaw)]) * (tub.size[1] / 2 - 0.08)
        p = L.make(
            "shower curtain", sc, (tub.pos[0] + off[0], tub.pos[1] + off[1], 0.3), tub.yaw, on_floor=False
        )
        L.add(p, ignore=(tub,))


ROOM_TYPES = {
    "bedroom": ("Bedroom / Hotel", _bedroom, (3.0, 5.5)),
    "living": ("Living room / Lounge", _living, (3.8, 7.0)),
    "office": ("Office", _office, (3.2, 7.0)),
    "kitchen": ("Kitchen", _kitchen, (3.0, 5.5)),
    "bathroom": ("Bathroom", _bathroom, (2.2, 3.6)),
}
_EXTRAS = (
    "cabinet",
    "bookshelf",
    "trash can",
    "chair",
    "table",
    "desk",
    "couch",
    "refrigerator",
    "toilet",
    "bathtub",
    "bed",
)


def _extras(L: _Layout) -> None:
    rng = L.rng
    for _ in range(int(rng.integers(1, 4))):  # classes from other room types keep every class frequent
        key = _EXTRAS[int(rng.integers(len(_EXTRAS)))]
        if key in ("chair", "trash can", "table"):
            L.anywhere(key)
        elif key == "bathtub":
            _tub_with_curtain(L)
        else:
            L.on_wall(key)
    for _ in range(int(rng.integers(1, 3))):
        L.anywhere("trash can")
    for _ in range(int(rng.integers(0, 4))):
        size = CATEGORIES["picture"].sample_size(rng)
        L.on_wall("picture", size, z0=float(rng.uniform(1.1, 1.7)), gap=0.0)
    for _ in range(int(rng.integers(2, 9))):
        L.anywhere("clutter" if rng.random() < 0.7 else "box")


# -------------------------------------------------------------------------------------- generation
def generate_room(
    index: int, seed: int, spacing: float = DEFAULT_SPACING, scene_id: str | None = None
) -> SynthRoom:
    """Generate room ``index`` of the dataset with ``seed`` (independent of other rooms)."""
    if spacing <= 0.005:
        raise ValueError(f"spacing must be > 0.005 m, got {spacing}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), 0x5CA77E7]))
    kind = list(ROOM_TYPES)[int(rng.integers(len(ROOM_TYPES)))]
    scene_type, fill, (lo, hi) = ROOM_TYPES[kind]
    W, D = rng.uniform(lo, hi, 2)
    H = rng.uniform(2.4, 3.0)
    L = _Layout(rng, float(W), float(D), float(H), spacing)
    _add_openings(L)
    fill(L)
    _extras(L)

    floor_kind = ["floor_wood", "floor_tile", "floor_carpet"][int(rng.integers(3))]
    wall_col = pick(rng, "wall")
    pieces: list[tuple[M.Mesh, np.ndarray, int]] = []  # mesh (room frame), rgb, object index
    labels: list[str | None] = []
    boxes: list[np.ndarray] = []
    for wm in _wall_meshes(L):
        pieces.append((wm, wall_col * (0.97 + 0.06 * rng.random()), len(labels)))
        labels.append("wall")
        boxes.append(np.concatenate([wm.vertices.min(0), wm.vertices.max(0)]))
    fm = _floor_mesh(L)
    pieces.append((fm, pick(rng, floor_kind), len(labels)))
    labels.append("floor")
    boxes.append(np.concatenate([fm.vertices.min(0), fm.vertices.max(0)]))
    for p in L.objects:
        if not p.parts:
            continue
        oi = len(labels)
        labels.append(p.raw)
        tint = 0.92 + 0.16 * rng.random(3)
        vs = []
        for mesh, col in p.parts:
            m = mesh.transformed(p.yaw, p.pos)
            pieces.append((m, np.clip(col * tint, 0, 255), oi))
            vs.append(m.vertices)
        allv = np.concatenate(vs)
        boxes.append(np.concatenate([allv.min(0), allv.max(0)]))

    mesh, part = M.concat([pc[0] for pc in pieces])
    obj = np.array([pc[2] for pc in pieces], np.int64)[part]
    base = np.stack([pc[1] for pc in pieces])[part]
    V = mesh.num_vertices
    xyz_room = mesh.vertices
    # colours: room exposure and warm cast, per-vertex low-frequency shading and sensor noise
    exposure = rng.uniform(0.62, 0.95) * np.array([1.0, 0.96, 0.88]) * (0.95 + 0.1 * rng.random(3))
    fr = rng.uniform(1.0, 3.0, 3)
    ph = rng.uniform(0, 2 * np.pi, 3)
    shade = (
        1.0
        + 0.07 * np.sin(xyz_room @ fr + ph[0])
        + 0.05 * np.sin(xyz_room[:, [1, 2, 0]] @ fr[::-1] * 1.7 + ph[1])
    )
    shade *= 0.84 + 0.16 * np.clip(xyz_room[:, 2] / 0.8, 0, 1)
    rgb = base * exposure * shade[:, None] + rng.normal(0, 6.0, (V, 3))
    rgba = np.concatenate([np.clip(np.rint(rgb), 0, 255), np.full((V, 1), 255.0)], 1).astype(np.uint8)

    # over-segmentation: piece, flat patch and a spatial cell; id = smallest member vertex index
    cell = np.floor(xyz_room / SEG_CELL).astype(np.int64) + 64
    key = np.stack([part, mesh.patch, cell[:, 0], cell[:, 1], cell[:, 2]], 1)
    _, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    first = np.full(inv.max() + 1, V, np.int64)
    np.minimum.at(first, inv, np.arange(V))
    seg = first[inv]

    # aggregation: annotated objects; a few wall/floor segments stay unannotated, as in real scans
    groups: list[tuple[str, list[int]]] = []
    instance = np.full(V, -1, np.int64)
    gboxes = []
    for oi, raw in enumerate(labels):
        if raw is None:
            continue
        sel = obj == oi
        segs = np.unique(seg[sel])
        if raw in ("wall", "floor"):
            drop = rng.random(len(segs)) < 0.2
            if drop.all():
                drop[0] = False
            segs = segs[~drop]
        member = sel & np.isin(seg, segs)
        instance[member] = len(groups)
        groups.append((raw, [int(s) for s in segs]))
        gboxes.append(boxes[oi])

    # scan frame: rotate the room by a random angle and shift it to positive coordinates
    theta = rng.uniform(-np.pi, np.pi)
    c, s = np.cos(theta), np.sin(theta)
    R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    centre = np.array([L.W / 2, L.D / 2, 0.0])
    corners = (np.array([[0, 0, 0], [L.W, 0, 0], [0, L.D, 0], [L.W, L.D, 0]]) - centre) @ R.T
    shift = -corners.min(0) + np.array([*rng.uniform(0.0, 0.4, 2), rng.uniform(-0.06, 0.06)])
    to_scan = np.eye(4)
    to_scan[:3, :3] = R
    to_scan[:3, 3] = shift
    axis_align = np.linalg.inv(to_scan)
    xyz_al = xyz_room - centre + rng.normal(0.0, 0.003, (V, 3))
    xyz = (xyz_al @ R.T + shift).astype(np.float32)
    gb = np.array(gboxes, np.float64).reshape(-1, 6) - np.concatenate([centre, centre])

    sid = scene_id or f"scene{index:04d}_00"
    return SynthRoom(
        sid, xyz, rgba, mesh.faces.astype(np.int32), seg, groups, instance, axis_align, gb, scene_type
    )


# ----------------------------------------------------------------------------------------- writing
_NYU40_COLORS = np.random.default_rng(40).integers(40, 255, (41, 3)).astype(np.uint8)


def _segs_json(scene_id: str, seg: np.ndarray) -> str:
    params = (
        '{\n"params": {\n\t"kThresh": "0.0001",\n\t"segMinVerts": "20",\n\t"minPoints": "750",\n'
        '\t"maxPoints": "30000",\n\t"thinThresh": "0.05",\n\t"flatThresh": "0.001",\n\t"minLength": "0.02",\n'
        '\t"maxLength": "1"\n}\n,\n'
    )
    return params + f'"sceneId": "{scene_id}",\n"segIndices": [' + ",".join(map(str, seg.tolist())) + "]\n}\n"


def _aggregation_json(scene_id: str, groups: list[tuple[str, list[int]]]) -> str:
    blocks = []
    for i, (label, segs) in enumerate(groups):
        blocks.append(
            f'\t{{\n\t"id": {i},\n\t"objectId": {i},\n\t"segments": [{",".join(map(str, segs))}],\n'
            f'\t"label": {json.dumps(label)}\n\t}}'
        )
    return (
        f'{{\n"sceneId": "{scene_id}",\n"appId": "Aggregator.v1",\n"segGroups": [\n'
        + ",\n".join(blocks)
        + f'\n],\n"segmentsFile": "{scene_id}_vh_clean_2.0.010000.segs.json"}}\n'
    )


def _scene_txt(room: SynthRoom, num_frames: int) -> str:
    m = " ".join(f"{v:.6f}" for v in room.axis_align.reshape(-1))
    return (
        f"axisAlignment = {m}\ncolorHeight = 968\ncolorWidth = 1296\ndepthHeight = 480\ndepthWidth = 640\n"
        "fx_color = 1170.187988\nfx_depth = 571.623718\nfy_color = 1170.187988\nfy_depth = 571.623718\n"
        "mx_color = 647.750000\nmx_depth = 319.500000\nmy_color = 483.750000\nmy_depth = 239.500000\n"
        f"numColorFrames = {num_frames}\nnumDepthFrames = {num_frames}\nnumIMUmeasurements = {2 * num_frames + 7}\n"
        f"sceneType = {room.scene_type}\n"
    )


def write_room(room: SynthRoom, scans_dir: str | os.PathLike) -> Path:
    """Write the raw ScanNet files of ``room`` into ``scans_dir/<scene_id>/``; returns that folder."""
    d = Path(scans_dir) / room.scene_id
    d.mkdir(parents=True, exist_ok=True)
    sid = room.scene_id
    write_ply_mesh(d / f"{sid}_vh_clean_2.ply", room.xyz, room.rgba, room.faces)
    label = np.zeros(len(room.xyz), np.int64)
    nyu = np.zeros(len(room.xyz), np.int64)
    for g, (raw, _) in enumerate(room.groups):
        label[room.instance == g] = scannet_id_of(raw)
        nyu[room.instance == g] = nyu40_of(raw)
    lrgba = np.concatenate([_NYU40_COLORS[nyu], np.full((len(nyu), 1), 255, np.uint8)], 1)
    write_ply_mesh(d / f"{sid}_vh_clean_2.labels.ply", room.xyz, lrgba, room.faces, label=label)
    write_text(d / f"{sid}_vh_clean_2.0.010000.segs.json", _segs_json(sid, room.seg), newline="\r\n")
    write_text(d / f"{sid}.aggregation.json", _aggregation_json(sid, room.groups), newline="\r\n")
    write_text(d / f"{sid}.txt", _scene_txt(room, 1000 + int(room.seg[-1]) % 4000))
    return d


def used_raw_categories() -> list[str]:
    """Every raw category name the generator can write (for the label table)."""
    names = {"wall", "floor", "door", "window", "counter"}
    names |= {c.raw for c in CATEGORIES.values() if c.raw is not None}
    return sorted(names)


__all__ = ["DEFAULT_SPACING", "PALETTE", "SynthRoom", "generate_room", "used_raw_categories", "write_room"]
