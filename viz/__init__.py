"""Open3D visualizer (interactive and headless): ``pc3d-viz`` and the training render callback.

Main entry points: :func:`load_scene` (any supported input -> :class:`Scene`), :func:`render_png`
and :class:`Renderer` (headless), :func:`pc3d.viz.interactive.run_viewer` (window),
:class:`pc3d.viz.callback.RenderValidationScenes` (Lightning callback). See docs/visualizer.md.
"""

from pc3d.viz.render import Renderer, render_png
from pc3d.viz.scene import Scene, load_scene, load_scenes, scene_from_dict

__all__ = ["Renderer", "Scene", "load_scene", "load_scenes", "render_png", "scene_from_dict"]
