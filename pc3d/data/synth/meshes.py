"""Triangle-mesh primitives for the synthetic scene generators (numpy only).

Every primitive returns a :class:`Mesh`: ``vertices (V, 3) float64``, ``faces (F, 3) int64`` and
``patch (V,) int64``, a per-vertex patch id local to the primitive (one id per flat side) that the
ScanNet generator turns into over-segmentation segments. Primitives are built in a local frame
and moved with :meth:`Mesh.transformed`. Meshes are joined with :func:`concat`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SIDES = ("+x", "-x", "+y", "-y", "+z", "-z")


@dataclass
class Mesh:
    """A triangle soup with per-vertex patch ids.

    Attributes:
        vertices: ``(V, 3)`` float64 positions.
        faces: ``(F, 3)`` int64 vertex indices, counter-clockwise seen from outside.
        patch: ``(V,)`` int64 patch id of each vertex (flat side of the primitive).
    """

    vertices: np.ndarray
    faces: np.ndarray
    patch: np.ndarray

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    def transformed(self, yaw: float = 0.0, translation: Sequence[float] = (0.0, 0.0, 0.0)) -> Mesh:
        """Rotate by ``yaw`` about +z, then translate."""
        c, s = np.cos(yaw), np.sin(yaw)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        v = self.vertices @ rot.T + np.asarray(translation, dtype=np.float64)
        return Mesh(v, self.faces, self.patch)


def empty() -> Mesh:
    return Mesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros(0, np.int64))


def concat(meshes: Sequence[Mesh]) -> tuple[Mesh, np.ndarray]:
    """Join meshes; patch ids are made unique across inputs.

    Returns:
        ``(mesh, part)`` where ``part (V,)`` is the index of the input mesh of every vertex.
    """
    meshes = [m for m in meshes]
    if not meshes:
        return empty(), np.zeros(0, np.int64)
    counts = np.array([m.num_vertices for m in meshes], np.int64)
    vstart = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pstart = 0
    faces, patches = [], []
    for m, v0 in zip(meshes, vstart):
        faces.append(m.faces + v0)
        patches.append(m.patch + pstart)
        pstart += int(m.patch.max()) + 1 if m.patch.size else 0
    part = np.repeat(np.arange(len(meshes)), counts)
    return (
        Mesh(
            np.concatenate([m.vertices for m in meshes]),
            np.concatenate(faces).astype(np.int64),
            np.concatenate(patches).astype(np.int64),
        ),
        part,
    )


def grid(
    origin: np.ndarray, du: np.ndarray, dv: np.ndarray, nu: int, nv: int, keep: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A planar grid of ``nu x nv`` quads spanned by ``du``/``dv`` from ``origin``.

    Args:
        keep: optional ``(nv, nu)`` bool mask of quads to keep (holes for doors, windows).

    Returns:
        ``vertices ((nu+1)(nv+1), 3)``, ``faces (2K, 3)`` with normals along ``du x dv``.
    """
    u = np.linspace(0.0, 1.0, nu + 1)
    v = np.linspace(0.0, 1.0, nv + 1)
    uu, vv = np.meshgrid(u, v)  # (nv+1, nu+1)
    verts = origin[None] + uu.reshape(-1, 1) * du[None] + vv.reshape(-1, 1) * dv[None]
    i = np.arange(nu)[None, :] + np.arange(nv)[:, None] * (nu + 1)  # (nv, nu) lower-left corner
    if keep is not None:
        i = i[keep]
    i = i.reshape(-1)
    a, b, c, d = i, i + 1, i + nu + 2, i + nu + 1
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return verts, faces


def _steps(length: float, spacing: float) -> int:
    return max(1, int(np.ceil(abs(length) / spacing - 1e-9)))


def box(lo: Sequence[float], hi: Sequence[float], spacing: float, sides: Sequence[str] = SIDES) -> Mesh:
    """Axis-aligned box ``[lo, hi]`` with each listed side tessellated at about ``spacing``."""
    lo = np.asarray(lo, np.float64)
    hi = np.asarray(hi, np.float64)
    ext = hi - lo
    if np.any(ext <= 0):
        raise ValueError(f"box: hi must exceed lo on every axis, got lo={lo}, hi={hi}")
    ex, ey, ez = np.eye(3)
    spec = {
        # side: (origin, du, dv) with du x dv pointing outward
        "+x": (np.array([hi[0], lo[1], lo[2]]), ey * ext[1], ez * ext[2]),
        "-x": (np.array([lo[0], lo[1], lo[2]]), ez * ext[2], ey * ext[1]),
        "+y": (np.array([lo[0], hi[1], lo[2]]), ez * ext[2], ex * ext[0]),
        "-y": (np.array([lo[0], lo[1], lo[2]]), ex * ext[0], ez * ext[2]),
        "+z": (np.array([lo[0], lo[1], hi[2]]), ex * ext[0], ey * ext[1]),
        "-z": (np.array([lo[0], lo[1], lo[2]]), ey * ext[1], ex * ext[0]),
    }
    verts, faces, patch = [], [], []
    n = 0
    for k, side in enumerate(sides):
        o, du, dv = spec[side]
        v, f = grid(o, du, dv, _steps(np.linalg.norm(du), spacing), _steps(np.linalg.norm(dv), spacing))
        verts.append(v)
        faces.append(f + n)
        patch.append(np.full(len(v), k, np.int64))
        n += len(v)
    return Mesh(np.concatenate(verts), np.concatenate(faces), np.concatenate(patch))


def cylinder(
    radius: float,
    height: float,
    spacing: float,
    top: bool = True,
    bottom: bool = False,
    radius_top: float | None = None,
    segments: int | None = None,
) -> Mesh:
    """Vertical (frustum of a) cylinder with its base centre at the origin, axis +z."""
    rt = radius if radius_top is None else radius_top
    nseg = segments or max(8, int(np.ceil(2 * np.pi * max(radius, rt) / spacing)))
    nz = _steps(height, spacing)
    ang = np.linspace(0.0, 2 * np.pi, nseg + 1)
    z = np.linspace(0.0, height, nz + 1)
    r = np.linspace(radius, rt, nz + 1)
    aa, zz = np.meshgrid(ang, z)
    rr = np.broadcast_to(r[:, None], aa.shape)
    verts = [np.stack([rr * np.cos(aa), rr * np.sin(aa), zz], -1).reshape(-1, 3)]
    i = (np.arange(nseg)[None, :] + np.arange(nz)[:, None] * (nseg + 1)).reshape(-1)
    faces = [
        np.concatenate([np.stack([i, i + 1, i + nseg + 2], 1), np.stack([i, i + nseg + 2, i + nseg + 1], 1)])
    ]
    patch = [np.zeros(len(verts[0]), np.int64)]
    n = len(verts[0])
    for flag, zc, rc, pid, flip in ((top, height, rt, 1, False), (bottom, 0.0, radius, 2, True)):
        if not flag or rc <= 0:
            continue
        nr = _steps(rc, spacing)
        rs = np.linspace(0.0, rc, nr + 1)[1:]
        a2, r2 = np.meshgrid(ang[:-1], rs)
        ring = np.stack([r2 * np.cos(a2), r2 * np.sin(a2), np.full_like(r2, zc)], -1).reshape(-1, 3)
        v = np.concatenate([[[0.0, 0.0, zc]], ring])
        f = []
        ring_idx = 1 + np.arange(nr * nseg).reshape(nr, nseg)
        nxt = np.roll(ring_idx, -1, axis=1)
        f.append(np.stack([np.zeros(nseg, np.int64), ring_idx[0], nxt[0]], 1))
        if nr > 1:
            a, b = ring_idx[:-1].reshape(-1), nxt[:-1].reshape(-1)
            c, d = nxt[1:].reshape(-1), ring_idx[1:].reshape(-1)
            f.append(np.stack([a, d, c], 1))
            f.append(np.stack([a, c, b], 1))
        f = np.concatenate(f)
        if flip:
            f = f[:, ::-1]
        verts.append(v)
        faces.append(f + n)
        patch.append(np.full(len(v), pid, np.int64))
        n += len(v)
    return Mesh(np.concatenate(verts), np.concatenate(faces).astype(np.int64), np.concatenate(patch))


def hexahedron(corners: np.ndarray, spacing: float) -> Mesh:
    """Convex hexahedron from ``corners (8, 3)`` ordered like a box: bottom ``0-3`` then top ``4-7``,
    each counter-clockwise seen from above (corner ``i+4`` above corner ``i``). Sides are tessellated
    bilinearly; patch ids 0..5 = bottom, top, four sides."""
    c = np.asarray(corners, np.float64)
    quads = [(0, 3, 2, 1), (4, 5, 6, 7)] + [(i, (i + 1) % 4, (i + 1) % 4 + 4, i + 4) for i in range(4)]
    q = np.array(quads)
    edges = np.linalg.norm(c[q] - c[np.roll(q, -1, axis=1)], axis=-1)
    if edges.max() <= spacing:  # untessellated: one quad per side
        faces = (np.arange(6)[:, None, None] * 4 + np.array([[0, 1, 2], [0, 2, 3]])[None]).reshape(-1, 3)
        return Mesh(c[q].reshape(-1, 3), faces, np.repeat(np.arange(6), 4))
    verts, faces, patch = [], [], []
    n = 0
    for k, (a, b, cc, d) in enumerate(quads):
        pa, pb, pc, pd = c[a], c[b], c[cc], c[d]
        nu = _steps(max(np.linalg.norm(pb - pa), np.linalg.norm(pc - pd)), spacing)
        nv = _steps(max(np.linalg.norm(pd - pa), np.linalg.norm(pc - pb)), spacing)
        u = np.linspace(0.0, 1.0, nu + 1)
        v = np.linspace(0.0, 1.0, nv + 1)
        uu, vv = np.meshgrid(u, v)
        uu, vv = uu.reshape(-1, 1), vv.reshape(-1, 1)
        p = (1 - uu) * (1 - vv) * pa + uu * (1 - vv) * pb + uu * vv * pc + (1 - uu) * vv * pd
        i = (np.arange(nu)[None, :] + np.arange(nv)[:, None] * (nu + 1)).reshape(-1)
        f = np.concatenate([np.stack([i, i + 1, i + nu + 2], 1), np.stack([i, i + nu + 2, i + nu + 1], 1)])
        verts.append(p)
        faces.append(f + n)
        patch.append(np.full(len(p), k, np.int64))
        n += len(p)
    return Mesh(np.concatenate(verts), np.concatenate(faces), np.concatenate(patch))


def icosphere(radius: float, subdivisions: int = 2) -> Mesh:
    """Sphere of ``radius`` centred at the origin from a subdivided icosahedron (one patch)."""
    v, f = _unit_icosphere(int(subdivisions))
    return Mesh(v * radius, f.copy(), np.zeros(len(v), np.int64))


@functools.lru_cache(maxsize=8)
def _unit_icosphere(subdivisions: int) -> tuple[np.ndarray, np.ndarray]:
    t = (1.0 + 5**0.5) / 2.0
    v = np.array(
        [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t],
         [0, -1, -t], [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], np.float64
    )  # fmt: skip
    f = np.array(
        [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
         [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5],
         [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]], np.int64
    )  # fmt: skip
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    for _ in range(subdivisions):
        edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
        uniq, inv = np.unique(edges, axis=0, return_inverse=True)
        mid = v[uniq[:, 0]] + v[uniq[:, 1]]
        mid /= np.linalg.norm(mid, axis=1, keepdims=True)
        m = inv.reshape(3, -1).T + len(v)  # (F, 3) midpoints of edges 01, 12, 20
        v = np.concatenate([v, mid])
        a, b, c = f[:, 0], f[:, 1], f[:, 2]
        m01, m12, m20 = m[:, 0], m[:, 1], m[:, 2]
        f = np.concatenate(
            [np.stack([a, m01, m20], 1), np.stack([b, m12, m01], 1), np.stack([c, m20, m12], 1),
             np.stack([m01, m12, m20], 1)]
        )  # fmt: skip
    v.setflags(write=False)
    f.setflags(write=False)
    return v, f


def wavy_sheet(width: float, height: float, amplitude: float, period: float, spacing: float) -> Mesh:
    """Vertical curtain-like sheet in the x-z plane (x in [0, width], z in [0, height]) whose depth
    ``y = amplitude * sin(2 pi x / period)`` ripples; faces both ways (two patches)."""
    nu = _steps(width, spacing)
    nv = _steps(height, spacing)
    v, f = grid(np.zeros(3), np.array([width, 0.0, 0.0]), np.array([0.0, 0.0, height]), nu, nv)
    v[:, 1] = amplitude * (np.sin(2 * np.pi * v[:, 0] / period) + 1.0)
    # Second layer, slightly behind, facing the other way (a real scan sees the front only, but
    # both sides keep the sheet closed for ray casting and normal estimation).
    v2 = v.copy()
    v2[:, 1] += 0.01
    faces = np.concatenate([f[:, ::-1], f + len(v)])
    patch = np.concatenate([np.zeros(len(v), np.int64), np.ones(len(v2), np.int64)])
    return Mesh(np.concatenate([v, v2]), faces, patch)


def coarse_boxes(lo: np.ndarray, hi: np.ndarray, sides: Sequence[str] = SIDES) -> Mesh:
    """Many axis-aligned boxes ``lo/hi (N, 3)`` at once with one quad (two triangles) per listed side;
    for ray casting, where no tessellation is needed. Patch id = box index."""
    lo = np.asarray(lo, np.float64).reshape(-1, 3)
    hi = np.asarray(hi, np.float64).reshape(-1, 3)
    if np.any(hi <= lo):
        raise ValueError("coarse_boxes: hi must exceed lo on every axis")
    # corner selectors (0 = lo, 1 = hi) per side, counter-clockwise seen from outside
    table = {
        "+x": [(1, 0, 0), (1, 1, 0), (1, 1, 1), (1, 0, 1)],
        "-x": [(0, 0, 0), (0, 0, 1), (0, 1, 1), (0, 1, 0)],
        "+y": [(0, 1, 0), (0, 1, 1), (1, 1, 1), (1, 1, 0)],
        "-y": [(0, 0, 0), (1, 0, 0), (1, 0, 1), (0, 0, 1)],
        "+z": [(0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1)],
        "-z": [(0, 0, 0), (0, 1, 0), (1, 1, 0), (1, 0, 0)],
    }
    sel = np.array([table[s] for s in sides], np.float64)  # (S, 4, 3)
    n = len(lo)
    v = lo[:, None, None, :] + sel[None] * (hi - lo)[:, None, None, :]  # (N, S, 4, 3)
    base = (np.arange(n * len(sides)) * 4)[:, None]
    quad = np.array([[0, 1, 2], [0, 2, 3]])
    faces = (base[:, None, :] + quad[None]).reshape(-1, 3)
    patch = np.repeat(np.arange(n), len(sides) * 4)
    return Mesh(v.reshape(-1, 3), faces.astype(np.int64), patch)
