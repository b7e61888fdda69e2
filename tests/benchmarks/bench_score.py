"""Benchmark `fmnist-job score` on the 10,000 Fashion-MNIST test images as 28x28 PNGs.

    .venv/bin/python tests/benchmarks/bench_score.py [--model DIR] [--quick]
    .venv/bin/python tests/benchmarks/bench_score.py --model SINGLE --versus ENSEMBLE

A script, not a test (pytest does not collect it). It writes the images into a temporary
directory (and 50,000 by hard-linking them into more directories), then prints:

* decode only, one core: Pillow open + convert("L") + np.asarray in a loop;
* the per-image way of the Keras tutorial: open a file, `model.predict` on it (the
  SavedModel wrapped as a Keras model with TFSMLayer), and the same calling the loaded
  signature per image; both on 300 images, extrapolated;
* `fmnist-job score` in a subprocess: wall time with process start-up, the rate it
  reports itself (start-up excluded), and the peak RSS for 10,000 and 50,000 files;
* `score.score` in this process with process and thread decoders, 1 and 2 of each;
* the ratios against the targets (>= 15,000 images/s without start-up, >= 0.5x the
  decode-only rate of two cores, peak RSS for 50,000 files within 10% of 10,000). The
  two-core rate is the decode loop in two processes, taken just before and just after
  each score run of 10,000 files (as bench_scale and bench_photos take it): the machine's
  speed drifts within minutes, so each ratio compares rates under the same load.

Without --model it trains the tutorial net for 2 epochs (about 15 s) to have one.
The figures depend on what else runs on the machine: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
FMNIST_JOB = Path(sys.executable).with_name("fmnist-job")
PER_IMAGE_SAMPLE = 300

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


# -----------------------------------------------------------------------------
# Inputs


def write_pngs(directory: Path) -> list[Path]:
    from PIL import Image

    from fmnist.core import data

    _, _, x_test, y_test, _ = data.load_arrays()
    paths = []
    for i, (img, label) in enumerate(zip(x_test, y_test)):
        d = directory / f"{label}-{data.CLASS_NAMES[label].replace('/', '-')}"
        d.mkdir(parents=True, exist_ok=True)
        paths.append(d / f"{i:05d}.png")
        Image.fromarray(img).save(paths[-1])
    return paths


def hard_link_copies(source: Path, target: Path, copies: int) -> None:
    for c in range(copies):
        for path in source.rglob("*.png"):
            dest = target / f"copy{c}" / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, dest)


def quick_model(base: Path) -> Path:
    from fmnist.core import data
    from fmnist.training import fit, savedmodel, variants

    v = variants.Variant(name="bench", hidden=(128,), epochs=2, batch_size=64)
    result, weights, _ = fit.fit_variant(v, data.load(limit=8000, val_size=1000))
    savedmodel.export(
        v,
        weights,
        {
            "class_names": list(data.CLASS_NAMES),
            "variant": v.to_dict(),
            "val_accuracy": result.val_accuracy,
            "test_accuracy": result.test_accuracy,
            "run_id": "bench",
        },
        base,
    )
    return base


# -----------------------------------------------------------------------------
# Baselines


def decode_only(paths: list[Path]) -> float:
    """Images/s of the plainest Pillow loop, one core."""
    from PIL import Image

    start = time.perf_counter()
    for p in paths:
        with Image.open(p) as im:
            np.asarray(im.convert("L"))
    return len(paths) / (time.perf_counter() - start)


def decode_two_cores(paths: list[Path]) -> float:
    """Images/s of the decode-only loop in two processes, half the files each: the
    two-core rate as measured under the machine's load of the moment."""
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(decode_only, [paths[:50], paths[50:100]]))  # start both workers
        start = time.perf_counter()
        list(pool.map(decode_only, [paths[0::2], paths[1::2]]))
        return len(paths) / (time.perf_counter() - start)


def against_decode(root: Path, model: Path, out: Path, sample: list[Path]) -> tuple[dict, float]:
    """One `fmnist-job score` run (run_score) and the two-core decode-only rate taken just
    before and just after it (decode_two_cores, averaged): a ratio of the two compares
    rates measured under the same load."""
    before = decode_two_cores(sample)
    run = run_score(root, model, out)
    return run, (before + decode_two_cores(sample)) / 2


def per_image_keras(paths: list[Path], version: Path) -> tuple[float, float]:
    """Images/s opening each file and predicting it alone: Keras `model.predict` (the
    tutorial's way) and the loaded serving signature called per image."""
    import keras
    import tensorflow as tf
    from PIL import Image

    layer = keras.layers.TFSMLayer(str(version), call_endpoint="serving_default")
    inp = keras.Input((28, 28), dtype="uint8")
    net = keras.Model(inp, layer(inp))
    first = np.asarray(Image.open(paths[0]).convert("L"))
    net.predict(first[None], verbose=0)  # build and trace outside the timing
    start = time.perf_counter()
    for p in paths:
        net.predict(np.asarray(Image.open(p).convert("L"))[None], verbose=0)
    keras_rate = len(paths) / (time.perf_counter() - start)

    signature = tf.saved_model.load(str(version)).signatures["serving_default"]
    signature(images=tf.constant(first[None]))
    start = time.perf_counter()
    for p in paths:
        signature(images=tf.constant(np.asarray(Image.open(p).convert("L"))[None]))
    return keras_rate, len(paths) / (time.perf_counter() - start)


# -----------------------------------------------------------------------------
# fmnist-job score in a subprocess: wall time, its own rate, peak memory


def tree_rss_kb(pid: int) -> int:
    """Resident set size of a process and all its descendants (decoders), in KiB."""
    total = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return total
    return total + sum(tree_rss_kb(c) for c in children)


def run_score(directory: Path, model: Path, out: Path, *extra: str) -> dict:
    """`fmnist-job score DIRECTORY` (with `extra` options) in a subprocess: its files,
    wall time, reported rate and peak RSS (its own; with its descendants, sampled)."""
    started = time.perf_counter()
    with open(out.with_suffix(".stdout"), "w+") as stdout:
        proc = subprocess.Popen(
            [str(FMNIST_JOB), "score", str(directory), "--model", str(model), "--out", str(out)]
            + list(extra),
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
        )
        peak_tree = 0
        done = threading.Event()

        def sample():
            nonlocal peak_tree
            while not done.is_set():
                peak_tree = max(peak_tree, tree_rss_kb(proc.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # wait4 gives this child's own rusage (ru_maxrss: its peak RSS, KiB on Linux).
        stderr = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
        stdout.seek(0)
        text = stdout.read()
    if proc.returncode != 0:
        sys.exit(f"fmnist-job score failed ({proc.returncode}):\n{stderr}\n{text}")
    files = int(re.search(r"of ([\d,]+) image files", text).group(1).replace(",", ""))
    reported = float(re.search(r"([\d,]+) images/s over", text).group(1).replace(",", ""))
    return {
        "files": files,
        "wall": wall,
        "with_startup": files / wall,
        "reported": reported,
        "main_peak_mb": usage.ru_maxrss / 1024,
        "tree_peak_mb": peak_tree / 1024,
    }


# -----------------------------------------------------------------------------
# score.score in this process: process vs thread decoders


def in_process(
    directory: Path, model: Path, out: Path, pool: str, decoders: int, repeats: int
) -> tuple[float, float]:
    """(median reported images/s, median images/s timed around score.score)."""
    from fmnist.scoring import score

    reported, around = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        s = score.score(directory, model=model, out=out, pool=pool, decoders=decoders, show=False)
        around.append(s.files / (time.perf_counter() - start))
        reported.append(s.images_per_second)
    return statistics.median(reported), statistics.median(around)


def versus(tmp: Path, model: Path, other: Path, paths: list[Path], repeats: int) -> None:
    """`fmnist-job score` on the 10,000 PNGs with two exports, taking turns (so drift of
    the machine's speed hits both alike): each one's median reported rate, the ratio,
    and each against the decode-only rate of two cores taken around its runs."""
    from fmnist.scoring import savedmodel

    rates: dict[Path, list[float]] = {model: [], other: []}
    ratios: dict[Path, list[float]] = {model: [], other: []}
    for _ in range(repeats):
        for m in rates:
            run, decode = against_decode(tmp / "png10k", m, tmp / "versus.csv", paths[::2])
            rates[m].append(run["reported"])
            ratios[m].append(run["reported"] / decode)
    a, b = (statistics.median(rates[m]) for m in (model, other))
    for m, rate in ((model, a), (other, b)):
        print(
            f"  {savedmodel.resolve_model(m).path}: {rate:,.0f} images/s reported "
            f"(runs: {', '.join(f'{r:,.0f}' for r in rates[m])}); "
            f"{statistics.median(ratios[m]):.2f}x the two-core decode-only rate "
            "(median; target >= 0.5x)"
        )
    print(f"  --versus / --model: {b / a:.2f}x\n{load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="export base or version directory")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument(
        "--versus",
        type=Path,
        metavar="DIR",
        help="only compare --model with this export (an ensemble against a "
        "single model, say): score runs taking turns, then the ratio",
    )
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    tmp = Path(tempfile.mkdtemp(prefix="bench-score-"))
    try:
        print(f"machine: {os.cpu_count()} CPUs; {load()}", flush=True)
        from fmnist.scoring import savedmodel

        model = args.model or quick_model(tmp / "models")
        version = savedmodel.resolve_model(model).path
        print(f"model: {version}", flush=True)

        paths = write_pngs(tmp / "png10k")
        if not args.versus:  # the comparison scores the 10,000 only
            hard_link_copies(tmp / "png10k", tmp / "png50k", 5)
        print(
            f"inputs: {len(paths):,} PNGs in {tmp / 'png10k'}"
            + ("" if args.versus else f", 50,000 hard links in {tmp / 'png50k'}"),
            flush=True,
        )

        if args.versus:
            return versus(tmp, model, args.versus, paths, repeats)
        decode_rate = max(decode_only(paths) for _ in range(repeats))
        print(
            f"\ndecode only (Pillow open+convert+asarray), 1 core: {decode_rate:,.0f} images/s",
            flush=True,
        )

        # 10,000 files: each run between two two-core decode measurements (its ratio)
        measured = [
            against_decode(tmp / "png10k", model, tmp / "out10000.csv", paths[::2])
            for _ in range(repeats)
        ]
        two_core = [rate for _, rate in measured]
        ratio = statistics.median(r["reported"] / rate for r, rate in measured)
        runs = {
            10_000: [r for r, _ in measured],
            50_000: [
                run_score(tmp / "png50k", model, tmp / "out50000.csv") for _ in range(repeats)
            ],
        }
        best = {n: max(r, key=lambda r: r["reported"]) for n, r in runs.items()}
        for n, rs in runs.items():
            for r in rs:
                print(
                    f"fmnist-job score, {r['files']:,} files (subprocess): "
                    f"{r['with_startup']:,.0f} images/s with start-up ({r['wall']:.2f}s wall), "
                    f"{r['reported']:,.0f} images/s reported (start-up excluded); peak RSS "
                    f"main {r['main_peak_mb']:.0f} MB, with decoders {r['tree_peak_mb']:.0f} MB",
                    flush=True,
                )

        print(
            "\nscore.score in this process, 10,000 files (median of "
            f"{repeats}; 'around' includes pool start and model load):",
            flush=True,
        )
        pools = {}
        for pool in ("process", "thread"):
            for decoders in (1, 2):
                pools[pool, decoders] = in_process(
                    tmp / "png10k", model, tmp / "inproc.csv", pool, decoders, repeats
                )
                rep, around = pools[pool, decoders]
                print(
                    f"  {pool:7s} x{decoders}: {rep:,.0f} images/s reported, "
                    f"{around:,.0f} images/s around score.score",
                    flush=True,
                )

        keras_rate, signature_rate = per_image_keras(paths[:PER_IMAGE_SAMPLE], version)
        print(
            f"\nper-image loop on {PER_IMAGE_SAMPLE} files, extrapolated: Keras model.predict "
            f"{keras_rate:,.1f} images/s ({10_000 / keras_rate:,.0f}s for 10,000); "
            f"signature per image {signature_rate:,.0f} images/s",
            flush=True,
        )

        rate = best[10_000]["reported"]
        rss10, rss50 = best[10_000]["main_peak_mb"], best[50_000]["main_peak_mb"]
        tree10, tree50 = best[10_000]["tree_peak_mb"], best[50_000]["tree_peak_mb"]
        print("\nratios and targets (10,000 files, best of the subprocess runs):")
        checks = [
            (f"score rate without start-up {rate:,.0f} images/s >= 15,000", rate >= 15_000),
            (
                "vs decode-only in two processes, taken around each run "
                f"({', '.join(f'{d:,.0f}' for d in two_core)} images/s): median "
                f"{ratio:.2f}x >= 0.5x",
                ratio >= 0.5,
            ),
            (f"vs decode-only on one core: {rate / decode_rate:.2f}x", True),
            (
                f"vs per-image Keras predict: {rate / keras_rate:,.0f}x faster; vs per-image "
                f"signature: {rate / signature_rate:,.0f}x",
                True,
            ),
            (
                f"with start-up: {best[10_000]['with_startup']:,.0f} images/s "
                f"({best[10_000]['wall']:.2f}s wall)",
                True,
            ),
            (
                f"processes vs threads (2 decoders, reported): {pools['process', 2][0]:,.0f} vs "
                f"{pools['thread', 2][0]:,.0f} images/s = "
                f"{pools['process', 2][0] / pools['thread', 2][0]:.2f}x",
                True,
            ),
            (
                f"peak RSS main process 50k/10k: {rss50:.0f}/{rss10:.0f} MB = "
                f"{rss50 / rss10:.3f} <= 1.10",
                rss50 <= 1.10 * rss10,
            ),
            (
                f"peak RSS with decoders 50k/10k: {tree50:.0f}/{tree10:.0f} MB = "
                f"{tree50 / tree10:.3f} <= 1.10",
                tree50 <= 1.10 * tree10,
            ),
        ]
        for text, ok in checks:
            print(f"  [{'ok' if ok else 'MISSED'}] {text}")
        print(f"\n{load()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
