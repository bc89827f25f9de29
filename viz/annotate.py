"""2D overlays on rendered images (Pillow): title, colour legend and box captions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pc3d.viz.camera import project
from pc3d.viz.geometry import Layers


def _font(size: int):
    from PIL import ImageFont

    try:
        import open3d

        ttf = Path(open3d.__file__).parent / "resources" / "Roboto-Medium.ttf"
        if ttf.is_file():
            return ImageFont.truetype(str(ttf), size)
    except (ImportError, OSError):
        pass
    return ImageFont.load_default(size=size)


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    """Whether two ``(x0, y0, x1, y1)`` rectangles intersect."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def annotate(
    image: np.ndarray,
    layers: Layers,
    view_proj: np.ndarray | None,
    *,
    title: str | None = None,
    legend: bool = True,
    captions: bool = True,
    max_captions: int = 60,
) -> np.ndarray:
    """Draw ``title`` (top left), the legend of ``layers`` (below it) and box captions next to each
    box's top centre (projected with ``view_proj``, the renderer's projection @ view matrix).

    Captions never overlap: in layer order (ground truth before predictions) and box order
    (predictions come sorted by score), a caption that would cover one already drawn is left out,
    and at most ``max_captions`` are drawn.

    Args:
        image: ``(H, W, 3)`` uint8 render.
    Returns:
        a new ``(H, W, 3)`` uint8 image.
    """
    from PIL import Image, ImageDraw

    h, w = image.shape[:2]
    img = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(img)
    size = max(10, min(18, h // 36))
    font = _font(size)
    if captions and view_proj is not None:
        placed: list[tuple[float, float, float, float]] = []
        for layer in layers.boxes:
            if not layer.captions:
                continue
            pos = np.stack([p for p, _ in layer.captions])
            px, ok = project(view_proj, pos, w, h)
            color = tuple(int(v) for v in layer.colors[0])
            for (x, y), good, (_, text) in zip(px, ok, layer.captions):
                if not good or len(placed) >= max_captions:
                    continue
                xy = (float(x) + 3, float(y) - size - 2)
                rect = draw.textbbox(xy, text, font=font, stroke_width=2)
                if any(_overlap(rect, other) for other in placed):
                    continue  # a caption already there (GT first, then higher-scoring boxes) keeps its place
                placed.append(rect)
                draw.text(xy, text, fill=color, font=font, stroke_width=2, stroke_fill=(255, 255, 255))
    rows: list[tuple[str, tuple[int, int, int] | None]] = []
    if title:
        rows.append((title, None))
    if legend:
        rows.extend(layers.legend)
    if rows:
        line = size + 4
        per_col = max(1, min(len(rows), int(0.7 * h - 8) // line))
        cols = [rows[i : i + per_col] for i in range(0, len(rows), per_col)]
        x0 = 4
        for col in cols:
            col_w = (
                max(draw.textlength(t, font=font) + (size + 2 if rgb is not None else 0) for t, rgb in col)
                + 12
            )
            draw.rectangle(
                [x0, 4, x0 + col_w, 8 + line * len(col)], fill=(255, 255, 255), outline=(120, 120, 120)
            )
            for i, (text, rgb) in enumerate(col):
                y = 7 + i * line
                x = x0 + 6
                if rgb is not None:
                    draw.rectangle([x, y + 2, x + size - 4, y + size - 2], fill=tuple(rgb))
                    x += size + 2
                draw.text((x, y), text, fill=(0, 0, 0), font=font)
            x0 += col_w + 4
    return np.asarray(img)
