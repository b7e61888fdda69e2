"""What a bucket costs: `score` and `train` against moto's S3 server on loopback, beside
the same runs on local disk, interleaved in one run (ratios, not rates: speed drifts from
day to day).

    .venv/bin/python tests/benchmarks/bench_storage.py [--files N] [--repeats R]

* score: N test images as 28x28 PNGs, from a local directory with a local model and
  output, against the same files, model and output in the bucket (local decoders,
  the photos downloaded first), and against the bucket with --ray on an embedded Ray
  (the decoding tasks fetch the photos);
* train: a one-variant sweep (1 epoch, 3,000 images) exporting to a local directory
  against exporting to the bucket (the claim, the upload, the gate's reads).

moto's server is a Python process on the same two cores, so these ratios are an upper
bound on what a real store's latency costs here, not a measurement of S3 itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
FMNIST_JOB = [sys.executable, "-m", "fmnist.cli"]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SWEEP = '[[variant]]\nname = "tiny"\nhidden = [64]\nepochs = 1\n'


def timed(args: list, env: dict, cwd: Path) -> float:
    started = time.monotonic()
    proc = subprocess.run(
        [*FMNIST_JOB, *map(str, args)], env=env, cwd=cwd, capture_output=True, text=True
    )
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {args}\n{proc.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    a = parser.parse_args()

    from PIL import Image

    from fmnist.core import data, storage
    from fmnist.training import fit, savedmodel, variants

    from s3server import S3Server

    tmp = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    server = S3Server(tmp / "moto.log").start()
    env = {**os.environ, **server.env, "PYTHONPATH": str(ROOT)}
    os.environ.update(server.env)
    try:
        bucket = f"s3://{server.new_bucket()}"
        _, _, x_test, _, _ = data.load_arrays()
        photos = tmp / "photos"
        for i in range(a.files):
            path = photos / f"{i % 10}" / f"{i:05d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x_test[i % len(x_test)]).save(path)
        variant = variants.Variant(name="t", hidden=(128,), epochs=1, batch_size=64)
        splits = data.load(limit=4000, val_size=500)
        result, weights, _ = fit.fit_variant(variant, splits)
        model = tmp / "models" / "fmnist"
        meta = {"class_names": list(data.CLASS_NAMES), "variant": variant.to_dict()}
        savedmodel.export(variant, weights, meta, model)
        storage.upload_tree(photos, storage.location(f"{bucket}/inbox", "x"))
        storage.upload_tree(model, storage.location(f"{bucket}/models/fmnist", "x"))
        (tmp / "sweep.toml").write_text(SWEEP)

        runs = {
            "score, local disk": ["score", photos, "--model", model, "--out", tmp / "p.csv"],
            "score, bucket (download first)": [
                "score",
                f"{bucket}/inbox",
                "--model",
                f"{bucket}/models/fmnist",
                "--out",
                f"{bucket}/preds/p.csv",
            ],
            "score --ray, local disk": [
                "score",
                photos,
                "--model",
                model,
                "--out",
                tmp / "r.csv",
                "--ray",
            ],
            "score --ray, bucket (tasks fetch)": [
                "score",
                f"{bucket}/inbox",
                "--model",
                f"{bucket}/models/fmnist",
                "--out",
                f"{bucket}/preds/r.csv",
                "--ray",
            ],
        }
        train = {
            "train, export to local disk": tmp / "exports" / "fmnist",
            "train, export to the bucket": f"{bucket}/exports/fmnist",
        }
        seconds: dict[str, list[float]] = {name: [] for name in [*runs, *train]}
        print(f"{a.files:,} PNGs, {a.repeats} repeats, interleaved; {os.getloadavg()[0]:.2f} load")
        for r in range(a.repeats):
            for name, args in runs.items():
                seconds[name].append(timed(args, env, tmp))
            for name, export_dir in train.items():
                args = ["train", "--sweep", tmp / "sweep.toml", "--limit", "3000",
                        "--workers", "1", "--runs-dir", tmp / "runs" / f"{name[-5:]}-{r}",
                        "--export-dir", export_dir]  # fmt: skip
                seconds[name].append(timed(args, env, tmp))
        med = {name: statistics.median(s) for name, s in seconds.items()}
        for name, s in seconds.items():
            print(f"  {name:36s} median {med[name]:6.2f} s  ({', '.join(f'{x:.2f}' for x in s)})")
        print("ratios (bucket / local disk, same run):")
        pairs = [
            ("score", "score, bucket (download first)", "score, local disk"),
            ("score --ray", "score --ray, bucket (tasks fetch)", "score --ray, local disk"),
            ("train", "train, export to the bucket", "train, export to local disk"),
        ]
        for label, bucket_run, local_run in pairs:
            print(f"  {label:12s} {med[bucket_run] / med[local_run]:.2f}x")
    finally:
        server.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
