"""The interactive window, driven headless through Open3D's WebRTC window system (no display needed).

Runs in a subprocess: the GUI application is a process-wide singleton, and closing a WebRTC window
aborts inside Open3D, so the script ends with ``os._exit(0)`` after its checks.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

SCRIPT = r"""
import os, sys
os.environ.setdefault("EGL_PLATFORM", "surfaceless")
import numpy as np, open3d as o3d
from types import SimpleNamespace
from pc3d.viz.interactive import ViewerState, ViewerWindow
from pc3d.viz.scene import Scene
o3d.visualization.webrtc_server.enable_webrtc()
gui = o3d.visualization.gui
app = gui.Application.instance
app.initialize()
rng = np.random.default_rng(0)
seg = rng.integers(0, 3, 200)
a = Scene(name="a", coord=rng.random((200, 3)), segment=seg, pred=(seg + 1) % 3, class_names=("wall","floor","chair"),
          boxes_gt=np.array([[0.5,0.5,0.5,1,1,1,0]]), labels_gt=np.array([2]), boxes_pred=np.array([[0.4,0.5,0.5,1,1,1,0]]),
          scores_pred=np.array([0.9]), labels_pred=np.array([2]), box_class_names=("wall","floor","chair"))
b = Scene(name="b", coord=rng.random((50, 3)))
win = ViewerWindow(ViewerState([a, b], color_by="gt"), 640, 480)
assert len(win.labels) == 2, win.labels
app.run_one_tick()
key = lambda k: SimpleNamespace(type=gui.KeyEvent.Type.DOWN, key=k)
assert win.on_key(key(gui.KeyName.C)) and win.state.color_by == "pred"
assert win.on_key(key(gui.KeyName.L)) and len(win.labels) == 0
assert win.on_key(key(gui.KeyName.V))
assert win.on_key(key(gui.KeyName.N)) and win.state.scene.name == "b"
assert not win.on_key(key(gui.KeyName.ESCAPE))
assert not win.on_key(SimpleNamespace(type=gui.KeyEvent.Type.UP, key=gui.KeyName.N))
for _ in range(3):
    app.run_one_tick()
print("VIEWER-OK", flush=True)
os._exit(0)
"""


def test_viewer_window_builds_and_handles_keys(tmp_path):
    script = tmp_path / "viewer.py"
    script.write_text(SCRIPT)
    # the WebRTC window system serves HTTP on WEBRTC_PORT (default 8888): take a free port so that
    # parallel runs do not collide
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "WEBRTC_IP": "127.0.0.1", "WEBRTC_PORT": str(port)}
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180, env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "VIEWER-OK" in r.stdout, out[-3000:]
    # the legend is printed to the console on every change
    assert "[1/2] a | colour: gt" in r.stdout and "chair                rgb(188, 189, 34)" in r.stdout
    assert "[2/2] b | colour: rgb | view: driver" in r.stdout
