"""pc3d: 3D perception on point clouds (Pointformer detection, MEEPO segmentation)."""

__version__ = "0.1.0"
