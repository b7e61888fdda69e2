"""Benchmark the cost of committing a score run's rows in parts (resumable runs).

    git archive BASE | tar -x -C /tmp/score-base     # the code before parts, any commit
    .venv/bin/python tests/benchmarks/bench_resume.py --baseline /tmp/score-base \\
        [--model DIR] [--files 3000] [--repeats 5]

A script, not a test (pytest does not collect it). It writes the first --files
Fashion-MNIST test images as 28x28 PNGs, then runs `fmnist-job score` over them (in a
subprocess, `python -m fmnist.cli` with the one or the other checkout first on
PYTHONPATH), taking turns, in reversed order every other round, so that drift of a
shared machine hits each alike:

* baseline: the checkout given (rows streamed into one file, renamed at the end);
* parts, default: this checkout with the default --part-rows (10,000: no part is
  committed under that, unless a minute passes);
* parts, --part-rows 500: a part committed every 500 rows (files / 500 parts), then
  joined into --out;
* 3 files, baseline and this checkout: wall time with start-up.

It prints each run's seconds of decoding and prediction as the command reports them
(start-up and model loading excluded) and the medians' ratios against the baseline.
Without --model it trains the tutorial net for 2 epochs (about 15 s) to have one.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_score import load, quick_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def write_pngs(directory: Path, n: int) -> None:
    from PIL import Image

    from fmnist.core import data

    _, _, x_test, y_test, _ = data.load_arrays()
    for i in range(n):
        d = directory / str(y_test[i])
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x_test[i]).save(d / f"{i:05d}.png")


def run(code: Path, directory: Path, model: Path, out: Path, *extra: str) -> tuple[float, float]:
    """(seconds of decoding and prediction the command reports, wall seconds)."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    args = [sys.executable, "-m", "fmnist.cli", "score", str(directory), "--model", str(model)]
    started = time.perf_counter()
    proc = subprocess.run(
        [*args, "--out", str(out), *extra],
        env=env,
        cwd=out.parent,  # not a checkout: `python -m` puts the working directory first
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"score failed ({proc.returncode}) with {code}:\n{proc.stderr[-3000:]}")
    seconds = float(re.search(r"over ([\d.]+)s of decoding", proc.stdout).group(1))
    return seconds, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="checkout before parts")
    parser.add_argument("--model", type=Path, help="export base or version directory")
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    print(f"machine: {os.cpu_count()} CPUs; {load()}", flush=True)
    model = args.model or quick_model(tmp / "models")
    write_pngs(tmp / "many", args.files)
    write_pngs(tmp / "three", 3)
    kinds = {
        "baseline": (args.baseline, "many", ()),
        "parts, default": (ROOT, "many", ()),
        "parts, --part-rows 500": (ROOT, "many", ("--part-rows", "500")),
        "3 files, baseline": (args.baseline, "three", ()),
        "3 files, parts": (ROOT, "three", ()),
    }
    seconds: dict[str, list[float]] = {k: [] for k in kinds}
    walls: dict[str, list[float]] = {k: [] for k in kinds}
    for repeat in range(args.repeats):
        order = list(kinds.items())
        for kind, (code, directory, extra) in order if repeat % 2 else order[::-1]:
            s, w = run(code, tmp / directory, model, tmp / "out.csv", *extra)
            seconds[kind].append(s)
            walls[kind].append(w)
            left = [p.name for p in tmp.iterdir() if p.name.startswith(".out.csv")]
            assert not left, f"{kind} left {left}"
    print(f"{args.files:,} PNGs, {args.repeats} runs each, taking turns; {load()}")
    for kind in kinds:
        s, w = statistics.median(seconds[kind]), statistics.median(walls[kind])
        base = "3 files, baseline" if kind.startswith("3 files") else "baseline"
        ratio = s / statistics.median(seconds[base])
        wall_ratio = w / statistics.median(walls[base])
        print(
            f"  {kind:24s} scoring {s:6.2f}s (x{ratio:.2f}), wall {w:6.2f}s (x{wall_ratio:.2f}); "
            f"runs: {', '.join(f'{x:.2f}' for x in seconds[kind])}"
        )


if __name__ == "__main__":
    main()
