"""Optical ship detector (OSD) pretraining, fusion of detectors (WBF, NMS, soft-NMS) and the
complementarity evaluation of OSD and OSM detectors (land false alarms, sea recall).
"""

from saropt.fuse.fusion import (
    FuseConfig,
    fuse_coco_results,
    fuse_files,
    image_sizes_from_gt,
    load_coco_results,
)

__all__ = ["FuseConfig", "fuse_coco_results", "fuse_files", "image_sizes_from_gt",
           "load_coco_results"]
