"""``saropt demo`` stage: OSD pretraining, transfer to SAR, WBF of OSD and OSM (paper 000).

OSD pretraining on the synthetic optical chips, transfer to SAR, WBF of the OSD and OSM
detectors, and the land / sea comparison of all detectors (runs last).

Inputs from earlier stages (each optional; what is missing is skipped with a note):
``ships_root`` (``saropt.synth.write_ship_datasets`` output), ``detect_predictions`` (name ->
COCO results), ``detect_gt`` and the detection runs' checkpoints (their ``config.yaml`` gives the
SAR training budget, so the OSD-initialised detector trains exactly as long as the others).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from saropt.detect.demo import cpu_threads, demo_config

#: OSD epochs on the optical training chips (the SAR fine-tuning uses the detection budget).
OSD_EPOCHS = 4
SCORE_THR = 0.3  # toy detectors score low; the CLI default is 0.5


def run(ctx: Any) -> None:
    """Run the demo's fusion stage: train the OSD, fine-tune on SAR, fuse and compare.

    Skips (with a line in the report) when the synthetic ships stage did not run.
    """
    r = ctx.report
    r.section("OSD pretraining and weighted boxes fusion",
              "Paper 000: an optical ship detector (OSD) pretrained on aerial images recalls more "
              "ships at sea, the OSM detector (BNN SAR backbone) makes fewer false alarms on land,"
              " and weighted boxes fusion (WBF) of the two does better than either. Here, at toy "
              "scale on the synthetic ships: the OSD is a Faster R-CNN trained on the optical "
              "views of the *training* chips (`dota/`, never the test scenes), the SAR detector "
              "starts from it (`model.init=detector:...`) and trains on the SAR chips at the "
              "detection stage's budget.")
    ships = ctx.artifacts.get("ships_root")
    if not ships or not (Path(ships) / "hrsid").is_dir():
        r.text("*Skipped: no synthetic ship datasets from the earlier stages "
               "(`ctx.artifacts['ships_root']`).*")
        return
    ships, out = Path(ships), ctx.out_dir / "fuse"
    t0 = time.perf_counter()
    base = sar_base_config(ctx, ships, out)
    with cpu_threads():
        osd_ckpt, osd_info = train_osd_demo(ships, out, base, ctx.seed)
        sar = train_sar_from_osd(base, osd_ckpt, out)
        preds = dict(ctx.artifacts.get("detect_predictions") or {})
        preds["OSD"] = predict_test(sar["last_checkpoint"], out / "predictions" / "osd.json")
    gt = ctx.artifacts.get("detect_gt") or ships / "hrsid" / "annotations" / "test2017.json"
    ctx.artifacts.update({"osd_checkpoint": osd_ckpt, "osd_sar_checkpoint":
                          sar["last_checkpoint"], "osd_predictions": str(preds["OSD"])})
    report_transfer(r, out, osd_info, base)
    report_comparison(ctx, preds, Path(gt), ships, out)
    r.text(f"Stage wall time (OSD training, SAR fine-tuning, prediction, fusion, evaluation): "
           f"{time.perf_counter() - t0:.0f} s.")


# ------------------------------------------------------------------ configs


def sar_base_config(ctx: Any, ships: Path, out: Path) -> Any:
    """The detection stage's SAR training config, or its default when that stage did not run.

    Read from one of its runs' ``config.yaml``; the default is
    ``saropt.detect.demo.demo_config`` with random init.
    """
    from saropt.config import load_config
    from saropt.detect.module import DetectConfig

    for ckpt in _detect_checkpoints(ctx):
        cfg_path = Path(ckpt).parent.parent / "config.yaml"
        if cfg_path.is_file():
            return load_config(DetectConfig, cfg_path)
    return demo_config(ships / "hrsid", out / "sar_default", "random", ctx.seed)


def _detect_checkpoints(ctx: Any) -> list[str]:
    """Checkpoint paths the detection stage left in the artifacts (any key holding them)."""
    found: list[str] = []
    for key, value in ctx.artifacts.items():
        if "checkpoint" not in key or not key.startswith("detect"):
            continue
        values = value.values() if isinstance(value, dict) else [value]
        found += [str(v) for v in values if str(v).endswith(".ckpt")]
    return found


def osd_train_root(ships: Path, out: Path) -> tuple[Path, int]:
    """A DOTA-layout folder linking the optical views of the SAR *training* chips only."""
    train = json.loads((ships / "hrsid" / "annotations" / "train2017.json").read_text())
    root = out / "osd_dota_train"
    for sub in ("images", "labelTxt"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    n = 0
    for im in train["images"]:
        stem = Path(im["file_name"]).stem
        for sub, suffix in (("images", ".png"), ("labelTxt", ".txt")):
            src, dst = ships / "dota" / sub / f"{stem}{suffix}", root / sub / f"{stem}{suffix}"
            if src.is_file() and not dst.exists():
                os.symlink(src.resolve(), dst)
        n += (root / "images" / f"{stem}.png").exists()
    return root, n


def osd_config(base: Any, root: Path, out_dir: Path, epochs: int, seed: int) -> Any:
    """The SAR recipe turned optical: 3 channels, the DOTA reader (ship class), ``epochs``."""
    cfg = base.model_copy(deep=True)
    cfg.model = cfg.model.model_copy(update={"in_chans": 3, "init": "random"})
    cfg.data = cfg.data.model_copy(update={
        "dataset": "dota", "root": str(root), "train_split": "train", "val_split": "train",
        "options": {"classes": ["ship"]}, "max_val_images": 8})
    cfg.trainer = cfg.trainer.model_copy(update=_quiet_trainer(epochs) | {"seed": seed})
    cfg.optim = cfg.optim.model_copy(update={"milestones": []})
    cfg.out_dir = str(out_dir)
    return type(base).model_validate(cfg.model_dump())


def _quiet_trainer(epochs: int) -> dict[str, Any]:
    """Same optimisation steps, less bookkeeping: validate and checkpoint at the end only."""
    return {"max_epochs": epochs, "progress_bar": False, "check_val_every_n_epoch": epochs,
            "checkpoint_every_n_epochs": epochs}


# ------------------------------------------------------------------ steps


def train_osd_demo(ships: Path, out: Path, base: Any, seed: int) -> tuple[str, dict[str, Any]]:
    """Train the demo's OSD on the training chips' optical views; its checkpoint and run facts."""
    from saropt.detect.train import train

    root, n = osd_train_root(ships, out)
    cfg = osd_config(base, root, out / "osd", OSD_EPOCHS, seed)
    t0 = time.perf_counter()
    result = train(cfg)
    info = {"n_images": n, "epochs": cfg.trainer.max_epochs, "seconds": time.perf_counter() - t0,
            "val_ap50": result.get("val_ap50", {}), "model": cfg.model.name}
    return result["last_checkpoint"], info


def train_sar_from_osd(base: Any, osd_ckpt: str, out: Path) -> dict[str, Any]:
    """The detection stage's SAR recipe, started from the OSD (whole detector, RGB -> 1)."""
    from saropt.detect.train import train

    cfg = base.model_copy(deep=True)
    cfg.model = cfg.model.model_copy(update={"init": f"detector:{osd_ckpt}"})
    cfg.trainer = cfg.trainer.model_copy(update=_quiet_trainer(cfg.trainer.max_epochs))
    cfg.out_dir = str(out / "sar_from_osd")
    cfg = type(base).model_validate(cfg.model_dump())
    t0 = time.perf_counter()
    result = train(cfg)
    return {**result, "seconds": time.perf_counter() - t0}


def predict_test(ckpt: str, path: Path) -> Path:
    """Predict the test split with ``ckpt`` on the CPU into the COCO results file ``path``."""
    from saropt.detect.predict import run_predict

    run_predict(ckpt, path, split="test", progress=False, device="cpu")
    return path


# ------------------------------------------------------------------ report


def report_transfer(r: Any, out: Path, osd: dict[str, Any], base: Any) -> None:
    """Report the OSD training and, per detector part, what its weights gave the SAR detector."""
    from saropt.fuse.osd import summarise_transfer
    from saropt.utils.weights import LoadReport

    ap = osd["val_ap50"].get("voc_all_point")
    r.text(f"OSD: {osd['model']} trained {osd['epochs']} epochs on {osd['n_images']} optical "
           f"training chips in {osd['seconds']:.0f} s (AP@0.5 VOC all-point on those chips: "
           f"{'n/a' if ap is None else f'{ap:.3f}'}). The SAR detector then trained "
           f"{base.trainer.max_epochs} epochs, like the detection stage's detectors.")
    path = out / "sar_from_osd" / "init_report.json"
    if not path.is_file():
        return
    d = json.loads(path.read_text())
    rep = LoadReport(d.get("matched", []), d.get("adapted", []), d.get("missing", []),
                     d.get("unexpected", []), [tuple(m) for m in d.get("mismatched", [])])
    rows = [[p, c["matched"], c["adapted"], c["missing"], c["mismatched"]]
            for p, c in summarise_transfer(rep).items()]
    r.text(f"What the OSD gave the SAR detector ({d.get('summary')}); the first convolution's "
           f"RGB filters are summed into one-channel filters: {', '.join(rep.adapted) or '-'}.")
    r.table(rows, ["detector part", "matched", "adapted (RGB->1)", "missing", "mismatched"])


def _pretty(name: str) -> str:
    low = name.lower()
    if "random" in low or "scratch" in low:
        return "random init"
    if "osm" in low or "bnn" in low:
        return "OSM"
    return name


def report_comparison(ctx: Any, preds: dict[str, Any], gt: Path, ships: Path, out: Path) -> None:
    """Report AP (three definitions), land / sea counts and a gallery of all detectors and WBF."""
    from saropt.fuse.compare import complementarity, figure
    from saropt.fuse.fusion import load_coco_results
    from saropt.utils.io import write_json_atomic

    r = ctx.report
    names = {_pretty(k): Path(v) for k, v in preds.items() if Path(v).is_file()}
    to_fuse = [n for n in ("OSM", "OSD") if n in names]
    if len(to_fuse) < 2:
        r.text("*No OSM predictions from the detection stage: WBF of OSD + OSM skipped; the "
               "table shows the detectors that ran.*")
    masks = ships / "hrsid" / "land_masks"
    res = complementarity(gt, list(names.values()), list(names), masks if masks.is_dir() else
                          None, SCORE_THR, {"method": "wbf"}, "OSD+OSM WBF",
                          fuse=to_fuse if len(to_fuse) == 2 else list(names)[:1])
    write_json_atomic(out / "compare.json", res)
    _ap_tables(r, res)
    r.figure(figure(res, "voc_all_point"), "fuse_compare.png",
             "AP@0.5 (VOC all-point) per detector on all / inshore / offshore test chips; false "
             f"alarms on land and recall at sea at score >= {SCORE_THR} (synthetic data)")
    r.text(verdict(res))
    fused = res["detectors"].get("OSD+OSM WBF")
    if fused is not None:
        lists = {n: load_coco_results(p) for n, p in names.items()}
        lists["OSD+OSM WBF"] = _fused_results(lists, gt)
        fused_path = write_json_atomic(out / "predictions" / "osd_osm_wbf.json",
                                       lists["OSD+OSM WBF"])
        ctx.artifacts["fused_predictions"] = str(fused_path)
        fig = gallery_figure(gt, lists, ships / "hrsid")
        if fig is not None:
            r.figure(fig, "fuse_gallery.png", f"One inshore test chip: ground truth (green) and "
                     f"each detector's boxes at score >= {SCORE_THR}; land shaded (synthetic)")
    ctx.artifacts["fuse_compare"] = res


def _fused_results(lists: dict[str, list[dict[str, Any]]], gt: Path) -> list[dict[str, Any]]:
    from saropt.fuse.fusion import fuse_coco_results, image_sizes_from_gt

    return fuse_coco_results([lists["OSM"], lists["OSD"]], image_sizes_from_gt(gt), "wbf")


def _ap_tables(r: Any, res: dict[str, Any]) -> None:
    subsets = ["all", *res["subsets"]]
    rows = [[n, *[d["ap"][s][k] for s in subsets for k in ("voc07_11pt", "voc_all_point",
                                                              "coco_101pt")]]
            for n, d in res["detectors"].items()]
    heads = ["detector"] + [f"{k} ({s})" for s in subsets for k in ("VOC07", "VOC all", "COCO")]
    r.text("AP@0.5 on the synthetic SAR test chips, three definitions (VOC07 11-point, VOC "
           "all-point, COCO 101-point), on all chips and on the inshore / offshore chips "
           f"({', '.join(f'{k}: {v}' for k, v in res['subsets'].items())} chips):")
    r.table(rows, heads, floatfmt=".3f")
    if res["land_masks"]:
        rows = [[n, d["land_sea"]["fa_land"], d["land_sea"]["fa_sea"],
                 _or_dash(d["land_sea"]["recall_sea"]), _or_dash(d["land_sea"]["recall_land"]),
                 d["land_sea"]["n_pred"]] for n, d in res["detectors"].items()]
        r.text(f"Land / sea at score >= {SCORE_THR} (land masks of the synthetic scenes): false "
               "alarms whose centre is on land or at sea, and the recall of ships at sea and in "
               "docks. The fused scores are WBF's `box_and_model_avg`: a box only one of the two "
               "detectors saw gets half its score, which is how WBF removes one detector's lone "
               "land false alarms at a fixed threshold (docs/fusion.md).")
        r.table(rows, ["detector", "false alarms on land", "false alarms at sea", "recall at sea",
                       "recall on land", "predictions"], floatfmt=".3f")


def verdict(res: dict[str, Any]) -> str:
    """What this run says about the paper's claims, in plain words (no claim beyond the data)."""
    d = res["detectors"]
    if not {"OSM", "OSD", "OSD+OSM WBF"} <= set(d):
        return "Complementarity not assessed: the OSD and OSM detectors did not both run."
    ap = {n: d[n]["ap"]["all"]["voc_all_point"] for n in d}
    best_single = max((n for n in d if n != "OSD+OSM WBF"), key=lambda n: ap[n])
    beats = "beats" if ap["OSD+OSM WBF"] > ap[best_single] else "does not beat"
    parts = [f"WBF AP@0.5 (VOC all-point) {ap['OSD+OSM WBF']:.3f} vs the best single detector "
             f"({best_single}) {ap[best_single]:.3f}: the fusion {beats} it here"]
    if res["land_masks"]:
        ls = {n: d[n]["land_sea"] for n in ("OSM", "OSD", "OSD+OSM WBF")}
        parts.append(f"OSD recall at sea {ls['OSD']['recall_sea']:.3f} vs OSM "
                     f"{ls['OSM']['recall_sea']:.3f}; land false alarms OSM {ls['OSM']['fa_land']}"
                     f", OSD {ls['OSD']['fa_land']}, fused {ls['OSD+OSM WBF']['fa_land']}")
    return ("On this synthetic run (one seed, toy budget): " + "; ".join(parts) + ". Small "
            "differences are run-to-run noise at this scale.")


def _or_dash(v: float) -> float | str:
    return "-" if v != v else v  # NaN: no ground-truth ship there


def gallery_figure(gt_path: Path, lists: dict[str, list[dict[str, Any]]], hrsid: Path) -> Any:
    """Ground truth and each detector's confident boxes on the inshore chip with the most ships.

    Land shaded; one panel per detector; None when the chip's image file is missing.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Rectangle
    from PIL import Image

    gt = json.loads(Path(gt_path).read_text())
    counts: dict[int, int] = {}
    for a in gt["annotations"]:
        counts[a["image_id"]] = counts.get(a["image_id"], 0) + 1
    inshore = [im for im in gt["images"] if im.get("scene") == "inshore"] or gt["images"]
    im = max(inshore, key=lambda i: counts.get(i["id"], 0))
    img_path = hrsid / "JPEGImages" / im["file_name"]
    if not img_path.is_file():
        return None
    img = np.asarray(Image.open(img_path).convert("L"))
    mask_path = hrsid / "land_masks" / f"{Path(im['file_name']).stem}.png"
    mask = np.asarray(Image.open(mask_path)) > 127 if mask_path.is_file() else None
    fig, axes = plt.subplots(1, len(lists), figsize=(3.2 * len(lists), 3.4), squeeze=False)
    for ax, (name, results) in zip(axes[0], lists.items()):
        ax.imshow(img, cmap="gray")
        if mask is not None:
            ax.imshow(np.ma.masked_where(~mask, mask), cmap="autumn", alpha=0.25)
        for a in gt["annotations"]:
            if a["image_id"] == im["id"]:
                ax.add_patch(Rectangle(a["bbox"][:2], *a["bbox"][2:], fill=False, ec="lime",
                                       lw=1.2))
        for p in results:
            if p["image_id"] == im["id"] and p["score"] >= SCORE_THR:
                ax.add_patch(Rectangle(p["bbox"][:2], *p["bbox"][2:], fill=False, ec="red",
                                       lw=1.0, ls="--"))
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig
