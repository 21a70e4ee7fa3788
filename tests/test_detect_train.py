"""End to end on a toy SAR ship set: `saropt detect train` reaches a real AP50, resumes, and
`saropt detect predict` writes valid COCO results (also tiled, also on real HRSID chips)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from saropt.cli import main
from saropt.detect.ap import evaluate_coco_results

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SIZE = 64


def toy_image(rng: np.random.Generator, size: int, n_max: int = 4) -> tuple[np.ndarray, list]:
    """Gamma speckle sea with 1..n_max bright rectangular ships; boxes as COCO [x, y, w, h]."""
    sea = rng.gamma(4.0, 0.25, (size, size)) * 50.0
    boxes: list[list[float]] = []
    for _ in range(int(rng.integers(1, n_max + 1))):
        long, short = int(rng.integers(size // 5, size // 3)), int(rng.integers(5, 9))
        w, h = (long, short) if rng.random() < 0.5 else (short, long)
        x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        if any(x < bx + bw + 2 and bx < x + w + 2 and y < by + bh + 2 and by < y + h + 2
               for bx, by, bw, bh in boxes):
            continue
        sea[y:y + h, x:x + w] += 150.0 * rng.gamma(8.0, 0.125, (h, w))
        boxes.append([float(x), float(y), float(w), float(h)])
    return np.clip(sea, 0, 255).astype(np.uint8), boxes


def write_toy_hrsid(root: Path, n_train: int = 32, n_test: int = 8, size: int = SIZE,
                    seed: int = 0) -> Path:
    """``root/JPEGImages/*.png`` + ``root/annotations/{train,test}2017.json`` (HRSID layout)."""
    rng = np.random.default_rng(seed)
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    image_id = 0
    for split, n in (("train", n_train), ("test", n_test)):
        images, anns = [], []
        for _ in range(n):
            image_id += 1
            img, boxes = toy_image(rng, size)
            name = f"{split}_{image_id:04d}.png"
            Image.fromarray(img).save(root / "JPEGImages" / name)
            images.append({"id": image_id, "file_name": name, "width": size, "height": size,
                           "scene": "offshore" if image_id % 2 else "inshore"})
            anns += [{"id": len(anns) + 1, "image_id": image_id, "category_id": 1, "bbox": b,
                      "area": b[2] * b[3], "iscrowd": 0} for b in boxes]
        (root / "annotations" / f"{split}2017.json").write_text(json.dumps(
            {"images": images, "annotations": anns,
             "categories": [{"id": 1, "name": "ship"}]}))
    return root


#: A CPU-sized Faster R-CNN R18 (narrow FPN and box head, few RoIs) for 64 px toy chips.
TINY = ["model.options.min_size=64", "model.options.max_size=64",
        "model.options.fpn_channels=64", "model.options.representation_size=256",
        "model.options.rpn_pre_nms_top_n_train=300", "model.options.rpn_post_nms_top_n_train=100",
        "model.options.box_batch_size_per_image=32", "model.options.rpn_pre_nms_top_n_test=200",
        "model.options.rpn_post_nms_top_n_test=100", "data.batch_size=4", "optim.lr=0.02",
        "optim.milestones=[7]", "optim.warmup_iters=10", "trainer.gradient_clip_val=5.0",
        "trainer.accelerator=cpu", "trainer.devices=1", "trainer.progress_bar=false",
        "trainer.check_val_every_n_epoch=8"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Train once (8 epochs x 8 steps of 4 toy chips, ~40 s on one core) for all tests."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("detect_train")
    root = write_toy_hrsid(tmp / "hrsid")
    out = tmp / "run"
    args = ["detect", "train", "detect/synthetic_faster_rcnn_r18", f"data.root={root}",
            f"out_dir={out}", "trainer.max_epochs=8", *TINY, "--json"]
    assert main(args) == 0
    yield {"root": root, "out": out, "args": args, "tmp": tmp}
    torch.set_num_threads(old)


def test_training_reaches_real_ap50(trained: dict) -> None:
    summary = json.loads((trained["out"] / "train_summary.json").read_text())
    assert summary["val_ap50"]["coco_101pt"] > 0.5, summary
    assert summary["steps"] == 64
    assert (trained["out"] / "checkpoints" / "last.ckpt").is_file()
    assert (trained["out"] / "csv" / "metrics.csv").is_file()
    assert json.loads((trained["out"] / "init_report.json").read_text())["init"] == "random"


def test_predict_writes_valid_coco_results(trained: dict, capsys) -> None:
    preds, gt = trained["tmp"] / "preds.json", trained["tmp"] / "gt.json"
    ckpt = trained["out"] / "checkpoints" / "last.ckpt"
    assert main(["detect", "predict", str(ckpt), "--out", str(preds), "--gt-out", str(gt),
                 "--json"]) == 0
    results, truth = json.loads(preds.read_text()), json.loads(gt.read_text())
    ids = {img["id"] for img in truth["images"]}
    assert results and all(set(r) == {"image_id", "category_id", "bbox", "score"}
                           for r in results)
    assert {r["image_id"] for r in results} <= ids
    assert all(r["category_id"] == 1 and 0 <= r["score"] <= 1 and r["bbox"][2] > 0
               and r["bbox"][3] > 0 for r in results)
    metrics = evaluate_coco_results(gt, preds, subsets="scene")
    assert metrics["all"]["ap50"]["coco_101pt"] > 0.5
    assert set(metrics["subsets"]) == {"scene=inshore", "scene=offshore"}


@pytest.mark.slow
def test_training_resumes_from_last_checkpoint(trained: dict) -> None:
    args = [a if a != "trainer.max_epochs=8" else "trainer.max_epochs=9" for a in trained["args"]]
    assert main(args) == 0
    summary = json.loads((trained["out"] / "train_summary.json").read_text())
    assert summary["steps"] == 72  # continued from step 64, not restarted


@pytest.mark.slow
def test_tiled_predict_on_real_hrsid_chips(trained: dict) -> None:
    sample = SHARED / "hrsid-sample"
    if not (sample / "annotations" / "test2017.json").is_file():
        pytest.skip(f"real HRSID sample not found at {sample}")
    preds = trained["tmp"] / "hrsid_preds.json"
    ckpt = trained["out"] / "checkpoints" / "last.ckpt"
    assert main(["detect", "predict", str(ckpt), "--dataset", "hrsid", "--root", str(sample),
                 "--split", "test", "--tile", "400", "--out", str(preds)]) == 0
    results = json.loads(preds.read_text())
    truth = json.loads((sample / "annotations" / "test2017.json").read_text())
    assert isinstance(results, list)
    assert {r["image_id"] for r in results} <= {img["id"] for img in truth["images"]}
    assert all(r["bbox"][0] + r["bbox"][2] <= 800 + 1e-3 for r in results)  # scene pixels


def test_predict_and_eval_on_another_dataset_in_its_own_layout(trained: dict) -> None:
    """A model trained on the HRSID-layout toy set predicts on an SSDD release (voc_style
    split folders) read in SSDD's own layout, and the results score there."""
    root = trained["tmp"] / "ssdd_voc_style"
    gt = json.loads((trained["root"] / "annotations" / "test2017.json").read_text())
    for k, img in enumerate(gt["images"][:3]):
        name = f"{k + 1:06d}"
        (root / "JPEGImages_test").mkdir(parents=True, exist_ok=True)
        Image.open(trained["root"] / "JPEGImages" / img["file_name"]).save(
            root / "JPEGImages_test" / f"{name}.jpg", quality=95)
        objs = "".join(
            f"<object><name>ship</name><difficult>0</difficult><bndbox><xmin>{x}</xmin>"
            f"<ymin>{y}</ymin><xmax>{x + w}</xmax><ymax>{y + h}</ymax></bndbox></object>"
            for a in gt["annotations"] if a["image_id"] == img["id"]
            for x, y, w, h in [a["bbox"]])
        (root / "Annotations_test").mkdir(exist_ok=True)
        (root / "Annotations_test" / f"{name}.xml").write_text(
            f"<annotation><size><width>{SIZE}</width><height>{SIZE}</height></size>{objs}"
            "</annotation>")
    preds = trained["tmp"] / "ssdd_preds.json"
    ckpt = trained["out"] / "checkpoints" / "last.ckpt"
    assert main(["detect", "predict", str(ckpt), "--dataset", "ssdd", "--root", str(root),
                 "--split", "test", "--out", str(preds)]) == 0
    assert {r["image_id"] for r in json.loads(preds.read_text())} <= {1, 2, 3}
    out = trained["tmp"] / "ssdd_eval"
    assert main(["detect", "eval", "--dataset", "ssdd", "--root", str(root), "--pred",
                 str(preds), "--out", str(out), "--gallery", "0"]) == 0
    m = json.loads((out / "metrics.json").read_text())["all"]
    assert m["n_images"] == 3 and m["ap50"]["coco_101pt"] > 0.3


def test_run_without_validation_names_its_last_checkpoint(tmp_path: Path, capsys) -> None:
    """``trainer.limit_val_batches=0``: was "best checkpoint: " and "val AP@0.5: " (blank)."""
    root = write_toy_hrsid(tmp_path / "hrsid", n_train=4, n_test=2)
    out = tmp_path / "run"
    assert main(["detect", "train", "detect/synthetic_faster_rcnn_r18", f"data.root={root}",
                 f"out_dir={out}", "trainer.max_epochs=1", "trainer.limit_val_batches=0",
                 *TINY]) == 0
    text = capsys.readouterr().out
    assert f"best checkpoint: {out / 'checkpoints' / 'last.ckpt'}\n" in text
    assert "val AP@0.5: not measured (no validation epoch ran)" in text


def test_bad_checkpoint_is_a_clear_error(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.ckpt"
    bad.write_text("not a checkpoint")
    assert main(["detect", "predict", str(bad), "--out", str(tmp_path / "p.json")]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()


@pytest.mark.slow
def test_small_yolov3_trains_with_kmeans_anchors_and_predicts(trained: dict) -> None:
    out = trained["tmp"] / "yolo"
    assert main(["detect", "train", "detect/synthetic_yolov3_small",
                 f"data.root={trained['root']}", f"out_dir={out}",
                 "model.options.input_size=64", "model.options.train_sizes=[64, 96]",
                 "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                 "trainer.accelerator=cpu", "trainer.devices=1",
                 "trainer.progress_bar=false"]) == 0
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    anchors = ckpt["hyper_parameters"]["config"]["model"]["options"]["anchors"]
    assert len(anchors) == 9 and all(len(a) == 2 for a in anchors)
    areas = [w * h for w, h in anchors]
    assert areas == sorted(areas) and max(areas) < 64 * 64  # from the toy boxes, not COCO's
    torch.testing.assert_close(ckpt["state_dict"]["model.anchors"], torch.tensor(anchors))
    preds = trained["tmp"] / "yolo_preds.json"
    assert main(["detect", "predict", str(out / "checkpoints" / "last.ckpt"),
                 "--out", str(preds)]) == 0
    assert isinstance(json.loads(preds.read_text()), list)


def test_json_stdout_holds_only_the_result_when_a_run_resumes(trained: dict, tmp_path,
                                                              capsys) -> None:
    """`detect train --json` rerun on its folder: the resume note goes to stderr, so stdout
    parses as JSON (it used to start with "...: rerunning `saropt detect train` ...")."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained["out"], run)
    args = [f"out_dir={run}" if a.startswith("out_dir=") else
            "trainer.max_epochs=10" if a.startswith("trainer.max_epochs=") else a
            for a in trained["args"]]
    capsys.readouterr()
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["steps"] == 80
    assert "rerunning `saropt detect train` with the same config" in err
