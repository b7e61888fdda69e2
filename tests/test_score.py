"""`fmnist-job score`: real files, real Pillow, a real SavedModel, a real local Ray.

A small model is trained in-process (no Ray) once per session. Fashion-MNIST test images
are written out as files in several formats, modes, sizes and polarities; scoring them
must reproduce the model's accuracy on the same images straight from the IDX arrays.
Every kind of bad input becomes one error row while the rest is scored; fatal problems
exit 2 with one line on stderr and leave an existing output file alone.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import struct
import subprocess
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmnist.core import data, export
from fmnist.core.errors import ScoreError
from fmnist.scoring import backends, images, outputs, score, walk

from conftest import FMNIST_JOB, cli, read_rows, run_cli

N_PER_KIND = 25  # images per format/mode/size variant in the correctness set


# -----------------------------------------------------------------------------
# Fixtures: directories of image files (the model and the test arrays: conftest.py)

# (kind, extension, Pillow format, make image from a light-on-black uint8 array)
VARIANTS = [
    ("gray", "png", "PNG", lambda a: Image.fromarray(a)),
    ("rgb", "png", "PNG", lambda a: Image.fromarray(a).convert("RGB")),
    ("jpeg", "jpg", "JPEG", lambda a: Image.fromarray(a).convert("RGB")),  # lossy
    ("inverted", "png", "PNG", lambda a: Image.fromarray(255 - a)),  # dark on white
    ("big", "png", "PNG", lambda a: Image.fromarray(a).resize((56, 56), Image.Resampling.NEAREST)),
    ("nonsquare", "png", "PNG", lambda a: _nonsquare(a)),  # e.g. 60x84
    (
        "cutout",
        "png",
        "PNG",
        lambda a: Image.merge(  # black object,
            "RGBA", [Image.new("L", (28, 28), 0)] * 3 + [Image.fromarray(a)]
        ),
    ),  # shape in alpha
    ("palette", "gif", "GIF", lambda a: Image.fromarray(a).convert("P")),
    ("bmp", "bmp", "BMP", lambda a: Image.fromarray(a)),
    ("webp", "webp", "WEBP", lambda a: Image.fromarray(a).convert("RGB")),  # lossless
    ("16bit", "tiff", "TIFF", lambda a: Image.fromarray(a.astype(np.uint16) * 257)),
]
EXACT = {"gray", "rgb", "inverted", "cutout", "bmp", "webp", "16bit"}  # same pixels back


def _nonsquare(a: np.ndarray) -> Image.Image:
    """Crop equal all-black column margins (padding back to square restores the image),
    then enlarge 3x: a taller-than-wide photo of the same thing."""
    cols = np.flatnonzero(a.max(axis=0))
    m = min(cols[0], 27 - cols[-1]) if cols.size else 0
    c = a[:, m : 28 - m]
    return Image.fromarray(c).resize((3 * c.shape[1], 84), Image.Resampling.NEAREST)


def _write_variants(root: Path, x: np.ndarray, y: np.ndarray) -> dict[str, int]:
    """Test image i goes to <label>/<i>-<kind>.<ext>, the kind cycling every N_PER_KIND
    images; returns {relative path: index into x}."""
    paths = {}
    for i, (a, label) in enumerate(zip(x, y)):
        kind, ext, fmt, make = VARIANTS[(i // N_PER_KIND) % len(VARIANTS)]
        rel = f"{label}/{i:04d}-{kind}.{ext}"
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        options = {"WEBP": {"lossless": True}, "JPEG": {"quality": 95}}.get(fmt, {})
        make(a).save(root / rel, fmt, **options)
        paths[rel] = i
    return paths


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory, test_set):
    x, y = test_set
    n = N_PER_KIND * len(VARIANTS) * 2  # every variant twice: 550 images
    root = tmp_path_factory.mktemp("good") / "images"
    return root, _write_variants(root, x[:n], y[:n])


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (with a valid CRC)."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    png = bytearray(buf.getvalue())
    png[16:24] = struct.pack(">II", width, height)  # IHDR data starts at byte 16
    png[29:33] = struct.pack(">I", zlib.crc32(png[12:29]))
    return bytes(png)


BAD = {  # relative path -> expected text in its error
    "bad/corrupt.png": "not a PNG, JPEG",
    "bad/truncated.jpg": "truncated",
    "bad/empty.png": "empty file",
    "bad/text.jpeg": "not a PNG, JPEG",
    "bad/bomb.png": "decompression bomb",
    "bad/bomb-warning.png": "decompression bomb",
    "bad/broken-link.png": "broken symlink",
    "bad/outside-link.png": "outside the scored directory",
    "bad/pipe.png": "not a regular file",
}


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory, test_set):
    """Good images mixed with every kind of bad input."""
    x, y = test_set
    base = tmp_path_factory.mktemp("bad")
    root = base / "images"
    (root / "bad").mkdir(parents=True)
    (root / "good").mkdir()
    for i in range(40):
        Image.fromarray(x[i]).save(root / f"good/{y[i]}-{i:02d}.png")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200), np.uint8)).save(
        buf, "JPEG"
    )
    (root / "bad/truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (root / "bad/corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(300))
    (root / "bad/empty.png").write_bytes(b"")
    (root / "bad/text.jpeg").write_text("this is not an image\n")
    (root / "bad/bomb.png").write_bytes(_png_declaring(20000, 20000))  # 400 MP: error
    (root / "bad/bomb-warning.png").write_bytes(_png_declaring(8000, 8000))  # 64 MP: warning
    (root / "bad/broken-link.png").symlink_to(root / "bad/does-not-exist.png")
    outside = base / "outside"
    outside.mkdir()
    Image.fromarray(x[0]).save(outside / "secret.png")
    (root / "bad/outside-link.png").symlink_to(outside / "secret.png")
    (root / "linked-dir").symlink_to(outside, target_is_directory=True)  # not descended
    (root / "good/inside-link.png").symlink_to(root / f"good/{y[0]}-00.png")  # scored
    os.mkfifo(root / "bad/pipe.png")  # unreadable even for root: would block a reader
    (root / "notes.txt").write_text("ignored\n")
    (root / "good/array.npy").write_bytes(b"\x93NUMPY")
    (root / "good/dir.png").mkdir()  # a directory with an image name is a directory
    Image.fromarray(x[1]).save(root / "good/dir.png/inner.png")
    return root


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


# -----------------------------------------------------------------------------
# Decoding (no model): modes, sizes, polarity


@pytest.mark.parametrize(
    "mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr", "I;16", "I", "F"]
)
def test_every_mode_decodes_to_the_same_grayscale(mode, test_set):
    x, _ = test_set
    a = next(a for a in x if a.min() == 0 and a.max() == 255)  # full range: I, F exact
    if mode == "1":
        a = np.where(a > 127, 255, 0).astype(np.uint8)
    if mode == "I;16":
        im = Image.fromarray(a.astype(np.uint16) * 257)  # 16 bits, full scale
    elif mode == "I":
        im = Image.fromarray(a.astype(np.int32) * 1000 - 5)  # no fixed range: stretched
    elif mode == "F":
        im = Image.fromarray(a.astype(np.float32) / 255)  # likewise
    else:
        im = Image.fromarray(a).convert(mode)  # LA, RGBA: alpha 255
    assert im.mode == mode
    got = images.to_model_input(im, invert="never")
    assert got.dtype == np.uint8 and got.shape == (28, 28)
    tolerance = 2 if mode in ("CMYK", "YCbCr", "P") else 1
    assert np.abs(got.astype(int) - a).max() <= tolerance, mode


def test_transparency_becomes_background_whatever_the_object_colour():
    alpha = np.zeros((28, 28), np.uint8)
    alpha[6:22, 8:20] = 255
    for rgb, invert in [
        ((0, 0, 0), "auto"),
        ((255, 255, 255), "auto"),
        ((255, 255, 255), "never"),
        ((0, 0, 0), "always"),
    ]:
        im = Image.new("RGBA", (28, 28), rgb + (0,))
        im.putalpha(Image.fromarray(alpha))
        got = images.to_model_input(im, invert)
        assert (got == alpha).all(), (rgb, invert)  # light object on black, every time


def test_auto_invert_follows_the_border(test_set):
    x, _ = test_set
    for a in x[:200]:
        assert (images.to_model_input(Image.fromarray(a), "auto") == a).all()
        assert (images.to_model_input(Image.fromarray(255 - a), "auto") == a).all()
        assert (images.to_model_input(Image.fromarray(a), "always") == 255 - a).all()
        assert (images.to_model_input(Image.fromarray(255 - a), "never") == 255 - a).all()


def test_aspect_ratio_is_kept_and_padded_with_the_background():
    im = Image.new("L", (100, 50), 0)  # 2:1, a white bar on black
    im.paste(255, (10, 10, 90, 40))
    got = images.to_model_input(im, "never", "whole")  # 28x14, centred: 7 black rows each side
    assert (got[:7] == 0).all() and (got[21:] == 0).all() and (got[13, 5:23] > 200).all()
    dark = Image.new("L", (50, 100), 30)  # dark object, white margins: pad is white, inverted
    canvas = Image.new("L", (60, 100), 255)
    canvas.paste(dark, (5, 0))
    got = images.to_model_input(canvas, "auto", "whole")
    assert got[:, :3].max() == 0 and got[:, 12].min() > 200


def test_walk_order_symlinks_and_ignored_files(bad_dir):
    stats = walk.WalkStats()
    entries = list(walk.walk(bad_dir, stats))
    rels = [r for r, _ in entries]
    assert rels == sorted(rels, key=lambda r: r.split("/"))
    assert "good/dir.png/inner.png" in rels and "good/inside-link.png" in rels
    assert not any(r.startswith("linked-dir") for r in rels)
    assert stats.ignored == 2 and stats.linked_dirs == 1
    assert dict(entries)["good/inside-link.png"] is None


# -----------------------------------------------------------------------------
# Correctness: files score like the arrays


@pytest.fixture(scope="module")
def scored_good(good_dir, scoring_model, tmp_path_factory):
    root, _ = good_dir
    out = tmp_path_factory.mktemp("out") / "preds.csv"
    summary = score.score(root, model=scoring_model, out=out, show=False)
    return summary, out


@pytest.mark.slow
def test_accuracy_from_files_matches_accuracy_from_arrays(good_dir, scored_good, serve, test_set):
    root, index = good_dir
    summary, out = scored_good
    x, y = test_set
    rows = read_rows(out)
    assert summary.failed == 0 and summary.files == len(rows) == len(index)
    assert [r["path"] for r in rows] == sorted(index, key=lambda p: p.split("/"))
    from_files = np.mean([int(r["label"]) == int(r["path"].split("/")[0]) for r in rows])
    idx = np.array([index[r["path"]] for r in rows])
    probs = serve(x[idx])
    from_arrays = np.mean(probs.argmax(axis=1) == y[idx])
    assert from_arrays > 0.75
    assert abs(from_files - from_arrays) <= 0.01, (from_files, from_arrays)
    # The lossless, same-size encodings are the very same pixels: same probabilities.
    exact = 0
    for row, p in zip(rows, probs):
        if row["path"].rsplit("-", 1)[1].split(".")[0] in EXACT:
            assert int(row["label"]) == p.argmax(), row["path"]
            assert abs(float(row["confidence"]) - p.max()) < 2e-6, row["path"]
            exact += 1
    assert exact == len(EXACT) * 2 * N_PER_KIND
    # Lossy or resampled encodings (JPEG, 56x56, non-square, palette) still agree with the
    # arrays on nearly every image: a broken resize or padding would not.
    for kind, *_ in VARIANTS:
        same = [
            int(r["label"]) == p.argmax()
            for r, p in zip(rows, probs)
            if r["path"].rsplit("-", 1)[1].split(".")[0] == kind
        ]
        assert len(same) == 2 * N_PER_KIND and np.mean(same) >= 0.9, kind


@pytest.mark.slow
def test_rows_have_the_documented_columns(scored_good):
    _, out = scored_good
    with out.open(newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == list(outputs.COLUMNS)
        row = dict(zip(outputs.COLUMNS, next(reader)))
    assert row["class_name"] == data.CLASS_NAMES[int(row["label"])] == row["top1_class"]
    assert row["confidence"] == row["top1_prob"]
    probs = [float(row[f"top{k}_prob"]) for k in (1, 2, 3)]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-5
    assert row["error"] == ""
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode


@pytest.mark.slow
def test_csv_and_jsonl_hold_the_same_rows(good_dir, scored_good, scoring_model, tmp_path):
    root, _ = good_dir
    _, csv_out = scored_good
    jsonl_out = tmp_path / "preds.jsonl"
    score.score(root, model=scoring_model, out=jsonl_out, show=False)
    first = json.loads(jsonl_out.read_text().splitlines()[0])
    assert list(first) == list(outputs.COLUMNS)
    assert isinstance(first["label"], int) and isinstance(first["confidence"], float)
    assert first["error"] is None
    assert read_rows(jsonl_out) == [
        {
            k: (
                v
                if k not in ("confidence", "top1_prob", "top2_prob", "top3_prob") or v is None
                else str(float(v))
            )
            for k, v in r.items()
        }
        for r in read_rows(csv_out)
    ]


def _as_csv_rows(parquet: Path) -> list[dict]:
    """A Parquet output's rows as read_rows gives the CSV's: strings, None for empty."""
    import pyarrow.parquet as pq

    rows = []
    for r in pq.read_table(parquet).to_pylist():
        top = r["top3"] or [{"class_name": None, "prob": None}] * 3
        row = {
            "path": r["path"],
            "label": None if r["label"] is None else str(r["label"]),
            "class_name": r["class_name"],
            "confidence": None if r["confidence"] is None else f"{r['confidence']:.6f}",
        }
        for k, t in enumerate(top, 1):
            row[f"top{k}_class"] = t["class_name"]
            row[f"top{k}_prob"] = None if t["prob"] is None else f"{t['prob']:.6f}"
        row["error"] = r["error"]
        row["uncertain"] = None if r["uncertain"] is None else str(r["uncertain"]).lower()
        rows.append(row)
    return rows


@pytest.mark.slow
def test_csv_jsonl_and_parquet_hold_the_same_rows(bad_dir, scored_bad, scoring_model, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, _, csv_out = scored_bad
    jsonl_out, parquet_out = tmp_path / "p.jsonl", tmp_path / "p.parquet"
    for out in (jsonl_out, parquet_out):
        score.score(bad_dir, model=scoring_model, out=out, show=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jsonl", "p.parquet"]
    schema = pq.read_schema(parquet_out)
    assert schema.names == list(outputs.PARQUET_COLUMNS)
    assert schema.field("confidence").type == pa.float32()
    assert schema.field("label").type == pa.int64()
    assert schema.field("top3").type == pa.list_(
        pa.struct([("class_name", pa.string()), ("prob", pa.float32())])
    )
    assert schema.field("error").type == pa.string()
    assert schema.field("uncertain").type == pa.bool_()
    expected = read_rows(csv_out)
    assert any(r["error"] for r in expected) and any(r["error"] is None for r in expected)
    assert _as_csv_rows(parquet_out) == expected
    probs = ("confidence", "top1_prob", "top2_prob", "top3_prob")
    assert read_rows(jsonl_out) == [
        {k: (str(float(v)) if k in probs and v is not None else v) for k, v in r.items()}
        for r in expected
    ]


def test_parquet_rows_are_typed_and_read_back_by_done(tmp_path):
    """Output and inbox.recorded on their own (no model): nulls where a file failed, a
    file name that is not UTF-8 escaped as the text formats escape it."""
    import pyarrow.parquet as pq

    from fmnist.scoring import inbox

    out = outputs.Output(tmp_path / "p.parquet")
    odd = os.fsdecode(b"caf\xe9.png")
    probs = np.array([[0.7] + [0.3 / 9] * 9, [0.1] * 9 + [0.1]], np.float32)
    out.write(["a.png", "b.png", odd], [None, "empty file", None], probs, list(data.CLASS_NAMES))
    out.commit()
    rows = pq.read_table(tmp_path / "p.parquet").to_pylist()
    assert [r["path"] for r in rows] == ["a.png", "b.png", "caf\\udce9.png"]
    assert rows[0]["label"] == 0 and rows[0]["uncertain"] is False and rows[0]["error"] is None
    assert rows[0]["top3"][0] == {"class_name": "T-shirt/top", "prob": pytest.approx(0.7)}
    assert rows[1] == dict.fromkeys(outputs.PARQUET_COLUMNS) | {
        "path": "b.png",
        "error": "empty file",
    }
    assert inbox.recorded(tmp_path / "p.parquet") == [
        ("a.png", False),
        ("b.png", True),
        ("caf\\udce9.png", False),
    ]


def test_a_discarded_parquet_output_leaves_nothing(tmp_path):
    (tmp_path / "p.parquet").write_bytes(b"previous")
    out = outputs.Output(tmp_path / "p.parquet")
    out.write(["a.png"], [None], np.full((1, 10), 0.1, np.float32), list(data.CLASS_NAMES))
    out.discard()
    assert [p.name for p in tmp_path.iterdir()] == ["p.parquet"]
    assert (tmp_path / "p.parquet").read_bytes() == b"previous"


# -----------------------------------------------------------------------------
# Error budget: --max-errors


@pytest.mark.parametrize(
    "text, files, allowed",
    [("0", 100, 0), ("9", 3, 9), ("10%", 51, 5), ("20%", 51, 10), ("0.5%", 1000, 5)],
)
def test_max_errors_counts_and_percentages(text, files, allowed):
    from fmnist.scoring import budget

    b = budget.parse(text)
    assert b.allowed(files) == allowed
    assert not b.exceeded(allowed, files) and b.exceeded(allowed + 1, files)


@pytest.mark.parametrize("text", ["", "x", "-1", "1.5", "101%", "%", "5%%", "ten"])
def test_bad_max_errors_is_one_line_and_exit_2(text, tmp_path, monkeypatch, capsys):
    code, out, err = cli(["score", tmp_path, "--max-errors", text], monkeypatch, capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and "--max-errors" in err and "5%" in err, err


@pytest.mark.slow
def test_past_the_error_budget_rows_are_written_and_exit_4(
    bad_dir, scoring_model, tmp_path, monkeypatch, capsys
):
    files = len(BAD) + 42
    out_file = tmp_path / "bad.csv"
    code, out, err = cli(
        ["score", bad_dir, "--model", scoring_model, "--out", out_file, "--max-errors", "8"],
        monkeypatch,
        capsys,
    )
    assert code == 4, err
    assert len(read_rows(out_file)) == files
    assert f"{len(BAD)} failed (over --max-errors 8);" in out
    last = err.strip().splitlines()[-1]
    assert last == (
        f"fmnist-job: error: {len(BAD)} of {files} files failed, over the error budget "
        f"(--max-errors 8); the rows are in {out_file}"
    )
    # Within the budget: the exit code of a run with some failed files, as without one.
    code, out, err = cli(
        ["score", bad_dir, "--model", scoring_model, "--out", out_file, "--max-errors", "20%"],
        monkeypatch,
        capsys,
    )
    assert code == 3, err
    assert f"{len(BAD)} failed (--max-errors 20%: at most 10 of {files});" in out
    assert "error budget" not in err


# -----------------------------------------------------------------------------
# Bad input: one error row each, the rest scored, exit code 3


@pytest.fixture(scope="module")
def scored_bad(bad_dir, scoring_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "bad.csv"
    summary = score.score(bad_dir, model=scoring_model, out=out, show=False)
    return summary, {r["path"]: r for r in read_rows(out)}, out


@pytest.mark.slow
@pytest.mark.parametrize("rel, expected", sorted(BAD.items()))
def test_bad_file_becomes_one_error_row(scored_bad, rel, expected):
    _, rows, _ = scored_bad
    row = rows[rel]
    assert expected in row["error"], row
    assert row["label"] is None and row["class_name"] is None and row["confidence"] is None
    assert "\n" not in row["error"] and "/" not in row["error"]  # short, no file paths


@pytest.mark.slow
def test_unreadable_file_becomes_an_error_row(tmp_path, scoring_model, test_set):
    if os.geteuid() == 0:
        pytest.skip("root reads chmod-000 files; the FIFO case covers unreadable input")
    root = tmp_path / "images"
    root.mkdir()
    Image.fromarray(test_set[0][0]).save(root / "locked.png")
    (root / "locked.png").chmod(0)
    summary = score.score(root, model=scoring_model, out=tmp_path / "o.csv", show=False)
    assert summary.failed == 1
    assert "Permission denied" in read_rows(tmp_path / "o.csv")[0]["error"]


@pytest.mark.slow
def test_everything_else_is_scored(scored_bad, test_set):
    summary, rows, _ = scored_bad
    scored = {p for p, r in rows.items() if r["error"] is None}
    assert scored == {p for p in rows if p.startswith("good/")}
    assert len(scored) == 40 + 2  # the 40 images, the inside symlink, dir.png/inner.png
    assert summary.failed == len(BAD) and summary.files == len(BAD) + 42
    assert summary.ignored == 2 and summary.linked_dirs == 1
    assert sum(summary.per_class.values()) == 42
    assert not any("secret" in p or p.startswith("linked-dir") for p in rows)


@pytest.mark.slow
def test_exit_codes_through_the_cli(
    bad_dir, good_dir, scoring_model, tmp_path, monkeypatch, capsys
):
    code, out, err = cli(
        ["score", good_dir[0], "--model", scoring_model, "--out", tmp_path / "good.csv"],
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    assert "Ankle boot" in out and "0 failed" in out
    # The rate says what it covers, and the whole run's time is beside it.
    assert re.search(
        r"images/s over \d+\.\d\ds of decoding and prediction "
        r"\(\d+\.\d\ds with loading the model\)",
        out,
    ), out
    code, out, err = cli(
        ["score", bad_dir, "--model", scoring_model, "--out", tmp_path / "bad.jsonl"],
        monkeypatch,
        capsys,
    )
    assert code == 3, err
    assert f"{len(BAD)} failed" in out and "ignored 2 files" in out


def _wrong_signature_model(path: Path) -> Path:
    import tensorflow as tf

    class Flat(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 784], tf.float32, name="images")])
        def serve(self, images):
            return {"probabilities": tf.nn.softmax(images[:, :10])}

    m = Flat()
    tf.saved_model.save(m, str(path), signatures={"serving_default": m.serve})
    (path / export.METADATA).write_text(json.dumps({"class_names": list(data.CLASS_NAMES)}))
    return path


@pytest.fixture(scope="module")
def fatal_cases(tmp_path_factory, scoring_model, good_dir):
    tmp = tmp_path_factory.mktemp("fatal")
    (tmp / "not-a-model").mkdir()
    (tmp / "not-a-model" / "weights.pkl").write_bytes(b"never unpickled")
    (tmp / "a-file").write_text("x")
    images_dir = good_dir[0]
    return {
        "missing directory": ([tmp / "nope", "--model", scoring_model], "no such directory"),
        "not a SavedModel": ([images_dir, "--model", tmp / "not-a-model"], "not a SavedModel"),
        "wrong signature": (
            [images_dir, "--model", _wrong_signature_model(tmp / "flat")],
            "must take only 'images': uint8 [N, 28, 28]",
        ),
        "missing model": ([images_dir, "--model", tmp / "no-model"], "no such directory"),
        "no metadata": (
            [images_dir, "--model", _copy_without_metadata(scoring_model, tmp)],
            "no fmnist.json",
        ),
        "unknown extension": (
            [images_dir, "--model", scoring_model, "--out", tmp / "p.txt"],
            "use .csv, .jsonl or .parquet",
        ),
        "output dir missing": (
            [images_dir, "--model", scoring_model, "--out", tmp / "a-file" / "p.csv"],
            "does not exist",
        ),
        "output not writable": (
            [images_dir, "--model", scoring_model, "--out", "/proc/fmnist-preds.csv"],
            "cannot write in /proc",
        ),
        "output is a directory": (
            [images_dir, "--model", scoring_model, "--out", _mkdir(tmp / "dir.csv")],
            "is a directory",
        ),
    }


def _copy_without_metadata(base: Path, tmp: Path) -> Path:
    import shutil

    target = tmp / "nometa" / "1"
    shutil.copytree(base / "1", target)
    (target / export.METADATA).unlink()
    return target.parent


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    [
        "missing directory",
        "not a SavedModel",
        "wrong signature",
        "missing model",
        "no metadata",
        "unknown extension",
        "output dir missing",
        "output not writable",
        "output is a directory",
    ],
)
def test_fatal_problems_exit_2_with_one_line_and_keep_the_old_output(
    case, fatal_cases, tmp_path, monkeypatch, capsys
):
    args, expected = fatal_cases[case]
    if "--out" not in args:
        old = tmp_path / "preds.csv"
        old.write_text("previous results\n")
        args = [*args, "--out", old]
    code, out, err = cli(["score", *args], monkeypatch, capsys)
    assert code == 2
    assert err.startswith("fmnist-job: error: ") and err.count("\n") == 1, err
    assert expected in err, err
    if "--out" in fatal_cases[case][0]:
        return
    assert old.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds.csv"]  # no temp left


@pytest.mark.slow
def test_fatal_model_error_is_one_line_on_the_real_stderr(fatal_cases, tmp_path):
    """In a fresh process TensorFlow prints its start-up chatter to fd 2; none of it
    may surround the error."""
    args, expected = fatal_cases["wrong signature"]
    proc = run_cli("score", *args, "--out", tmp_path / "p.csv")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_previous_output_is_replaced_only_on_success(good_dir, scoring_model, tmp_path):
    out = tmp_path / "preds.csv"
    out.write_text("previous results\n")
    with pytest.raises(ScoreError):
        score.score(good_dir[0], model=tmp_path / "nothing", out=out, show=False)
    assert out.read_text() == "previous results\n"
    score.score(good_dir[0], model=scoring_model, out=out, show=False)
    assert out.read_text().startswith("path,label,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds.csv"]


# -----------------------------------------------------------------------------
# Cluster mode: the same rows from Ray Data


@pytest.mark.slow
def test_ray_mode_writes_the_same_rows_as_local_mode(
    bad_dir, scored_bad, scoring_model, tmp_path, ray_cluster
):
    local_summary, local_rows, local_out = scored_bad
    out = tmp_path / "ray.csv"
    summary = score.score(
        bad_dir,
        model=scoring_model,
        out=out,
        use_ray=True,
        address=ray_cluster.gcs,
        batch_size=16,
        show=False,
    )
    ray_rows = read_rows(out)
    local = read_rows(local_out)
    assert [r["path"] for r in ray_rows] == [r["path"] for r in local]
    for a, b in zip(ray_rows, local):
        assert a["error"] == b["error"] and a["label"] == b["label"], (a, b)
        for k in ("confidence", "top1_prob", "top2_prob", "top3_prob"):
            if a[k] is not None:
                assert abs(float(a[k]) - float(b[k])) <= 1e-5, (k, a, b)
    assert (summary.files, summary.failed, summary.ignored, summary.per_class) == (
        local_summary.files,
        local_summary.failed,
        local_summary.ignored,
        local_summary.per_class,
    )


@pytest.mark.slow
def test_ray_mode_runs_on_a_one_cpu_cluster(bad_dir, scored_bad, scoring_model, tmp_path):
    """`ray start --head --num-cpus 1`: the predictor actor and a decoder task fit on
    the one CPU (before, the decoders asked for a whole CPU beside the actor's half,
    and the run waited for ever)."""
    from raycluster import RayStartCluster

    cluster = RayStartCluster(tmp_path, auth=False, num_cpus=1)
    try:
        cluster.start(second_node=False)
        out = tmp_path / "ray.csv"
        proc = run_cli(
            "score", bad_dir, "--model", scoring_model, "--out", out, "--ray",
            "--address", cluster.gcs, "--batch-size", "16",
            timeout=300,
        )  # fmt: skip
    finally:
        cluster.stop()
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    got, local = read_rows(out), read_rows(scored_bad[2])
    assert [(r["path"], r["label"], r["error"]) for r in got] == [
        (r["path"], r["label"], r["error"]) for r in local
    ]
    for a, b in zip(got, local):
        if a["confidence"] is not None:
            assert abs(float(a["confidence"]) - float(b["confidence"])) <= 1e-5, (a, b)


@pytest.mark.slow
def test_ray_mode_on_a_cluster_without_cpus_says_so_and_exits_2(good_dir, scoring_model, tmp_path):
    from raycluster import RayStartCluster

    cluster = RayStartCluster(tmp_path, auth=False, num_cpus=0)
    try:
        cluster.start(second_node=False)
        proc = run_cli(
            "score", good_dir[0], "--model", scoring_model, "--out", tmp_path / "p.csv",
            "--ray", "--address", cluster.gcs,
            timeout=120,
        )  # fmt: skip
    finally:
        cluster.stop()
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"fmnist-job: error: the Ray cluster at '{cluster.gcs}' has no node with a CPU to "
        f"score on (1 node, 0 CPUs): score --ray needs at least one CPU for its decoders "
        f"and model; add a node with CPUs (`ray start --address HEAD:PORT --num-cpus 1` "
        f"or more)"
    )
    assert not (tmp_path / "p.csv").exists()


# -----------------------------------------------------------------------------
# Directory edge cases: nothing to score, a flood of empty files, undecodable names


@pytest.mark.slow
def test_a_directory_with_no_images_writes_a_header_and_exits_0(
    scoring_model, tmp_path, monkeypatch, capsys
):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    out_file = tmp_path / "p.csv"
    code, out, err = cli(
        ["score", tmp_path / "empty", "--model", scoring_model, "--out", out_file],
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    assert "0 of 0" in out and "ignored 1 file" in out
    assert out_file.read_text().splitlines() == [",".join(outputs.COLUMNS)]


@pytest.mark.slow
def test_a_hundred_thousand_empty_files_are_a_hundred_thousand_error_rows(
    scoring_model, tmp_path, monkeypatch, capsys
):
    d = tmp_path / "many"
    d.mkdir()
    for i in range(100_000):
        (d / f"{i:06d}.png").touch()
    out_file = tmp_path / "p.csv"
    code, out, err = cli(
        ["score", d, "--model", scoring_model, "--out", out_file], monkeypatch, capsys
    )
    assert code == 3, err
    rows = read_rows(out_file)
    assert len(rows) == 100_000 and all(r["error"] == "empty file" for r in rows)
    assert rows[0]["path"] == "000000.png" and rows[-1]["path"] == "099999.png"


@pytest.mark.slow
def test_file_names_that_are_not_utf8_are_scored(
    scoring_model, test_set, tmp_path, monkeypatch, capsys
):
    x, _ = test_set
    d = tmp_path / "names"
    d.mkdir()
    odd = os.fsdecode(b"caf\xe9-\xff.png")  # Latin-1 bytes, not valid UTF-8
    Image.fromarray(x[0]).save(d / odd, format="PNG")
    Image.fromarray(x[1]).save(d / "plain.png")
    out_file = tmp_path / "p.jsonl"
    code, out, err = cli(
        ["score", d, "--model", scoring_model, "--out", out_file], monkeypatch, capsys
    )
    assert code == 0, err
    rows = read_rows(out_file)
    assert len(rows) == 2 and all(r["error"] is None for r in rows)
    assert "plain.png" in [r["path"] for r in rows]


# -----------------------------------------------------------------------------
# Interrupted: no partial output, no process left behind


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = {int(k) for k in (task / "children").read_text().split()}
            except OSError:
                continue
            todo.extend(kids - found)
            found |= kids
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def many_files(tmp_path_factory, test_set):
    """20,000 image files (2,000 PNGs hard-linked ten times): seconds of scoring."""
    x, _ = test_set
    root = tmp_path_factory.mktemp("many") / "images"
    (root / "0").mkdir(parents=True)
    for i in range(2000):
        Image.fromarray(x[i]).save(root / "0" / f"{i:04d}.png")
    for c in range(1, 10):
        (root / str(c)).mkdir()
        for i in range(2000):
            os.link(root / "0" / f"{i:04d}.png", root / str(c) / f"{i:04d}.png")
    return root


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig, code, mode",
    [
        (signal.SIGTERM, 143, "local"),  # docker stop, a Kubernetes eviction: the main process
        (signal.SIGINT, 130, "local"),  # Ctrl-C: the whole process group
        (signal.SIGTERM, 143, "ray"),
    ],
)
def test_an_interrupted_score_keeps_its_parts_and_leaves_no_output_and_no_process(
    sig, code, mode, many_files, scoring_model, tmp_path
):
    """No --out, half-written or not; the parts committed stay, named in one line
    (resuming them: tests/test_resume.py)."""
    out = tmp_path / "preds.csv"
    parts_dir = tmp_path / ".preds.csv.parts"
    args = [*FMNIST_JOB, "score", many_files, "--model", scoring_model, "--out", out]
    args += ["--part-rows", "1000"]
    # SIGINT at its default in the child, as under an interactive shell: a job started
    # in the background of a script (`cmd &`, nohup) inherits it ignored, and Python then
    # never turns it into KeyboardInterrupt (seen: the run finished, exit 0).
    proc = subprocess.Popen(
        [*map(str, args), *(["--ray"] if mode == "ray" else [])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if list(parts_dir.glob("*.part")):  # rows are being written
                break
            time.sleep(0.05)
        assert proc.poll() is None, "finished before it could be interrupted"
        children = _descendants(proc.pid)
        assert children  # decoders (local) or Ray's processes
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == code, stderr[-2000:]
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr[-2000:]
    (line,) = [x for x in stderr.splitlines() if "interrupted" in x]
    assert f"committed in {parts_dir}; run the same command again to resume" in line, line
    assert not out.exists() and list(tmp_path.iterdir()) == [parts_dir]
    kept = sorted(p.name for p in parts_dir.iterdir())
    assert kept[-1] == "manifest.json" and all(n.endswith(".part") for n in kept[:-1]), kept
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(p) for p in children):
        time.sleep(0.1)
    assert not [p for p in children if _alive(p)]


def test_leaving_ray_waits_for_the_threads_still_in_it_but_not_for_parked_ones():
    """OnRay.__exit__ shuts Ray down only once the run's threads have ended: one still
    inside Ray then would end the process with exit code 1 (seen in CI, above, when a
    busy machine let Ray Data's executor outlive its own join)."""
    before = set(threading.enumerate())
    release = threading.Event()
    late = threading.Thread(target=time.sleep, args=(0.5,), name="late")
    stuck = threading.Thread(target=release.wait, name="stuck", daemon=True)
    parked = threading.Thread(target=release.wait, name=backends.PARKED_THREADS[0], daemon=True)
    for t in (late, stuck, parked):
        t.start()
    try:
        started = time.monotonic()
        assert backends.settle(before, 2.0) == ["stuck"]
        assert not late.is_alive()
        assert 1.5 < time.monotonic() - started < 10  # waited for "stuck", to its limit
        assert parked.is_alive()  # not waited for, not named
    finally:
        release.set()


# -----------------------------------------------------------------------------
# Options and failures that change nothing in the rows


@pytest.mark.slow
def test_batch_size_and_decoders_change_nothing_in_the_rows(
    good_dir, scored_good, scoring_model, tmp_path
):
    root, _ = good_dir
    _, reference = scored_good
    out = tmp_path / "p.csv"
    for batch_size, decoders in ((1, 1), (7, 3)):
        score.score(
            root, model=scoring_model, out=out, show=False, batch_size=batch_size, decoders=decoders
        )
        rows, expected = read_rows(out), read_rows(reference)
        # The same files, order, labels and errors; probabilities to float tolerance
        # (a batch of 1 multiplies matrices in another blocking than one of 1024).
        assert [(r["path"], r["label"], r["error"]) for r in rows] == [
            (r["path"], r["label"], r["error"]) for r in expected
        ], (batch_size, decoders)
        got, want = (
            [[float(r[f"top{k}_prob"]) for k in (1, 2, 3)] for r in x] for x in (rows, expected)
        )
        assert np.allclose(got, want, atol=2e-6), (batch_size, decoders)


def _decoders(pid: int) -> list[int]:
    """The decoder processes of a local score: spawned children of `pid` (not the
    multiprocessing resource tracker)."""
    found = []
    for child in _descendants(pid):
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmd and _alive(child):
            found.append(child)
    return found


def _start_scoring(many_files, scoring_model, out, *extra) -> subprocess.Popen:
    """A local score of 20,000 files, returned once it has committed rows (a part of
    1,000 beside `out`)."""
    args = [*FMNIST_JOB, "score", many_files, "--model", scoring_model, "--out", out, *extra]
    proc = subprocess.Popen(
        [*map(str, [*args, "--part-rows", "1000"])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if list(out.parent.glob(f".{out.name}.parts/*.part")):
            return proc
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"score ended ({proc.poll()}) before it wrote rows")


@pytest.mark.slow
@pytest.mark.parametrize("decoders", [1, 3])
def test_decoders_option_sets_the_number_of_decoder_processes(
    decoders, many_files, scoring_model, tmp_path
):
    proc = _start_scoring(many_files, scoring_model, tmp_path / "p.csv", "--decoders", decoders)
    try:
        assert len(_decoders(proc.pid)) == decoders
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
def test_a_killed_decoder_fails_the_run_with_exit_1_and_no_output(
    many_files, scoring_model, tmp_path
):
    """The out-of-memory killer taking a decoder: exit 1 with one line, --out not
    written (the parts committed kept for a rerun), no process left."""
    out = tmp_path / "p.csv"
    proc = _start_scoring(many_files, scoring_model, out, "--decoders", "2")
    try:
        victims = _decoders(proc.pid)
        assert victims
        os.kill(victims[0], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1, stderr[-2000:]
    # When the pool could not shut down (the decoder died writing its result), the
    # process leaves without it and Python's resource tracker, a process of its own,
    # may add its warning about the pool's semaphores after our line.
    ours = [
        line
        for line in stderr.splitlines()
        if "resource_tracker" not in line and "warnings.warn(" not in line
    ]
    parts_dir = tmp_path / ".p.csv.parts"
    assert re.fullmatch(
        "fmnist-job: error: a decoder process died \\(killed, perhaps for memory\\); --out "
        "was not written: run again, with fewer --decoders if memory is short; "
        f"[0-9,]+ rows of 20,000 committed in {parts_dir}; run the same command again "
        "to resume",
        ours[-1],
    ), stderr[-2000:]
    assert "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == [parts_dir]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(p) for p in victims[1:]):
        time.sleep(0.1)
    assert not [p for p in victims if _alive(p)]


@pytest.mark.slow
@pytest.mark.parametrize("names", [["T-shirt"] * 9, "not a list", [1] * 10])
def test_bad_class_names_in_the_metadata_exit_2(
    names, good_dir, scoring_model, tmp_path, monkeypatch, capsys
):
    import shutil

    version = tmp_path / "models" / "1"
    shutil.copytree(scoring_model / "1", version)
    meta = json.loads((version / export.METADATA).read_text())
    (version / export.METADATA).write_text(json.dumps({**meta, "class_names": names}))
    code, _, err = cli(
        ["score", good_dir[0], "--model", version, "--out", tmp_path / "p.csv"], monkeypatch, capsys
    )
    assert code == 2 and err.count("\n") == 1, err
    assert f"--model {version}: fmnist.json must list 10 class_names" in err
    assert not (tmp_path / "p.csv").exists()
