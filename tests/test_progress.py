"""Scoring big photos: progress moves per decoded file (locally and with --ray), and
Ctrl-C acts within 2 s.

Real processes on real files: twelve-megapixel PNGs (a few tenths of a second each to
decode), one decoder, stderr a pipe as in a pod's log. Before, progress came only when a
batch of --batch-size (1,024) files finished, and a decoder finished its whole chunk of
photos (tens of seconds) before Ctrl-C took effect.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

from fmnist.scoring.backends import ChunkSizer

from conftest import FMNIST_JOB, ROOT

N = 120  # 24-megapixel PNGs: about 10 s of decoding on one core here


@pytest.fixture(scope="module")
def big_photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("big")
    ramp = np.linspace(0, 255, 6000, dtype=np.float32)[None, :].repeat(4000, 0)
    ramp = ramp.astype(np.uint8)
    for i in range(N):
        Image.fromarray(np.roll(ramp, 37 * i, axis=1)).save(d / f"{i:03}.png", compress_level=1)
    return d


def test_chunks_follow_the_decoding_time():
    sizer = ChunkSizer(256)
    assert sizer.size == 4  # small until something was measured
    sizer.observe(4, 4 * 50e-6)  # 28x28 PNGs: full chunks
    assert sizer.size == 256
    sizer = ChunkSizer(256)
    sizer.observe(4, 4 * 0.3)  # big photos: one a job
    assert sizer.size == 1
    entries = [(f"{i}.png", None) for i in range(10)]
    assert [len(c) for c in ChunkSizer(256, first=4).chunks(entries)] == [4, 4, 2]
    # The size changes while the chunks are read (as decoding times come in): every
    # entry still comes exactly once, in order.
    sizer, seen = ChunkSizer(256, first=4), []
    for chunk in sizer.chunks(entries):
        seen += chunk
        sizer.observe(len(chunk), len(chunk) * 0.3 if len(seen) < 5 else 1e-6)
    assert seen == entries


@pytest.mark.slow
def test_plain_progress_moves_per_decoded_file(
    big_photos, scoring_model, tmp_path, monkeypatch, capsys
):
    """The real scoring run in this process, stderr not a terminal, one decoder process,
    a line every half second instead of every 10 s (the interval is all that differs)."""
    from fmnist.scoring import score

    monkeypatch.setattr(score, "PLAIN_PROGRESS_EVERY", 0.5)
    summary = score.score(big_photos, model=scoring_model, out=tmp_path / "p.csv", decoders=1)
    assert summary.files == N and summary.failed == 0
    err = capsys.readouterr().err
    counts = [int(m.group(1)) for m in re.finditer(rf"score: (\d+)/{N} files", err)]
    # Lines from files decoded so far, not from a batch of --batch-size (1,024) at the
    # end: several below N, never going back.
    assert len([c for c in counts if 0 < c < N]) >= 2, err[-3000:]
    assert counts == sorted(counts)


@pytest.mark.slow
def test_plain_progress_moves_per_decoded_file_with_ray(
    big_photos, scoring_model, tmp_path, monkeypatch, capsys, ray_cluster
):
    """The same with --ray: Ray Data hands rows back a batch at a time (here all N in
    one), so the lines come from what the decoder tasks report as they decode."""
    from fmnist.scoring import score

    monkeypatch.setattr(score, "PLAIN_PROGRESS_EVERY", 0.5)
    summary = score.score(
        big_photos,
        model=scoring_model,
        out=tmp_path / "p.csv",
        decoders=1,
        use_ray=True,
        address=ray_cluster.gcs,
    )
    assert summary.files == N and summary.failed == 0
    err = capsys.readouterr().err
    counts = [int(m.group(1)) for m in re.finditer(rf"score: (\d+)/{N} files", err)]
    assert len([c for c in counts if 0 < c < N]) >= 2, err[-3000:]
    assert counts == sorted(counts)


@pytest.mark.slow
def test_ctrl_c_acts_within_two_seconds_on_big_photos(big_photos, scoring_model, tmp_path):
    proc = subprocess.Popen(
        [
            *FMNIST_JOB,
            "score",
            str(big_photos),
            "--model",
            str(scoring_model),
            "--decoders",
            "1",
            "--out",
            str(tmp_path / "p.csv"),
        ],
        cwd=ROOT,
        text=True,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    try:
        for line in proc.stderr:
            if "image files under" in line:  # the model is loaded, decoding has begun
                break
        time.sleep(3)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[1]
        waited = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 130, rest[-2000:]
    assert waited < 2.0, f"{waited:.1f} s from Ctrl-C to exit"
    assert "interrupted (SIGINT); nothing written" in rest
    assert not (tmp_path / "p.csv").exists()
