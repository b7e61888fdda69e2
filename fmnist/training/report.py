"""What a sweep shows and leaves behind: the live table, the leaderboard, the plot.

A terminal gets a rich Live table; anything else (a pipe, a Kubernetes log) gets one
plain line per event, because a redrawn table is garbage in a log file.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from fmnist.core import storage
from fmnist.core.tables import clip
from fmnist.core.tables import percent as _pct


def make_console() -> Console:
    """A console for stdout; logs (not a terminal) get lines wide enough for the tables."""
    console = Console()
    if not console.is_terminal:
        console.width = 140
        # A log line is never cut mid-phrase: search finds it whole.
        console.soft_wrap = True
    return console


class Progress:
    """Per-variant state fed by task events: queued → running → done / failed."""

    def __init__(self, names: list[str], epochs: dict[str, int], console: Console | None = None):
        self.console = console or Console(stderr=False)
        self.rows = {
            n: {
                "state": "queued",
                "epoch": 0,
                "epochs": epochs[n],
                "val_accuracy": None,
                "host": "",
                "device": "",
                "since": None,
                "seconds": None,
            }
            for n in names
        }
        self.live_mode = self.console.is_terminal
        self._live: Live | None = None

    def __enter__(self):
        if self.live_mode:
            self._live = Live(
                self._table(), console=self.console, refresh_per_second=4, transient=False
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc):
        if self._live:
            self._live.update(self._table())
            self._live.__exit__(*exc)

    def _log(self, text: str) -> None:
        if not self.live_mode:
            print(text, flush=True)

    def update(self, name: str, **fields) -> None:
        row = self.rows[name]
        if fields.get("state") == "running" and row["since"] is None:
            row["since"] = time.monotonic()
        row.update(fields)
        if self._live:
            self._live.update(self._table())

    def event(self, ev: dict) -> None:
        """An event from a task: {'variant', 'kind': 'start'|'epoch', ...}."""
        name = ev["variant"]
        if self.rows[name]["state"] in ("done", "failed"):
            return  # the queue is drained after results arrive: a late event is stale
        if ev["kind"] == "start":
            self.update(
                name,
                state="running",
                host=ev.get("host", ""),
                device=ev.get("device", ""),
                epoch=ev.get("epoch", 0),
            )
            self._log(f"[{name}] started on {ev.get('host')} ({ev.get('device')})")
        elif ev["kind"] == "epoch":
            self.update(
                name, state="running", epoch=ev["epoch"], val_accuracy=ev.get("val_accuracy")
            )
            self._log(
                f"[{name}] epoch {ev['epoch']}/{self.rows[name]['epochs']} "
                f"val_acc {_pct(ev.get('val_accuracy'))}% loss {ev.get('loss', 0):.4f}"
            )

    def finished(self, result) -> None:
        """A VariantResult (fmnist/ops/results.py) arrived."""
        name = result.name
        if result.ok or result.status == "stopped":  # stopped: at a rung, may go on
            # The task's own training time stops the clock (a resumed run's finished
            # variants never started here).
            self.update(
                name,
                state="done" if result.ok else "stopped",
                val_accuracy=result.val_accuracy,
                epoch=result.epochs_run,
                seconds=result.train_seconds,
            )
            self._log(
                f"[{name}] done: val_acc {_pct(result.val_accuracy)}% "
                f"in {result.train_seconds:.1f}s"
                if result.ok
                else f"[{name}] rung {(result.rung or 0) + 1}: val_acc "
                f"{_pct(result.val_accuracy)}% at epoch {result.epochs_run}"
            )
        else:
            since = self.rows[name]["since"]
            self.update(name, state="failed", seconds=time.monotonic() - since if since else None)
            self._log(f"[{name}] FAILED: {result.error}")

    def _table(self) -> Table:
        t = Table(title="fmnist-job train", expand=False)
        for col in ("variant", "state", "epoch", "val acc %", "where", "seconds"):
            t.add_column(
                col, justify="right" if col in ("epoch", "val acc %", "seconds") else "left"
            )
        style = {
            "queued": "dim",
            "running": "yellow",
            "done": "green",
            "failed": "red",
            "stopped": "blue",
        }
        for name, r in self.rows.items():
            seconds = (
                r["seconds"]
                if r["state"] in ("done", "failed", "stopped")
                else time.monotonic() - r["since"]
                if r["since"]
                else None
            )
            secs = f"{seconds:.0f}" if seconds is not None else "-"
            t.add_row(
                name,
                f"[{style[r['state']]}]{r['state']}[/]",
                f"{r['epoch']}/{r['epochs']}",
                _pct(r["val_accuracy"]),
                f"{r['host']} {r['device']}".strip() or "-",
                secs,
            )
        return t


def sweep_table(variants: list, source) -> Table:
    """`train --dry-run`: each variant with what sets it apart from the defaults."""
    from fmnist.training.variants import Variant

    defaults = Variant("x", (1,)).to_dict()
    t = Table(title=f"{len(variants)} variants in {source}")
    for col in ("variant", "hidden", "epochs", "other settings"):
        t.add_column(col, justify="right" if col == "epochs" else "left")
    for v in variants:
        d = v.to_dict()
        other = " ".join(
            f"{k}={d[k]}"
            for k in d
            if k not in ("name", "hidden", "epochs") and d[k] != defaults[k]
        )
        t.add_row(v.name, "-".join(map(str, v.hidden)), str(v.epochs), other or "-")
    return t


def leaderboard(results: list, best: str | None, ensemble: dict | None = None) -> Table:
    """Ranked by validation accuracy (what selection uses); failures last. An ensemble
    built from the variants comes first, on its own row, with its members."""
    t = Table(
        title="leaderboard (ranked by validation accuracy)",
        caption="accuracies: of the weights exported (the last epoch's; with "
        "early_stopping, the peak's); peak ep: the epoch of the highest "
        "validation accuracy",
    )
    for col in (
        "#",
        "variant",
        "val acc %",
        "test acc %",
        "epochs",
        "peak ep",
        "seconds",
        "status",
    ):
        t.add_column(col, justify="left" if col in ("variant", "status") else "right")
    if ensemble and len(ensemble["members"]) > 1:
        members = ", ".join(f"{m['name']} {m['weight']:.2f}" for m in ensemble["members"])
        t.add_row(
            "E",
            "ensemble *",
            _pct(ensemble["val_accuracy"]),
            _pct(ensemble.get("test_accuracy")),
            "-",
            "-",
            "-",
            clip(f"ok: {members}", 80),
        )
        best = None  # the star marks what was exported
    ok = sorted((r for r in results if r.ok), key=lambda r: r.val_accuracy, reverse=True)
    # Stopped at a rung: ranked among themselves by the rung reached, then accuracy.
    stopped = sorted(
        (r for r in results if r.status == "stopped"),
        key=lambda r: (-(r.rung or 0), -(r.val_accuracy or 0)),
    )
    bad = [r for r in results if not r.ok and r.status != "stopped"]
    for i, r in enumerate(ok + stopped + bad, 1):
        epochs = f"{r.epochs_run if r.epochs_run is not None else '-'}/{r.config['epochs']}"
        mark = " *" if r.name == best else ""
        t.add_row(
            str(i) if r.ok or r.status == "stopped" else "-",
            r.name + mark,
            _pct(r.val_accuracy),
            _pct(r.test_accuracy),
            epochs,
            str(r.best_epoch or "-"),
            f"{r.train_seconds:.1f}" if r.train_seconds else "-",
            _status(r),
        )
    return t


def _status(r) -> str:
    """'ok', 'stopped at rung 2 (73.1, 80.2)', 'failed: ...'; rungs' accuracies in %."""
    rungs = ""
    if r.rung_accuracies:
        rungs = " (rungs " + ", ".join(_pct(a) for a in r.rung_accuracies) + ")"
    if r.ok:
        return "ok" + rungs
    if r.status == "stopped":
        return f"stopped at rung {len(r.rung_accuracies or [])}{rungs}"
    return clip(f"{r.status}: {r.error or ''}", 80)


_warming: threading.Thread | None = None


def warm_up() -> None:
    """Import matplotlib in a background thread (once): 0.5-1 s of CPU that the plots
    at the end of a run would otherwise wait for. Called when a core goes idle."""
    global _warming
    if _warming is None:
        _warming = threading.Thread(target=_pyplot, name="fmnist-plots", daemon=True)
        _warming.start()


def _pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(results: list, path: Path) -> Path | None:
    """Validation accuracy per epoch, one line per VariantResult (PNG)."""
    curves = [
        (r.name, r.history["val_accuracy"])
        for r in results
        if (r.history or {}).get("val_accuracy")
    ]
    if not curves:
        return None
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for name, ys in curves:
        ax.plot(range(1, len(ys) + 1), [100 * y for y in ys], marker="o", ms=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("Fashion-MNIST sweep: validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    """Write a figure beside its target, then rename it into place."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        png = io.BytesIO()
        fig.savefig(png, format="png")
    finally:
        plt.close(fig)
    storage.write_bytes(path, png.getvalue())  # aside and renamed, or one PUT
    return path


def confusion(y_true, y_pred, n: int = 10):
    """Confusion matrix [true, predicted] and per-class accuracy (recall)."""
    import numpy as np

    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return m, per_class_accuracy(m)


def per_class_accuracy(matrix):
    """Correct / total per true class (rows of a confusion matrix); 0 for empty rows."""
    return matrix.diagonal() / matrix.sum(axis=1).clip(min=1)


def plot_confusion(matrix, class_names, title: str, path: Path) -> Path:
    plt = _pyplot()

    per_class = per_class_accuracy(matrix)
    fig, ax = plt.subplots(figsize=(7.5, 6.5), dpi=110)
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(
        ticks, [f"{c} ({100 * a:.1f}%)" for c, a in zip(class_names, per_class)], fontsize=8
    )
    high = matrix.max() / 2
    for i in ticks:
        for j in ticks:
            if matrix[i, j]:
                ax.text(
                    j,
                    i,
                    str(matrix[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if matrix[i, j] > high else "black",
                )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (per-class accuracy)")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)
