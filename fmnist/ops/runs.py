"""`fmnist-job runs list`: one line per run directory, from its results.json.

A run directory is whatever `fmnist-job train` made under --runs-dir's parent (runs/
by default). results.json is rewritten (atomically) after every variant, so a run that
is still going or was killed has one without `wall_seconds`: it is listed as
`incomplete`, not skipped, and a directory with no results.json (or one that is not
JSON, written by something else) as `unreadable`. Nothing here imports TensorFlow or Ray.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from pathlib import Path

from fmnist.core import storage
from fmnist.ops import results as results_mod


class RunsError(Exception):
    """Bad --runs-dir: one line, exit 2."""


def run_dirs(runs_dir: Path) -> list[Path]:
    """The run directories under `runs_dir` (not the hidden ones being pruned), by name.

    Raises:
        RunsError: `runs_dir` is not a directory.
    """
    if storage.is_remote(runs_dir):  # the prefixes under it; none: an empty listing
        listed = runs_dir.fs.ls(runs_dir.path, detail=True) if runs_dir.exists() else []
        names = [e["name"].rstrip("/").rsplit("/", 1)[-1] for e in listed]
        kinds = [e["type"] for e in listed]
        return sorted(
            runs_dir / n for n, k in zip(names, kinds) if k == "directory" and n[0] != "."
        )
    try:
        with os.scandir(runs_dir) as entries:
            return sorted(
                Path(e.path) for e in entries if not e.name.startswith(".") and e.is_dir()
            )
    except (FileNotFoundError, NotADirectoryError):
        raise RunsError(
            f"{runs_dir}: no such directory; pass the directory holding the "
            f"run directories (runs/ by default)"
        ) from None


def summarize(run_dir: Path) -> dict | None:
    """What `runs list` shows of one run directory, or None when it is gone (pruned,
    or renamed away, since it was listed)."""
    row = {
        "run_id": run_dir.name,
        "started": None,
        "duration_seconds": None,
        "status": "unreadable",
        "best": None,
        "val_accuracy": None,
        "test_accuracy": None,
        "exported_version": None,
        "gate": None,
        "problem": None,
    }
    try:
        record = results_mod.read(run_dir)
    except FileNotFoundError:
        if not run_dir.is_dir():
            return None
        row["problem"] = "no results.json"
        row["started"] = _mtime(run_dir)
        return row
    except results_mod.ResultsError as e:
        row["problem"] = str(e).removeprefix(f"{run_dir / results_mod.RESULTS}: ")
        row["started"] = _mtime(run_dir)
        return row
    starts = sorted(v.started_at for v in record.variants if v.started_at)
    row["started"] = starts[0] if starts else _mtime(run_dir)
    row["duration_seconds"] = record.wall_seconds
    if record.interrupted is not None:
        row["status"] = "interrupted"
    elif record.wall_seconds is None:
        row["status"] = "incomplete"  # running, or killed without a word
    else:
        row["status"] = "ok" if record.best else "failed"
    best = record.variant(record.best)
    if best:
        row.update(best=best.name, val_accuracy=best.val_accuracy, test_accuracy=best.test_accuracy)
    if record.export:
        row["exported_version"] = Path(record.export).name
    if record.gate is not None:
        row["gate"] = record.gate.decision
    return row


def _mtime(path: Path) -> str | None:
    try:
        stamp = last_written(path) if storage.is_remote(path) else path.stat().st_mtime
    except OSError:
        return None
    if stamp is None:
        return None
    return dt.datetime.fromtimestamp(stamp, dt.timezone.utc).isoformat(timespec="seconds")


def listing(runs_dir: Path) -> list[dict]:
    """Every run directory under `runs_dir`, oldest first."""
    rows = [row for run in run_dirs(runs_dir) if (row := summarize(run)) is not None]
    return sorted(rows, key=lambda r: (r["started"] or "", r["run_id"]))


def table(rows: list[dict]) -> str:
    """A plain, aligned text table (times in UTC)."""
    from fmnist.core.tables import aligned, percent

    return aligned(
        ["run", "started (UTC)", "duration", "status", "best", "val%", "test%", "version", "gate"],
        [
            [
                r["run_id"],
                (r["started"] or "-")[:19].replace("T", " "),
                f"{r['duration_seconds']:.0f}s"
                if isinstance(r["duration_seconds"], (int, float))
                else "-",
                r["status"],
                r["best"] or "-",
                percent(r["val_accuracy"]),
                percent(r["test_accuracy"]),
                r["exported_version"] or "-",
                r["gate"] or "-",
            ]
            for r in rows
        ],
    )


def prune(runs_dir: Path, keep_days: float, now: float | None = None) -> list[str]:
    """Delete run directories last written more than `keep_days` ago (their newest
    file's time: a run still writing is never old). Each is renamed to a hidden name
    first, so `runs list` never shows half a run. Returns the run ids removed."""
    cutoff = (now if now is not None else time.time()) - keep_days * 86400
    return [run.name for run in run_dirs(runs_dir) if prune_one(run, cutoff)]


def prune_one(run: Path, cutoff: float) -> bool:
    """Delete `run` if nothing in it was written since `cutoff` (seconds since the
    epoch); False when it is newer, or gone (another pruner took it)."""
    newest = last_written(run)
    if newest is None or newest >= cutoff:
        return False
    if storage.is_remote(run):  # results.json first: `runs list` skips it from then on
        (run / results_mod.RESULTS).unlink(missing_ok=True)
        storage.remove_tree(run)
        return True
    hidden = run.parent / f".pruned-{run.name}"
    try:
        os.rename(run, hidden)
    except OSError:
        return False  # another pruner took it
    shutil.rmtree(hidden, ignore_errors=True)
    return True


def last_written(directory: Path) -> float | None:
    """The newest modification time of `directory` and everything under it, or None
    when the directory is gone. A live run renames its files into place as it writes:
    what vanishes between the listing and its stat is skipped, not an error. In a
    bucket: its newest object's LastModified."""
    if storage.is_remote(directory):
        found = directory.fs.find(directory.path, detail=True).values()
        stamps = [o["LastModified"].timestamp() for o in found if o.get("LastModified")]
        return max(stamps) if stamps else None
    try:
        newest = directory.stat().st_mtime
        with os.scandir(directory) as it:
            entries = list(it)
    except (FileNotFoundError, NotADirectoryError):
        return None
    found = newest_of(entries)
    return newest if found is None else max(newest, found)


def newest_of(entries: list[os.DirEntry]) -> float | None:
    """The newest modification time of these entries and of everything under those
    that are directories; entries gone since they were listed count for nothing."""
    newest = None
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                mtime = last_written(Path(entry.path))
            else:
                mtime = entry.stat().st_mtime
        except FileNotFoundError:
            continue
        if mtime is not None:
            newest = mtime if newest is None else max(newest, mtime)
    return newest
