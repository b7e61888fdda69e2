"""Benchmark `fmnist-job score` at scale: 10,000 to 1,000,000 files, memory and rate.

    .venv/bin/python tests/benchmarks/bench_scale.py [--model DIR] [--sizes 10000,100000,1000000]
        [--ray-files 20000 | --ray-files 0]

A script, not a test (pytest does not collect it). It writes a few hundred real 28x28
test-set PNGs and makes each size's tree of hard links to them (100 files a directory,
two levels deep), then, in one run:

* `fmnist-job score` on each size in a subprocess: the rate it reports (start-up
  excluded) and the peak RSS of the whole process tree (main process and decoders,
  sampled from /proc every 20 ms; bench_score.run_score);
* the decode-only rate of two cores: Pillow open + convert + asarray (bench_score's
  loop) in two processes over the same files, measured between the score runs, so each
  score rate has a ratio against a decode rate taken under the same load;
* `score --ray` on a two-node `ray start` cluster of one CPU per node against local
  scoring with two decoders, on --ray-files files, taking turns.

Ratios, not rates, are the figures to compare: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # bench_score; tests/raycluster.py

from bench_score import decode_two_cores, load, quick_model, run_score  # noqa: E402

SOURCES = 500  # distinct PNGs the links point to
PER_DIR = 100
DECODE_SAMPLE = 20_000  # files decoded per decode-only measurement


def write_sources(directory: Path) -> list[Path]:
    """SOURCES test-set images as PNGs, one per item."""
    from PIL import Image

    from fmnist.core import data

    _, _, x_test, _, _ = data.load_arrays()
    directory.mkdir(parents=True)
    paths = [directory / f"{i:04d}.png" for i in range(SOURCES)]
    for path, img in zip(paths, x_test):
        Image.fromarray(img).save(path)
    return paths


def link_tree(sources: list[Path], root: Path, files: int) -> list[Path]:
    """`files` hard links to the sources under root/aNNN/bNN/, PER_DIR a directory;
    returns DECODE_SAMPLE of them spread over the whole tree."""
    paths, stride = [], max(1, files // DECODE_SAMPLE)
    for i in range(files):
        d = root / f"a{i // (PER_DIR * 100):04d}" / f"b{i // PER_DIR % 100:02d}"
        if i % PER_DIR == 0:
            d.mkdir(parents=True)
        path = d / f"{i:07d}.png"
        os.link(sources[i % len(sources)], path)
        if i % stride == 0 and len(paths) < DECODE_SAMPLE:
            paths.append(path)
    return paths


def scale(tmp: Path, sources: list[Path], model: Path, sizes: list[int]) -> None:
    print(f"\n{'files':>10} {'score img/s':>12} {'decode 2 cores':>15} {'ratio':>6} "
          f"{'peak RSS tree':>14} {'main':>8}", flush=True)  # fmt: skip
    first = None
    for n in sizes:
        root = tmp / f"links{n}"
        started = time.perf_counter()
        sample = link_tree(sources, root, n)
        made = time.perf_counter() - started
        decode = decode_two_cores(sample)
        r = run_score(root, model, tmp / f"out{n}.csv")
        decode = (decode + decode_two_cores(sample)) / 2  # before and after the run
        first = first or r
        print(
            f"{r['files']:>10,} {r['reported']:>12,.0f} {decode:>15,.0f} "
            f"{r['reported'] / decode:>6.2f} {r['tree_peak_mb']:>11,.0f} MB "
            f"{r['main_peak_mb']:>5,.0f} MB   (links made in {made:.0f} s; {load()})",
            flush=True,
        )
        if r is not first:
            print(
                f"{'':>10} peak RSS vs {first['files']:,} files: tree "
                f"{r['tree_peak_mb'] / first['tree_peak_mb']:.2f}x, main "
                f"{r['main_peak_mb'] / first['main_peak_mb']:.2f}x",
                flush=True,
            )
        (tmp / f"out{n}.csv").unlink()
        shutil.rmtree(root)


def ray_versus_local(tmp: Path, sources: list[Path], model: Path, files: int) -> None:
    """`score --ray` on two one-CPU nodes against local with two decoders, taking turns."""
    from raycluster import RayStartCluster

    root = tmp / f"ray{files}"
    link_tree(sources, root, files)
    cluster = RayStartCluster(tmp / "cluster", auth=False, num_cpus=1)
    try:
        cluster.start(second_node=True)
        rates: dict[str, list[float]] = {"local": [], "ray": []}
        for turn in range(2):
            local = run_score(root, model, tmp / "local.csv", "--decoders", "2")
            ray = run_score(root, model, tmp / "ray.csv", "--ray", "--address", cluster.gcs)
            rates["local"].append(local["reported"])
            rates["ray"].append(ray["reported"])
            print(
                f"turn {turn + 1}, {files:,} files: local (2 decoders) "
                f"{local['reported']:,.0f} images/s, --ray on 2 one-CPU nodes "
                f"{ray['reported']:,.0f} images/s: ray/local {ray['reported'] / local['reported']:.2f}"
                f"; {load()}",
                flush=True,
            )
        best = {k: max(v) for k, v in rates.items()}
        print(f"best of each: ray/local {best['ray'] / best['local']:.2f}", flush=True)
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="export base or version directory")
    parser.add_argument(
        "--sizes",
        default="10000,100000,1000000",
        help="comma-separated file counts, scored in this order (default: %(default)s)",
    )
    parser.add_argument(
        "--ray-files",
        type=int,
        default=20_000,
        help="files for --ray against local; 0 skips it (default: %(default)s)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        print(f"machine: {os.cpu_count()} CPUs; {load()}", flush=True)
        model = args.model or quick_model(tmp / "models")
        sources = write_sources(tmp / "sources")
        print(f"model: {model}; {len(sources)} source PNGs in {tmp / 'sources'}", flush=True)
        if args.ray_files:
            ray_versus_local(tmp, sources, model, args.ray_files)
        if sizes:
            scale(tmp, sources, model, sizes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
