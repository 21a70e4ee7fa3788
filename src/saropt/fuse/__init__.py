"""OSD pretraining, detector fusion (WBF, NMS, soft-NMS) and the OSD/OSM complementarity check.

Paper 000: an optical ship detector (OSD) pretrained on aerial images, an optical-SAR matching
(OSM) pretrained one, and their predictions combined by weighted boxes fusion; the
complementarity evaluation counts land false alarms and sea recall of each.
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
