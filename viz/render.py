"""Headless rendering with Open3D's ``OffscreenRenderer`` (Filament; on CPU through Mesa's Vulkan/EGL).

Without a display, ``EGL_PLATFORM=surfaceless`` is set (unless already set) before Open3D's
renderer starts, so that Mesa's software rasteriser is used. Rendering is unlit with
post-processing off, so class colours reach the image unchanged.

Typical use::

    from pc3d.viz.render import render_png
    render_png(scene, "out.png", view="bev", color_by="gt")
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np

from pc3d.viz import colors as C
from pc3d.viz.camera import apply_camera, camera_preset
from pc3d.viz.geometry import Layers, scene_layers, to_open3d_lines, to_open3d_points
from pc3d.viz.scene import Scene


def setup_headless_env() -> None:
    """Without ``DISPLAY``/``WAYLAND_DISPLAY``, default ``EGL_PLATFORM`` to ``surfaceless``."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("EGL_PLATFORM", "surfaceless")


@dataclasses.dataclass
class Frame:
    """A render: ``image (H, W, 3)`` uint8, what was drawn, and the ``(4, 4)`` projection @ view matrix."""

    image: np.ndarray
    layers: Layers
    view_proj: np.ndarray


class Renderer:
    """A reusable offscreen renderer of one image size.

    Open3D's Filament engine crashes when two ``OffscreenRenderer`` objects are alive and one is
    destroyed, so at most one exists per process: a :class:`Renderer` creates its
    ``OffscreenRenderer`` when it renders, and releases the one of any other :class:`Renderer`
    first (that one re-creates its own on its next render, which costs about half a second).

    Args:
        width, height: image size in pixels.
        point_size: point size in pixels; ``None`` picks 3 indoors, 2 outdoors.
        line_width: box line width in pixels.
        background: RGB background.
    """

    _active: Renderer | None = None  # the Renderer owning the process's one OffscreenRenderer

    def __init__(
        self,
        width: int = 960,
        height: int = 720,
        point_size: float | None = None,
        line_width: float = 2.0,
        background: tuple[int, int, int] = C.BACKGROUND,
    ) -> None:
        if width < 16 or height < 16:
            raise ValueError(f"image size must be at least 16x16 pixels, got {width}x{height}")
        self.width, self.height = int(width), int(height)
        self.point_size = point_size
        self.line_width = float(line_width)
        self.background = background
        self._r = None

    def _offscreen(self):
        if self._r is not None:
            return self._r
        other = Renderer._active
        if other is not None and other is not self:
            other.close()
        setup_headless_env()
        import open3d as o3d
        from open3d.visualization import rendering

        try:
            # Without a display Open3D warns that X11 failed and it falls back to headless, which is
            # what this renderer asks for; errors still show.
            with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
                r = rendering.OffscreenRenderer(self.width, self.height)
        except Exception as e:  # Open3D raises RuntimeError subclasses without a common type
            raise RuntimeError(
                f"Open3D's OffscreenRenderer could not start ({e}). Headless rendering needs EGL or Vulkan: "
                "on CPU install Mesa (apt: mesa-vulkan-drivers libvulkan1 / libegl1) and run with "
                "EGL_PLATFORM=surfaceless."
            ) from e
        r.scene.view.set_post_processing(False)
        r.scene.set_background([c / 255.0 for c in self.background] + [1.0])
        self._r = r
        Renderer._active = self
        return r

    def render(
        self,
        scene: Scene,
        view: str = "oblique",
        color_by: str = "rgb",
        boxes: str = "auto",
        box_color: str = "source",
        min_score: float = 0.0,
        point_size: float | None = None,
    ) -> Frame:
        """Render ``scene`` (see :func:`~pc3d.viz.geometry.scene_layers` and
        :func:`~pc3d.viz.camera.camera_preset` for the arguments; ``point_size`` overrides the
        renderer's for this image)."""
        layers = scene_layers(scene, color_by, boxes, box_color, min_score)
        from open3d.visualization import rendering

        s = self._offscreen().scene
        s.clear_geometry()
        point_size = point_size or self.point_size or (3.0 if scene.kind == "indoor" else 2.0)
        if layers.coord.shape[0]:
            mat = rendering.MaterialRecord()
            mat.shader = "defaultUnlit"
            mat.point_size = float(point_size)
            s.add_geometry("points", to_open3d_points(layers.coord, layers.colors), mat)
        aspect = self.width / self.height
        spec = camera_preset(scene, view, aspect)
        for layer in layers.boxes:
            if layer.lines.shape[0] == 0:
                continue
            mat = rendering.MaterialRecord()
            mat.shader = "unlitLine"
            # Filament's thick lines scale with 1 / tan(fov / 2); line_width is calibrated at 60 degrees.
            mat.line_width = (
                self.line_width * math.tan(math.radians(spec.fov / 2)) / math.tan(math.radians(30))
            )
            s.add_geometry(layer.name, to_open3d_lines(layer), mat)
        apply_camera(s.camera, spec, aspect)
        image = np.asarray(self._r.render_to_image()).copy()
        view_proj = np.asarray(s.camera.get_projection_matrix()) @ np.asarray(s.camera.get_view_matrix())
        s.clear_geometry()
        return Frame(image, layers, view_proj)

    def close(self) -> None:
        """Release the ``OffscreenRenderer`` (a later :meth:`render` creates a new one)."""
        if self._r is not None:
            self._r.scene.clear_geometry()
            self._r = None
        if Renderer._active is self:
            Renderer._active = None

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def annotated(
    frame: Frame, title: str | None = None, legend: bool = True, captions: bool = True
) -> np.ndarray:
    """``frame.image`` with title, legend and box captions drawn on it."""
    from pc3d.viz.annotate import annotate

    return annotate(frame.image, frame.layers, frame.view_proj, title=title, legend=legend, captions=captions)


def side_by_side_modes(scene: Scene) -> tuple[str, str]:
    """Point colourings of the ground-truth and the prediction panel.

    Raises:
        ValueError: the scene has no predictions.
    """
    if not scene.has_pred:
        raise ValueError(
            f"{scene._where()} has no predictions: a side-by-side GT|prediction image needs them"
        )
    s = scene.with_box_point_labels()
    left = "gt" if s.segment is not None else "rgb"
    right = "pred" if s.pred is not None else "rgb"
    return left, right


def render_side_by_side(
    renderer: Renderer,
    scene: Scene,
    view: str = "oblique",
    annotate: bool = True,
    box_color: str = "source",
    min_score: float = 0.0,
    separator: int = 4,
) -> np.ndarray:
    """``(H, 2W + separator, 3)`` image: ground truth (labels, GT boxes) left, prediction right."""
    left_mode, right_mode = side_by_side_modes(scene)
    panels = []
    for mode, boxes, title in ((left_mode, "gt", "ground truth"), (right_mode, "pred", "prediction")):
        frame = renderer.render(scene, view, mode, boxes, box_color, min_score)
        panels.append(annotated(frame, f"{scene.name}: {title}") if annotate else frame.image)
    sep = np.full((renderer.height, separator, 3), 90, dtype=np.uint8)
    return np.concatenate([panels[0], sep, panels[1]], axis=1)


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an ``(H, W, 3)`` uint8 image as PNG atomically, creating parent folders."""
    from pc3d.io import write_png

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"output {path}: expected a .png file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(path, np.ascontiguousarray(image, dtype=np.uint8))
    return path


def render_png(
    scene: Scene,
    out_path: str | Path,
    view: str = "oblique",
    color_by: str = "rgb",
    width: int = 960,
    height: int = 720,
    *,
    side_by_side: bool = False,
    boxes: str = "auto",
    box_color: str = "source",
    min_score: float = 0.0,
    annotate: bool = True,
    renderer: Renderer | None = None,
) -> Path:
    """Render ``scene`` headless to a PNG at ``out_path`` and return the path.

    With ``side_by_side`` the image holds the ground truth and the prediction, each ``width // 2``
    wide (``color_by`` and ``boxes`` are then chosen per panel). Pass a ``renderer`` of the right
    size to reuse it across calls.
    """
    own = renderer is None
    panel_w = max(16, width // 2 - 2) if side_by_side else width
    if renderer is None:
        renderer = Renderer(panel_w, height)
    elif (renderer.width, renderer.height) != (panel_w, height):
        raise ValueError(
            f"renderer is {renderer.width}x{renderer.height}, this image needs {panel_w}x{height}"
        )
    try:
        if side_by_side:
            image = render_side_by_side(renderer, scene, view, annotate, box_color, min_score)
        else:
            frame = renderer.render(scene, view, color_by, boxes, box_color, min_score)
            image = annotated(frame, frame.layers.title) if annotate else frame.image
    finally:
        if own:
            renderer.close()
    return save_png(image, out_path)
