"""What `score --ray`'s predictor actor and decoder tasks should ask Ray for.

    .venv/bin/python tests/benchmarks/bench_ray_resources.py [--cpus 1 2] [--files 100]

A script, not a test. For each CPU count it starts a `ray start --head --num-cpus N`
cluster (tests/raycluster.py) pinned to N cores of this machine (at most all of them,
with the driver on the same cores: a pod of N CPUs), then scores the same big photos
(2000x2000 PNGs: decoding dominates) with each (actor, decoder) CPU request in turn,
twice, in alternating order, after one run not counted (a new cluster's workers start), and prints the seconds of decoding and prediction each run
reports and its ratio to the default's in the same round. A request that does not fit
the cluster is refused by score's own check (exit 2, at once); one still running after
--timeout seconds is stopped and shown as such. (0, 1) behaves as the default here (one
decoder a CPU); the difference is where the actor may go (a node without CPUs).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))

from bench_score import quick_model  # noqa: E402

from raycluster import RayStartCluster  # noqa: E402

# (actor, decoder): the default first, then what it was and the alternatives tried.
REQUESTS = [(0.01, 0.99), (0.5, 1.0), (0.25, 0.75), (0.5, 0.5)]
DRIVER = (
    "import sys; from fmnist.scoring import backends as b; "
    "b.ACTOR_CPUS, b.DECODER_CPUS = {0}, {1}; from fmnist.cli.main import main; "
    "sys.argv = ['fmnist-job'] + sys.argv[1:]; sys.exit(main())"
)


def big_photos(directory: Path, n: int) -> Path:
    import numpy as np
    from PIL import Image

    from fmnist.core import data

    _, _, x, _, _ = data.load_arrays()
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        im = Image.fromarray(255 - x[i]).resize((2000, 2000), Image.Resampling.BICUBIC)
        im = Image.fromarray(np.asarray(im.convert("RGB")))
        im.save(directory / f"{i:04d}.png")
    return directory


def one_run(request, photos: Path, model: Path, address: str, timeout: float) -> float | str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PYTHONPATH"] = str(ROOT)
    with tempfile.TemporaryDirectory() as out:
        try:
            proc = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    DRIVER.format(*request),
                    "score",
                    str(photos),
                    "--model",
                    str(model),
                    "--out",
                    f"{out}/p.csv",
                    "--ray",
                    "--address",
                    address,
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return f"still running after {timeout:.0f} s"
    if proc.returncode == 2 and "has no node with a CPU" in proc.stderr:
        return "refused: does not fit"
    m = re.search(r"over ([\d.]+)s of decoding", proc.stdout)
    if proc.returncode != 0 or not m:
        raise SystemExit(f"{request}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    return float(m.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpus", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = quick_model(tmp / "models" / "fmnist")
        photos = big_photos(tmp / "photos", args.files)
        for cpus in args.cpus:
            os.sched_setaffinity(0, cores[: max(1, min(cpus, len(cores)))])
            pinned = sorted(os.sched_getaffinity(0))
            cluster = RayStartCluster(tmp / f"cluster-{cpus}", auth=False, num_cpus=cpus)
            cluster.start(second_node=False)
            seconds: dict = {r: [] for r in REQUESTS}
            try:
                # Not counted: the first run on a new cluster also starts its workers.
                one_run(REQUESTS[0], photos, model, cluster.gcs, args.timeout)
                for rnd in range(2):
                    for request in REQUESTS if rnd == 0 else REQUESTS[::-1]:
                        took = one_run(request, photos, model, cluster.gcs, args.timeout)
                        seconds[request].append(took)
                        state = took if isinstance(took, str) else f"{took:.1f} s"
                        print(f"{cpus} CPU(s) on cores {pinned}, {request}: {state}", flush=True)
            finally:
                cluster.stop()
                os.sched_setaffinity(0, cores)
            base = seconds[REQUESTS[0]]
            print(f"\n{cpus} CPU(s), {args.files} photos, load average {os.getloadavg()[0]:.2f}:")
            for request, runs in seconds.items():
                ratios = [
                    f"{s / b:.2f}x" if isinstance(s, float) and isinstance(b, float) else str(s)
                    for s, b in zip(runs, base)
                ]
                done = [s for s in runs if isinstance(s, float)]
                mean = f"{statistics.mean(done):.1f} s" if done else "never finished"
                print(f"  actor {request[0]}, decoders {request[1]}: {mean}; vs default {ratios}")
            print(flush=True)


if __name__ == "__main__":
    main()
