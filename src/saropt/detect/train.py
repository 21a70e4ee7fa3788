"""``saropt detect train CONFIG [key=value ...]``: train a ship detector through ``saropt.engine``.

Writes ``out_dir/config.yaml``, ``out_dir/init_report.json`` (what the init weights matched),
``out_dir/checkpoints/epochNNN.ckpt`` (the best by ``val/ap50``) and ``last.ckpt`` (every
epoch), TensorBoard and CSV logs, and ``out_dir/train_summary.json``. Rerunning the same
command resumes from ``last.ckpt``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from saropt.detect.datasets.base import Record
    from saropt.detect.module import DetectConfig


def typical_size(records: Sequence[Record]) -> tuple[int, int] | None:
    """The median (height, width) in px of images or tiles (recorded in checkpoints)."""
    import numpy as np

    if not records:
        return None
    return (int(np.median([r.height for r in records])),
            int(np.median([r.width for r in records])))


def kmeans_anchors_for(records: Sequence[Record], input_size: int) -> list[list[float]]:
    """YOLOv3 anchors from the training boxes resized to ``input_size`` (k-means, IoU distance)."""
    import torch

    from saropt.detect.models.yolov3 import kmeans_anchors

    wh = [torch.as_tensor(r.boxes[:, 2:] - r.boxes[:, :2]) *
          torch.tensor([input_size / r.width, input_size / r.height])
          for r in records if len(r.boxes)]
    return kmeans_anchors(torch.cat(wh)).round(decimals=1).tolist()


def train(cfg: DetectConfig, callbacks: list[Any] | None = None,
          overwrite: bool = False) -> dict[str, Any]:
    """Train ``cfg`` and return the checkpoint paths and the last validation AP@0.5.

    The data come from :class:`saropt.detect.datamodule.DetectDataModule`, the model is a
    :class:`saropt.detect.module.DetectModule` (recipe of paper 003 section 4.2.2). The run
    folder follows :func:`saropt.utils.outdir.prepare_out_dir`: another run's folder (another
    config) is refused unless ``overwrite``; the same config resumes from ``last.ckpt``.

    Args:
        cfg: the validated run config; YOLOv3 ``model.options.anchors: kmeans`` is replaced
            by the anchors fitted to the training boxes (recorded in ``config.yaml``).
        callbacks: Lightning callbacks added to the engine's.
        overwrite: replace another run's folder at ``out_dir``.

    Returns:
        ``out_dir``, ``best_checkpoint``, ``last_checkpoint``, ``val_ap50`` (the last
        validation's AP@0.5 three ways), ``init_report``, ``epochs`` and ``steps`` (also
        written to ``out_dir/train_summary.json``).

    Raises:
        SaroptError: unknown model options, unreadable data, weights that do not load or a
            run folder of another config, before any training step.
    """
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

    from saropt.detect.datamodule import DetectDataModule
    from saropt.detect.module import DetectModule
    from saropt.engine import fit, make_trainer, resume_checkpoint
    from saropt.utils.io import write_json_atomic, write_text_atomic

    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    dm = DetectDataModule(cfg)
    dm.setup("fit")  # before the model: anchors and the training image size come from the data
    if cfg.model.options.get("anchors") == "kmeans":
        size = int(cfg.model.options.get("input_size", 416))
        cfg.model.options = {**cfg.model.options,
                             "anchors": kmeans_anchors_for(dm.train_records, size)}
    module = DetectModule(cfg.model_dump(mode="json"),
                          train_image_size=typical_size(dm.train_records))
    module.val_gt = dm.val_gt
    module.category_of = {i + 1: int(c["id"]) for i, c in enumerate(dm.categories)}
    write_text_atomic(out_dir / "config.yaml", cfg.to_yaml())
    report = module.load_report
    write_json_atomic(out_dir / "init_report.json",
                      {"init": cfg.model.init, "summary": report.summary() if report else None,
                       **(report.to_dict() if report else {})})
    ckpt_path = resume_checkpoint(cfg.trainer, out_dir)
    trainer = make_trainer(cfg.trainer, out_dir, monitor="val/ap50", mode="max",
                           extra_callbacks=callbacks, resume_from=ckpt_path)
    fit(trainer, module, dm, ckpt_path)
    ckpt = trainer.checkpoint_callback
    last = out_dir / "checkpoints" / "last.ckpt"
    result = {"out_dir": str(out_dir),  # no validation (limit_val_batches=0): no best, the last
              "best_checkpoint": ckpt.best_model_path or (str(last) if last.is_file() else ""),
              "last_checkpoint": str(last),
              "val_ap50": module.last_metrics.get("ap50", {}),
              "init_report": report.summary() if report else None,
              "epochs": trainer.current_epoch, "steps": trainer.global_step}
    write_json_atomic(out_dir / "train_summary.json", result)
    return result
