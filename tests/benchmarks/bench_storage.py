"""What a bucket costs: `score` and `train` against moto's S3 server on loopback, beside
the same runs on local disk, interleaved in one run (ratios, not rates: speed drifts from
day to day).

    .venv/bin/python tests/benchmarks/bench_storage.py [--files N] [--repeats R]

* score: N test images as 28x28 PNGs, from a local directory with a local model and
  output, against the same files, model and output in the bucket (the decoders fetch
  the photos chunk by chunk), each with local decoders and with --ray on an embedded Ray;
* train: a one-variant sweep (2 epochs, 3,000 images) with its run directory and export
  on local disk, against both in the bucket (results, weights, a checkpoint committed
  every epoch, the export's claim and upload, the gate's reads).

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

SWEEP = '[[variant]]\nname = "tiny"\nhidden = [64]\nepochs = 2\n'


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
            "score, bucket": [
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
            "score --ray, bucket": [
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
            "train, local disk": tmp,
            "train, bucket": f"{bucket}",
        }
        seconds: dict[str, list[float]] = {name: [] for name in [*runs, *train]}
        print(f"{a.files:,} PNGs, {a.repeats} repeats, interleaved; {os.getloadavg()[0]:.2f} load")
        for r in range(a.repeats):
            for name, args in runs.items():
                seconds[name].append(timed(args, env, tmp))
            for name, where in train.items():
                args = ["train", "--sweep", tmp / "sweep.toml", "--limit", "3000",
                        "--workers", "1", "--runs-dir", f"{where}/runs/{r}",
                        "--export-dir", f"{where}/exports/fmnist"]  # fmt: skip
                seconds[name].append(timed(args, env, tmp))
        med = {name: statistics.median(s) for name, s in seconds.items()}
        for name, s in seconds.items():
            print(f"  {name:36s} median {med[name]:6.2f} s  ({', '.join(f'{x:.2f}' for x in s)})")
        print("ratios (bucket / local disk, same run):")
        pairs = [
            ("score", "score, bucket", "score, local disk"),
            ("score --ray", "score --ray, bucket", "score --ray, local disk"),
            ("train", "train, bucket", "train, local disk"),
        ]
        for label, bucket_run, local_run in pairs:
            print(f"  {label:12s} {med[bucket_run] / med[local_run]:.2f}x")
    finally:
        server.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
