"""Object categories of the synthetic ScanNet rooms: label-table rows, colours and part-based shapes.

Every category's ``raw`` name is a ``raw_category`` of ScanNet's ``scannetv2-labels.combined.tsv``; the
rows below are that table's rows for these names (17 columns). Shapes are built in a local frame:
x = width, y = depth (the back, e.g. the side against a wall, is at ``+y``), z up, origin at the centre
of the footprint on the floor. Each builder returns a list of ``(Mesh, rgb)`` parts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pc3d.data.synth import meshes as M

TSV_HEADER = (
    "id raw_category category count nyu40id eigen13id nyuClass nyu40class eigen13class ModelNet40 ModelNet10 "
    "ShapeNetCore55 synsetoffset wnsynsetid wnsynsetkey mpcat40 mpcat40index"
).split()

# Rows of scannetv2-labels.combined.tsv for the raw categories the generator writes.
TSV_ROWS: dict[str, tuple[str, ...]] = {
    r[1]: r
    for r in [
        ("1", "wall", "wall", "8277", "1", "12", "wall", "wall", "Wall", "", "", "", "", "n04546855", "wall.n.01", "wall", "1"),
        ("3", "floor", "floor", "1553", "2", "5", "floor", "floor", "Floor", "", "", "", "", "n03365592", "floor.n.01", "floor", "2"),
        ("5", "door", "door", "1483", "8", "12", "door", "door", "Wall", "door", "", "", "", "n03221720", "door.n.01", "door", "4"),
        ("16", "window", "window", "1209", "9", "13", "window", "window", "Window", "", "", "", "", "n04587648", "window.n.01", "window", "9"),
        ("7", "cabinet", "cabinet", "731", "3", "6", "cabinet", "cabinet", "Furniture", "", "", "cabinet", "2933112", "n02933112", "cabinet.n.01", "cabinet", "7"),
        ("29", "kitchen cabinet", "kitchen cabinet", "310", "3", "6", "cabinet", "cabinet", "Furniture", "", "", "", "", "n02933112", "cabinet.n.01", "cabinet", "7"),
        ("11", "bed", "bed", "370", "4", "1", "bed", "bed", "Bed", "bed", "bed", "bed", "2818832", "n02818832", "bed.n.01", "bed", "11"),
        ("2", "chair", "chair", "4646", "5", "4", "chair", "chair", "Chair", "chair", "chair", "chair", "3001627", "n03001627", "chair.n.01", "chair", "3"),
        ("10", "office chair", "office chair", "595", "5", "4", "chair", "chair", "Chair", "chair", "chair", "chair", "3001627", "n04373704", "swivel_chair.n.01", "chair", "3"),
        ("6", "couch", "couch", "502", "6", "9", "sofa", "sofa", "Sofa", "sofa", "sofa", "sofa", "4256520", "n04256520", "sofa.n.01", "sofa", "10"),
        ("4", "table", "table", "1170", "7", "10", "table", "table", "Table", "table", "table", "table", "4379243", "n04379243", "table.n.02", "table", "5"),
        ("24", "coffee table", "coffee table", "258", "7", "10", "coffee table", "table", "Table", "table", "table", "table", "4379243", "n03063968", "coffee_table.n.01", "table", "5"),
        ("18", "bookshelf", "bookshelf", "360", "10", "6", "bookshelf", "bookshelf", "Furniture", "bookshelf", "", "bookshelf", "2871439", "n02871439", "bookshelf.n.01", "shelving", "31"),
        ("15", "picture", "picture", "862", "11", "8", "picture", "picture", "Picture", "", "", "", "", "n03931044", "picture.n.01", "picture", "6"),
        ("35", "counter", "counter", "104", "12", "6", "counter", "counter", "Furniture", "table", "table", "table", "4379243", "n03116530", "counter.n.01", "counter", "26"),
        ("9", "desk", "desk", "680", "14", "10", "desk", "desk", "Table", "desk", "desk", "table", "4379243", "n03179701", "desk.n.01", "table", "5"),
        ("21", "curtain", "curtain", "347", "16", "13", "curtain", "curtain", "Window", "curtain", "", "", "", "n03151077", "curtain.n.01", "curtain", "12"),
        ("27", "refrigerator", "refrigerator", "154", "24", "6", "refridgerator", "refridgerator", "Furniture", "", "", "", "", "n04070727", "refrigerator.n.01", "appliances", "37"),
        ("55", "shower curtain", "shower curtain", "144", "28", "7", "shower curtain", "shower curtain", "Objects", "curtain", "", "", "", "n04209239", "shower_curtain.n.01", "curtain", "12"),
        ("17", "toilet", "toilet", "256", "33", "7", "toilet", "toilet", "Objects", "toilet", "toilet", "", "", "n04446276", "toilet.n.01", "toilet", "18"),
        ("14", "sink", "sink", "488", "34", "7", "sink", "sink", "Objects", "sink", "", "", "", "n04223580", "sink.n.01", "sink", "15"),
        ("42", "bathtub", "bathtub", "144", "36", "7", "bathtub", "bathtub", "Objects", "bathtub", "bathtub", "tub", "2808440", "n02808440", "bathtub.n.01", "bathtub", "25"),
        ("56", "trash can", "trash can", "1090", "39", "6", "garbage bin", "otherfurniture", "Furniture", "", "", "trash_bin", "2747177", "n02747177", "ashcan.n.01", "objects", "39"),
        ("34", "nightstand", "nightstand", "224", "32", "6", "night stand", "night stand", "Furniture", "night_stand", "night_stand", "", "", "n03015254", "chest_of_drawers.n.01", "chest_of_drawers", "13"),
        ("36", "dresser", "dresser", "213", "17", "6", "dresser", "dresser", "Furniture", "dresser", "dresser", "", "", "n03015254", "chest_of_drawers.n.01", "chest_of_drawers", "13"),
        ("33", "tv", "tv", "219", "25", "11", "television", "television", "TV", "", "", "tv or monitor", "3211117", "n03211117", "display.n.06", "tv_monitor", "22"),
        ("28", "lamp", "lamp", "419", "35", "7", "lamp", "lamp", "Objects", "lamp", "", "lamp", "3636649", "n03636649", "lamp.n.02", "lighting", "28"),
        ("13", "pillow", "pillow", "937", "18", "7", "pillow", "pillow", "Objects", "", "", "pillow", "3938244", "n03938244", "pillow.n.01", "cushion", "8"),
        ("26", "box", "box", "775", "29", "7", "box", "box", "Objects", "", "", "", "", "n02883344", "box.n.01", "objects", "39"),
        ("52", "whiteboard", "whiteboard", "327", "30", "7", "whiteboard", "whiteboard", "Objects", "", "", "", "", "n03211616", "display_panel.n.01", "board_panel", "35"),
    ]
}  # fmt: skip


def tsv_text(raw_names: list[str] | None = None) -> str:
    """The label table (header + rows of ``raw_names``, default all) as tab-separated text."""
    names = list(TSV_ROWS) if raw_names is None else raw_names
    rows = sorted((TSV_ROWS[n] for n in names), key=lambda r: int(r[0]))
    return "\n".join("\t".join(r) for r in [tuple(TSV_HEADER), *rows]) + "\n"


def nyu40_of(raw: str) -> int:
    return int(TSV_ROWS[raw][4])


def scannet_id_of(raw: str) -> int:
    return int(TSV_ROWS[raw][0])


# ----------------------------------------------------------------------------------------- colours
PALETTE: dict[str, list[tuple[int, int, int]]] = {
    "wall": [
        (200, 195, 180),
        (222, 216, 204),
        (188, 190, 186),
        (212, 200, 168),
        (178, 190, 202),
        (205, 185, 170),
    ],
    "floor_wood": [(140, 100, 62), (162, 122, 80), (120, 84, 52)],
    "floor_tile": [(172, 166, 156), (150, 150, 148), (196, 190, 178)],
    "floor_carpet": [(110, 100, 94), (88, 94, 112), (120, 110, 86)],
    "wood": [(150, 110, 70), (112, 80, 54), (178, 146, 104), (95, 66, 44)],
    "white": [(228, 226, 218), (236, 234, 230), (212, 212, 206)],
    "grey": [(140, 140, 138), (100, 100, 104), (170, 170, 165)],
    "fabric": [(120, 120, 126), (100, 76, 56), (60, 80, 112), (82, 102, 80), (172, 150, 120), (140, 60, 58)],
    "bedding": [(232, 226, 216), (180, 192, 212), (204, 182, 170), (150, 172, 150), (220, 200, 150)],
    "chair": [(40, 40, 46), (140, 100, 60), (150, 44, 42), (62, 82, 132), (122, 122, 122), (196, 180, 150)],
    "curtain": [
        (204, 182, 150),
        (124, 44, 44),
        (72, 92, 132),
        (214, 212, 202),
        (122, 132, 100),
        (170, 150, 180),
    ],
    "ceramic": [(242, 242, 238), (232, 234, 236)],
    "counter": [(206, 204, 198), (64, 64, 66), (182, 162, 140), (150, 150, 150)],
    "metal": [(190, 190, 196), (160, 162, 168)],
    "dark": [(44, 44, 46), (66, 66, 70), (30, 30, 34)],
    "trash": [(48, 48, 50), (92, 92, 98), (42, 72, 142), (200, 200, 200)],
    "book": [
        (180, 40, 40),
        (40, 90, 160),
        (220, 190, 60),
        (60, 140, 80),
        (230, 230, 220),
        (90, 50, 120),
        (30, 30, 30),
    ],
    "glass": [(170, 190, 210), (150, 175, 200)],
    "clutter": [
        (180, 60, 50),
        (60, 120, 170),
        (200, 170, 80),
        (90, 90, 90),
        (160, 130, 100),
        (220, 220, 215),
    ],
}


def pick(rng: np.random.Generator, palette: str) -> np.ndarray:
    cols = PALETTE[palette]
    return np.asarray(cols[int(rng.integers(len(cols)))], np.float64)


Part = tuple[M.Mesh, np.ndarray]


def _b(lo, hi, sp, col, sides=M.SIDES) -> Part:
    return M.box(lo, hi, sp, sides), col


# ----------------------------------------------------------------------------------------- shapes
# Each builder: (rng, size (w, d, h), spacing) -> list of parts. Meshes stay inside
# [-w/2, w/2] x [-d/2, d/2] x [0, h].


def chair(rng, size, sp) -> list[Part]:
    w, d, h = size
    col = pick(rng, "chair")
    leg_col = col if rng.random() < 0.6 else pick(rng, "dark")
    seat = 0.42 + 0.06 * rng.random()
    t, lg = 0.05, 0.035
    parts = [_b((-w / 2, -d / 2, seat - t), (w / 2, d / 2, seat), sp, col)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            x = (w / 2 - lg / 2 - 0.01) * sx
            y = (d / 2 - lg / 2 - 0.01) * sy
            parts.append(
                _b((x - lg / 2, y - lg / 2, 0), (x + lg / 2, y + lg / 2, seat - t), sp, leg_col, M.SIDES[:4])
            )
    parts.append(_b((-w / 2, d / 2 - 0.05, seat), (w / 2, d / 2, h), sp, col))
    return parts


def office_chair(rng, size, sp) -> list[Part]:
    w, d, h = size
    col = pick(rng, "dark") if rng.random() < 0.7 else pick(rng, "chair")
    seat = 0.45 + 0.05 * rng.random()
    parts = []
    for k in range(5):  # star base
        a = 2 * np.pi * k / 5 + 0.3
        arm = M.box((0, -0.025, 0.03), (min(w, d) / 2 - 0.02, 0.025, 0.08), sp).transformed(a)
        parts.append((arm, pick(rng, "dark")))
    parts.append(
        (M.cylinder(0.03, seat - 0.14, sp, top=False).transformed(0, (0, 0, 0.08)), pick(rng, "metal"))
    )
    parts.append(_b((-w / 2 + 0.04, -d / 2 + 0.04, seat - 0.08), (w / 2 - 0.04, d / 2 - 0.06, seat), sp, col))
    parts.append(_b((-w / 2 + 0.06, d / 2 - 0.1, seat + 0.05), (w / 2 - 0.06, d / 2 - 0.02, h), sp, col))
    for sx in (-1, 1):  # arm rests
        x = sx * (w / 2 - 0.04)
        parts.append(
            _b((x - 0.03, -d / 4, seat + 0.18), (x + 0.03, d / 4, seat + 0.22), sp, pick(rng, "dark"))
        )
    return parts


def table(rng, size, sp) -> list[Part]:
    w, d, h = size
    col = pick(rng, "wood") if rng.random() < 0.6 else pick(rng, "white")
    t, lg = 0.035 + 0.02 * rng.random(), 0.05
    parts = [_b((-w / 2, -d / 2, h - t), (w / 2, d / 2, h), sp, col)]
    inset = 0.04 + 0.06 * rng.random()
    for sx in (-1, 1):
        for sy in (-1, 1):
            x, y = sx * (w / 2 - inset - lg / 2), sy * (d / 2 - inset - lg / 2)
            parts.append(
                _b((x - lg / 2, y - lg / 2, 0), (x + lg / 2, y + lg / 2, h - t), sp, col, M.SIDES[:4])
            )
    parts.append(
        _b(
            (-w / 2 + inset, -d / 2 + inset, h - t - 0.08),
            (w / 2 - inset, d / 2 - inset, h - t),
            sp,
            col,
            M.SIDES[:4],
        )
    )
    return parts


def coffee_table(rng, size, sp) -> list[Part]:
    w, d, h = size
    col = pick(rng, "wood") if rng.random() < 0.5 else pick(rng, "dark")
    parts = [_b((-w / 2, -d / 2, h - 0.05), (w / 2, d / 2, h), sp, col)]
    parts.append(
        _b((-w / 2 + 0.05, -d / 2 + 0.05, 0.08), (w / 2 - 0.05, d / 2 - 0.05, 0.12), sp, col)
    )  # shelf
    for sx in (-1, 1):
        parts.append(
            _b(
                (sx * w / 2 - (sx > 0) * 0.06, -d / 2, 0),
                (sx * w / 2 + (sx < 0) * 0.06, d / 2, h - 0.05),
                sp,
                col,
                M.SIDES[:4],
            )
        )
    return parts


def desk(rng, size, sp) -> list[Part]:
    w, d, h = size
    col = pick(rng, "wood") if rng.random() < 0.5 else pick(rng, "white" if rng.random() < 0.5 else "grey")
    t = 0.03
    parts = [_b((-w / 2, -d / 2, h - t), (w / 2, d / 2, h), sp, col)]
    ped = 0.4 if rng.random() < 0.6 else 0.03  # drawer pedestal or plain side panel
    side = 1 if rng.random() < 0.5 else -1
    parts.append(
        _b(
            (side * w / 2 - (side > 0) * ped, -d / 2 + 0.02, 0),
            (side * w / 2 + (side < 0) * ped, d / 2, h - t),
            sp,
            col,
            M.SIDES[:5] if ped > 0.1 else M.SIDES[:4],
        )
    )
    parts.append(
        _b(
            (-side * w / 2 - (side < 0) * 0.03, -d / 2 + 0.02, 0),
            (-side * w / 2 + (side > 0) * 0.03, d / 2, h - t),
            sp,
            col,
            M.SIDES[:4],
        )
    )
    parts.append(
        _b((-w / 2 + 0.03, d / 2 - 0.03, 0.3), (w / 2 - 0.03, d / 2 - 0.01, h - t), sp, col, ("-y",))
    )
    if ped > 0.1:
        xs = side * (w / 2 - ped / 2)
        for k in range(3):
            z = 0.1 + k * (h - 0.2) / 3
            parts.append(
                _b(
                    (xs - ped / 2 + 0.02, -d / 2, z),
                    (xs + ped / 2 - 0.02, -d / 2 + 0.02, z + (h - 0.2) / 3 - 0.02),
                    sp,
                    col * 0.92,
                    ("-y",),
                )
            )
    return parts


def bed_mattress_top(h: float) -> float:
    """Mattress top height of a bed whose headboard is ``h`` tall."""
    return 0.48 + 0.12 * float(np.clip((h - 0.9) / 0.35, 0.0, 1.0))


def bed(rng, size, sp) -> list[Part]:
    w, d, h = size  # d = length (head at +y)
    frame = pick(rng, "wood") if rng.random() < 0.7 else pick(rng, "fabric")
    linen = pick(rng, "bedding")
    mtop = bed_mattress_top(h)
    parts = [_b((-w / 2, -d / 2, 0.05), (w / 2, d / 2 - 0.06, mtop - 0.22), sp, frame, M.SIDES[:5])]
    parts.append(
        _b(
            (-w / 2 + 0.02, -d / 2 + 0.02, mtop - 0.22),
            (w / 2 - 0.02, d / 2 - 0.07, mtop),
            sp,
            linen,
            M.SIDES[:5],
        )
    )
    parts.append(_b((-w / 2 - 0.0, d / 2 - 0.06, 0), (w / 2, d / 2, h), sp, frame))  # headboard
    # duvet fold at the foot end
    parts.append(
        _b(
            (-w / 2 + 0.01, -d / 2 + 0.01, mtop),
            (w / 2 - 0.01, -d / 2 + 0.5 * d, mtop + 0.05),
            sp,
            linen * 0.9,
            M.SIDES[:5],
        )
    )
    return parts


def couch(rng, size, sp) -> list[Part]:
    w, d, h = size
    col = pick(rng, "fabric")
    seat = 0.42 + 0.04 * rng.random()
    arm = 0.14 + 0.08 * rng.random()
    arm_h = 0.55 + 0.1 * rng.random()
    parts = [_b((-w / 2 + arm, -d / 2, 0.08), (w / 2 - arm, d / 2 - 0.2, seat), sp, col, M.SIDES[:5])]
    parts.append(_b((-w / 2 + arm, d / 2 - 0.22, 0.08), (w / 2 - arm, d / 2, h), sp, col, M.SIDES[:5]))
    for sx in (-1, 1):
        x0, x1 = (w / 2 - arm, w / 2) if sx > 0 else (-w / 2, -w / 2 + arm)
        parts.append(_b((x0, -d / 2, 0.08), (x1, d / 2, arm_h), sp, col, M.SIDES[:5]))
    n = 2 if w < 1.8 else 3  # seat cushions
    cw = (w - 2 * arm) / n
    for k in range(n):
        x0 = -w / 2 + arm + k * cw
        parts.append(
            _b(
                (x0 + 0.01, -d / 2 + 0.02, seat),
                (x0 + cw - 0.01, d / 2 - 0.24, seat + 0.1),
                sp,
                col * 1.05,
                M.SIDES[:5],
            )
        )
    parts.append(
        _b(
            (-w / 2 + 0.05, -d / 2 + 0.05, 0),
            (w / 2 - 0.05, d / 2 - 0.05, 0.08),
            sp,
            pick(rng, "dark"),
            M.SIDES[:4],
        )
    )
    return parts


def cabinet(rng, size, sp) -> list[Part]:
    w, d, h = size
    col = pick(rng, "wood") if rng.random() < 0.5 else pick(rng, "white" if rng.random() < 0.6 else "grey")
    parts = [
        _b((-w / 2, -d / 2 + 0.02, 0), (w / 2, d / 2, h), sp, col, M.SIDES[:5] if h > 1.7 else M.SIDES[:5])
    ]
    ndoor = 1 if w < 0.6 else 2
    dw = w / ndoor
    handle = pick(rng, "metal")
    for k in range(ndoor):
        x0 = -w / 2 + k * dw
        parts.append(
            _b(
                (x0 + 0.01, -d / 2, 0.06),
                (x0 + dw - 0.01, -d / 2 + 0.02, h - 0.02),
                sp,
                col * 0.96,
                ("-y", "+z", "-x", "+x"),
            )
        )
        hx = x0 + dw - 0.06 if k == 0 else x0 + 0.06
        hz = min(h - 0.15, 1.0)
        parts.append(
            _b(
                (hx - 0.012, -d / 2 - 0.0, hz - 0.08),
                (hx + 0.012, -d / 2 + 0.005, hz + 0.08),
                sp,
                handle,
                ("-y",),
            )
        )
    return parts


def kitchen_cabinet(rng, size, sp, col=None) -> list[Part]:
    w, d, h = size
    col = col if col is not None else pick(rng, "white" if rng.random() < 0.5 else "wood")
    parts = [
        _b(
            (-w / 2, -d / 2 + 0.06, 0.1),
            (w / 2, d / 2, h),
            sp,
            col,
            ("-y", "-x", "+x", "-z" if h < 1.0 else "+z"),
        )
    ]
    parts.append(
        _b((-w / 2, -d / 2 + 0.08, 0), (w / 2, -d / 2 + 0.1, 0.1), sp, pick(rng, "dark"), ("-y",))
    )  # toe kick
    parts.append(
        _b(
            (-w / 2 + 0.005, -d / 2 + 0.04, 0.1),
            (w / 2 - 0.005, -d / 2 + 0.06, h - 0.01),
            sp,
            col * 0.95,
            ("-y", "-x", "+x"),
        )
    )
    hx = w / 2 - 0.06
    parts.append(
        _b((hx - 0.1, -d / 2 + 0.02, h - 0.12), (hx, -d / 2 + 0.04, h - 0.1), sp, pick(rng, "metal"), ("-y",))
    )
    return parts


def bookshelf(rng, size, sp) -> list[Part]:
    w, d, h = size
    col = pick(rng, "wood") if rng.random() < 0.7 else pick(rng, "white")
    t = 0.03
    parts = [
        _b((-w / 2, -d / 2, 0), (-w / 2 + t, d / 2, h), sp, col),
        _b((w / 2 - t, -d / 2, 0), (w / 2, d / 2, h), sp, col),
    ]
    parts.append(_b((-w / 2 + t, d / 2 - 0.02, 0), (w / 2 - t, d / 2, h), sp, col, ("-y",)))
    nshelf = max(3, int(h / 0.35))
    zs = np.linspace(0.02, h - t, nshelf + 1)
    for z in zs:
        parts.append(
            _b((-w / 2 + t, -d / 2, z), (w / 2 - t, d / 2 - 0.02, z + t), sp, col, ("+z", "-y", "-z"))
        )
    for z0, z1 in zip(zs[:-1], zs[1:]):  # books on the shelves
        x = -w / 2 + t + 0.01
        while x < w / 2 - t - 0.08:
            bw = 0.02 + 0.05 * rng.random()
            bh = min(z1 - z0 - t - 0.02, 0.15 + 0.15 * rng.random())
            if rng.random() < 0.8 and bh > 0.08:
                bd = d * (0.6 + 0.3 * rng.random())
                parts.append(
                    _b(
                        (x, d / 2 - 0.02 - bd, z0 + t),
                        (x + bw, d / 2 - 0.02, z0 + t + bh),
                        sp,
                        pick(rng, "book"),
                        ("-y", "+z"),
                    )
                )
            x += bw + 0.003
    return parts


def picture(rng, size, sp) -> list[Part]:
    w, d, h = size  # a thin panel; the z range is the picture's own height
    frame = pick(rng, "dark") if rng.random() < 0.5 else pick(rng, "wood")
    parts = [_b((-w / 2, -d / 2, 0), (w / 2, d / 2, h), sp, frame, ("-y", "+z", "-z", "-x", "+x"))]
    for _ in range(3):  # blotches of colour in the canvas
        x0 = -w / 2 + 0.04 + (w - 0.12) * rng.random() * 0.6
        z0 = 0.04 + (h - 0.12) * rng.random() * 0.6
        x1 = min(w / 2 - 0.04, x0 + 0.08 + (w - 0.12) * 0.4 * rng.random())
        z1 = min(h - 0.04, z0 + 0.08 + (h - 0.12) * 0.4 * rng.random())
        parts.append(_b((x0, -d / 2 - 0.004, z0), (x1, -d / 2, z1), sp, pick(rng, "book"), ("-y",)))
    return parts


def whiteboard(rng, size, sp) -> list[Part]:
    w, d, h = size
    return [_b((-w / 2, -d / 2, 0), (w / 2, d / 2, h), sp, np.array([238.0, 238, 236]), ("-y", "+z", "-z", "-x", "+x")),
            _b((-w / 2, -d / 2 - 0.05, -0.02), (w / 2, d / 2, 0.0), sp, pick(rng, "metal"), ("+z", "-y"))]  # fmt: skip


def counter(rng, size, sp, col=None) -> list[Part]:
    w, d, h = size  # slab of thickness h, lifted by the caller
    col = col if col is not None else pick(rng, "counter")
    return [_b((-w / 2, -d / 2, 0), (w / 2, d / 2, h), sp, col, ("+z", "-y", "-x", "+x", "-z"))]


def curtain(rng, size, sp) -> list[Part]:
    w, d, h = size
    col = pick(rng, "curtain")
    amp = max(0.01, (d - 0.03) / 2)
    sheet = M.wavy_sheet(w, h - 0.03, amp, 0.12 + 0.08 * rng.random(), sp).transformed(0, (-w / 2, -d / 2, 0))
    rod = M.box((-w / 2, -0.015, h - 0.03), (w / 2, 0.015, h), sp, ("-y", "+z", "-z"))
    return [(sheet, col), (rod, pick(rng, "metal"))]


def shower_curtain(rng, size, sp) -> list[Part]:
    w, d, h = size
    col = pick(rng, "ceramic") if rng.random() < 0.6 else np.array([190.0, 214, 232])
    sheet = M.wavy_sheet(w, h - 0.03, max(0.01, (d - 0.03) / 2), 0.1, sp).transformed(0, (-w / 2, -d / 2, 0))
    rod = M.box((-w / 2, -0.015, h - 0.03), (w / 2, 0.015, h), sp, ("-y", "+z", "-z"))
    return [(sheet, col), (rod, pick(rng, "metal"))]


def refrigerator(rng, size, sp) -> list[Part]:
    w, d, h = size
    col = pick(rng, "white" if rng.random() < 0.5 else "metal")
    split = h * (0.3 + 0.1 * rng.random())
    parts = [_b((-w / 2, -d / 2 + 0.04, 0), (w / 2, d / 2, h), sp, col, ("+z", "-x", "+x", "+y"))]
    parts.append(
        _b(
            (-w / 2, -d / 2, 0.05),
            (w / 2, -d / 2 + 0.04, split - 0.01),
            sp,
            col * 0.97,
            ("-y", "-x", "+x", "+z"),
        )
    )
    parts.append(
        _b(
            (-w / 2, -d / 2, split + 0.01),
            (w / 2, -d / 2 + 0.04, h - 0.01),
            sp,
            col * 0.97,
            ("-y", "-x", "+x", "+z"),
        )
    )
    hx = w / 2 - 0.07
    for z0, z1 in ((split - 0.35, split - 0.05), (split + 0.05, split + 0.45)):
        parts.append(
            _b(
                (hx, -d / 2 - 0.0, max(0.1, z0)),
                (hx + 0.025, -d / 2 + 0.01, z1),
                sp,
                pick(rng, "metal"),
                ("-y", "-x", "+x"),
            )
        )
    return parts


def toilet(rng, size, sp) -> list[Part]:
    w, d, h = size
    col = pick(rng, "ceramic")
    tank_d = 0.18
    parts = [_b((-w / 2, d / 2 - tank_d, 0.4), (w / 2, d / 2, h), sp, col, ("-y", "-x", "+x", "+z", "-z"))]
    ped = M.cylinder(0.12, 0.3, sp, top=False, radius_top=0.16).transformed(0, (0, d / 2 - tank_d - 0.2, 0))
    bowl_r = min(w / 2, (d - tank_d) / 2)
    bowl = M.cylinder(bowl_r * 0.85, 0.12, sp, top=False, radius_top=bowl_r).transformed(
        0, (0, d / 2 - tank_d - bowl_r, 0.28)
    )
    seat = M.cylinder(bowl_r, 0.03, sp, top=True).transformed(0, (0, d / 2 - tank_d - bowl_r, 0.4))
    return parts + [(ped, col), (bowl, col), (seat, col if rng.random() < 0.7 else pick(rng, "wood"))]


def sink(rng, size, sp) -> list[Part]:
    w, d, h = size
    col = pick(rng, "ceramic") if rng.random() < 0.8 else pick(rng, "metal")
    t = 0.025
    parts = [_b((-w / 2, -d / 2, 0), (w / 2, d / 2, t), sp, col, ("+z", "-z"))]
    for lo, hi in [((-w / 2, -d / 2, 0), (w / 2, -d / 2 + t, h)), ((-w / 2, d / 2 - t, 0), (w / 2, d / 2, h)),
                   ((-w / 2, -d / 2, 0), (-w / 2 + t, d / 2, h)), ((w / 2 - t, -d / 2, 0), (w / 2, d / 2, h))]:  # fmt: skip
        parts.append(_b(lo, hi, sp, col))
    faucet = M.cylinder(0.015, 0.12, sp, top=True).transformed(0, (0, d / 2 - 0.04, h))
    parts.append((faucet, pick(rng, "metal")))
    return parts


def bathtub(rng, size, sp) -> list[Part]:
    w, d, h = size
    col = pick(rng, "ceramic")
    t = 0.07
    parts = [_b((-w / 2 + t, -d / 2 + t, 0), (w / 2 - t, d / 2 - t, 0.08), sp, col, ("+z",))]
    for lo, hi in [((-w / 2, -d / 2, 0), (w / 2, -d / 2 + t, h)), ((-w / 2, d / 2 - t, 0), (w / 2, d / 2, h)),
                   ((-w / 2, -d / 2 + t, 0), (-w / 2 + t, d / 2 - t, h)), ((w / 2 - t, -d / 2 + t, 0), (w / 2, d / 2 - t, h))]:  # fmt: skip
        parts.append(_b(lo, hi, sp, col, M.SIDES[:5]))
    return parts


def trash_can(rng, size, sp) -> list[Part]:
    w, d, h = size
    r = min(w, d) / 2
    col = pick(rng, "trash")
    if rng.random() < 0.5:
        body = M.cylinder(r * 0.85, h, sp, top=False, radius_top=r)
        inner = M.cylinder(r * 0.8, h - 0.05, sp, top=False, radius_top=r * 0.95).transformed(0, (0, 0, 0.05))
        return [(body, col), (inner, col * 0.6)]
    return [_b((-w / 2, -d / 2, 0), (w / 2, d / 2, h), sp, col, M.SIDES[:4]),
            _b((-w / 2 + 0.02, -d / 2 + 0.02, 0.05), (w / 2 - 0.02, d / 2 - 0.02, 0.06), sp, col * 0.6, ("+z",))]  # fmt: skip


def nightstand(rng, size, sp) -> list[Part]:
    return cabinet(rng, size, sp)[:1] + [
        _b(
            (-size[0] / 2 + 0.02, -size[1] / 2 - 0.01, size[2] * 0.55),
            (size[0] / 2 - 0.02, -size[1] / 2, size[2] - 0.03),
            sp,
            pick(rng, "wood"),
            ("-y",),
        )
    ]


def dresser(rng, size, sp) -> list[Part]:
    w, d, h = size
    col = pick(rng, "wood") if rng.random() < 0.7 else pick(rng, "white")
    parts = [_b((-w / 2, -d / 2 + 0.02, 0), (w / 2, d / 2, h), sp, col, M.SIDES[:5])]
    n = 3 + int(rng.integers(2))
    for k in range(n):
        z0 = 0.08 + k * (h - 0.1) / n
        parts.append(
            _b(
                (-w / 2 + 0.02, -d / 2, z0),
                (w / 2 - 0.02, -d / 2 + 0.02, z0 + (h - 0.1) / n - 0.02),
                sp,
                col * 0.93,
                ("-y", "+z"),
            )
        )
    return parts


def tv(rng, size, sp) -> list[Part]:
    w, d, h = size
    screen = _b((-w / 2, -0.03, 0.08), (w / 2, 0.03, h), sp, pick(rng, "dark"))
    stand = _b((-0.15, -d / 2, 0), (0.15, d / 2, 0.02), sp, pick(rng, "dark"), ("+z", "-y", "+y", "-x", "+x"))
    neck = _b((-0.03, -0.02, 0.02), (0.03, 0.02, 0.1), sp, pick(rng, "dark"), M.SIDES[:4])
    return [screen, stand, neck]


def lamp(rng, size, sp) -> list[Part]:
    w, d, h = size
    base = M.cylinder(min(w, d) * 0.3, 0.03, sp, top=True)
    pole = M.cylinder(0.012, h * 0.6, sp, top=False).transformed(0, (0, 0, 0.03))
    shade = M.cylinder(min(w, d) / 2, h * 0.4, sp, top=False, radius_top=min(w, d) * 0.3).transformed(
        0, (0, 0, h * 0.6)
    )
    return [(base, pick(rng, "metal")), (pole, pick(rng, "metal")), (shade, pick(rng, "bedding"))]


def pillow(rng, size, sp) -> list[Part]:
    w, d, h = size
    return [
        _b(
            (-w / 2, -d / 2, 0),
            (w / 2, d / 2, h),
            sp,
            pick(rng, "bedding") * (0.9 + 0.2 * rng.random()),
            M.SIDES[:5],
        )
    ]


def box_obj(rng, size, sp) -> list[Part]:
    w, d, h = size
    return [
        _b(
            (-w / 2, -d / 2, 0),
            (w / 2, d / 2, h),
            sp,
            np.array([170.0, 135, 95]) * (0.8 + 0.3 * rng.random()),
            M.SIDES[:5],
        )
    ]


def clutter(rng, size, sp) -> list[Part]:
    w, d, h = size
    if rng.random() < 0.5:
        blob = M.icosphere(0.5, 2)
        v = blob.vertices * np.array([w, d, h]) + np.array([0, 0, h / 2])
        v[:, 2] = np.maximum(v[:, 2], 0.0)
        return [(M.Mesh(v, blob.faces, blob.patch), pick(rng, "clutter"))]
    return [_b((-w / 2, -d / 2, 0), (w / 2, d / 2, h), sp, pick(rng, "clutter"), M.SIDES[:5])]


@dataclass(frozen=True)
class Category:
    """A generator category: raw ScanNet name, shape builder and size ranges (w, d, h in metres)."""

    raw: str | None  # None: unannotated clutter (no segGroup)
    build: Callable[..., list[Part]]
    size_lo: tuple[float, float, float]
    size_hi: tuple[float, float, float]

    def sample_size(self, rng: np.random.Generator) -> np.ndarray:
        lo, hi = np.asarray(self.size_lo), np.asarray(self.size_hi)
        return lo + (hi - lo) * rng.random(3)


# Size ranges follow ScanNet's per-class mean box sizes (VoteNet/mmdet3d ``scannet_means``) turned
# into (width, depth, height) of the object in its own frame.
CATEGORIES: dict[str, Category] = {
    "chair": Category("chair", chair, (0.42, 0.45, 0.78), (0.55, 0.56, 0.98)),
    "office chair": Category("office chair", office_chair, (0.56, 0.56, 0.88), (0.68, 0.68, 1.1)),
    "table": Category("table", table, (0.8, 0.7, 0.7), (1.8, 1.0, 0.78)),
    "coffee table": Category("coffee table", coffee_table, (0.8, 0.5, 0.38), (1.3, 0.75, 0.5)),
    "desk": Category("desk", desk, (1.0, 0.6, 0.72), (1.6, 0.8, 0.78)),
    "bed": Category("bed", bed, (0.95, 1.95, 0.9), (1.9, 2.15, 1.25)),
    "couch": Category("couch", couch, (1.5, 0.82, 0.72), (2.4, 1.0, 0.92)),
    "cabinet": Category("cabinet", cabinet, (0.5, 0.38, 0.7), (1.2, 0.6, 1.0)),
    "tall cabinet": Category("cabinet", cabinet, (0.7, 0.5, 1.6), (1.2, 0.65, 2.1)),
    "kitchen cabinet": Category("kitchen cabinet", kitchen_cabinet, (0.5, 0.58, 0.84), (0.8, 0.62, 0.88)),
    "counter": Category("counter", counter, (1.0, 0.6, 0.04), (3.0, 0.65, 0.04)),
    "bookshelf": Category("bookshelf", bookshelf, (0.7, 0.28, 1.2), (1.2, 0.42, 2.0)),
    "picture": Category("picture", picture, (0.3, 0.03, 0.3), (1.0, 0.04, 0.8)),
    "whiteboard": Category("whiteboard", whiteboard, (1.2, 0.03, 0.8), (2.0, 0.04, 1.2)),
    "curtain": Category("curtain", curtain, (0.6, 0.1, 1.6), (1.4, 0.2, 2.3)),
    "shower curtain": Category("shower curtain", shower_curtain, (0.7, 0.06, 1.6), (1.6, 0.12, 1.9)),
    "refrigerator": Category("refrigerator", refrigerator, (0.58, 0.62, 1.45), (0.8, 0.76, 1.9)),
    "toilet": Category("toilet", toilet, (0.38, 0.62, 0.7), (0.46, 0.75, 0.82)),
    "sink": Category("sink", sink, (0.42, 0.36, 0.14), (0.62, 0.5, 0.22)),
    "bathtub": Category("bathtub", bathtub, (1.45, 0.68, 0.48), (1.8, 0.82, 0.6)),
    "trash can": Category("trash can", trash_can, (0.25, 0.25, 0.35), (0.45, 0.45, 0.7)),
    "nightstand": Category("nightstand", nightstand, (0.4, 0.35, 0.45), (0.55, 0.45, 0.65)),
    "dresser": Category("dresser", dresser, (0.8, 0.42, 0.7), (1.4, 0.55, 1.0)),
    "tv": Category("tv", tv, (0.7, 0.22, 0.45), (1.3, 0.3, 0.8)),
    "lamp": Category("lamp", lamp, (0.25, 0.25, 0.35), (0.4, 0.4, 0.6)),
    "pillow": Category("pillow", pillow, (0.45, 0.3, 0.1), (0.65, 0.45, 0.16)),
    "box": Category("box", box_obj, (0.25, 0.25, 0.2), (0.6, 0.5, 0.5)),
    "clutter": Category(None, clutter, (0.2, 0.2, 0.1), (0.8, 0.7, 0.6)),
}
