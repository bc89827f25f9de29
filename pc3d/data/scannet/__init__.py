"""ScanNet v2: raw readers, preprocessing (``pc3d-data scannet``), dataset and datamodule."""

from pc3d.data.scannet.classes import (
    DET_NYU40_IDS,
    IGNORE_INDEX,
    SCANNET20_CLASSES,
    SCANNET_DET_CLASSES,
    SCANNET_DET_MEAN_SIZES,
    VALID_CLASS_IDS_20,
    VALID_CLASS_IDS_200,
)
from pc3d.data.scannet.preprocess import align_points, convert_scene, load_scene, read_meta, write_scene
from pc3d.data.scannet.raw import RawSceneError

# dataset/datamodule pull in torch and lightning: import them on first use so that the
# preprocessing tool and its worker processes stay light.
_LAZY = {
    "ScanNetDataModule": "datamodule",
    "data_mean_sizes": "datamodule",
    "EpochSampler": "dataset",
    "ScanNetDataset": "dataset",
    "SegCollate": "dataset",
    "collate_fragments": "dataset",
    "DetAugParams": "pipelines",
    "SegAugParams": "pipelines",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"pc3d.data.scannet.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'pc3d.data.scannet' has no attribute {name!r}")


__all__ = [
    "DET_NYU40_IDS",
    "IGNORE_INDEX",
    "SCANNET20_CLASSES",
    "SCANNET_DET_CLASSES",
    "SCANNET_DET_MEAN_SIZES",
    "VALID_CLASS_IDS_20",
    "VALID_CLASS_IDS_200",
    "DetAugParams",
    "EpochSampler",
    "RawSceneError",
    "ScanNetDataModule",
    "ScanNetDataset",
    "SegAugParams",
    "SegCollate",
    "align_points",
    "collate_fragments",
    "convert_scene",
    "data_mean_sizes",
    "load_scene",
    "read_meta",
    "write_scene",
]
