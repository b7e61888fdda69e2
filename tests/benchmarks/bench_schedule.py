"""How close a sweep's wall time comes to its compute floor, and Ray Tune beside it.

    .venv/bin/python tests/benchmarks/bench_schedule.py             # one round, 6-13 min here
    .venv/bin/python tests/benchmarks/bench_schedule.py --rounds 3
    .venv/bin/python tests/benchmarks/bench_schedule.py --ray-start  # CPU seconds of Ray's start

Each round, in fresh processes: `fmnist-job train --workers 4` on the four-variant sweep
of issue 16 (tests/benchmarks/four.toml: Dense 128, 256, 256-128, 512-256; Adam, batch 32,
5 epochs), right after it Ray Tune training the same four variants the way its docs show
(a function trainable around the tutorial's plain Keras `fit`, one CPU per trial), then
`fmnist-job train --workers 4` on jobs/default.toml.

Printed per run: wall_seconds / floor from results.json, where floor = max(sum of the
variants' train_seconds / CPUs used, the longest), and the same with the process's
wall (start-up and exit included); where the time outside training goes (process start
to the first task's training, the training span, the last training's end to process
exit); each variant's measured time beside its estimate, in start order. Then Tune's
wall against ours on the same four variants. Targets (issue 16): <= 1.15x on the
default sweep, <= 1.30x on the four-variant sweep, Tune >= 3x slower.

Not collected by pytest (no test_ prefix). Prints figures and load averages; asserts
nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FOUR = HERE / "four.toml"
SWEEPS = {"default": ROOT / "jobs/default.toml", "four": FOUR}
TARGETS = {"default": 1.15, "four": 1.30}


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _t(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def ours(name: str, code: Path, label: str = "") -> float:
    from bench_train import _ours

    from fmnist.training import schedule

    load = load_average()
    t0 = time.time()
    try:
        wall, r = _ours(SWEEPS[name], code=code)
    except SystemExit as failure:  # reported; the other runs of the round go on
        print(f"  {name + label:<12} {str(failure)[-400:]}; load {load} -> {load_average()}")
        return float("nan")
    runs = [v for v in r["variants"] if "train_seconds" in v]
    first = min(_t(v["started_at"]) for v in runs)
    last = max(_t(v["finished_at"]) for v in runs)
    # Computed here rather than read, so that code from before results.json had it runs too.
    cpus = schedule.cpus_used(
        len(runs), 2 if "slots" not in r else r["slots"], r["cpus_per_worker"]
    )
    floor = schedule.floor_seconds([v["train_seconds"] for v in runs], cpus)
    print(
        f"  {name + label:<12} wall {r['wall_seconds']:.1f} s (results.json) / floor "
        f"{floor:.1f} s = {r['wall_seconds'] / floor:.2f}x (target <= {TARGETS[name]:.2f}x); "
        f"process wall {wall:.1f} s = {wall / floor:.2f}x; load {load} -> {load_average()}"
    )
    print(
        f"      process start to first training {first - t0:.1f} s, training span "
        f"{last - first:.1f} s = {(last - first) / floor:.2f}x the floor, last training's "
        f"end to exit {t0 + wall - last:.1f} s; {cpus:g} CPUs, "
        f"{r['threads_per_worker']} thread(s) per task"
    )
    if "timeline" in r:
        print(
            "      driver timeline (s from the run's start): "
            + ", ".join(f"{k} {v:.1f}" for k, v in r["timeline"].items())
            + f"; the run started {_t(r['started_at']) - t0:.1f} s after the process"
        )
    for v in sorted(runs, key=lambda v: v["started_at"]):
        epochs = v.get("epoch_seconds") or [float("nan")] * 2
        print(
            f"      {v['name']:<16} start {_t(v['started_at']) - t0:5.1f}  end "
            f"{_t(v['finished_at']) - t0:5.1f}  train {v['train_seconds']:5.1f} s  "
            f"estimate {v.get('estimate_seconds', float('nan')):5.1f} s  first epoch "
            f"{epochs[0]:.1f} s, the others' median {statistics.median(epochs[1:]):.1f} s"
        )
    return wall


TUNE = r"""
import sys, time, tempfile
t0 = time.perf_counter()
sys.path.insert(0, %(root)r); sys.path.insert(0, %(here)r)
import ray
from ray import tune
from fmnist.core import data
from fmnist.training import variants

def trainable(config, splits):
    # The Keras tutorial's code for one variant, as a user would wrap it for Tune.
    from bench_train import plain_fit
    v = next(v for v in variants.load(%(four)r) if v.name == config["name"])
    seconds, acc = plain_fit(v, splits.x_train, splits.y_train, splits.x_test, splits.y_test)
    tune.report({"test_accuracy": acc, "fit_seconds": seconds})

ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
splits = data.load()
names = [v.name for v in variants.load(%(four)r)]
with tempfile.TemporaryDirectory() as tmp:
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, splits=splits), {"cpu": 1}),
        param_space={"name": tune.grid_search(names)},
        run_config=tune.RunConfig(storage_path=tmp, verbose=0))
    grid = tuner.fit()
    for res in grid:
        print(res.config["name"], round(res.metrics["fit_seconds"], 1),
              round(res.metrics["test_accuracy"], 4))
ray.shutdown()
print(f"in-process {time.perf_counter() - t0:.1f}")
"""


def ray_tune() -> float:
    load = load_average()
    code = TUNE % {"root": str(ROOT), "here": str(HERE), "four": str(FOUR)}
    t = time.perf_counter()
    # Tune's trial processes find bench_train through the environment they inherit.
    path = os.pathsep.join([str(ROOT), str(HERE), os.environ.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "RAY_AIR_NEW_OUTPUT": "0", "PYTHONPATH": path},
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        print(f"  tune     failed after {wall:.1f} s:\n{proc.stderr[-3000:]}")
        return float("nan")
    print(
        f"  tune     process wall {wall:.1f} s; load {load} -> {load_average()}; per "
        f"trial (fit seconds, test accuracy): "
        + "; ".join(line for line in proc.stdout.splitlines() if line.strip())
    )
    return wall


RAY_START = r"""
import os, sys, time
sys.path.insert(0, %(root)r)
t = time.perf_counter()
from fmnist.training import sweep
sweep.connect(None)  # the embedded Ray exactly as `fmnist-job train` starts it
print(f"connect {time.perf_counter() - t:.1f}", flush=True)
time.sleep(%(settle)s)  # Ray's processes go on starting after ray.init returns
tick, me, seen = os.sysconf("SC_CLK_TCK"), os.getpid(), {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = open(f"/proc/{pid}/stat").read()
        cmd = open(f"/proc/{pid}/cmdline").read().split("\0")
    except OSError:
        continue
    fields = stat[stat.rindex(")") + 2:].split()
    seen[int(pid)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick, cmd)
ours, grew = {me}, True
while grew:  # every descendant of this process
    new = {p for p, (parent, _, _) in seen.items() if parent in ours} - ours
    ours |= new
    grew = bool(new)
for pid in sorted(ours - {me}, key=lambda p: -seen[p][1]):
    _, cpu, cmd = seen[pid]
    name = cmd[0] if cmd[0].startswith("ray::") else " ".join(
        os.path.basename(c) for c in cmd[:3] if not c.startswith("-"))
    print(f"{cpu:.2f} {name[:60]}")
print(f"{sum(os.times()[:2]):.2f} driver")
"""


def ray_start(settle: float = 10.0) -> None:
    """CPU seconds Ray's own processes take to start: a figure that the machine's load
    does not inflate, unlike wall seconds."""
    load = load_average()
    out = subprocess.run(
        [sys.executable, "-c", RAY_START % {"root": str(ROOT), "settle": settle}],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    rows = [line.split(" ", 1) for line in out[1:] if line.strip()]
    total = sum(float(cpu) for cpu, _ in rows)
    print(
        f"  ray start: {out[0]} s wall; CPU seconds in the first {settle:g} s: "
        f"{total:.1f} in all, "
        + ", ".join(f"{name} {float(cpu):.1f}" for cpu, name in rows)
        + f"; load {load} -> {load_average()}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument(
        "--no-tune",
        action="store_true",
        help="without Ray Tune (which runs after the four-variant sweep)",
    )
    p.add_argument("--sweeps", nargs="+", choices=sorted(SWEEPS), default=["four", "default"])
    p.add_argument(
        "--ray-start",
        action="store_true",
        help="only the CPU seconds of the embedded Ray's start, per process",
    )
    p.add_argument(
        "--before",
        type=Path,
        metavar="CHECKOUT",
        help="also run this checkout's fmnist before ours, each round (e.g. "
        "`git archive REV | tar -x -C DIR`): a before/after in one run",
    )
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))
    if args.ray_start:
        return ray_start()
    for i in range(1, args.rounds + 1):
        print(f"round {i} of {args.rounds}, {time.strftime('%H:%M:%S')}", flush=True)
        for name in args.sweeps:
            if args.before:
                ours(name, args.before, " before")
            wall = ours(name, ROOT)
            if name == "four" and not args.no_tune:  # Tune right beside the same sweep
                print(
                    f"  Ray Tune / fmnist-job on the four variants: "
                    f"{ray_tune() / wall:.2f}x (target >= 3x)"
                )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
