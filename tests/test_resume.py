"""Resumable score runs: rows committed in parts beside --out, a SIGKILLed run resumed.

The rows through outputs.Output split into parts anywhere (and resumed from any of them)
give the same bytes as in one go, in every format; `fmnist-job score` killed with SIGKILL
at a random point after a part was committed, then run again, writes --out byte for byte
as an uninterrupted run (locally, with --ray, into a bucket); parts of another run are
refused in one line until --restart.
"""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmnist.core import data
from fmnist.scoring import outputs, parts

from conftest import FMNIST_JOB, cli, run_cli

N_FILES = 240
# 280x280 PNGs decode (and are framed) in about 15 ms each: a run lasts seconds, long
# enough to be killed midway after its first parts.
SCALE = 10
OPTIONS = ["--batch-size", "10", "--part-rows", "20"]


# -----------------------------------------------------------------------------
# Parts on their own (no model)


def _rows(n: int, seed: int = 0):
    """n rows as score writes them: paths, errors (every 7th), probabilities, flags."""
    rng = np.random.default_rng(seed)
    paths = [f"d/{i:05d}.png" for i in range(n)]
    errors = ["empty file" if i % 7 == 3 else None for i in range(n)]
    ok = sum(e is None for e in errors)
    probs = rng.dirichlet(np.ones(10), ok).astype(np.float32)
    return paths, errors, probs, probs.max(axis=1) < 0.3


def _first(rows, n: int):
    """The first n of `rows`."""
    paths, errors, probs, unsure = rows
    ok = sum(e is None for e in errors[:n])
    return paths[:n], errors[:n], probs[:ok], unsure[:ok]


def _write(out: Path, rows, cuts: list[int], keep=None, resume_from=()) -> outputs.Output:
    """The rows after those of `resume_from` through Output, in batches cut at `cuts`."""
    paths, errors, probs, unsure = rows
    output = outputs.Output(out, keep)
    output.resume(list(resume_from))
    done = output.rows
    k = sum(e is None for e in errors[:done])
    cuts = [c for c in cuts if done < c < len(paths)]
    for a, b in zip([done, *cuts], [*cuts, len(paths)]):
        ok = sum(e is None for e in errors[a:b])
        output.write(
            paths[a:b], errors[a:b], probs[k : k + ok], list(data.CLASS_NAMES), unsure[k : k + ok]
        )
        k += ok
    return output


@pytest.mark.parametrize("ext", [".csv", ".jsonl", ".parquet"])
def test_rows_joined_from_parts_are_the_bytes_of_one_go(ext, tmp_path, monkeypatch):
    monkeypatch.setattr(outputs.ParquetRows, "ROW_GROUP", 64)  # several row groups
    rows = _rows(500)
    one = tmp_path / "one" / f"p{ext}"
    one.parent.mkdir()
    whole = _write(one, rows, list(range(0, 500, 50)), parts.Parts(one))
    whole.commit()
    assert [p.name for p in one.parent.iterdir()] == [one.name]  # no part: too few rows

    # A run committing parts of 37 rows or more is killed after 300 rows: its rows held
    # are lost, its parts stay; a run with other cuts resumes them.
    out = tmp_path / "split" / f"p{ext}"
    out.parent.mkdir()
    keep = parts.Parts(out, rows=37)
    keep.manifest = {"run": 1}
    _write(out, _first(rows, 300), [13, 99, 250], keep).discard()
    assert not out.exists() and 37 <= keep.committed_rows <= 300
    again = parts.Parts(out, rows=41)
    found = again.resume({"run": 1})
    assert sum(p.rows for p in found) == keep.committed_rows
    second = _write(out, rows, [260, 333], again, resume_from=found)
    assert (second.rows, second.failed) == (500, whole.failed)
    assert second.total.per_class == whole.total.per_class
    assert second.total.uncertain == whole.total.uncertain
    assert second.first_errors == whole.first_errors
    second.commit()
    again.remove()
    assert out.read_bytes() == one.read_bytes()
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_parts_of_another_run_are_refused_until_restart(tmp_path):
    from fmnist.core.errors import ScoreError

    out = tmp_path / "p.csv"
    keep = parts.Parts(out, rows=10)
    keep.manifest = {"model": "a", "options": {"fit": "auto"}}
    _write(out, _rows(50), [20], keep).discard()
    other = parts.Parts(out)
    with pytest.raises(
        ScoreError,
        match=r"holds 50 rows of an interrupted run with other "
        r"options; .* add --restart",
    ):
        other.resume({"model": "a", "options": {"fit": "whole"}})
    assert len(list(keep.dir.glob("*.part"))) == 2  # untouched
    assert other.resume({"model": "a", "options": {"fit": "whole"}}, restart=True) == []
    assert not keep.dir.exists()


# -----------------------------------------------------------------------------
# The command, killed and run again


@pytest.fixture(scope="module")
def photos(tmp_path_factory, test_set):
    x, _ = test_set
    root = tmp_path_factory.mktemp("resume") / "images"
    for i in range(N_FILES):
        (root / str(i % 3)).mkdir(parents=True, exist_ok=True)
        big = Image.fromarray(x[i]).resize((28 * SCALE,) * 2, Image.Resampling.BILINEAR)
        big.save(root / str(i % 3) / f"{i:04d}.png")
    (root / "2" / "empty.png").write_bytes(b"")  # an error row among them
    return root


def _uninterrupted(directory: Path, *args) -> bytes:
    """--out of `fmnist-job score ARGS` run in one go (too few rows for a part)."""
    out = directory / "uninterrupted.csv"
    result = run_cli(*args, "--out", out, "--batch-size", "10")
    assert result.returncode == 3, result.stderr[-2000:]
    return out.read_bytes()


@pytest.fixture(scope="module")
def uninterrupted(photos, scoring_model, tmp_path_factory):
    return _uninterrupted(
        tmp_path_factory.mktemp("reference"), "score", photos, "--model", scoring_model
    )


def _kill_after_a_part(args: list, parts_dir, listing) -> None:
    """Start `fmnist-job ARGS`, wait until it has committed a random number of parts (1
    to 4 of the dozen a whole run makes), then stop (SIGSTOP at once, so a quick run
    cannot finish in between) and SIGKILL its whole process group (decoders, Ray
    driver)."""
    parts = random.randint(1, 4)
    proc = subprocess.Popen(
        [*FMNIST_JOB, *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if sum(name.endswith(".part") for name in listing()) >= parts:
                os.killpg(proc.pid, signal.SIGSTOP)
                break
            time.sleep(0.005)
        assert proc.poll() is None, f"finished before it was killed: {proc.stderr.read()[-2000:]}"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stderr.close()


def _resume_and_compare(args: list, read_out, uninterrupted: bytes, listing) -> None:
    committed = [n for n in listing() if n.endswith(".part")]
    assert committed and "manifest.json" in listing()
    result = run_cli(*args)
    assert result.returncode == 3, result.stderr[-2000:]  # the one empty file
    assert "score: resuming:" in result.stderr, result.stderr[-2000:]
    assert f"scored {N_FILES} of {N_FILES + 1} image files" in result.stdout, result.stdout
    got = read_out()
    assert got == uninterrupted
    paths = [row["path"] for row in csv.DictReader(got.decode().splitlines())]
    assert len(paths) == len(set(paths)) == N_FILES + 1  # nothing twice, nothing lost
    assert listing() == []  # the parts removed


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_bytes(
    photos, uninterrupted, scoring_model, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "preds.csv"
    args = ["score", photos, "--model", scoring_model, "--out", out, *OPTIONS]
    parts_dir = tmp_path / ".preds.csv.parts"

    def listing():
        return sorted(os.listdir(parts_dir)) if parts_dir.exists() else []

    _kill_after_a_part(args, parts_dir, listing)
    assert not out.exists()
    # Another run's options are refused (in this process), the parts left as they were.
    before = listing()
    code, _, err = cli([*args, "--fit", "whole"], monkeypatch, capsys)
    assert code == 2, err[-2000:]
    (line,) = [x for x in err.splitlines() if "fmnist-job: error" in x]
    assert ".preds.csv.parts/ holds" in line and "--restart" in line, line
    assert listing() == before and not out.exists()
    _resume_and_compare(args, out.read_bytes, uninterrupted, listing)


@pytest.mark.slow
def test_a_killed_ray_run_resumes_to_the_same_bytes(photos, scoring_model, tmp_path, ray_cluster):
    ray = ["--ray", "--address", ray_cluster.gcs]
    uninterrupted = _uninterrupted(tmp_path, "score", photos, "--model", scoring_model, *ray)
    out = tmp_path / "preds.csv"
    args = ["score", photos, "--model", scoring_model, "--out", out, *OPTIONS, *ray]
    parts_dir = tmp_path / ".preds.csv.parts"

    def listing():
        return sorted(os.listdir(parts_dir)) if parts_dir.exists() else []

    _kill_after_a_part(args, parts_dir, listing)
    assert not out.exists()
    _resume_and_compare(args, out.read_bytes, uninterrupted, listing)


@pytest.mark.slow
def test_a_killed_run_into_a_bucket_resumes(photos, uninterrupted, scoring_model, bucket):
    from fmnist.core import storage

    out = f"{bucket}/night/preds.csv"
    args = ["score", photos, "--model", scoring_model, "--out", out, *OPTIONS]
    target = storage.location(out, "--out")
    fs, parts_dir = target.fs, target.parent.path + "/.preds.csv.parts"

    def listing():
        fs.invalidate_cache()
        return sorted(k.rsplit("/", 1)[1] for k in fs.find(parts_dir))

    _kill_after_a_part(args, parts_dir, listing)
    fs.invalidate_cache()
    assert not fs.exists(target.path)
    _resume_and_compare(args, lambda: fs.cat_file(target.path), uninterrupted, listing)
