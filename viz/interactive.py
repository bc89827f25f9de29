"""Interactive Open3D window: browse scenes, switch point colouring, toggle GT / predicted boxes.

:class:`ViewerState` holds what is shown and reacts to keys (pure Python, tested headless);
:func:`run_viewer` puts it in an Open3D GUI window (``gui.Window`` + ``SceneWidget``) with 3D box
captions ("chair", "Car 0.87"), a legend panel, and the legend printed to the console.

Keys: ``N``/``P`` next/previous scene, ``C`` next colouring (rgb / gt / pred / error, those the
scene supports), ``V`` next camera preset (bev / oblique / driver), ``B`` all boxes on/off, ``G``
ground-truth boxes, ``F`` predicted boxes, ``L`` box captions, ``H`` help. The mouse rotates (left),
pans (ctrl/middle) and zooms (wheel), as in any Open3D window.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from pc3d.viz.camera import VIEWS, apply_camera, camera_preset, view_bounds
from pc3d.viz.geometry import COLOR_MODES, Layers, scene_layers
from pc3d.viz.scene import Scene, load_scene

HELP = (
    "keys: N/P next/previous scene | C colouring | V camera preset | B boxes | G ground-truth boxes | "
    "F predicted boxes | L captions | H help"
)


class ViewerState:
    """What the viewer shows; scenes given as paths are loaded when first shown (one at a time).

    Args:
        scenes: :class:`Scene` objects and/or input paths (see :func:`pc3d.viz.scene.load_scene`).
        color_by: initial colouring (falls back to one the scene supports).
        view: initial camera preset.
        min_score: predicted boxes below this score are hidden.
        loader: path -> Scene (default :func:`load_scene`).
    """

    def __init__(
        self,
        scenes: Sequence[Scene | str | Path],
        color_by: str = "rgb",
        view: str = "oblique",
        min_score: float = 0.0,
        loader: Callable[[str | Path], Scene] = load_scene,
    ) -> None:
        if not scenes:
            raise ValueError("the viewer needs at least one scene")
        if color_by not in COLOR_MODES:
            raise ValueError(f"color_by must be one of {COLOR_MODES}, got {color_by!r}")
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
        self.items = list(scenes)
        self.loader = loader
        self.index = 0
        self.color_by = color_by
        self.view = view
        self.min_score = float(min_score)
        self.show_gt = True
        self.show_pred = True
        self.show_captions = True
        self._cache: tuple[int, Scene] | None = None

    @property
    def scene(self) -> Scene:
        """The current scene (loaded on demand)."""
        if self._cache is None or self._cache[0] != self.index:
            item = self.items[self.index]
            self._cache = (self.index, item if isinstance(item, Scene) else self.loader(item))
        return self._cache[1]

    def color_modes(self) -> list[str]:
        """The colourings the current scene supports (``rgb`` always)."""
        s = self.scene.with_box_point_labels()
        out = ["rgb"]
        if s.segment is not None:
            out.append("gt")
        if s.pred is not None:
            out.append("pred")
            if s.segment is not None:
                out.append("error")
        return out

    def _fix_color_mode(self) -> None:
        modes = self.color_modes()
        if self.color_by not in modes:
            self.color_by = modes[0]

    def layers(self) -> Layers:
        """What to draw now."""
        self._fix_color_mode()
        boxes = {(True, True): "both", (True, False): "gt", (False, True): "pred"}.get(
            (self.show_gt, self.show_pred), "none"
        )
        return scene_layers(self.scene, self.color_by, boxes, "source", self.min_score)

    def handle_key(self, key: str) -> str | None:
        """Apply a key press (one letter, case-insensitive).

        Returns:
            ``"scene"`` when the scene changed (re-frame the camera), ``"camera"`` when only the
            camera preset changed, ``"redraw"`` when the geometry changed, ``"help"``, or ``None``
            for keys without a binding.
        """
        k = key.upper()
        if k in ("N", "P"):
            previous = self.index
            self.index = (self.index + (1 if k == "N" else -1)) % len(self.items)
            try:
                self._fix_color_mode()  # loads the scene
            except (ValueError, OSError):
                self.index = previous
                raise
            return "scene"
        if k == "C":
            modes = self.color_modes()
            self.color_by = (
                modes[(modes.index(self.color_by) + 1) % len(modes)] if self.color_by in modes else modes[0]
            )
            return "redraw"
        if k == "V":
            self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
            return "camera"
        if k == "B":
            on = not (self.show_gt or self.show_pred)
            self.show_gt = self.show_pred = on
            return "redraw"
        if k == "G":
            self.show_gt = not self.show_gt
            return "redraw"
        if k == "F":
            self.show_pred = not self.show_pred
            return "redraw"
        if k == "L":
            self.show_captions = not self.show_captions
            return "redraw"
        if k == "H":
            return "help"
        return None

    def status(self) -> str:
        """One line: scene position, colouring, visible layers."""
        layers = [n for n, on in (("gt boxes", self.show_gt), ("pred boxes", self.show_pred)) if on]
        return (
            f"[{self.index + 1}/{len(self.items)}] {self.scene.name} | colour: {self.color_by} "
            f"| view: {self.view} | boxes: {', '.join(layers) or 'off'}"
        )

    def legend_text(self, layers: Layers | None = None) -> str:
        """The legend as console text (one ``name  (r, g, b)`` line per entry)."""
        layers = layers or self.layers()
        lines = [self.status()]
        lines += [f"  {name:<20s} rgb{tuple(rgb)}" for name, rgb in layers.legend]
        return "\n".join(lines)


class ViewerWindow:
    """The Open3D GUI window around a :class:`ViewerState` (``gui.Window`` + ``SceneWidget`` + legend panel).

    ``gui.Application.instance.initialize()`` must have been called. :meth:`on_key` is the window's
    key callback; :meth:`draw` and :meth:`set_camera` refresh geometry and camera.
    """

    PANEL_WIDTH = 230

    def __init__(
        self,
        state: ViewerState,
        width: int = 1280,
        height: int = 800,
        point_size: float | None = None,
        line_width: float = 2.0,
    ) -> None:
        import open3d as o3d

        self.o3d = o3d
        self.gui = gui = o3d.visualization.gui
        self.rendering = rendering = o3d.visualization.rendering
        self.state = state
        self.point_size = point_size
        self.line_width = line_width
        self.window = gui.Application.instance.create_window("pc3d-viz", width, height)
        self.widget = gui.SceneWidget()
        self.widget.scene = rendering.Open3DScene(self.window.renderer)
        self.widget.scene.set_background([1.0, 1.0, 1.0, 1.0])
        self.widget.scene.view.set_post_processing(False)
        self.panel = gui.Vert(2, gui.Margins(8, 8, 8, 8))
        self.title = gui.Label("")
        self.panel.add_child(self.title)
        self.legend_rows = [gui.Label("") for _ in range(32)]
        for row in self.legend_rows:
            self.panel.add_child(row)
        self.panel.add_child(gui.Label(HELP.replace(" | ", "\n").replace("keys: ", "keys:\n")))
        self.window.add_child(self.widget)
        self.window.add_child(self.panel)
        self.labels: list = []
        self.window.set_on_layout(self._on_layout)
        self.window.set_on_key(self.on_key)
        self._on_layout(None)
        self.draw()
        self.set_camera()

    def _on_layout(self, _ctx) -> None:
        r = self.window.content_rect
        w = self.PANEL_WIDTH
        self.widget.frame = self.gui.Rect(r.x, r.y, max(r.width - w, 1), r.height)
        self.panel.frame = self.gui.Rect(r.get_right() - w, r.y, w, r.height)

    def set_camera(self) -> None:
        """Frame the current scene with the current camera preset."""
        fr = self.widget.frame
        aspect = max(fr.width, 1) / max(fr.height, 1)
        spec = camera_preset(self.state.scene, self.state.view, aspect)
        lo, hi = view_bounds(self.state.scene)
        bbox = self.o3d.geometry.AxisAlignedBoundingBox(lo.reshape(3, 1), hi.reshape(3, 1))
        self.widget.setup_camera(spec.fov, bbox, spec.center.astype(np.float32).reshape(3, 1))
        apply_camera(self.widget.scene.camera, spec, aspect)
        self.widget.center_of_rotation = spec.center.astype(np.float32).reshape(3, 1)

    def draw(self) -> Layers:
        """Rebuild points, boxes, captions and legend for the current state; returns the layers."""
        from pc3d.viz.geometry import to_open3d_lines, to_open3d_points

        gui, rendering, state = self.gui, self.rendering, self.state
        layers = state.layers()
        scene3d = self.widget.scene
        scene3d.clear_geometry()
        for lab in self.labels:
            self.widget.remove_3d_label(lab)
        self.labels.clear()
        mat = rendering.MaterialRecord()
        mat.shader = "defaultUnlit"
        mat.point_size = float(self.point_size or (3.0 if state.scene.kind == "indoor" else 2.0))
        if layers.coord.shape[0]:
            scene3d.add_geometry("points", to_open3d_points(layers.coord, layers.colors), mat)
        fov = camera_preset(state.scene, state.view, 1.0).fov
        for layer in layers.boxes:
            if not layer.lines.shape[0]:
                continue
            lm = rendering.MaterialRecord()
            lm.shader = "unlitLine"
            lm.line_width = self.line_width * math.tan(math.radians(fov / 2)) / math.tan(math.radians(30))
            scene3d.add_geometry(layer.name, to_open3d_lines(layer), lm)
            if state.show_captions:
                rgb = layer.colors[0] / 255.0
                for pos, text in layer.captions[:200]:
                    lab = self.widget.add_3d_label(pos.astype(np.float32).reshape(3, 1), text)
                    lab.color = gui.Color(float(rgb[0]), float(rgb[1]), float(rgb[2]))
                    self.labels.append(lab)
        self.title.text = state.status().replace(" | ", "\n")
        for i, row in enumerate(self.legend_rows):
            if i < len(layers.legend):
                name, rgb = layers.legend[i]
                row.text = f"\u25a0 {name}"
                row.text_color = gui.Color(*(c / 255.0 for c in rgb))
            else:
                row.text = ""
        self.window.title = f"pc3d-viz: {state.scene.name}"
        print(state.legend_text(layers), flush=True)
        self.window.post_redraw()
        return layers

    def on_key(self, event) -> bool:
        """Key callback: True when the key was handled (see :meth:`ViewerState.handle_key`)."""
        if event.type != self.gui.KeyEvent.Type.DOWN:
            return False
        code = int(event.key)
        if not (0 < code < 256) or not chr(code).isalpha():
            return False
        try:
            what = self.state.handle_key(chr(code))
        except (ValueError, OSError) as e:  # a scene that fails to load: report and stay on the current one
            print(f"pc3d-viz: {e}", flush=True)
            return True
        if what is None:
            return False
        if what == "help":
            print(HELP, flush=True)
        elif what == "camera":
            self.set_camera()
            self.draw()
        elif what == "scene":
            self.draw()
            self.set_camera()
        else:
            self.draw()
        return True


def run_viewer(
    scenes: Sequence[Scene | str | Path],
    color_by: str = "rgb",
    view: str = "oblique",
    min_score: float = 0.0,
    width: int = 1280,
    height: int = 800,
    point_size: float | None = None,
    line_width: float = 2.0,
) -> None:
    """Open the interactive window (blocks until it is closed). Needs a display."""
    import open3d as o3d

    state = ViewerState(scenes, color_by, view, min_score)
    app = o3d.visualization.gui.Application.instance
    app.initialize()
    print(HELP, flush=True)
    ViewerWindow(state, width, height, point_size, line_width)
    app.run()
