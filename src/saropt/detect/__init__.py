"""SAR ship detection (paper 003 section 4, paper 002 section III-B).

- :mod:`saropt.detect.datasets`: SSDD, HRSID, AIR-SARShip-1.0/2.0, DOTA and generic COCO readers
  returning detection sample dicts, ``collate_detection`` and the paper's input sizes.
- :mod:`saropt.detect.datamodule`: the training data of ``saropt detect train`` (readers limited
  to their first images, loaders, the exact-resume order) as a ``LightningDataModule``.
- :mod:`saropt.detect.tiling`: large scenes into overlapping tiles and tile predictions back.
- :mod:`saropt.detect.ap`: AP@0.5 three ways (VOC07 11-point, VOC all-point, COCO 101-point via
  pycocotools), precision-recall curves and per-subset numbers.
- :mod:`saropt.detect.viz`: ground truth and predictions on images (paper 003 Fig. 9 style).

Submodules are imported on use, so ``import saropt.detect`` stays light.
"""
