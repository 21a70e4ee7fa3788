"""Evaluation of a trained BNN on a split's fixed pairs (``saropt bnn eval``).

Matching metrics at d < threshold (0.5; accuracy, precision and recall as in paper 003 Table 1
and paper 002 Table II), ROC-AUC, FPR at 95% TPR, a threshold chosen on the validation pairs,
retrieval among the test pairs, figures (paper 003 Figs. 6-7 among them) and ``metrics.json``.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from saropt.bnn.config import BNNConfig
from saropt.bnn.metrics import (
    best_threshold,
    binary_metrics,
    matching_metrics,
    nan_to_none,
    retrieval_metrics,
    roc_curve,
)
from saropt.bnn.model import distance
from saropt.errors import SaroptError
from saropt.utils.io import save_figure_atomic, write_json_atomic
from saropt.utils.table import format_table


def autocast_for(cfg: BNNConfig, device: torch.device) -> Any:
    """bf16 autocast when the model was trained in bf16 mixed precision, else nothing."""
    if cfg.trainer.precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def compute_codes(module: Any, dataset: Any, batch_size: int = 64, num_workers: int = 0,
                  progress: bool = True) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(ids, z_sar, z_opt)`` for every pair of a ``QXSSAROPT`` dataset.

    ``module``: a ``BNNModule`` (its ``cfg`` decides bf16 autocast). ``z_sar`` and ``z_opt`` are
    ``(N, n)`` float32 codes in [0, 1], row k for ``ids[k]``.
    """
    from tqdm import tqdm

    device = next(module.parameters()).device
    ids: list[str] = []
    zs, zo = [], []
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    for batch in tqdm(loader, desc="codes", disable=not progress, leave=False):
        with autocast_for(module.cfg, device):
            zs.append(module.model.sar(batch["sar"].to(device)).float().cpu())
            zo.append(module.model.opt(batch["opt"].to(device)).float().cpu())
        ids.extend(batch["id"])
    if not ids:
        return ids, np.zeros((0, module.cfg.model.code_dim)), np.zeros((0, 0))
    return ids, torch.cat(zs).numpy(), torch.cat(zo).numpy()


def pair_distances(ids: list[str], z_s: np.ndarray, z_o: np.ndarray,
                   pairs: list[tuple[str, str, float]]) -> tuple[np.ndarray, np.ndarray]:
    """``(d, labels)``, each ``(P,)``, of P ``pairs`` (sar_id, opt_id, label) from per-id codes.

    ``z_s``/``z_o``: ``(N, n)`` codes, row k for ``ids[k]``; d is eq. 1 of paper 003 in
    [0, 1]. Raises :class:`SaroptError` when a pair names an id without codes.
    """
    index = {i: k for k, i in enumerate(ids)}
    missing = [p for p in pairs if p[0] not in index or p[1] not in index]
    if missing:
        raise SaroptError(f"{len(missing)} pairs name ids without codes (first: {missing[0]})")
    s = torch.from_numpy(z_s[[index[p[0]] for p in pairs]])
    o = torch.from_numpy(z_o[[index[p[1]] for p in pairs]])
    return distance(s, o).numpy(), np.array([float(p[2]) for p in pairs])


def default_pairs(ids: list[str], seed: int = 0) -> list[tuple[str, str, float]]:
    """1:1 pairs when a split has no pairs file: each id true, plus one random false partner.

    Returns ``(sar_id, opt_id, label)`` tuples, 2 per id, drawn with ``seed``. Raises
    :class:`SaroptError` for fewer than two ids.
    """
    rng = random.Random(seed)
    n = len(ids)
    if n < 2:
        raise SaroptError("need at least two test ids to form false pairs")
    out = []
    for k, i in enumerate(ids):
        out.append((i, i, 1.0))
        out.append((i, ids[(k + rng.randrange(1, n)) % n], 0.0))
    return out


def load_split_pairs(split: Path, which: str, ids: list[str]) -> tuple[list, str]:
    """``(pairs, source)``: the split's ``<which>_pairs.csv``, else 1:1 pairs drawn from ``ids``.

    ``source`` says which (the CSV path, or how the pairs were drawn).
    """
    from saropt.bnn.data import eval_pairs_path
    from saropt.data import read_pairs

    path = eval_pairs_path(split, which)
    if path is not None:
        return [(str(a), str(b), float(c)) for a, b, c in read_pairs(path)], str(path)
    return default_pairs(ids), f"drawn 1:1 from {which}.txt (no {which}_pairs.csv)"


def codes_for(module: Any, cfg: BNNConfig, ids: list[str], batch_size: int) -> tuple:
    """:func:`compute_codes` of the pairs ``ids`` of ``cfg``'s dataset: ``(ids, z_s, z_o)``."""
    from saropt.bnn.data import base_dataset

    return compute_codes(module, base_dataset(cfg, ids), batch_size)


def eval_subset(module: Any, cfg: BNNConfig, split: Path, which: str, ids: list[str],
                batch_size: int) -> dict[str, Any]:
    """Codes, pairs, distances and labels of one split part (``which``: val or test).

    Returns ``pairs``, ``source``, ``d`` and ``y`` ``(P,)`` of the P pairs, and ``z_s``/``z_o``
    ``(N, n)`` codes of the N ``ids`` in order.
    """
    pairs, source = load_split_pairs(split, which, ids)
    need = sorted(set(ids) | {p[0] for p in pairs} | {p[1] for p in pairs})
    code_ids, z_s, z_o = codes_for(module, cfg, need, batch_size)
    d, y = pair_distances(code_ids, z_s, z_o, pairs)
    index = {i: k for k, i in enumerate(code_ids)}
    keep = [index[i] for i in ids]
    return {"pairs": pairs, "source": source, "d": d, "y": y,
            "z_s": z_s[keep], "z_o": z_o[keep]}


def eval_data(cfg: BNNConfig, root: str | None = None, layout: str = "auto",
              sar_dir: str | None = None, opt_dir: str | None = None,
              cache: str | None = None, resize: str | None = None) -> BNNConfig:
    """The config with the data to evaluate or embed on.

    ``root`` (None: the training root) is read in its own layout (``sar_dir`` + ``opt_dir``,
    else ``layout``; the training run's folder names only for the training root), ``cache``
    only when given, and a ``resize`` policy for pairs of another size than the training
    patches. Raises :class:`SaroptError` when there is no root or it is not a folder (without
    ``cache``).
    """
    d = cfg.data
    if root is None and d.root is None:
        raise SaroptError("the checkpoint names no dataset root; give --root")
    same_root = root is None or (d.root is not None and Path(root).resolve() ==
                                 Path(d.root).resolve())
    keep = same_root and sar_dir is None and layout == "auto"
    update = {"root": str(root or d.root), "cache": cache, "resize": resize or d.resize,
              "layout": d.layout if keep else layout,
              "sar_dir": d.sar_dir if keep else sar_dir,
              "opt_dir": d.opt_dir if keep else opt_dir}
    if cache is None and not Path(update["root"]).is_dir():
        hint = (f"; to read the training run's cache give --cache {d.cache}"
                if d.cache and same_root else "")
        raise SaroptError(f"dataset root {update['root']} is not a folder{hint}")
    return cfg.model_copy(update={"data": d.model_copy(update=update)})


def evaluate(checkpoint: str | Path, split: str | Path, out_dir: str | Path | None = None,
             root: str | None = None, batch_size: int = 64, gallery_n: int = 4,
             figures: bool = True, layout: str = "auto", sar_dir: str | None = None,
             opt_dir: str | None = None, cache: str | None = None,
             resize: str | None = None, overwrite: bool = False,
             localise: int | None = None,
             localise_opts: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate a BNN checkpoint on ``split``; write ``metrics.json`` and figures, return metrics.

    ``out_dir`` defaults to ``<run>/eval``. The result holds ``test`` (:func:`matching_metrics`
    at ``cfg.threshold`` plus ``n_pairs``), ``retrieval`` (among the test ids),
    ``val_threshold`` (None without validation pairs), optionally ``localise`` and ``figures``.

    The pairs come from ``root`` (default: the training root) in that dataset's own layout,
    from PNGs unless ``cache`` is given (see :func:`eval_data`). ``overwrite``: replace
    another command's output in ``out_dir`` (see :mod:`saropt.utils.outdir`). ``localise``
    (px): also the localisation protocol of :mod:`saropt.bnn.localise` with that search radius
    on the test ids, for the BNN and the baselines; ``localise_opts``: ``n`` (pairs, default
    200), ``methods``, ``stride`` (4), ``seed`` (0).

    Raises:
        SaroptError: not a BNN checkpoint, a split without test ids, bad localisation options,
            a missing dataset root, or an ``out_dir`` holding another command's output.
    """
    from saropt.bnn.data import base_dataset, read_split_dir
    from saropt.bnn.export import load_module

    checkpoint, split = Path(checkpoint), Path(split)
    if localise is not None:
        check_localise(localise, localise_opts or {})
    module = load_module(checkpoint)
    if torch.cuda.is_available():
        module = module.cuda()
    cfg = eval_data(module.cfg, root, layout, sar_dir, opt_dir, cache, resize)
    module.cfg = cfg
    parts = read_split_dir(split, cfg.data.root)
    if not parts["test"]:
        raise SaroptError(f"split {split} has no test ids")
    found = base_dataset(cfg, None)
    out_dir = Path(out_dir) if out_dir else checkpoint.parent.parent / "eval"
    from saropt.utils.outdir import prepare_out_dir

    config = {"checkpoint": str(checkpoint), "split": str(split), "root": cfg.data.root,
              "layout": cfg.data.layout, "cache": cache}
    with prepare_out_dir(out_dir, "bnn eval", config, EVAL_FILES, overwrite, replace_same=True,
                         quiet=True) as od:
        result = _evaluate(module, cfg, found, checkpoint, split, parts, out_dir, batch_size,
                           gallery_n, figures, localise, localise_opts)
        od.finish([Path(f).name for f in result.get("figures", [])] + ["metrics.json"])
    return result


#: what ``saropt bnn eval`` writes
EVAL_FILES = ["metrics.json", "curves.png", "roc.png", "histograms.png", "gallery.png",
              "localise_errors.png", "localise_dmaps.png"]


def _evaluate(module: Any, cfg: BNNConfig, found: Any, checkpoint: Path, split: Path,
              parts: dict[str, list[str]], out_dir: Path, batch_size: int, gallery_n: int,
              figures: bool, localise: int | None,
              localise_opts: dict[str, Any] | None) -> dict[str, Any]:
    test = eval_subset(module, cfg, split, "test", parts["test"], batch_size)
    result: dict[str, Any] = {"checkpoint": str(checkpoint), "split": str(split),
                              "data": {"root": cfg.data.root, "layout": found.layout.kind
                                       if found.layout else None, "pairs": len(found),
                                       "cache": cfg.data.cache, "resize": cfg.data.resize},
                              "test_pairs": test["source"], "threshold": cfg.threshold}
    result["test"] = nan_to_none(matching_metrics(test["d"], test["y"], cfg.threshold))
    result["test"]["n_pairs"] = len(test["pairs"])
    result["retrieval"] = retrieval_metrics(test["z_s"], test["z_o"])
    result["val_threshold"] = _val_threshold(module, cfg, split, parts, batch_size, test)
    loc = None
    if localise is not None:
        loc = _localise(module, cfg, parts["test"], localise, localise_opts or {})
        result["localise"] = {k: loc[k] for k in ("radius", "template_px", "stride", "seed",
                                                  "methods", "ids", "records")}
    write_json_atomic(out_dir / "metrics.json", result)
    if figures:
        paths = write_figures(out_dir, checkpoint, cfg, test, result, gallery_n)
        if loc is not None:
            paths += _localise_figures(out_dir, loc)
        result["figures"] = [str(p) for p in paths]
    return result


def _localise(module: Any, cfg: BNNConfig, ids: list[str], radius: int,
              opts: dict[str, Any]) -> dict[str, Any]:
    from saropt.bnn.data import base_dataset
    from saropt.bnn.localise import localise_split

    methods = check_localise(radius, opts)
    plain = base_dataset(cfg.model_copy(update={"data": cfg.data.model_copy(
        update={"image_size": None})}), ids)
    device = str(next(module.parameters()).device)
    return localise_split(module, ids, radius, int(opts.get("n", 200)),
                          int(opts.get("seed", 0)), int(opts.get("stride", 4)),
                          methods, device, plain.pair_u8)


def check_localise(radius: int, opts: dict[str, Any]) -> list[str]:
    """The methods of valid localisation options.

    Raises :class:`SaroptError` naming the bad flag: an unknown option or method, or a radius,
    pair count or stride below 1.
    """
    from saropt.bnn.matchers import BASELINES

    unknown = set(opts) - {"n", "methods", "stride", "seed"}
    if unknown:
        raise SaroptError(f"unknown localisation option(s) {sorted(unknown)}")
    methods = list(opts.get("methods") or ("bnn", *BASELINES))
    bad = [m for m in methods if m not in ("bnn", *BASELINES)]
    if bad:
        raise SaroptError(f"--localise-methods: unknown {bad}; choose among bnn, "
                          f"{', '.join(BASELINES)}")
    for flag, v in (("--localise", radius), ("--localise-n", opts.get("n", 200)),
                    ("--stride", opts.get("stride", 4))):
        if int(v) < 1:
            raise SaroptError(f"{flag} must be >= 1, got {v}")
    return methods


def _localise_figures(out_dir: Path, loc: dict[str, Any]) -> list[Path]:
    from saropt.bnn.localise import plot_dmap_gallery, plot_error_distribution

    return [save_figure_atomic(plot_error_distribution(loc), out_dir / "localise_errors.png"),
            save_figure_atomic(plot_dmap_gallery(loc), out_dir / "localise_dmaps.png")]


def _val_threshold(module: Any, cfg: BNNConfig, split: Path, parts: dict[str, list[str]],
                   batch_size: int, test: dict[str, Any]) -> dict[str, Any] | None:
    """Best-accuracy threshold on the validation pairs and its test metrics.

    None without validation pairs (the threshold is never chosen on test pairs).
    """
    from saropt.bnn.data import eval_pairs_path

    if eval_pairs_path(split, "val") is None:
        return None
    val = eval_subset(module, cfg, split, "val", parts["val"], batch_size)
    t, val_acc = best_threshold(val["d"], val["y"])
    at_t = binary_metrics(test["d"], test["y"], t)
    return {"threshold": t, "val_accuracy": val_acc, "n_val_pairs": len(val["pairs"]),
            "test": nan_to_none(at_t)}


def gallery_groups(test: dict[str, Any], threshold: float,
                   n: int) -> dict[str, list[tuple[str, str, float]]]:
    """Up to ``n`` test pairs ``(sar_id, opt_id, d)`` per outcome TP, FP, TN, FN.

    The most confident first for TP and TN, the most wrong first for FP and FN (paper 003 Fig. 6).
    """
    pred = test["d"] < threshold
    y = test["y"] > 0.5
    masks = {"TP": pred & y, "FP": pred & ~y, "TN": ~pred & ~y, "FN": ~pred & y}
    groups = {}
    for name, mask in masks.items():
        idx = np.nonzero(mask)[0]
        idx = idx[np.argsort(test["d"][idx])]
        if name in ("TN", "FN"):  # most confident (TP, TN) or most wrong (FP, FN) first
            idx = idx[::-1]
        groups[name] = [(test["pairs"][i][0], test["pairs"][i][1], float(test["d"][i]))
                        for i in idx[:n]]
    return groups


def write_figures(out_dir: Path, checkpoint: Path, cfg: BNNConfig, test: dict[str, Any],
                  result: dict[str, Any], gallery_n: int) -> list[Path]:
    """Curves (from the run's CSV log, if any), ROC, histograms and the gallery as PNG paths."""
    from saropt.bnn.data import base_dataset
    from saropt.bnn.plots import (
        plot_curves,
        plot_gallery,
        plot_histograms,
        plot_roc,
        read_epoch_metrics,
    )

    paths = []
    csv_path = checkpoint.parent.parent / "csv" / "metrics.csv"
    if csv_path.is_file():
        paths.append(save_figure_atomic(plot_curves(read_epoch_metrics(csv_path)),
                                        out_dir / "curves.png"))
    fpr, tpr, _ = roc_curve(test["d"], test["y"])
    t = result["test"]
    auc = t["roc_auc"] if t["roc_auc"] is not None else float("nan")
    point = (t["fpr"] or 0.0, t["recall"] or 0.0)
    paths.append(save_figure_atomic(plot_roc(fpr, tpr, auc, point, cfg.threshold),
                                    out_dir / "roc.png"))
    paths.append(save_figure_atomic(plot_histograms(test["d"], test["y"], cfg.threshold),
                                    out_dir / "histograms.png"))
    plain = base_dataset(cfg.model_copy(update={"data": cfg.data.model_copy(
        update={"image_size": None})}), None)
    load = lambda s, o: (plain.sar_u8(s), plain.opt_u8(o))  # noqa: E731
    groups = gallery_groups(test, cfg.threshold, gallery_n)
    paths.append(save_figure_atomic(plot_gallery(groups, load), out_dir / "gallery.png"))
    return paths


def metrics_table(result: dict[str, Any]) -> str:
    """The human-readable summary printed by ``saropt bnn eval``."""
    text = format_table(metrics_rows(result), ["metric", "value"])
    loc = result.get("localise")
    if loc:
        from saropt.bnn.localise import LOCALISATION_HEADERS, localisation_rows

        n = next(iter(loc["methods"].values()))["n"]
        text += (f"\n\nlocalisation: {n} test pairs, search radius {loc['radius']} px, "
                 f"template {loc['template_px']} px (errors in px)\n"
                 + format_table(localisation_rows(loc), LOCALISATION_HEADERS, floatfmt=".3g"))
    return text


def metrics_rows(result: dict[str, Any]) -> list[tuple[str, Any]]:
    """(metric, value) rows of an evaluation result, n/a where undefined."""
    t, r = result["test"], result["retrieval"]
    rows: list[tuple[str, Any]] = [
        (f"accuracy (d < {result['threshold']:g})", t["accuracy"]),
        ("precision", t["precision"]), ("recall", t["recall"]),
        ("ROC-AUC", t["roc_auc"]), ("FPR at 95% TPR", t["fpr_at_95tpr"]),
        ("test pairs", t["n_pairs"])]
    vt = result.get("val_threshold")
    if vt:
        rows += [("threshold chosen on val", vt["threshold"]),
                 ("accuracy at val threshold", vt["test"]["accuracy"])]
    rows += [(f"retrieval N={int(r['n'])} {k}", v) for k, v in r.items() if k != "n"]
    return [(k, "n/a" if v is None else v) for k, v in rows]
