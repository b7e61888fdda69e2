"""The hourly scorer's inbox (score --done) and run retention (runs prune): real files,
a real SavedModel, the CLI's entry point run in this process (conftest.cli)."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest
from PIL import Image

from fmnist.ops import runs

from conftest import cli, read_rows


@pytest.mark.slow
def test_score_moves_what_it_scored_to_done(scoring_model, tmp_path, monkeypatch, capsys):
    inbox, done = tmp_path / "inbox", tmp_path / "done"
    (inbox / "shop").mkdir(parents=True)
    Image.new("L", (28, 28), 200).save(inbox / "a.png")
    Image.new("L", (40, 30), 10).save(inbox / "shop" / "b.png")
    (inbox / "broken.png").write_bytes(b"not a png")  # failed: has its row, stays
    out = tmp_path / "predictions-1.csv"
    code, _, err = cli(
        ["score", inbox, "--model", scoring_model, "--out", out, "--done", done],
        monkeypatch,
        capsys,
    )
    assert code == 3, err  # 3: some images failed, file written
    assert (
        f"score: moved 2 scored files to {done / 'predictions-1'}/; 1 file that failed "
        f"left in {inbox} to be tried again"
    ) in err
    assert sorted(r["path"] for r in read_rows(out)) == ["a.png", "broken.png", "shop/b.png"]
    assert sorted(str(p.relative_to(done)) for p in done.rglob("*") if p.is_file()) == [
        "predictions-1/a.png",
        "predictions-1/shop/b.png",
    ]
    assert [p.name for p in inbox.rglob("*") if p.is_file()] == ["broken.png"]

    # The next hour: the new arrival is scored, and the failed file tried again; with
    # --failed-to it leaves the inbox too.
    Image.new("L", (28, 28), 90).save(inbox / "c.png")
    out2 = tmp_path / "predictions-2.csv"
    failed = tmp_path / "failed"
    code, _, err = cli(
        ["score", inbox, "--model", scoring_model, "--out", out2, "--done", done,
         "--failed-to", failed],
        monkeypatch,
        capsys,
    )  # fmt: skip
    assert code == 3, err
    assert sorted(r["path"] for r in read_rows(out2)) == ["broken.png", "c.png"]
    assert (done / "predictions-2" / "c.png").is_file()
    assert (failed / "predictions-2" / "broken.png").is_file()
    assert f"moved 1 file that failed to {failed / 'predictions-2'}/" in err
    assert not [p for p in inbox.rglob("*") if p.is_file()]


@pytest.mark.slow
def test_failed_to_needs_done_and_must_be_outside_the_inbox(
    scoring_model, tmp_path, monkeypatch, capsys
):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for extra, expected in (
        (["--failed-to", tmp_path / "f"], "--failed-to works with --done"),
        (["--done", tmp_path / "d", "--failed-to", inbox / "f"], "--failed-to"),
    ):
        code, _, err = cli(
            ["score", inbox, "--model", scoring_model, "--out", tmp_path / "p.csv", *extra],
            monkeypatch,
            capsys,
        )
        assert code == 2 and expected in err, err
        assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_done_inside_the_inbox_is_refused_before_scoring(
    scoring_model, tmp_path, monkeypatch, capsys
):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    Image.new("L", (28, 28), 200).save(inbox / "a.png")
    out = tmp_path / "p.csv"
    code, _, err = cli(
        ["score", inbox, "--model", scoring_model, "--out", out, "--done", inbox / "done"],
        monkeypatch,
        capsys,
    )
    assert code == 2 and "is inside" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists() and (inbox / "a.png").is_file()


def test_runs_prune_deletes_only_runs_untouched_for_the_retention(tmp_path, monkeypatch, capsys):
    old, recent, busy = (tmp_path / n for n in ("old", "recent", "busy"))
    for run in (old, recent, busy):
        (run / "weights").mkdir(parents=True)
        (run / "results.json").write_text(json.dumps({"run_id": run.name}))
        (run / "weights" / "w.npz").write_bytes(b"x")
    month = time.time() - 31 * 86400
    for p in [*old.rglob("*"), old, *busy.rglob("*"), busy]:
        os.utime(p, (month, month))
    (busy / "results.json").write_text("{}")  # an old run directory still being written
    code, out, _ = cli(
        ["runs", "prune", "--keep-days", "30", "--runs-dir", tmp_path], monkeypatch, capsys
    )
    assert code == 0 and out == "pruned 1 run: old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "recent"]
    assert runs.prune(tmp_path, 30) == []
    code, _, err = cli(
        ["runs", "prune", "--keep-days", "30", "--runs-dir", tmp_path / "x"], monkeypatch, capsys
    )
    assert code == 2 and "no such directory" in err


def test_what_vanishes_between_listing_and_stat_is_skipped(tmp_path):
    """A live run renames its files into place as it writes, and another pruner renames
    whole runs away: prune and list skip a path gone since it was listed (a traceback,
    before)."""
    run = tmp_path / "run"
    (run / "checkpoints" / "v").mkdir(parents=True)
    (run / "results.json.tmp").write_text("{}")
    (run / "checkpoints" / "v" / "epoch.tmp").write_text("x")
    (run / "weights.npz").write_bytes(b"x")
    month = time.time() - 31 * 86400
    for p in [*run.rglob("*"), run]:
        os.utime(p, (month, month))
    with os.scandir(run) as it:
        entries = list(it)
    (run / "results.json.tmp").rename(tmp_path / "elsewhere")  # a file, after the listing
    shutil.rmtree(run / "checkpoints")  # a directory
    assert runs.newest_of(entries) == pytest.approx(month, abs=1)  # weights.npz's time
    assert runs.newest_of([e for e in entries if e.name != "weights.npz"]) is None

    # A link to nothing stats as gone, for good: the run is still pruned.
    os.symlink(tmp_path / "nothing", run / "link")
    os.utime(run, (month, month))
    listed = runs.run_dirs(tmp_path)
    assert [p.name for p in listed] == ["run"] and runs.last_written(run) == pytest.approx(
        month, abs=1
    )
    # The whole run renamed away between the listing and its stat.
    os.rename(run, tmp_path / ".pruned-run")
    assert runs.last_written(run) is None and runs.summarize(run) is None
    assert [runs.prune_one(p, time.time()) for p in listed] == [False]
    os.rename(tmp_path / ".pruned-run", run)
    assert runs.prune(tmp_path, 30) == ["run"] and not run.exists()
    assert runs.listing(tmp_path) == []


def test_runs_list_reads_results_through_the_record(tmp_path):
    """Each state of a results.json as the sweep writes it, and two that are not one."""
    header = {
        "run_id": "r",
        "started_at": "2026-12-01T00:00:00+00:00",
        "sweep": [],
        "settings": {"val_size": 500},
        "dataset_sha256": {},
        "address": "embedded",
        "train_size": 1,
        "val_size": 1,
        "test_size": 1,
        "variants": [
            {
                "name": "a",
                "config": {},
                "status": "ok",
                "val_accuracy": 0.9,
                "test_accuracy": 0.8,
                "started_at": "2026-12-01T00:00:01+00:00",
            }
        ],
    }
    cases = {
        "running": header,
        "done": {**header, "wall_seconds": 9.5, "best": "a", "export": "/m/3", "gate": None},
        "stopped": {**header, "interrupted": "SIGTERM"},
        "foreign": {"hello": 1},
    }
    for name, record in cases.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(record))
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "results.json").write_text('{"run_id": "cut", "varia')
    rows = {n: runs.summarize(tmp_path / n) for n in [*cases, "cut"]}
    assert rows["running"]["status"] == "incomplete"
    assert rows["running"]["started"] == "2026-12-01T00:00:01+00:00"
    assert (
        rows["done"]["status"],
        rows["done"]["best"],
        rows["done"]["val_accuracy"],
        rows["done"]["exported_version"],
        rows["done"]["duration_seconds"],
    ) == ("ok", "a", 0.9, "3", 9.5)
    assert rows["stopped"]["status"] == "interrupted"
    assert rows["foreign"]["status"] == "unreadable"
    assert rows["foreign"]["problem"].startswith("not a run's results")
    assert rows["cut"]["status"] == "unreadable" and "not JSON" in rows["cut"]["problem"]
