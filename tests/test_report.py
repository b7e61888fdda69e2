"""The run directory's pictures and tables, on hand-made numbers."""

from fmnist.core import data
from fmnist.ops.results import VariantResult
from fmnist.training import report


def result(**fields) -> VariantResult:
    return VariantResult(**{"config": {"epochs": 5}, "status": "ok", **fields})


def test_confusion_counts_and_per_class_accuracy(tmp_path):
    matrix, per_class = report.confusion([0, 1, 2, 2, 9], [0, 1, 2, 1, 9])
    assert matrix.sum() == 5 and matrix[2, 1] == 1 and matrix[2, 2] == 1
    assert per_class[2] == 0.5 and per_class[9] == 1.0 and per_class[5] == 0.0  # no samples
    out = report.plot_confusion(matrix, data.CLASS_NAMES, "t", tmp_path / "cm.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["cm.png"]  # no temp file left


def test_leaderboard_ranks_by_validation_not_test():
    rows = [
        result(name="a", val_accuracy=0.90, test_accuracy=0.95, epochs_run=5, train_seconds=1.0),
        result(name="b", val_accuracy=0.92, test_accuracy=0.80, epochs_run=5, train_seconds=1.0),
        result(name="c", status="failed", error="boom"),
    ]
    table = report.leaderboard(rows, "b")
    names = table.columns[1]._cells
    assert names == ["b *", "a", "c"]


def test_curves_plot_skips_variants_without_history(tmp_path):
    assert report.plot_curves([result(name="x", status="failed")], tmp_path / "v.png") is None
    path = report.plot_curves(
        [result(name="x", history={"val_accuracy": [0.5, 0.7]})], tmp_path / "v.png"
    )
    assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 1000


def _cells(progress, column: str) -> dict:
    table = progress._table()
    col = next(c for c in table.columns if c.header == column)
    names = next(c for c in table.columns if c.header == "variant")._cells
    return dict(zip(names, col._cells))


def test_live_table_states_and_a_clock_that_stops(monkeypatch):
    """queued → running → done / failed; a finished row keeps its state and its time
    however late an epoch event comes, and its seconds stop counting."""
    from rich.console import Console

    now = [100.0]
    monkeypatch.setattr(report.time, "monotonic", lambda: now[0])
    p = report.Progress(
        ["a", "b", "c"], {"a": 3, "b": 3, "c": 3}, Console(file=open("/dev/null", "w"))
    )
    assert set(_cells(p, "state").values()) == {"[dim]queued[/]"}
    p.event({"variant": "a", "kind": "start", "host": "h", "device": "/CPU:0"})
    p.event({"variant": "b", "kind": "start", "host": "h", "device": "/CPU:0"})
    now[0] = 110.0
    p.event({"variant": "a", "kind": "epoch", "epoch": 1, "val_accuracy": 0.8, "loss": 0.5})
    assert _cells(p, "state")["a"] == "[yellow]running[/]"
    assert _cells(p, "seconds") == {"a": "10", "b": "10", "c": "-"}
    p.finished(result(name="a", val_accuracy=0.85, epochs_run=3, train_seconds=9.6))
    p.finished(result(name="b", status="failed", error="boom"))
    now[0] = 500.0
    # An epoch event drained after the result: stale, ignored.
    p.event({"variant": "a", "kind": "epoch", "epoch": 2, "val_accuracy": 0.1, "loss": 9})
    states, seconds = _cells(p, "state"), _cells(p, "seconds")
    assert (states["a"], states["b"], states["c"]) == (
        "[green]done[/]",
        "[red]failed[/]",
        "[dim]queued[/]",
    )
    assert (seconds["a"], seconds["b"], seconds["c"]) == ("10", "10", "-")
    assert _cells(p, "val acc %")["a"] == "85.00" and _cells(p, "epoch")["a"] == "3/3"


def test_leaderboard_marks_a_cut_reason_and_counts_agree():
    from fmnist.core.tables import count

    long = "ValueError: " + "x" * 200
    table = report.leaderboard([result(name="c", status="failed", error=long)], None)
    status = table.columns[-1]._cells[0]
    assert len(status) == 80 and status.endswith("…")
    assert (
        count(1, "variant"),
        count(2, "variant"),
        count(1.0, "CPU"),
        count(1.5, "CPU"),
        count(1, "file"),
        count(1_000_000, "file"),
    ) == ("1 variant", "2 variants", "1 CPU", "1.5 CPUs", "1 file", "1,000,000 files")
