"""``saropt detect eval`` end to end on the real HRSID sample (skipped when absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from saropt.cli import main

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HRSID = SHARED / "hrsid-sample"
GT = HRSID / "annotations" / "test2017.json"
pytestmark = pytest.mark.skipif(not HRSID.is_dir(),
                                reason=f"real HRSID sample not found at {HRSID}")


def _preds(tmp_path: Path, keep_every: int = 1) -> Path:
    """Ground truth as predictions, keeping every ``keep_every``-th box."""
    anns = json.loads(GT.read_text())["annotations"]
    preds = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"],
              "score": 1.0 - 0.01 * i} for i, a in enumerate(anns) if i % keep_every == 0]
    path = tmp_path / f"pred_{keep_every}.json"
    path.write_text(json.dumps(preds))
    return path


def test_eval_gt_as_predictions_scores_one(tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["detect", "eval", "--gt", str(GT), "--pred", str(_preds(tmp_path)), "--out",
                 str(out), "--gallery", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["all"]["ap50"] == {"voc07_11pt": 1.0, "voc_all_point": 1.0, "coco_101pt": 1.0}
    assert result["all"]["n_gt"] == 21
    for name in ("metrics.json", "pr_curves.json", "pr_curves.png", "gallery.png"):
        assert (out / name).stat().st_size > 0
    assert json.loads((out / "metrics.json").read_text())["all"]["n_images"] == 12


def test_eval_dropped_boxes_score_lower(tmp_path, capsys):
    assert main(["detect", "eval", "--dataset", "hrsid", "--root", str(HRSID), "--split",
                 "test", "--pred", str(_preds(tmp_path, keep_every=3)), "--out",
                 str(tmp_path / "e"), "--gallery", "0", "--subset-key", "scene"]) == 0
    text = capsys.readouterr().out
    assert "AP50 VOC07 11-pt" in text and "AP50 COCO 101-pt" in text
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())["all"]["ap50"]
    # 7 of 21 ships found at precision 1: recall 1/3
    assert m["voc_all_point"] == pytest.approx(1 / 3)
    assert m["coco_101pt"] == pytest.approx(34 / 101)
    assert m["voc07_11pt"] == pytest.approx(4 / 11)
    assert (tmp_path / "e" / "gt.json").is_file()


def test_eval_bad_input_exits_2_naming_the_file(tmp_path, capsys):
    bad = tmp_path / "preds.json"
    bad.write_text(json.dumps([{"image_id": 12345, "bbox": [0, 0, 1, 1], "score": 1}]))
    assert main(["detect", "eval", "--gt", str(GT), "--pred", str(bad), "--out",
                 str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "preds.json" in err and "12345" in err


def test_detect_group_help(capsys):
    assert main(["detect"]) == 2  # a group without a command shows its help
    assert "eval" in capsys.readouterr().out
