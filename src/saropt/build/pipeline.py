"""``build_dataset``: SAR scene + optical scene + tie points -> screened QXS-SAROPT patch pairs.

Steps: read tie points and sub-regions, fit one transform per sub-region (refusing those over
``registration.max_rmse``), then per block of patches read the SAR window, warp the optical
onto it (bilinear), cut the patches with valid data in both images, score them, and stage them
in ``OUT/.work``. A block's record is written (atomically) after its PNGs, so a rerun after a
crash skips finished blocks. Finally the screening decisions (thresholds can change between
runs without re-warping), ids, the QXS layout (hard links to the staged PNGs, swapped in whole),
``manifest.csv``, ``registration.json`` and ``summary.md`` with figures are written.

This follows the QXS-SAROPT construction (paper 002 section II.C-G, paper 003 Algorithm 1 steps
3-7): sub-regions registered separately from matching points, the optical resampled onto the
fixed SAR grid bilinearly, 256 x 256 px patches with 20 % overlap (the defaults), then
screening; the automatic screening and the resumable staging are this implementation's.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from saropt.build.config import BuildConfig
from saropt.build.patches import Block, plan_blocks
from saropt.build.rasters import GDAL_ENV, OpticalSource, SarSource
from saropt.build.register import Fit, fit_subregion
from saropt.build.screen import DuplicateIndex, phash, seam_score, texture_score
from saropt.build.tiepoints import (
    SubRegion,
    assign_subregions,
    envi_roles,
    read_subregions,
    read_tiepoints,
    tiepoint_format,
)
from saropt.build.warp import warp_window
from saropt.errors import DataError
from saropt.utils.io import atomic_path, write_json_atomic, write_text_atomic

MANIFEST_COLUMNS = ["id", "scene", "subregion", "x", "y", "size", "transform", "rmse",
                    "tex_sar", "tex_opt", "seam", "dup_dist", "dup_of", "decision", "reason"]


def layout_dirs(size: int, overlap: float) -> tuple[str, str]:
    """QXS folder names, e.g. ``("sar_256_oc_0.2", "opt_256_oc_0.2")``.

    ``size`` in px, ``overlap`` a fraction (formatted with ``:g``).
    """
    return f"sar_{size}_oc_{overlap:g}", f"opt_{size}_oc_{overlap:g}"


@dataclass
class Plan:
    """Everything decided before warping: sub-regions, fits and blocks."""

    subregions: list[SubRegion]
    fits: list[Fit]
    blocks: list[list[Block]]
    scaler: dict = field(default_factory=dict)
    tiepoints: dict = field(default_factory=dict)  # format and counts (read, disabled, ...)

    def n_blocks(self) -> int:
        """Number of blocks in the sub-regions whose registration was accepted."""
        return sum(len(b) for b, f in zip(self.blocks, self.fits) if f.ok)


# ---------------------------------------------------------------- inputs and registration

def _check_inputs(cfg: BuildConfig) -> None:
    for key in ("sar", "optical", "tiepoints", "subregions"):
        p = getattr(cfg, key)
        if p is not None and not Path(p).is_file():
            raise DataError(f"{key}: file {p} does not exist")


def load_tiepoints(cfg: BuildConfig, sar: SarSource, optical: OpticalSource,
                   subregions: list[SubRegion]) -> tuple[dict[str, np.ndarray], dict]:
    """Tie points per sub-region name, in the builder's pixel convention, and what was read.

    The source is the config's: the CSV, a QGIS ``.points`` or ENVI ``.pts`` file, a GeoTIFF's
    GCPs, or the rasters' georeferencing.

    Returns:
        ``({name: (N, 4) array of sar_x, sar_y, opt_x, opt_y}, info)``, pixels; ``info``: the
        format and counts of points read, disabled and outside every sub-region.

    Raises:
        DataError: when the file cannot be read (see the readers), a CSV names a sub-region
            not in ``cfg.subregions``, or no point falls on the optical raster / in a
            sub-region.
    """
    if cfg.georeference:
        from saropt.build.georef import georef_tiepoints

        groups = georef_tiepoints(sar.ds, optical.ds, subregions)
        return groups, {"source": "georeference"}
    if cfg.gcps is not None:
        from saropt.build.georef import gcp_tiepoints

        return _by_subregion(gcp_tiepoints(cfg.gcps, sar.ds, optical.ds), subregions,
                             {"source": f"gcps of {cfg.gcps}"}, f"gcps of {cfg.gcps}",
                             optical.shape)
    fmt = tiepoint_format(cfg.tiepoints, cfg.tiepoint_format)
    if fmt == "qgis":
        from saropt.build.georef import qgis_tiepoints

        pts, disabled = qgis_tiepoints(cfg.tiepoints, cfg.source_image, sar.ds, optical.ds)
        return _by_subregion(pts, subregions, {"source": "qgis", "disabled": disabled},
                             str(cfg.tiepoints), optical.shape)
    if fmt == "envi":
        from saropt.build.georef import envi_tiepoints

        envi_roles(cfg.tiepoints, cfg.source_image, cfg.sar, cfg.optical)

        return _by_subregion(envi_tiepoints(cfg.tiepoints, cfg.source_image), subregions,
                             {"source": "envi"}, str(cfg.tiepoints), optical.shape)
    groups = read_tiepoints(cfg.tiepoints)
    info = {"source": "csv", "read": int(sum(len(g) for g in groups.values()))}
    if cfg.subregions is None:
        return {"scene": np.concatenate(list(groups.values()))}, info
    names = {sr.name for sr in subregions}
    unknown = sorted(set(groups) - names)
    if unknown:
        raise DataError(f"{cfg.tiepoints}: sub-region(s) {unknown} are not in "
                        f"{cfg.subregions} (known: {sorted(names)})")
    return groups, info


def _by_subregion(points: np.ndarray, subregions: list[SubRegion], info: dict,
                  source: str, opt_shape: tuple[int, int]) -> tuple[dict[str, np.ndarray], dict]:
    """Points of a foreign format grouped by sub-region; those off the optical raster counted.

    ``opt_shape`` is (height, width) px. No point on the optical raster is an error (map
    coordinates in another CRS than assumed, or the wrong ``source_image``, put every point
    there).
    """
    h, w = opt_shape
    ox, oy = points[:, 2], points[:, 3]
    off = ~((ox >= -0.5) & (ox < w - 0.5) & (oy >= -0.5) & (oy < h - 0.5))
    if off.all():
        raise DataError(
            f"{source}: none of its {len(points)} tie points falls on the optical raster "
            f"({w}x{h} px; the first lands at optical pixel ({ox[0]:.1f}, {oy[0]:.1f})): check "
            "source_image, and that map coordinates are in the CRS the file or GeoTIFF states "
            "(without one they are taken to be in the other raster's CRS)")
    groups, outside = assign_subregions(points, subregions)
    if not groups:
        raise DataError(f"{source}: none of its {len(points)} tie points falls on the SAR "
                        "raster's sub-regions (check source_image and the pixel convention)")
    extra = {"outside_optical": int(off.sum())} if off.any() else {}
    return groups, dict(info, read=len(points), outside_subregions=outside, **extra)


def make_plan(cfg: BuildConfig, sar: SarSource, optical: OpticalSource) -> Plan:
    """Read sub-regions and tie points, fit each sub-region, and lay out its patch blocks.

    Raises:
        DataError: as :func:`saropt.build.tiepoints.read_subregions` and
            :func:`load_tiepoints`; a refused fit is not an error (``Fit.ok`` is false).
    """
    subregions = read_subregions(cfg.subregions, sar.shape)
    groups, tie_info = load_tiepoints(cfg, sar, optical, subregions)
    fits = [fit_subregion(sr.name, groups.get(sr.name, np.zeros((0, 4))), cfg.registration)
            for sr in subregions]
    p = cfg.patches
    blocks = [plan_blocks(sr, p.size, p.stride, p.block) for sr in subregions]
    return Plan(subregions, fits, blocks, sar.scaler.to_json(), tie_info)


# ---------------------------------------------------------------- resumable state

def _file_sig(path: Path | None) -> str | None:
    if path is None:
        return None
    st = Path(path).stat()
    if st.st_size < 1 << 20:
        return hashlib.sha1(Path(path).read_bytes()).hexdigest()
    return f"{Path(path).resolve()}:{st.st_size}:{int(st.st_mtime)}"


def fingerprint(cfg: BuildConfig) -> dict:
    """What the staged blocks depend on (screening thresholds excluded: they only re-decide)."""
    d = cfg.model_dump(mode="json", include={"georeference", "sar_nodata", "sar_scaling",
                                             "registration", "patches", "tiepoint_format",
                                             "source_image", "gcps"})
    d.update({k: _file_sig(getattr(cfg, k)) for k in ("sar", "optical", "tiepoints",
                                                      "subregions")})
    return d


def check_state(work: Path, fp: dict) -> None:
    """Refuse to mix a new configuration into an unfinished build of another.

    ``fp`` is :func:`fingerprint`; it is recorded in ``work/state.json``.

    Raises:
        DataError: when ``work`` holds staged blocks of a build with a different fingerprint.
    """
    path = work / "state.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = {}
        diff = sorted(k for k in set(old) | set(fp) if old.get(k) != fp.get(k))
        if diff and not any(work.glob("sr*/*.json")):
            # nothing staged yet (e.g. the last run failed on a bad tie-point file): the new
            # configuration simply replaces the old one
            write_json_atomic(path, fp)
        elif diff:
            raise DataError(f"{work.parent} holds a build with different {', '.join(diff)}; "
                            "use another out folder or rerun with --fresh")
    else:
        write_json_atomic(path, fp)


def clear_build(out: Path, cfg: BuildConfig) -> None:
    """Remove what a previous build wrote in ``out`` (only saropt's own files)."""
    sar_dir, opt_dir = layout_dirs(cfg.patches.size, cfg.patches.overlap)
    for name in (".work", sar_dir, opt_dir, "figures"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in ("manifest.csv", "registration.json", "summary.md"):
        (out / name).unlink(missing_ok=True)


# ---------------------------------------------------------------- blocks

def save_png(path: Path, img: np.ndarray, level: int) -> None:
    """Atomic PNG write with OpenCV of uint8 ``(H, W)`` (L) or ``(H, W, 3)`` RGB.

    ``level`` is the PNG compression level 0..9.

    Raises:
        DataError: when OpenCV cannot write the file.
    """
    arr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), arr, [cv2.IMWRITE_PNG_COMPRESSION, level]):
            raise DataError(f"could not write {path}")


def patch_record(x: int, y: int, sar: np.ndarray, svalid: np.ndarray, opt: np.ndarray,
                 ovalid: np.ndarray) -> dict:
    """Validity and screening scores of one patch pair at SAR px ``(x, y)``.

    ``sar``: uint8 ``(S, S)``, ``opt``: uint8 ``(S, S, 3)``, the masks bool ``(S, S)``.

    Returns:
        ``{"x", "y", "status"}`` with status ``sar_nodata``, ``outside_optical`` or ``ok``; an
        ``ok`` record adds ``tex_sar``, ``tex_opt``, ``seam`` (grey levels, see
        :mod:`saropt.build.screen`) and the 64-bit ``hash_sar`` / ``hash_opt`` as 16 hex digits.
    """
    if not svalid.all():
        return {"x": x, "y": y, "status": "sar_nodata"}
    if not ovalid.all():
        return {"x": x, "y": y, "status": "outside_optical"}
    return {"x": x, "y": y, "status": "ok", "tex_sar": round(texture_score(sar), 3),
            "tex_opt": round(texture_score(opt), 3), "seam": round(seam_score(opt), 3),
            "hash_sar": f"{phash(sar):016x}", "hash_opt": f"{phash(opt):016x}"}


def process_block(block: Block, fit: Fit, sar: SarSource, optical: OpticalSource,
                  cfg: BuildConfig, stage: Path) -> list[dict]:
    """Warp one block, cut, score and stage its patches; return their records.

    The ``ok`` patches are written to ``stage`` as ``{x}_{y}_sar.png`` and ``{x}_{y}_opt.png``,
    then the records as ``<block>.json`` (last, so a finished block is recognised on resume).
    """
    size = cfg.patches.size
    x0, y0, w, h = block.window(size)
    sar8, svalid = sar.read(x0, y0, w, h)
    opt, ovalid = warp_window(fit, optical, x0, y0, w, h, cfg.registration.grid_step)
    records = []
    for x, y in block.positions:
        sl = (slice(y - y0, y - y0 + size), slice(x - x0, x - x0 + size))
        rec = patch_record(x, y, sar8[sl], svalid[sl], opt[sl], ovalid[sl])
        if rec["status"] == "ok":
            save_png(stage / f"{x}_{y}_sar.png", sar8[sl], cfg.png_compression)
            save_png(stage / f"{x}_{y}_opt.png", opt[sl], cfg.png_compression)
        records.append(rec)
    write_json_atomic(stage / f"{block.name}.json", records, indent=0)
    return records


def run_blocks(plan: Plan, sar: SarSource, optical: OpticalSource, cfg: BuildConfig,
               work: Path, on_block: Callable[[int], None] | None = None) -> int:
    """Process every unfinished block of every accepted sub-region; returns blocks done now."""
    from tqdm import tqdm

    done_now = 0
    bar = tqdm(total=plan.n_blocks(), unit="block", desc="build", disable=not cfg.progress)
    for i, (fit, blocks) in enumerate(zip(plan.fits, plan.blocks)):
        if not fit.ok:
            continue
        stage = work / f"sr{i:03d}"
        for block in blocks:
            if not (stage / f"{block.name}.json").is_file():
                process_block(block, fit, sar, optical, cfg, stage)
                done_now += 1
                if on_block is not None:
                    on_block(done_now)
            bar.update(1)
    bar.close()
    return done_now


# ---------------------------------------------------------------- screening and layout

def screening_reason(rec: dict, s) -> str:
    """Why a patch is rejected by the per-patch tests ('' when it passes)."""
    if rec["status"] != "ok":
        return {"sar_nodata": "SAR nodata in patch",
                "outside_optical": "optical outside its raster"}[rec["status"]]
    reasons = []
    if s.texture_min_sar is not None and rec["tex_sar"] < s.texture_min_sar:
        reasons.append(f"texture-less SAR ({rec['tex_sar']:.2f} < {s.texture_min_sar})")
    if s.texture_min_opt is not None and rec["tex_opt"] < s.texture_min_opt:
        reasons.append(f"texture-less optical ({rec['tex_opt']:.2f} < {s.texture_min_opt})")
    if s.seam_max is not None and rec["seam"] > s.seam_max:
        reasons.append(f"seamline in optical ({rec['seam']:.1f} > {s.seam_max})")
    return "; ".join(reasons)


def load_records(stage: Path, blocks: list[Block]) -> list[dict]:
    """The staged patch records of ``blocks`` (see :func:`patch_record`), sorted by (y, x)."""
    recs = [r for b in blocks for r in json.loads((stage / f"{b.name}.json").read_text())]
    return sorted(recs, key=lambda r: (r["y"], r["x"]))


def decide(plan: Plan, cfg: BuildConfig, work: Path) -> list[dict]:
    """Manifest rows in sub-region then row-major order, with ids for the kept patches.

    Each patch gets ``decision`` (``keep``/``reject``) and ``reason``; kept patches are numbered
    ``1..N`` in that order. Near-duplicates are judged against the patches kept before them.
    """
    s = cfg.screening
    dup = DuplicateIndex()
    rows: list[dict] = []
    next_id = 1
    for i, (sr, fit, blocks) in enumerate(zip(plan.subregions, plan.fits, plan.blocks)):
        if not fit.ok:
            continue
        for rec in load_records(work / f"sr{i:03d}", blocks):
            row = {"id": "", "scene": cfg.scene_name(), "subregion": sr.name, "x": rec["x"],
                   "y": rec["y"], "size": cfg.patches.size, "transform": fit.model,
                   "rmse": round(fit.rmse, 3), "tex_sar": rec.get("tex_sar", ""),
                   "tex_opt": rec.get("tex_opt", ""), "seam": rec.get("seam", ""),
                   "dup_dist": "", "dup_of": "", "_stage": work / f"sr{i:03d}"}
            reason = screening_reason(rec, s)
            if not reason and s.duplicate_max_hamming is not None:
                hs, ho = int(rec["hash_sar"], 16), int(rec["hash_opt"], 16)
                dist, of = dup.query(hs, ho)
                if dist is not None:
                    row["dup_dist"], row["dup_of"] = dist, of
                if dist is not None and dist <= s.duplicate_max_hamming:
                    reason = f"near-duplicate of {of} (hash distance {dist})"
                else:
                    dup.add(hs, ho, next_id)
            row["decision"] = "reject" if reason else "keep"
            row["reason"] = reason
            if not reason:
                row["id"] = next_id
                next_id += 1
            rows.append(row)
    return rows


def write_layout(rows: list[dict], cfg: BuildConfig, out: Path, work: Path) -> None:
    """Hard-link the kept staged PNGs as ``1.png..N.png`` into fresh folders, then swap them in."""
    names = layout_dirs(cfg.patches.size, cfg.patches.overlap)
    new = work / "layout_new"
    shutil.rmtree(new, ignore_errors=True)
    for kind, name in zip(("sar", "opt"), names):
        (new / name).mkdir(parents=True)
        for row in rows:
            if row["decision"] == "keep":
                src = row["_stage"] / f"{row['x']}_{row['y']}_{kind}.png"
                _link_or_copy(src, new / name / f"{row['id']}.png")
    for name in names:
        old = work / f"layout_old_{name}"
        shutil.rmtree(old, ignore_errors=True)
        if (out / name).exists():
            os.replace(out / name, old)
        os.replace(new / name, out / name)
        shutil.rmtree(old, ignore_errors=True)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def write_manifest(rows: list[dict], path: Path) -> None:
    """Write the manifest rows as CSV with :data:`MANIFEST_COLUMNS` (atomically).

    ``x``, ``y``, ``size`` are SAR px; ``rmse`` optical px; scores in grey levels.
    """
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore",
                       lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text_atomic(path, buf.getvalue())


# ---------------------------------------------------------------- entry point

@dataclass
class BuildResult:
    """What :func:`build_dataset` did: the plan, every manifest row, timing and throughput."""

    out: Path
    plan: Plan
    rows: list[dict]
    seconds: float
    blocks_done_now: int
    megapixels: float

    @property
    def n_kept(self) -> int:
        """Number of patch pairs kept (written to the QXS layout)."""
        return sum(r["decision"] == "keep" for r in self.rows)

    def to_json(self) -> dict:
        """JSON summary: kept/rejected counts, rejections by reason, per-sub-region fits, speed.

        ``rmse`` values in optical px; ``megapixels``: the SAR block windows of the accepted
        sub-regions (all blocks, staged now or before); ``mp_per_s``: that over this run's
        seconds.
        """
        reasons: dict[str, int] = {}
        for r in self.rows:
            if r["decision"] == "reject":
                key = r["reason"].split(" (")[0].split(";")[0]
                reasons[key] = reasons.get(key, 0) + 1
        return {"out": str(self.out), "patches_kept": self.n_kept,
                "patches_rejected": len(self.rows) - self.n_kept, "rejected_by": reasons,
                "subregions": [{"name": f.subregion, "ok": f.ok, "reason": f.reason,
                                "rmse": f.rmse, "rmse_loo": f.rmse_loo,
                                "inliers": int(f.inliers.sum()), "points": f.n_points}
                               for f in self.plan.fits],
                "seconds": round(self.seconds, 2), "blocks_done_now": self.blocks_done_now,
                "megapixels": round(self.megapixels, 3),
                "mp_per_s": round(self.megapixels / max(self.seconds, 1e-9), 3)}


def _nothing_kept(rows: list[dict], plan: Plan, out: Path) -> str:
    """The error message of a build that kept no patch pair, with the counts of why."""
    failed = [f"{f.subregion} ({f.reason})" for f in plan.fits if not f.ok]
    reasons: dict[str, int] = {}
    for r in rows:
        key = r["reason"].split(" (")[0].split(";")[0]
        reasons[key] = reasons.get(key, 0) + 1
    why = ", ".join(f"{k}: {v}" for k, v in reasons.items()) or "no patch positions"
    regions = f"; sub-regions refused: {', '.join(failed)}" if failed else ""
    return (f"{out}: the build kept 0 patch pairs ({len(rows)} rejected: {why}{regions}); check "
            f"the tie points and screening thresholds (every decision is in "
            f"{out / 'manifest.csv'})")


def build_dataset(cfg: BuildConfig, fresh: bool = False, summary: bool | None = None,
                  on_block: Callable[[int], None] | None = None) -> BuildResult:
    """Build (or resume building) the dataset described by ``cfg`` in ``cfg.out``.

    ``on_block(n)`` is called after the n-th block finished in this run (progress hooks, tests).
    ``summary`` (default ``cfg.summary``) writes ``summary.md`` and its figures. ``fresh``
    removes a previous build's files first (and allows overwriting other output in ``out``).

    Raises:
        DataError: (a SaroptError) when an input file is missing or unreadable, tie points
            or sub-regions cannot be used, ``out`` holds an unfinished build with another
            configuration, or the build keeps no patch pair (``manifest.csv`` then says why).
        OutDirError: (a SaroptError) when ``out`` is in use or holds other output and
            ``fresh`` is false.
    """
    from saropt.utils.outdir import prepare_out_dir

    _check_inputs(cfg)
    out = Path(cfg.out)
    sar_dir, opt_dir = layout_dirs(cfg.patches.size, cfg.patches.overlap)
    outputs = [".work", sar_dir, opt_dir, "figures", "manifest.csv", "registration.json",
               "summary.md"]
    # the staged state (.work/state.json) decides what may resume; the stamp only guards the
    # folder against other commands' output and marks the dataset complete
    with prepare_out_dir(out, "data build", None, outputs, overwrite=fresh, quiet=True) as od:
        result = _build(cfg, out, fresh, summary, on_block)
        od.finish()
    return result


def _build(cfg: BuildConfig, out: Path, fresh: bool, summary: bool | None,
           on_block: Callable[[int], None] | None) -> BuildResult:
    import rasterio

    if fresh:
        clear_build(out, cfg)
    work = out / ".work"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with rasterio.Env(**GDAL_ENV):
        sar = SarSource(cfg.sar, cfg.sar_nodata, cfg.sar_scaling)
        optical = OpticalSource(cfg.optical)
        try:
            check_state(work, fingerprint(cfg))
            plan = make_plan(cfg, sar, optical)
            done_now = run_blocks(plan, sar, optical, cfg, work, on_block)
            rows = decide(plan, cfg, work)
            if not any(r["decision"] == "keep" for r in rows):
                write_manifest(rows, out / "manifest.csv")  # for the reasons
                raise DataError(_nothing_kept(rows, plan, out))
            write_layout(rows, cfg, out, work)
            write_manifest(rows, out / "manifest.csv")
            write_json_atomic(out / "registration.json",
                              {"scene": cfg.scene_name(), "sar_scaling": plan.scaler,
                               "tiepoints": plan.tiepoints,
                               "subregions": [dict(f.to_json(), region=sr.to_json())
                                              for sr, f in zip(plan.subregions, plan.fits)]})
            mp = sum(b.window(cfg.patches.size)[2] * b.window(cfg.patches.size)[3]
                     for bl, f in zip(plan.blocks, plan.fits) if f.ok for b in bl) / 1e6
            result = BuildResult(out, plan, rows, time.perf_counter() - t0, done_now, mp)
            if cfg.summary if summary is None else summary:
                from saropt.build.summary import write_summary

                write_summary(result, cfg, sar, optical)
        finally:
            sar.close()
            optical.close()
    return result
