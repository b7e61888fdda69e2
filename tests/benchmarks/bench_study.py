"""What a [[study]] in a bucket costs, and what two nights appending at once do there:
the study's asks and tells on local disk beside the same in a bucket of moto's S3 server,
interleaved in one run (ratios, not rates), then two processes on one bucket study.

    .venv/bin/python tests/benchmarks/bench_study.py [--nights N] [--samples S] [--repeats R]

* nights: N nights of S variants each through fmnist/training/study.py as `train` uses
  it (Asker: open, ask S trials; tell: open, tell each one COMPLETE), a fresh study per
  repeat, on disk and in the bucket in turn; then one more opening of the whole study
  (what the next night's first request costs).
* race: two spawned processes released together, each asking and telling S trials
  N times on one bucket study; the trials the study holds after, whether their numbers
  are distinct, and how many appends lost their number to the other and were retried.

moto's server is a Python process on the same two cores, so the ratios are an upper
bound on what a real store's latency costs here, not a measurement of S3 itself.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

SPACE = {
    "name": "b",
    "startup_trials": 8,
    "hidden": {"choice": [[32], [64], [128]]},
    "learning_rate": {"loguniform": [1e-4, 3e-2]},
    "dropout": {"uniform": [0.0, 0.5]},
}


def _night(runs, samples: int, seed: int) -> None:
    """One night's asks and tells, as `train` makes them."""
    import random

    from fmnist.ops.results import VariantResult
    from fmnist.training import study

    asker = study.Asker(runs)
    asker({**SPACE, "samples": samples})
    rng = random.Random(seed)
    results = [
        VariantResult(name=n, config={}, status="ok", val_accuracy=rng.uniform(0.8, 0.9))
        for n in asker.trials
    ]
    study.tell(runs, asker.trials, results, None)


def nights(base, n: int, samples: int) -> tuple[float, float, int]:
    """Seconds for n nights, seconds to open the study after, and its trials."""
    import optuna

    from fmnist.training import study

    started = time.monotonic()
    for night in range(n):
        study.JOURNALS.clear()  # each night is a new process: it reads the journal anew
        _night(base / f"night{night}", samples, night)
    spent = time.monotonic() - started
    study.JOURNALS.clear()
    started = time.monotonic()
    loaded = optuna.load_study(
        study_name="b", storage=study.journal(study.location(base / "x", "b"))
    )
    count = len(loaded.trials)
    return spent, time.monotonic() - started, count


def _racer(uri: str, who: str, n: int, samples: int, barrier, out) -> None:
    import optuna

    from fmnist.core import storage
    from fmnist.training import study
    from fmnist.training.bucket_journal import BucketJournal

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    backend = BucketJournal(study.location(storage.location(uri, "--runs-dir") / "x", "b"))
    journal = optuna.storages.JournalStorage(backend)
    distributions = {
        "learning_rate": optuna.distributions.FloatDistribution(1e-4, 3e-2, log=True),
        "dropout": optuna.distributions.FloatDistribution(0.0, 0.5),
    }
    barrier.wait()
    started = time.monotonic()
    numbers = []
    for _ in range(n):
        live = optuna.create_study(study_name="b", storage=journal, load_if_exists=True)
        asked = [live.ask(distributions) for _ in range(samples)]
        for trial in asked:
            live.tell(trial.number, trial.params["dropout"])
        numbers += [t.number for t in asked]
    out.put((who, numbers, backend.conflicts, time.monotonic() - started))


def race(uri: str, n: int, samples: int) -> None:
    import optuna

    from fmnist.core import storage
    from fmnist.training import study

    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(2), context.Queue()
    procs = [
        context.Process(target=_racer, args=(uri, who, n, samples, barrier, out))
        for who in ("A", "B")
    ]
    for p in procs:
        p.start()
    answers = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    loaded = optuna.load_study(
        study_name="b",
        storage=study.journal(study.location(storage.location(uri, "--x") / "x", "b")),
    )
    numbers = sorted(n for _, got, _, _ in answers for n in got)
    print(
        f"race: 2 processes x {n} x {samples} trials: the study holds {len(loaded.trials)} "
        f"trials, numbers distinct: {numbers == list(range(2 * n * samples))}, "
        f"complete: {sum(t.state.name == 'COMPLETE' for t in loaded.trials)}"
    )
    for who, got, conflicts, seconds in sorted(answers):
        print(f"  {who}: {len(got)} trials in {seconds:.1f} s, {conflicts} appends retried")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nights", type=int, default=5)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from s3server import S3Server

    with tempfile.TemporaryDirectory(prefix="bench-study-") as tmp:
        server = S3Server(Path(tmp) / "moto.log").start()
        try:
            os.environ.update(server.env)
            from fmnist.core import storage

            bucket = server.new_bucket()
            figures = {"disk": [], "bucket": []}
            for repeat in range(args.repeats):
                for where in ("disk", "bucket") if repeat % 2 == 0 else ("bucket", "disk"):
                    key = uuid.uuid4().hex[:8]
                    base = (
                        Path(tmp) / key / "runs"
                        if where == "disk"
                        else storage.location(f"s3://{bucket}/{key}/runs", "--runs-dir")
                    )
                    spent, opened, count = nights(base, args.nights, args.samples)
                    figures[where].append((spent, opened))
                    print(
                        f"repeat {repeat + 1} {where}: {args.nights} nights x "
                        f"{args.samples} in {spent:.2f} s, open after {opened:.3f} s "
                        f"({count} trials)"
                    )
            for i, what in enumerate(("nights", "open")):
                disk = statistics.median(f[i] for f in figures["disk"])
                remote = statistics.median(f[i] for f in figures["bucket"])
                print(
                    f"{what}: disk {disk:.3f} s, bucket {remote:.3f} s (medians): "
                    f"bucket / disk {remote / disk:.2f}x"
                )
            race(f"s3://{bucket}/race/runs", args.nights, args.samples)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
