"""The hourly scorer's inbox (score --done) and run retention (runs prune): real files,
a real SavedModel, the CLI in fresh processes."""

from __future__ import annotations

import json
import os
import time

import pytest
from PIL import Image

from conftest import read_rows, run_cli
from fmnist.ops import runs


@pytest.mark.slow
def test_score_moves_what_it_scored_to_done(scoring_model, tmp_path):
    inbox, done = tmp_path / "inbox", tmp_path / "done"
    (inbox / "shop").mkdir(parents=True)
    Image.new("L", (28, 28), 200).save(inbox / "a.png")
    Image.new("L", (40, 30), 10).save(inbox / "shop" / "b.png")
    (inbox / "broken.png").write_bytes(b"not a png")  # scored as failed: has its row
    out = tmp_path / "predictions-1.csv"
    proc = run_cli("score", inbox, "--model", scoring_model, "--out", out, "--done", done)
    assert proc.returncode == 3, proc.stderr  # 3: some images failed, file written
    assert "score: moved 3 scored file(s) to" in proc.stderr
    assert sorted(r["path"] for r in read_rows(out)) == ["a.png", "broken.png", "shop/b.png"]
    assert sorted(str(p.relative_to(done)) for p in done.rglob("*") if p.is_file()) == \
        ["predictions-1/a.png", "predictions-1/broken.png", "predictions-1/shop/b.png"]
    assert not [p for p in inbox.rglob("*") if p.is_file()]

    # The next hour: only the new arrival is scored.
    Image.new("L", (28, 28), 90).save(inbox / "c.png")
    out2 = tmp_path / "predictions-2.csv"
    proc = run_cli("score", inbox, "--model", scoring_model, "--out", out2, "--done", done)
    assert proc.returncode == 0, proc.stderr
    assert [r["path"] for r in read_rows(out2)] == ["c.png"]
    assert (done / "predictions-2" / "c.png").is_file()


@pytest.mark.slow
def test_done_inside_the_inbox_is_refused_before_scoring(scoring_model, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    Image.new("L", (28, 28), 200).save(inbox / "a.png")
    out = tmp_path / "p.csv"
    proc = run_cli("score", inbox, "--model", scoring_model, "--out", out,
                   "--done", inbox / "done")
    assert proc.returncode == 2 and "is inside" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists() and (inbox / "a.png").is_file()


def test_runs_prune_deletes_only_runs_untouched_for_the_retention(tmp_path):
    old, recent, busy = (tmp_path / n for n in ("old", "recent", "busy"))
    for run in (old, recent, busy):
        (run / "weights").mkdir(parents=True)
        (run / "results.json").write_text(json.dumps({"run_id": run.name}))
        (run / "weights" / "w.npz").write_bytes(b"x")
    month = time.time() - 31 * 86400
    for p in [*old.rglob("*"), old, *busy.rglob("*"), busy]:
        os.utime(p, (month, month))
    (busy / "results.json").write_text("{}")  # an old run directory still being written
    proc = run_cli("runs", "prune", "--keep-days", "30", "--runs-dir", tmp_path)
    assert proc.returncode == 0 and proc.stdout == "pruned 1 run(s): old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "recent"]
    assert runs.prune(tmp_path, 30) == []
    missing = run_cli("runs", "prune", "--keep-days", "30", "--runs-dir", tmp_path / "x")
    assert missing.returncode == 2 and "no such directory" in missing.stderr
