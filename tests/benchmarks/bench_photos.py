"""Benchmark `fmnist-job score` on product photos: accuracy per photo group, and speed.

    .venv/bin/python tests/benchmarks/bench_photos.py --model models/fmnist [--items 300]
        [--held-out] [--only GROUP,...] [--skip-speed | --speed-only] [--no-ablations]
    git show main:fmnist/scoring/images.py > /tmp/images_before.py
    .venv/bin/python tests/benchmarks/bench_photos.py --model models/fmnist \
        --versus /tmp/images_before.py

A script, not a test. It makes the photo groups and the studio/shop kinds of
tests/photos.py (with --held-out the held-out kinds too, marked *) from the same random
test items (each frames the same items differently), then prints:

* accuracy per group with `--fit auto` (the default), with the conversion of the module
  given as --versus (another images.py, "before"), with `--fit whole`, and auto without
  straightening and without the drop-shadow rule (ablations), beside the accuracy of the
  same items as plain 28x28 arrays, and the half-width of the difference's 95% interval
  (±95%: the same items both ways, so the paired differences' standard error); target:
  every group within 2 points (a turned item within 4; below-28 excepted: detail lost
  below the model's resolution does not come back);
* with --versus, the conversion's speed against that module's, in one run, alternating
  (decode only, one core, on 28x28 PNGs and 500x500 JPEG photos): the ratio, >= 0.5x
  (--conversion-speed: only this);
* speed, in rounds: `fmnist-job score`'s rate (start-up excluded, the rate it reports)
  against the two-core decode-only rate (Pillow open + convert("L") + asarray in two
  processes, as bench_scale.py measures it) taken just before and after each score run,
  on the 10,000 test images as 28x28 PNGs and on 2,000 500x500 catalogue JPEGs; the
  median of the rounds' ratios; target: >= 0.5x on both (--speed-only: only this).

Without --model it trains the tutorial net for 2 epochs to have one (the figures in
docs/photos.md use the default sweep's export). The machine's speed drifts from day to day:
compare the ratios, not the rates.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: photos
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_score

import bench_score

import photos

SPEED_PHOTOS = 2000


def load_module(path: Path):
    """Another version of fmnist/scoring/images.py, imported under its own name."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("images_versus", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def accuracy_table(
    model: Path,
    root: Path,
    items: int,
    seed: int,
    before=None,
    held_out: bool = False,
    only: tuple[str, ...] = (),
    ablations: bool = True,
) -> list[tuple]:
    import tensorflow as tf

    from fmnist.core import data, export
    from fmnist.scoring import framing, images, savedmodel

    version = savedmodel.resolve_model(model).path
    signature = tf.saved_model.load(str(version)).signatures[export.SIGNATURE]

    def predict(x):
        return signature(**{export.INPUT_KEY: tf.constant(x)})[export.OUTPUT_KEY].numpy().argmax(1)

    def without(flag, rels):
        """auto with one step switched off (an ablation)."""
        setattr(framing, flag, False)
        try:
            return np.stack([images.decode(root / r) for r in rels])
        finally:
            setattr(framing, flag, True)

    _, _, x, y, _ = data.load_arrays()
    idx = np.random.default_rng(seed).choice(len(x), items, replace=False)
    plain = float(np.mean(predict(x[idx]) == y[idx]))
    rows = []
    print(
        f"\n{items:,} test items (seed {seed}); plain 28x28 arrays: {100 * plain:.2f}%", flush=True
    )
    print(
        f"{'group':14s} {'auto':>7s} {'Δ plain':>8s} {'±95%':>5s} {'before':>7s} {'whole':>7s} "
        f"{'no turn':>8s} {'no unshadow':>11s} {'items':>6s} {'s':>5s}"
    )
    groups = [g for g in photos.ALL if held_out or g not in photos.HELD_OUT]
    groups = [g for g in groups if not only or g in only]
    for group in groups:
        started = time.perf_counter()
        n = min(items, 300) if group == "huge" else items
        made = photos.write_group(root, group, x[idx[:n]], y[idx[:n]], seed=seed)
        rels = sorted(made, key=made.get)
        truth = y[idx[:n]]
        right = predict(np.stack([images.decode(root / r) for r in rels])) == truth
        right_plain = predict(x[idx[:n]]) == truth
        acc = {
            "auto": np.mean(right),
            "before": np.mean(predict(np.stack([before.decode(root / r) for r in rels])) == truth)
            if before
            else float("nan"),
            "whole": np.mean(
                predict(np.stack([images.decode(root / r, fit="whole") for r in rels])) == truth
            )
            if ablations
            else float("nan"),
            "no turn": np.mean(predict(without("STRAIGHTEN", rels)) == truth)
            if ablations
            else float("nan"),
            "no unshadow": np.mean(predict(without("UNSHADOW", rels)) == truth)
            if ablations
            else float("nan"),
            "plain": np.mean(right_plain),
            # Half the 95% interval of Δ plain: the same items both ways, so the
            # standard error of the paired differences (docs/photos.md, "Noise").
            "margin": 1.96 * np.std(right.astype(float) - right_plain, ddof=1) / np.sqrt(n),
        }
        rows.append((group, n, acc))
        name = group + ("*" if group in photos.HELD_OUT else "")
        print(
            f"{name:14s} {100 * acc['auto']:6.2f}% {100 * (acc['auto'] - acc['plain']):+7.2f} "
            f"{100 * acc['margin']:5.2f} "
            f"{100 * acc['before']:6.2f}% {100 * acc['whole']:6.2f}% "
            f"{100 * acc['no turn']:7.2f}% {100 * acc['no unshadow']:10.2f}% {n:6d} "
            f"{time.perf_counter() - started:5.0f}",
            flush=True,
        )
        shutil.rmtree(root / group)
    return rows


def catalogue_jpegs(root: Path, count: int) -> list[Path]:
    """count 500x500 catalogue photos (JPEG 90) of the first test items."""
    from fmnist.core import data

    _, _, x, y, _ = data.load_arrays()
    rng = np.random.default_rng(5)
    for i in range(count):
        size = int(rng.integers(200, 361))
        im = photos._place(
            photos._item(x[i], size, photos.DARK[i % len(photos.DARK)]),
            (500, 500),
            (255, 255, 255),
            rng,
        )
        d = root / str(y[i])
        d.mkdir(parents=True, exist_ok=True)
        im.save(d / f"{i:05d}.jpg", quality=90)
    return sorted(root.rglob("*.jpg"))


def conversion_speed(before, tmp: Path, rounds: int = 5) -> dict:
    """The conversion against another version of it, decode only on one core,
    alternating in one run: {kind of file: median of the per-round ratios new/before}."""
    from fmnist.scoring import images

    pngs = bench_score.write_pngs(tmp / "png10k")[:3000]
    jpegs = catalogue_jpegs(tmp / "jpeg500-speed", 500)
    out = {}
    for name, paths in (("28x28 PNG", pngs), ("500x500 JPEG", jpegs)):
        ratios = []
        for _ in range(rounds):
            rate = {}
            for label, module in (("new", images), ("before", before)):
                started = time.perf_counter()
                for path in paths:
                    module.decode(path)
                rate[label] = len(paths) / (time.perf_counter() - started)
            ratios.append(rate["new"] / rate["before"])
        out[name] = float(np.median(ratios))
        print(
            f"{name:13s} conversion speed, new / before: median {out[name]:.2f}x "
            f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})",
            flush=True,
        )
    return out


def speed(model: Path, tmp: Path, rounds: int = 3) -> dict:
    """`fmnist-job score`'s reported rate against the two-core decode-only rate, in
    rounds: the decode measured in two processes just before and just after each score
    run (bench_score.against_decode, as bench_scale does), so that each ratio compares
    rates taken under the same load; {kind of file: (median ratio, the rounds' ratios)}."""
    pngs = bench_score.write_pngs(tmp / "png10k")
    jpegs_root = tmp / "jpeg500"
    jpegs = catalogue_jpegs(jpegs_root, SPEED_PHOTOS)
    out = {}
    for name, root, paths in (
        ("28x28 PNG", tmp / "png10k", pngs),
        ("500x500 JPEG", jpegs_root, jpegs),
    ):
        sample = paths[:: max(1, len(paths) // 4000)]
        ratios = []
        for _ in range(rounds):
            run, decode = bench_score.against_decode(root, model, tmp / "out.csv", sample)
            rate = run["reported"]
            ratios.append(rate / decode)
            print(
                f"{name:13s} decode only, 2 processes {decode:9,.0f} images/s; fmnist-job "
                f"score {rate:9,.0f} images/s (start-up excluded) = {rate / decode:.2f}x",
                flush=True,
            )
        out[name] = (float(np.median(ratios)), ratios)
    return out


def report_speed(model: Path, tmp: Path) -> None:
    print(f"\nspeed ({bench_score.load()}):", flush=True)
    for name, (ratio, ratios) in speed(model, tmp).items():
        print(
            f"  [{'ok' if ratio >= 0.5 else 'MISSED'}] {name}: median {ratio:.2f}x "
            f"(rounds {', '.join(f'{r:.2f}' for r in ratios)}) >= 0.5x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="export base or version directory")
    parser.add_argument("--items", type=int, default=300, help="test items per group")
    parser.add_argument("--versus", type=Path, help="another images.py to compare with")
    parser.add_argument("--seed", type=int, default=11, help="which items, which framings")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument(
        "--no-ablations",
        action="store_true",
        help="leave out the whole-image, no-turn and no-shadow-rule columns (faster)",
    )
    parser.add_argument("--speed-only", action="store_true", help="only the score speed")
    parser.add_argument("--only", default="", help="comma-separated groups (default: all)")
    parser.add_argument(
        "--held-out",
        action="store_true",
        help="score the held-out kinds too (once, when the conversion is finished)",
    )
    parser.add_argument(
        "--conversion-speed",
        action="store_true",
        help="only the conversion's speed against --versus",
    )
    args = parser.parse_args()
    if args.conversion_speed and not args.versus:
        parser.error("--conversion-speed needs --versus")
    tmp = Path(tempfile.mkdtemp(prefix="bench-photos-"))
    try:
        print(f"machine: {os.cpu_count()} CPUs; {bench_score.load()}", flush=True)
        before = load_module(args.versus) if args.versus else None
        if args.conversion_speed:
            for name, ratio in conversion_speed(before, tmp).items():
                print(f"  [{'ok' if ratio >= 0.5 else 'MISSED'}] {name}: {ratio:.2f}x >= 0.5x")
            return
        model = args.model or bench_score.quick_model(tmp / "models")
        if args.speed_only:
            report_speed(model, tmp)
            return
        only = tuple(g for g in args.only.split(",") if g)
        rows = accuracy_table(
            model,
            tmp / "photos",
            args.items,
            args.seed,
            before,
            args.held_out,
            only,
            ablations=not args.no_ablations,
        )

        def short(r):
            """How far a group falls below its target (a turned item's is 4 points)."""
            if r[0] == "below-28":
                return -1.0
            return r[2]["plain"] - r[2]["auto"] - (0.04 if r[0] == "rotated" else 0.02)

        worst = max(rows, key=short)
        print(
            f"\nworst group against its target: {worst[0]} "
            f"{100 * (worst[2]['auto'] - worst[2]['plain']):+.2f} points "
            f"(target >= {-4 if worst[0] == 'rotated' else -2})"
        )
        for step, column in (("straightening", "no turn"), ("the shadow rule", "no unshadow")):
            gain = np.mean([r[2]["auto"] - r[2][column] for r in rows])
            print(f"{step}, mean gain over the groups: {100 * gain:+.2f} points")
        if before and not args.skip_speed:
            print(f"\nconversion speed ({bench_score.load()}):", flush=True)
            for name, ratio in conversion_speed(before, tmp).items():
                print(f"  [{'ok' if ratio >= 0.5 else 'MISSED'}] {name}: {ratio:.2f}x >= 0.5x")
        if not args.skip_speed:
            report_speed(model, tmp)
        print(f"\n{bench_score.load()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
