"""``saropt detect predict CHECKPOINT``: run a trained detector on a dataset, write COCO results.

Large images are cut into overlapping tiles (``--tile``, :mod:`saropt.detect.tiling`) whose
predictions are shifted back and merged with NMS; readers that tile scenes themselves
(AIR-SARShip) have their tile predictions merged into scene coordinates, and their ground truth
written at scene level with ``--gt-out``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from saropt.errors import SaroptError

if TYPE_CHECKING:
    import torch
    from torch import nn

#: the smallest image side (pixels) that goes into a detector
MIN_SIDE = 32


def load_detector(checkpoint: str | Path, device: str = "cpu") -> tuple[nn.Module, Any]:
    """The detector and its :class:`DetectConfig` from a ``saropt detect train`` checkpoint."""
    model, cfg, _ = load_detector_hp(checkpoint, device)
    return model, cfg


def load_detector_hp(checkpoint: str | Path, device: str = "cpu"
                     ) -> tuple[nn.Module, Any, dict[str, Any]]:
    """:func:`load_detector` plus the detector's config and hyper-parameters.

    Returns:
        ``(model, cfg, hparams)``: the detector in eval mode on ``device``, its validated
        :class:`saropt.detect.module.DetectConfig`, and the hyper-parameters (``config``,
        ``norm``; ``scene`` holds the radiometry and training image size, see
        :mod:`saropt.detect.scene`).

    Raises:
        SaroptError: the file is not a readable saropt detector checkpoint (e.g. a BNN one).
    """
    from saropt.detect.module import DetectModule

    module = DetectModule.from_checkpoint(checkpoint)
    return module.model.to(device).eval(), module.cfg, dict(module.hparams)


def predict_images(model: nn.Module, images: list[torch.Tensor], tile: int | None = None,
                   overlap: float = 0.5, nms_iou: float = 0.5) -> list[dict[str, torch.Tensor]]:
    """Detections per image; images larger than ``tile`` run tile by tile and are merged.

    Args:
        model: a detector in eval mode (torchvision detection API: a list of ``(C, H, W)``
            float tensors in, a list of dicts out).
        images: ``(C, H, W)`` tensors on the model's device.
        tile: tile side in pixels; ``None`` or 0 runs each image whole.
        overlap: fraction in [0, 1) shared by neighbouring tiles.
        nms_iou: IoU of the class-wise NMS that merges tile predictions.

    Returns:
        One dict per image on the CPU: ``boxes`` ``(N, 4)`` xyxy pixels of the image,
        ``scores`` ``(N,)`` and ``labels`` ``(N,)`` (the model's class indices).
    """
    import torch

    with torch.no_grad():
        return _predict_images(model, images, tile, overlap, nms_iou)


def _predict_images(model: nn.Module, images: list[torch.Tensor], tile: int | None,
                    overlap: float, nms_iou: float) -> list[dict[str, torch.Tensor]]:
    if not tile:
        return [{k: v.cpu() for k, v in o.items()} for o in model(images)]
    from saropt.detect.tiling import merge_tile_predictions, tile_windows

    outs = []
    for img in images:
        wins = tile_windows(img.shape[-1], img.shape[-2], tile, overlap)
        dets = model([img[:, y0:y1, x0:x1] for x0, y0, x1, y1 in wins])
        boxes, scores, labels = merge_tile_predictions(
            ((w, d["boxes"].cpu(), d["scores"].cpu(), d["labels"].cpu())
             for w, d in zip(wins, dets)), nms_iou)
        outs.append({"boxes": boxes, "scores": scores, "labels": labels})
    return outs


def predict_dataset(model: nn.Module, ds: Any, batch_size: int = 4, tile: int | None = None,
                    overlap: float = 0.5, progress: bool = True) -> list[dict[str, Any]]:
    """COCO results of ``model`` on a detection dataset (scene-level for tiling readers).

    Args:
        model: a detector in eval mode (see :func:`predict_images`).
        ds: a :mod:`saropt.detect.datasets` reader (``records``, ``categories``).
        batch_size: images per forward pass.
        tile: tile side in pixels for large images (``None``: whole images).
        overlap: tile overlap fraction in [0, 1).
        progress: show a progress bar.

    Returns:
        COCO results: ``image_id``, ``category_id``, ``bbox`` ``[x, y, w, h]`` pixels,
        ``score``; for readers that tile scenes (AIR-SARShip) in scene coordinates.

    Raises:
        SaroptError: image files of the annotations are missing (checked before any work).
    """
    from tqdm import tqdm

    from saropt.detect.datamodule import detection_loader
    from saropt.detect.module import to_coco_results

    _check_images_exist(ds)
    device = next(model.parameters()).device
    cats = {i + 1: int(c["id"]) for i, c in enumerate(ds.categories)}
    results: list[dict[str, Any]] = []
    for images, targets in tqdm(detection_loader(ds, batch_size, 0, False), desc="predict",
                                disable=not progress, unit="batch"):
        outs = predict_images(model, [im.to(device) for im in images], tile, overlap)
        for out, t in zip(outs, targets):
            results += to_coco_results(out, int(t["image_id"]), cats)
    if hasattr(ds, "tile_to_scene"):
        from saropt.detect.tiling import tile_results_to_scene

        results = tile_results_to_scene(results, ds.tile_to_scene())
    return results


#: reader options that name files or folders of one copy of a dataset: never carried over from
#: the training run to another root or dataset
LAYOUT_OPTIONS = frozenset({"ann_file", "image_dir", "inshore_list", "layout", "labels"})


def _norm_name(name: str) -> str:
    return name.lower().replace("_", "-").replace("airsarship", "air-sarship")


def reader_options(data: Any, dataset: str | None, root: str | Path | None,
                   options: dict[str, Any] | None) -> tuple[str, str, dict[str, Any], list[str]]:
    """Reader name, root and options for predicting with a model trained on ``data``.

    ``data`` is the training run's ``DataConfig``. Its reader options carry over only to the
    same dataset: all of them on the training root, none that name its files or folders
    (:data:`LAYOUT_OPTIONS`) on another root, and none on another dataset, which is read in its
    own layout (detected by its reader). ``options`` given here override.

    Returns:
        (dataset name, root, reader options, training options not used).
    """
    name = dataset or data.dataset
    root = str(root or data.root)
    same_dataset = _norm_name(name) == _norm_name(data.dataset)
    same_root = same_dataset and Path(root).resolve() == Path(str(data.root)).resolve()
    inherited = {k: v for k, v in data.options.items()
                 if same_root or (same_dataset and k not in LAYOUT_OPTIONS)}
    dropped = sorted(set(data.options) - set(inherited))
    return name, root, {**inherited, **(options or {})}, dropped


def _check_images_exist(ds: Any) -> None:
    """Check that every image file of ``ds`` is there before any prediction runs.

    A release copy with missing images stops at once, naming how many and the first, not
    after hours of work.
    """
    missing = sorted({str(r.path) for r in ds.records if not Path(r.path).is_file()})
    if missing:
        raise SaroptError(f"{len(missing)} image file(s) of the {ds.name} annotations are "
                          f"missing, e.g. {missing[0]}; copy them or remove their entries")


def dataset_gt(ds: Any) -> dict[str, Any]:
    """Ground truth matching :func:`predict_dataset`'s image ids (scenes for tiling readers).

    Returns:
        A COCO ground-truth dict (``images``, ``annotations``, ``categories``).
    """
    return ds.scene_coco() if hasattr(ds, "scene_coco") else ds.to_coco()


def run_predict(checkpoint: str | Path, out: str | Path, dataset: str | None = None,
                root: str | None = None, split: str | None = None,
                options: dict[str, Any] | None = None, tile: int | None = None,
                overlap: float = 0.5, batch_size: int = 4, device: str = "auto",
                score_thresh: float | None = None, gt_out: str | Path | None = None,
                progress: bool = True) -> dict[str, Any]:
    """Predict on a dataset (default: the checkpoint's validation split) and write results.

    The implementation of ``saropt detect predict``. ``dataset``, ``root``, ``split`` and
    ``options`` default to the training config's (see :func:`reader_options` for which reader
    options carry over).

    Args:
        checkpoint: a ``saropt detect train`` checkpoint (``.ckpt``).
        out: COCO results JSON to write (atomically).
        dataset: reader name (hrsid, ssdd, air-sarship-1.0, air-sarship-2.0, dota, coco).
        root: dataset root.
        split: split name (default: the training config's ``val_split``).
        options: reader options that override the inherited ones.
        tile: tile side in pixels for images larger than it (``None``: whole images).
        overlap: tile overlap fraction in [0, 1).
        batch_size: images per forward pass.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``, ...
        score_thresh: keep detections above this score (default: the checkpoint's).
        gt_out: also write the matching COCO ground truth here.
        progress: show a progress bar.

    Returns:
        A summary: ``predictions`` (path), ``n_images``, ``n_detections``, ``dataset``,
        ``root``, ``split``, ``layout``, ``reader_options``, ``training_options_not_used``
        and, with ``gt_out``, ``ground_truth``.

    Raises:
        SaroptError: a checkpoint that is not a detector's, an unavailable device, an output
            path in the way of an input, missing image files or images under
            :data:`MIN_SIDE` px a side.
    """
    from saropt.detect.datasets import build_dataset
    from saropt.engine import check_device
    from saropt.utils.io import write_json_atomic
    from saropt.utils.outdir import check_out_file

    device = check_device(device)
    check_out_file(out, inputs=[checkpoint])
    if gt_out:
        check_out_file(gt_out, "--gt-out", inputs=[checkpoint, out])
    model, cfg = load_detector(checkpoint, device)
    d = cfg.data
    name, root, opts, not_inherited = reader_options(d, dataset, root, options)
    opts.setdefault("in_chans", cfg.model.in_chans)
    ds = build_dataset(name, root, split or d.val_split, **opts)
    tiny = [r for r in getattr(ds, "records", []) if min(r.width, r.height) < MIN_SIDE]
    if tiny:
        r = tiny[0]
        raise SaroptError(f"{r.path}: {r.width}x{r.height} pixels; images need at least "
                          f"{MIN_SIDE} px a side to be detected on ({len(tiny)} such images)")
    if score_thresh is not None:
        _set_score_thresh(model, score_thresh)
    results = predict_dataset(model, ds, batch_size, tile, overlap, progress)
    write_json_atomic(out, results)
    summary = {"predictions": str(out), "n_images": len(ds), "n_detections": len(results),
               "dataset": name, "root": str(root), "split": split or d.val_split,
               "layout": getattr(ds, "layout", None), "reader_options": opts,
               "training_options_not_used": not_inherited}
    if gt_out:
        summary["ground_truth"] = str(write_json_atomic(gt_out, dataset_gt(ds)))
    return summary


def _set_score_thresh(model: nn.Module, thr: float) -> None:
    if hasattr(model, "roi_heads"):
        model.roi_heads.score_thresh = thr
    else:
        model.score_thresh = thr
