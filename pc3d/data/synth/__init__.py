"""Synthetic scenes written in the raw formats of ScanNet v2 and KITTI object (``pc3d-data synth``).

- :func:`generate_room` / :func:`write_room`: an indoor room as a ScanNet v2 scan (``_vh_clean_2.ply``,
  ``.labels.ply``, ``.segs.json``, ``.aggregation.json``, ``<scene>.txt``).
- :func:`generate_frame` / :func:`write_frame`: a street frame seen by a simulated HDL-64E, written as a
  KITTI object sample (``velodyne/``, ``calib/``, ``label_2/``, ``image_2/``).

Both are deterministic functions of ``(index, seed)``.
"""

from pc3d.data.synth.kitti_street import SynthFrame, generate_frame, write_frame
from pc3d.data.synth.lidar import HDL64
from pc3d.data.synth.scannet_rooms import SynthRoom, generate_room, write_room

__all__ = ["HDL64", "SynthFrame", "SynthRoom", "generate_frame", "generate_room", "write_frame", "write_room"]
