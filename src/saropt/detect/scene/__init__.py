"""Ships out of whole SAR scenes: ``saropt detect scene`` (docs/scene.md).

- :mod:`.raster`: open and check a scene, windows, georeference (affine, GCPs, RPCs, none)
- :mod:`.radiometry`: the training 16/32-bit -> 8-bit mapping, fitted once per scene
- :mod:`.detectors`: checkpoints as tile detectors at their trained pixel scale
- :mod:`.tiles`: tile grid, seam rule, block files for resume, merging across tiles
- :mod:`.land`: land masks (raster or vector, any CRS) -> inshore / offshore / land
- :mod:`.outputs`: GeoJSON, COCO results, CSV, quicklook, offline HTML map
- :mod:`.run`: :func:`run_scene`, the whole pipeline
"""
