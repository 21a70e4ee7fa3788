"""One rule for every command that writes an output folder.

:func:`prepare_out_dir` (a context manager) is the rule:

* ``OUT`` is locked while the command runs (``OUT/.saropt.lock`` holds the owner's pid, host and
  command); a second run into the same folder is refused naming the owner; a lock whose process
  is gone (kill -9) is stale and taken over.
* ``OUT/.saropt.json`` (the *stamp*) records which command wrote the folder, a hash of its
  config and ``"complete": false`` until the command finished; it is rewritten with
  ``"complete": true`` last, so a killed run leaves a folder that readers
  (:func:`check_complete`) and ``saropt data check`` refuse.
* A folder holding another command's output, or this command's output made with another config,
  is refused unless ``overwrite=True`` (``--overwrite``), which removes the outputs of that run
  (as its stamp lists them) and of this command, never other files. With the same config the
  command reruns (resumable commands resume, saying so). A folder without a stamp is used when
  none of the command's output names are in it.
* Temporary files of killed atomic writes (:func:`saropt.utils.io.atomic_path`) are removed on
  start; outputs of the same command that this run did not rewrite are removed at the end
  (``OutDir.finish``), so no stale file sits beside new results.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saropt.errors import SaroptError
from saropt.utils.io import write_json_atomic

STAMP = ".saropt.json"
LOCK = ".saropt.lock"
#: names written by :func:`saropt.utils.io.atomic_path`: ``.<stem>.<8 random chars>.tmp<suffix>``
TEMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp(\.[^.]*)?$")


class OutDirError(SaroptError):
    """An output folder that cannot be used as asked (in use, holds other output, not a folder)."""


def config_hash(config: Any) -> str:
    """A stable hash of a JSON-able config (dict keys sorted)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def config_diff(old: Any, new: Any, ignore: Iterable[str] = ()) -> list[str]:
    """Dotted keys whose values differ between two nested config dicts (``ignore`` skipped)."""
    a, b = _flatten(old), _flatten(new)
    skip = tuple(ignore)
    return sorted(k for k in set(a) | set(b)
                  if a.get(k) != b.get(k) and not any(k == s or k.startswith(s + ".")
                                                      for s in skip))


def read_stamp(folder: str | Path) -> dict[str, Any] | None:
    """The stamp of ``folder`` (None when there is none or it is unreadable)."""
    path = Path(folder) / STAMP
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_complete(folder: str | Path) -> str | None:
    """Why ``folder`` is not a finished saropt output, or None when finished or not stamped.

    Judged by its own stamp, or that of the run whose declared output holds it
    (``DATASET/sar_256_oc_0.2`` of a killed ``synth pairs``, ``OUT/hrsid`` of a killed
    ``synth ships``).
    """
    stamp = read_stamp(folder)
    where = Path(folder)
    if stamp is None:
        owner = claimed_by(folder)
        if owner is None:
            return None
        where, stamp = owner
    if stamp.get("complete", True):
        return None
    what = f"{where} is" if where == Path(folder) else f"{folder} is part of {where},"
    return (f"{what} an unfinished `saropt {stamp.get('command', '?')}` output (the run was "
            "killed or failed before it finished); rerun that command to complete it")


def require_complete(folder: str | Path) -> None:
    """Raise :class:`OutDirError` when :func:`check_complete` finds ``folder`` unfinished.

    The check of every reader of saropt-written data.
    """
    why = check_complete(folder)
    if why:
        raise OutDirError(why)


def claimed_by(path: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """``(folder, stamp)`` of the run whose declared outputs hold ``path``; None if none does.

    The stamped folder above ``path`` whose run declared ``path`` (or a folder holding it) as
    one of its outputs. ``fuse run --out DATASET/manifest.csv`` or ``data split --out
    DATASET/sar_256_oc_0.2`` would otherwise overwrite or mix into another command's output.
    """
    path = Path(os.path.abspath(path))
    for folder in path.parents:
        stamp = read_stamp(folder)
        if stamp is None:
            continue
        parts = path.relative_to(folder).parts
        declared = [Path(n).parts for n in stamp.get("outputs") or [] if isinstance(n, str) and n]
        if parts[0] in (STAMP, LOCK) or any(parts[:len(d)] == d for d in declared):
            return folder, stamp
    return None


def check_unclaimed(path: str | Path, flag: str = "--out") -> None:
    """Raise :class:`OutDirError` when ``path`` is (inside) another run's declared output."""
    owner = claimed_by(path)
    if owner is not None:
        folder, stamp = owner
        raise OutDirError(f"{flag} {path} is part of the output of `saropt "
                          f"{stamp.get('command', '?')}` in {folder}; writing there would "
                          "change that output: choose a path outside it")


def remove_temps(folder: str | Path) -> int:
    """Delete temporary files left by killed atomic writes anywhere under ``folder``; the count."""
    n = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            if TEMP_RE.match(name):
                Path(dirpath, name).unlink(missing_ok=True)
                n += 1
    return n


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@contextmanager
def folder_lock(folder: str | Path, command: str) -> Iterator[Path]:
    """Hold ``folder/.saropt.lock`` while the block runs; refuse when a live process holds it.

    A lock whose process is gone (same host, pid not alive or reused) is taken over. Raises
    :class:`OutDirError` naming the owner's command, pid, host and start time.
    """
    path = Path(folder) / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
          "since": time.strftime("%Y-%m-%d %H:%M:%S"), "started": _proc_start(os.getpid())}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            owner = _read_lock(path)
            if owner == {} and _age(path) < FRESH_LOCK_S:  # its owner is writing it right now
                time.sleep(0.2)
                owner = _read_lock(path)
                if owner == {} and _age(path) < FRESH_LOCK_S:
                    raise OutDirError(f"{folder} is being locked by another saropt run right "
                                      "now; wait for it to finish or use another output "
                                      "folder") from None
            if owner is not None and _lock_held(owner):
                raise OutDirError(
                    f"{folder} is in use by `saropt {owner.get('command', '?')}` (pid "
                    f"{owner.get('pid')} on {owner.get('host')}, since {owner.get('since')}); "
                    "wait for it to finish or use another output folder") from None
            path.unlink(missing_ok=True)  # stale: its owner is gone
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    else:
        raise OutDirError(f"{path}: could not take the lock; remove it if no saropt run uses "
                          f"{folder}")
    try:
        yield path
    finally:
        if (_read_lock(path) or {}).get("pid") == os.getpid():
            path.unlink(missing_ok=True)


def _read_lock(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # being written right now, or garbage: treat as held below by age


#: a lock file younger than this whose content cannot be read yet is being written (seconds)
FRESH_LOCK_S = 5.0


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def _proc_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, Linux ``/proc``), or None.

    With the pid it names one process, so a reused pid (after a kill -9 or a reboot) is not
    taken for the lock's owner.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _lock_held(owner: dict[str, Any]) -> bool:
    pid = owner.get("pid")
    if not isinstance(pid, int):
        return False
    if owner.get("host") not in (None, socket.gethostname()):
        return True  # another machine's process: cannot check, assume alive
    if pid == os.getpid() or not _pid_alive(pid):
        return False
    started, now = owner.get("started"), _proc_start(pid)
    return started is None or now is None or started == now  # else: the pid was reused


@dataclass
class OutDir:
    """An output folder prepared by :func:`prepare_out_dir`."""

    path: Path
    command: str
    config: Any
    outputs: list[str]
    state: str  # "new", "same" (same command and config as before) or "overwritten"
    stamp: dict[str, Any] = field(default_factory=dict)
    active: bool = True  # False: another process (DDP rank 0) owns the folder; do nothing

    def clear(self) -> None:
        """Remove every output of this command from the folder (start over)."""
        for name in self.outputs if self.active else []:
            _remove(self.path / name)

    def finish(self, written: Iterable[str] | None = None) -> None:
        """Remove the command's outputs this run did not write, then mark the folder complete."""
        if not self.active:
            return
        if written is not None:
            keep = set(written)
            for name in self.outputs:
                if name not in keep:
                    _remove(self.path / name)
        self.stamp["complete"] = True
        self.stamp["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        write_json_atomic(self.path / STAMP, self.stamp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _present(path: Path, outputs: Iterable[str]) -> list[str]:
    return [n for n in outputs if (path / n).exists()]


@contextmanager
def prepare_out_dir(path: str | Path, command: str, config: Any = None,
                    outputs: Iterable[str] = (), overwrite: bool = False,
                    resume_ignore: Iterable[str] = (), lock: bool = True,
                    quiet: bool = False,
                    legacy_config: Callable[[Path], Any] | None = None,
                    replace_same: bool = False) -> Iterator[OutDir]:
    """Create or reuse the output folder ``path`` of ``saropt COMMAND`` under the rule above.

    ``config``: a JSON-able description of everything the outputs depend on; ``outputs``: the
    file and folder names (relative to ``path``) this command writes; ``resume_ignore``: config
    keys that may change between a run and its rerun (e.g. ``trainer.max_epochs``);
    ``legacy_config(path)``: the config of an unstamped folder of this command (a run folder
    from before stamps, or a copied checkpoint), or None; ``replace_same``: a quick report
    command (eval, split, export) whose rerun replaces its own earlier output whatever the config
    (its stale files are removed by ``finish``); other commands' folders are still refused.
    On success call ``OutDir.finish(written)`` inside the block. Raises :class:`OutDirError`
    (a file at ``path``, a folder in use, another run's output, a different config without
    ``overwrite``) and ``PermissionError`` for a folder that is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutDirError(f"{path} exists and is a file; the output must be a folder (remove "
                          "the file or choose another --out)")
    check_unclaimed(path)
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(13, "Permission denied", str(path))
    outputs = list(outputs)
    try:
        with _prepared(path, command, config, outputs, overwrite, resume_ignore, lock, quiet,
                       legacy_config, replace_same) as od:
            yield od
    except BaseException:
        if created:
            _rmdir_if_empty(path)  # a failed first run leaves no empty folder behind
        raise


@contextmanager
def _prepared(path: Path, command: str, config: Any, outputs: list[str], overwrite: bool,
              resume_ignore: Iterable[str], lock: bool, quiet: bool,
              legacy_config: Callable[[Path], Any] | None,
              replace_same: bool = False) -> Iterator[OutDir]:
    ctx = folder_lock(path, command) if lock else _nolock(path)
    with ctx:
        remove_temps(path)
        stamp = read_stamp(path)
        if stamp is None and legacy_config is not None:
            old = legacy_config(path)
            stamp = None if old is None else {"command": command, "config": old}
        own = replace_same and (stamp is None or stamp.get("command") == command)
        state = _decide(path, stamp, command, config, outputs, overwrite or own,
                        list(resume_ignore), clear=not own)
        if state == "same" and not quiet:
            print(f"{path}: rerunning `saropt {command}` with the same config "
                  "(resuming where it stopped)")
        stamp = {"command": command, "config_hash": config_hash(config), "config": config,
                 "outputs": outputs, "complete": False,
                 "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        previous = read_stamp(path)
        write_json_atomic(path / STAMP, stamp)
        try:
            yield OutDir(path, command, config, outputs, state, stamp)
        except BaseException:
            # a failed rerun with the same config leaves the folder as it was declared before;
            # a run that failed before writing anything leaves no trace
            present = _present(path, outputs)
            if previous is not None and (state == "same" or not present):
                write_json_atomic(path / STAMP, previous)
            elif not present:
                (path / STAMP).unlink(missing_ok=True)
            raise


def check_out_file(path: str | Path, flag: str = "--out",
                   inputs: Iterable[str | Path | None] = ()) -> Path:
    """Check, before work starts, that ``path`` can be written as a file; returns it as a Path.

    Its folder is created now. Raises :class:`OutDirError` (naming ``flag``) when ``path`` is a
    folder, one of the command's ``inputs``, or part of another run's output, and
    ``PermissionError`` naming the folder when it is not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise OutDirError(f"{flag} {path} is a folder; give a file path")
    for given in inputs:
        if given is not None and _same_file(path, Path(given)):
            raise OutDirError(f"{flag} {path} is the same file as {given}, which this "
                              "command also reads or writes; choose another output path")
    check_unclaimed(path, flag)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise PermissionError(13, "Permission denied", str(path.parent))
    remove_own_temps(path)
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b) or \
            os.path.abspath(a) == os.path.abspath(b)
    except OSError:
        return False


#: a temporary of an atomic write older than this (seconds) is a killed run's, not a live one's
STALE_TEMP_S = 60.0


def remove_own_temps(path: str | Path) -> int:
    """Delete the temporaries that killed atomic writes of the file ``path`` left beside it.

    Those are ``.<stem>.XXXXXXXX.tmp<suffix>`` untouched for :data:`STALE_TEMP_S` s: a
    single-file output has no run folder whose start would clean them. Returns the count.
    """
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.stem)}\.[A-Za-z0-9_]{{8}}\.tmp"
                         rf"{re.escape(path.suffix)}$")
    n = 0
    try:
        names = os.listdir(path.parent)
    except OSError:
        return 0
    for name in names:
        tmp = path.parent / name
        if pattern.match(name) and _age(tmp) > STALE_TEMP_S:
            tmp.unlink(missing_ok=True)
            n += 1
    return n


def check_out_dir(path: str | Path, command: str, config: Any = None,
                  outputs: Iterable[str] = (), overwrite: bool = False) -> None:
    """Raise now the :class:`OutDirError` that :func:`prepare_out_dir` would raise later.

    Called before long work starts; changes nothing on disk.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutDirError(f"{path} exists and is a file; the output must be a folder (remove "
                          "the file or choose another --out)")
    check_unclaimed(path)
    if not path.is_dir() or overwrite:
        return
    owner = _read_lock(path / LOCK)
    if owner is not None and _lock_held(owner):
        raise OutDirError(f"{path} is in use by `saropt {owner.get('command', '?')}` (pid "
                          f"{owner.get('pid')}); wait for it to finish or use another folder")
    outputs = list(outputs)
    stamp = read_stamp(path)
    if stamp is None:
        if _present(path, outputs):
            _decide(path, None, command, config, outputs, False, [])
        return
    _decide(path, stamp, command, config, outputs, False, [])


def _rmdir_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


@contextmanager
def _nolock(path: Path) -> Iterator[Path]:
    yield path


def _decide(path: Path, stamp: dict[str, Any] | None, command: str, config: Any,
            outputs: list[str], overwrite: bool, ignore: list[str], clear: bool = True) -> str:
    if stamp is None:
        present = _present(path, outputs)
        if not present:
            return "new"
        if not overwrite:
            raise OutDirError(
                f"{path} already holds {', '.join(present[:3])} from an unknown run; rerun with "
                "--overwrite to replace them, or choose another output folder")
        if clear:
            _clear(path, outputs)
        return "overwritten"
    other = stamp.get("command")
    if other != command:
        if not overwrite:
            raise OutDirError(f"{path} holds the output of `saropt {other}`; rerun with "
                              "--overwrite to replace it, or choose another output folder")
        _clear(path, outputs, stamp)
        return "overwritten"
    diff = config_diff(stamp.get("config"), config, ignore)
    if diff:
        if not overwrite:
            shown = ", ".join(diff[:5]) + (f" and {len(diff) - 5} more" if len(diff) > 5 else "")
            what = "an unfinished (failed or killed) " if stamp.get("complete") is False else ""
            raise OutDirError(
                f"{path} holds {what}`saropt {command}` output made with a different config "
                f"({shown} differ); rerun with --overwrite to start over, or choose another "
                "output folder")
        if clear:
            _clear(path, outputs, stamp)
        return "overwritten"
    return "same"


def _clear(path: Path, outputs: list[str], stamp: dict[str, Any] | None = None) -> None:
    """Remove this command's outputs and those the stamp's command recorded.

    ``--overwrite`` of another run's folder replaces that run's output, never other files.
    """
    recorded = (stamp or {}).get("outputs") or []
    for name in [*outputs, *(n for n in recorded if isinstance(n, str))]:
        if name and not Path(name).is_absolute() and ".." not in Path(name).parts:
            _remove(path / name)
    (path / STAMP).unlink(missing_ok=True)
