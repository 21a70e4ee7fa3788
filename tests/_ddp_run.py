"""Train a BNN or a detector with ``trainer.strategy=ddp`` from a script, as a user would, and
record per rank what it saw: the training pairs of every step and the validation metrics.

    python tests/_ddp_run.py bnn|detect OUT_JSON_DIR CONFIG [key=value ...]

Lightning's DDP launcher re-runs this script once per extra rank (CPU, gloo); each rank writes
``OUT_JSON_DIR/rank<R>.json``. Used by ``tests/test_ddp.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import lightning as L


class Recorder(L.Callback):
    """Per rank: (epoch, sar_id, opt_id, label) of every training pair; validation metrics and
    the number of validation items this rank scored, per epoch."""

    def __init__(self, out: Path) -> None:
        self.out, self.pairs, self.val = out, [], []
        self._n_val = 0

    def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, idx: int) -> None:
        if isinstance(batch, dict):  # BNN pairs
            self.pairs += [[trainer.current_epoch, s, o, float(y)] for s, o, y in
                           zip(batch["sar_id"], batch["opt_id"], batch["label"].tolist())]
        else:  # detection: (images, targets)
            self.pairs += [[trainer.current_epoch, int(t["image_id"])] for t in batch[1]]

    def on_validation_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any,
                                idx: int, dataloader_idx: int = 0) -> None:
        self._n_val += len(batch["label"]) if isinstance(batch, dict) else len(batch[1])

    def on_validation_end(self, trainer: Any, module: Any) -> None:
        """After the module's ``on_validation_epoch_end`` (callback epoch-end hooks run before
        the module's, so they would see the previous epoch's metrics)."""
        if trainer.sanity_checking:
            self._n_val = 0
            return
        metrics = getattr(module, "last_val_metrics", None) or {
            k: v for k, v in getattr(module, "last_metrics", {}).get("ap50", {}).items()}
        self.val.append({"epoch": trainer.current_epoch, "n_scored": self._n_val,
                         "metrics": metrics})
        self._n_val = 0

    def on_fit_end(self, trainer: Any, module: Any) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(
            {"world_size": trainer.world_size, "pairs": self.pairs, "val": self.val}))


def main(kind: str, out: str, config: str, overrides: list[str]) -> None:
    from saropt.config import load_config

    rec = Recorder(Path(out))
    if kind == "bnn":
        from saropt.bnn.config import BNNConfig
        from saropt.bnn.train import train

        train(load_config(BNNConfig, config, overrides), callbacks=[rec])
    else:
        from saropt.detect.module import DetectConfig
        from saropt.detect.train import train as train_detector

        train_detector(load_config(DetectConfig, config, overrides), callbacks=[rec])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
