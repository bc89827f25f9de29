"""Street-scene meshes for the synthetic KITTI frames: materials, vehicles, people and street furniture.

Coordinates are metres in the velodyne frame convention (x forward, y left, z up). Object shapes are
built in a local frame with x along the object's length, y to its left and the origin at the bottom
centre of its label box; every surface stays at least ``INSET`` inside that box so that range noise never
pushes a return out of its label box.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pc3d.data.synth import meshes as M

INSET = 0.06  # m between an object's surfaces and its label box

# material id -> (intensity albedo, dropout probability, range noise sigma (m))
MATERIALS = {
    "road": (0.36, 0.01, 0.012),
    "marking": (0.55, 0.01, 0.012),
    "sidewalk": (0.4, 0.01, 0.012),
    "kerb": (0.35, 0.01, 0.012),
    "terrain": (0.42, 0.03, 0.02),
    "facade": (0.25, 0.01, 0.012),
    "window": (0.08, 0.5, 0.012),
    "pole": (0.4, 0.02, 0.012),
    "sign": (0.95, 0.0, 0.012),
    "trunk": (0.3, 0.02, 0.015),
    "foliage": (0.35, 0.3, 0.02),
    "paint": (0.3, 0.01, 0.012),
    "glass": (0.05, 0.5, 0.012),
    "tyre": (0.03, 0.05, 0.012),
    "plate": (0.9, 0.0, 0.012),
    "cloth": (0.25, 0.02, 0.012),
    "skin": (0.3, 0.02, 0.012),
    "metal": (0.4, 0.05, 0.012),
}
MAT_ID = {k: i for i, k in enumerate(MATERIALS)}
MAT_TABLE = np.array(list(MATERIALS.values()), np.float64)  # (K, 3)


@dataclass
class Soup:
    """Triangles with per-face material id, intensity albedo and image colour."""

    vertices: list[np.ndarray] = field(default_factory=list)
    faces: list[np.ndarray] = field(default_factory=list)
    mat: list[np.ndarray] = field(default_factory=list)
    albedo: list[np.ndarray] = field(default_factory=list)
    rgb: list[np.ndarray] = field(default_factory=list)
    n: int = 0

    def add(
        self, mesh: M.Mesh, mat: str, rgb, albedo_scale: float = 1.0, face_mat: np.ndarray | None = None
    ) -> None:
        f = mesh.faces
        self.vertices.append(mesh.vertices)
        self.faces.append(f + self.n)
        self.n += mesh.num_vertices
        m = np.full(len(f), MAT_ID[mat], np.int64) if face_mat is None else face_mat
        self.mat.append(m)
        self.albedo.append(MAT_TABLE[m, 0] * albedo_scale)
        self.rgb.append(np.broadcast_to(np.asarray(rgb, np.float64), (len(f), 3)))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``vertices (V,3) f32, faces (F,3) u32, mat (F,), albedo (F,), rgb (F,3) u8``."""
        return (
            np.concatenate(self.vertices).astype(np.float32),
            np.concatenate(self.faces).astype(np.uint32),
            np.concatenate(self.mat),
            np.concatenate(self.albedo),
            np.clip(np.concatenate(self.rgb), 0, 255).astype(np.uint8),
        )

    def transformed(self, yaw: float, t) -> Soup:
        c, s = np.cos(yaw), np.sin(yaw)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        out = Soup(self.vertices, self.faces, self.mat, self.albedo, self.rgb, self.n)
        out.vertices = [v @ rot.T + np.asarray(t) for v in self.vertices]
        return out


def cbox(lo, hi, spacing: float = 0.0, sides=M.SIDES) -> M.Mesh:
    """One untessellated box (``spacing`` is ignored: ray casting needs no tessellation)."""
    return M.coarse_boxes(np.asarray(lo, np.float64)[None], np.asarray(hi, np.float64)[None], sides)


_WHEEL = M.cylinder(1.0, 1.0, 1.0, top=True, bottom=True, segments=14)


def _y_cylinder(radius: float, width: float, sp: float, center) -> M.Mesh:
    """Cylinder with its axis along y (a wheel) centred at ``center``."""
    m = _WHEEL
    v = m.vertices[:, [0, 2, 1]] * np.array([radius, width, radius]) - np.array([0.0, width / 2, 0.0])
    return M.Mesh(v + np.asarray(center), m.faces[:, ::-1], m.patch)


SP = 0.25  # coarse tessellation: ray casting does not need dense meshes


def car(rng: np.random.Generator, l: float, w: float, h: float, van: bool = False) -> Soup:
    """A passenger car (or van) filling the box ``l x w x h`` minus :data:`INSET`."""
    e = INSET
    L, W, H = l - 2 * e, w - 2 * e, h - e
    paint = np.array([[200, 200, 205], [30, 30, 32], [150, 20, 20], [40, 60, 120], [120, 122, 125],
                      [230, 230, 225], [90, 70, 50], [20, 70, 40]], np.float64)[int(rng.integers(8))]  # fmt: skip
    albedo = 0.4 + 1.6 * rng.random() if paint.mean() > 100 else 0.3 + 0.8 * rng.random()
    s = Soup()
    r = float(np.clip(0.3 + 0.1 * (h - 1.5), 0.28, 0.4))
    xw = L / 2 - 0.18 - r
    for sx in (-1, 1):
        for sy in (-1, 1):
            s.add(_y_cylinder(r, 0.22, SP, (sx * xw, sy * (W / 2 - 0.11), r)), "tyre", (25, 25, 25))
    zb = (0.55 if not van else 0.5) * H + 0.05  # belt line
    clear = 0.25 + 0.05 * rng.random()
    body = np.array([
        [-L / 2, -W / 2, clear], [L / 2, -W / 2, clear], [L / 2, W / 2, clear], [-L / 2, W / 2, clear],
        [-L / 2, -W / 2, zb], [L / 2 - 0.05, -W / 2, zb - 0.12], [L / 2 - 0.05, W / 2, zb - 0.12], [-L / 2, W / 2, zb],
    ])  # fmt: skip
    s.add(M.hexahedron(body, 10.0), "paint", paint, albedo)
    wt = W / 2 - (0.12 if not van else 0.04)
    if van:
        xr0, xf0, xr1, xf1 = -L / 2 + 0.02, L / 2 - 0.75, -L / 2 + 0.02, L / 2 - 1.25
    else:
        xr0, xf0 = -L / 2 + 0.3, L / 2 - 0.24 * L
        xr1, xf1 = -L / 2 + 0.15 * L + 0.35, L / 2 - 0.43 * L
    cab = np.array([
        [xr0, -W / 2 + 0.02, zb], [xf0, -W / 2 + 0.02, zb - 0.02], [xf0, W / 2 - 0.02, zb - 0.02], [xr0, W / 2 - 0.02, zb],
        [xr1, -wt, H], [xf1, -wt, H], [xf1, wt, H], [xr1, wt, H],
    ])  # fmt: skip
    cm = M.hexahedron(cab, 10.0)
    fp = cm.patch[cm.faces[:, 0]]
    glass = np.where(fp >= 2, MAT_ID["glass"], MAT_ID["paint"])
    if van:  # vans have metal sides and rear, glass only at the front
        glass = np.where(fp == 3, MAT_ID["glass"], MAT_ID["paint"])
    s.add(cm, "paint", paint, albedo, face_mat=glass)
    s.rgb[-1] = np.where((glass == MAT_ID["glass"])[:, None], np.array([40.0, 50, 60]), paint)
    for sx in (-1, 1):  # licence plates and lights (bright returns)
        x = sx * (L / 2 - 0.01)
        s.add(
            cbox((x - 0.01, -0.25, clear + 0.1), (x + 0.01, 0.25, clear + 0.22), SP), "plate", (230, 230, 230)
        )
    return s


def pedestrian(rng: np.random.Generator, l: float, w: float, h: float) -> Soup:
    """A walking person inside the box ``l x w x h`` (x = walking direction)."""
    e = 0.05
    L, W, H = l - 2 * e, w - 2 * e, h - e
    cloth = np.array([[30, 30, 40], [60, 60, 90], [120, 40, 40], [200, 200, 190], [80, 90, 60]], np.float64)
    top, bottom = cloth[int(rng.integers(5))], cloth[int(rng.integers(5))]
    alb = 0.5 + rng.random()
    s = Soup()
    stride = min(L - 0.16, 0.2 + 0.4 * rng.random())
    leg = 0.47 * H
    k = W / 0.56
    for sx, sy in ((1, 1), (-1, -1)):
        x = sx * stride / 2
        s.add(
            cbox(
                (x - 0.07, sy * 0.1 * k - 0.065 * k, 0), (x + 0.07, sy * 0.1 * k + 0.065 * k, leg), SP * 0.5
            ),
            "cloth",
            bottom,
            alb,
        )
    torso_top = H - 0.26
    s.add(cbox((-0.11, -0.19 * k, leg), (0.11, 0.19 * k, torso_top), SP * 0.5), "cloth", top, alb)
    for sy in (-1, 1):
        x = -sy * stride / 3
        y0, y1 = sorted((sy * 0.19 * k, sy * 0.28 * k))
        s.add(cbox((x - 0.05, y0, leg + 0.08), (x + 0.05, y1, torso_top - 0.02), SP * 0.5), "cloth", top, alb)
    head = M.icosphere(0.11, 1)
    s.add(
        M.Mesh(head.vertices + np.array([0.0, 0.0, H - 0.12]), head.faces, head.patch),
        "skin",
        (200, 160, 130),
    )
    return s


def cyclist(rng: np.random.Generator, l: float, w: float, h: float) -> Soup:
    """A rider on a bicycle inside the box ``l x w x h`` (x = riding direction)."""
    e = 0.05
    L, W, H = l - 2 * e, w - 2 * e, h - e
    s = Soup()
    r = min(0.34, L / 4 - 0.01)
    frame = np.array([[30, 30, 30], [180, 30, 30], [40, 80, 160], [200, 200, 200]], np.float64)[
        int(rng.integers(4))
    ]
    for sx in (-1, 1):
        s.add(_y_cylinder(r, 0.05, SP * 0.5, (sx * (L / 2 - r), 0.0, r)), "tyre", (20, 20, 20))
    xr, xf = -(L / 2 - r), L / 2 - r
    s.add(cbox((xr, -0.02, r + 0.05), (xf, 0.02, r + 0.1), SP * 0.5), "metal", frame)  # frame tube
    s.add(cbox((xr + 0.25, -0.02, r), (xr + 0.3, 0.02, r + 0.55), SP * 0.5), "metal", frame)  # seat tube
    s.add(
        cbox((xf - 0.05, -0.25 * W / 0.5, H * 0.55), (xf, 0.25 * W / 0.5, H * 0.58), SP * 0.5),
        "metal",
        (40, 40, 40),
    )
    cloth = np.array([[30, 30, 40], [200, 60, 40], [60, 60, 120], [220, 220, 60]], np.float64)[
        int(rng.integers(4))
    ]
    seat_z = r + 0.55
    hip_x = xr + 0.28
    for sy in (-1, 1):
        s.add(
            cbox(
                (hip_x - 0.05, sy * 0.09 - 0.06, r * 0.6), (hip_x + 0.2, sy * 0.09 + 0.06, seat_z), SP * 0.5
            ),
            "cloth",
            cloth * 0.7,
        )
    # torso leaning forward: a hexahedron from the hip to the shoulders
    sh_x, sh_z = min(xf - 0.15, hip_x + 0.45), H - 0.28
    tw = min(0.19, W / 2 - 0.01)
    torso = np.array([
        [hip_x - 0.12, -tw, seat_z], [hip_x + 0.12, -tw, seat_z], [hip_x + 0.12, tw, seat_z], [hip_x - 0.12, tw, seat_z],
        [sh_x - 0.12, -tw, sh_z], [sh_x + 0.12, -tw, sh_z], [sh_x + 0.12, tw, sh_z], [sh_x - 0.12, tw, sh_z],
    ])  # fmt: skip
    s.add(M.hexahedron(torso, SP * 0.5), "cloth", cloth)
    head = M.icosphere(0.11, 1)
    s.add(
        M.Mesh(head.vertices + np.array([sh_x + 0.05, 0.0, H - 0.13]), head.faces, head.patch),
        "skin",
        (200, 160, 130),
    )
    return s


def tree(rng: np.random.Generator, pos) -> Soup:
    s = Soup()
    th = 1.8 + 2.5 * rng.random()
    tr = 0.1 + 0.15 * rng.random()
    s.add(M.cylinder(tr, th + 0.5, 0.5, top=False, segments=8).transformed(0, pos), "trunk", (90, 70, 50))
    cr = 1.3 + 2.0 * rng.random()
    crown = M.icosphere(1.0, 2)
    v = crown.vertices * (1.0 + 0.25 * rng.standard_normal((len(crown.vertices), 1)).clip(-1, 1))
    v = (
        v * np.array([cr, cr, cr * (0.8 + 0.5 * rng.random())])
        + np.asarray(pos)
        + np.array([0, 0, th + cr * 0.7])
    )
    green = np.array([50, 90 + 40 * rng.random(), 40])
    s.add(M.Mesh(v, crown.faces, crown.patch), "foliage", green)
    return s


def pole(rng: np.random.Generator, pos, arm_dir) -> Soup:
    s = Soup()
    h = 4.0 + 5.0 * rng.random()
    r = 0.06 + 0.08 * rng.random()
    s.add(M.cylinder(r, h, 0.5, top=True, segments=8).transformed(0, pos), "pole", (120, 120, 125))
    if rng.random() < 0.5:  # street light arm
        a = np.asarray(arm_dir, np.float64) * 1.5
        end = np.asarray(pos) + np.array([a[0], a[1], h])
        lo = np.minimum(np.asarray(pos) + [0, 0, h - 0.1], end) - [0.05, 0.05, 0]
        hi = np.maximum(np.asarray(pos) + [0, 0, h], end) + [0.05, 0.05, 0]
        s.add(cbox(lo, hi, 0.5), "pole", (120, 120, 125))
    elif rng.random() < 0.6:  # traffic sign
        z = 1.9 + rng.random()
        p = np.asarray(pos)
        n = np.asarray(arm_dir, np.float64)
        t = np.array([-n[1], n[0]])
        c = p[:2] + t * 0.0
        s.add(
            cbox((c[0] - 0.32, c[1] - 0.32, p[2] + z), (c[0] + 0.32, c[1] + 0.32, p[2] + z + 0.6), 0.5),
            "sign",
            (200, 30, 30),
        )
    return s
