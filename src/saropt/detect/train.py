"""``saropt detect train CONFIG [key=value ...]``: train a ship detector through ``saropt.engine``.

Writes ``out_dir/config.yaml``, ``out_dir/init_report.json`` (what the init weights matched),
``out_dir/checkpoints/{best,last}`` (best by ``val/ap50``), TensorBoard and CSV logs, and
``out_dir/train_summary.json``. Rerunning the same command resumes from ``last.ckpt``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from saropt.detect.module import DataConfig, DetectConfig


def make_dataset(data: DataConfig, split: str, in_chans: int, limit: int | None = None) -> Any:
    """The reader for ``split`` (first ``limit`` images) with a ``gt`` COCO dict attached."""
    from torch.utils.data import Subset

    from saropt.detect.datasets import build_dataset

    opts = {"in_chans": in_chans, **data.options}
    ds = build_dataset(data.dataset, data.root, split, **opts)
    gt = ds.to_coco()
    if limit is not None and limit < len(ds):
        keep = {int(r.image_id) for r in ds.records[:limit]}
        gt = {**gt, "images": [i for i in gt["images"] if i["id"] in keep],
              "annotations": [a for a in gt["annotations"] if a["image_id"] in keep]}
        sub = Subset(ds, range(limit))
        sub.categories, sub.records = ds.categories, ds.records[:limit]  # type: ignore[attr-defined]
        ds = sub
    ds.gt = gt  # type: ignore[attr-defined]
    return ds


def loader(ds: Any, batch_size: int, num_workers: int, shuffle: bool,
           sampler: Any = None) -> Any:
    """A detection DataLoader; ``sampler`` (e.g. :class:`saropt.engine.EpochShuffleSampler`)
    replaces ``shuffle``."""
    from torch.utils.data import DataLoader

    from saropt.detect.datasets import collate_detection

    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle and sampler is None,
                      sampler=sampler, num_workers=num_workers, collate_fn=collate_detection,
                      persistent_workers=num_workers > 0)


def typical_size(ds: Any) -> tuple[int, int] | None:
    """The median (height, width) of a dataset's images or tiles (recorded in checkpoints)."""
    import numpy as np

    recs = getattr(ds, "records", None) or []
    if not recs:
        return None
    return (int(np.median([r.height for r in recs])), int(np.median([r.width for r in recs])))


def kmeans_anchors_for(ds: Any, input_size: int) -> list[list[float]]:
    """YOLOv3 anchors from the training boxes resized to ``input_size`` (k-means, IoU distance)."""
    import torch

    from saropt.detect.models.yolov3 import kmeans_anchors

    wh = [torch.as_tensor(r.boxes[:, 2:] - r.boxes[:, :2]) *
          torch.tensor([input_size / r.width, input_size / r.height])
          for r in ds.records if len(r.boxes)]
    return kmeans_anchors(torch.cat(wh)).round(decimals=1).tolist()


def train(cfg: DetectConfig, callbacks: list[Any] | None = None,
          overwrite: bool = False) -> dict[str, Any]:
    """Train ``cfg`` and return the checkpoint paths and the last validation AP@0.5;
    ``callbacks`` (Lightning callbacks) are added to the engine's.

    The run folder follows :func:`saropt.utils.outdir.prepare_out_dir`: another run's folder
    (another config) is refused unless ``overwrite``; the same config resumes."""
    from saropt.detect.models import check_options
    from saropt.engine import run_folder

    check_options(cfg.model.name, cfg.model.options)
    out_dir = Path(cfg.out_dir)
    with run_folder(cfg, "detect train", RUN_OUTPUTS, overwrite) as od:
        result = _train(cfg, out_dir, callbacks)
        od.finish()
    return result


#: what ``saropt detect train`` writes into its run folder
RUN_OUTPUTS = ["checkpoints", "csv", "tb", "config.yaml", "init_report.json",
               "train_summary.json"]


def _train(cfg: DetectConfig, out_dir: Path, callbacks: list[Any] | None) -> dict[str, Any]:
    import lightning as L

    from saropt.detect.module import DetectModule
    from saropt.engine import (
        EpochShuffleSampler,
        make_trainer,
        resume_checkpoint,
        training_epoch,
    )
    from saropt.utils.io import write_json_atomic, write_text_atomic

    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    d = cfg.data
    train_ds = make_dataset(d, d.train_split, cfg.model.in_chans, d.max_train_images)
    val_ds = make_dataset(d, d.val_split, cfg.model.in_chans, d.max_val_images)
    if cfg.model.options.get("anchors") == "kmeans":
        size = int(cfg.model.options.get("input_size", 416))
        cfg.model.options = {**cfg.model.options, "anchors": kmeans_anchors_for(train_ds, size)}
    module = DetectModule(cfg.model_dump(mode="json"), train_image_size=typical_size(train_ds))
    module.val_gt = val_ds.gt
    module.category_of = {i + 1: int(c["id"]) for i, c in enumerate(val_ds.categories)}
    write_text_atomic(out_dir / "config.yaml", cfg.to_yaml())
    report = module.load_report
    write_json_atomic(out_dir / "init_report.json",
                      {"init": cfg.model.init, "summary": report.summary() if report else None,
                       **(report.to_dict() if report else {})})
    ckpt_path = resume_checkpoint(cfg.trainer, out_dir)
    trainer = make_trainer(cfg.trainer, out_dir, monitor="val/ap50", mode="max",
                           extra_callbacks=callbacks, resume_from=ckpt_path)
    # the training order depends on (seed, epoch) only, so a resumed run (with or without
    # workers) sees the batches of an uninterrupted one
    sampler = EpochShuffleSampler(len(train_ds), cfg.trainer.seed,
                                  epoch_fn=lambda: training_epoch(module._trainer))
    trainer.fit(module, loader(train_ds, d.batch_size, d.num_workers, True, sampler),
                loader(val_ds, d.batch_size, d.num_workers, False), ckpt_path=ckpt_path)
    ckpt = trainer.checkpoint_callback
    result = {"out_dir": str(out_dir),
              "best_checkpoint": ckpt.best_model_path or ckpt.last_model_path,
              "last_checkpoint": str(out_dir / "checkpoints" / "last.ckpt"),
              "val_ap50": module.last_metrics.get("ap50", {}),
              "init_report": report.summary() if report else None,
              "epochs": trainer.current_epoch, "steps": trainer.global_step}
    write_json_atomic(out_dir / "train_summary.json", result)
    return result
