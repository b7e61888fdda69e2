"""More search per night (issue 27): successive halving against training everything, the
persistent study against independent random nights, and Ray Tune's ASHA beside ours.

    .venv/bin/python tests/benchmarks/bench_search.py                 # all three, 3 repeats
    .venv/bin/python tests/benchmarks/bench_search.py --parts a c --repeats 1
    .venv/bin/python tests/benchmarks/bench_search.py --parts a --repeats 1 --limit 60000

(a) On a 32-sample [[random]] space (SPACE below; sample_seed = the repeat), in fresh
    processes: `fmnist-job train --workers 2 --limit 20000` with `[search] scheduler =
    "asha"` (reduction factor 3, rungs at 1, 3 and 9 epochs), then the same 32 variants
    each trained to 9 epochs. Printed: the best validation accuracy each reaches (of the
    variants that finished: what would be exported) and the CPU-seconds each spends (the
    sum of the tasks' cpu_seconds in results.json: time.process_time inside each task,
    all its threads; Ray's and the export's processes are not counted). Target: within
    0.2 points at <= 40% of the CPU-seconds.
(b) Five "nights" of 8 variants (2 epochs, --limit 10000), each night asking the
    persistent study (fmnist/training/study.py: TPE, 8 random startup trials, its journal
    in a temporary folder) and telling it the results, against five independent
    [[random]] nights (sample_seed = night). Printed: the best validation accuracy known
    after each night (the best of all nights so far), and each night's own best. The
    variants are trained in this process with fit.fit_variant on one TensorFlow thread
    (what a task runs), not through `train`: 30 runs' Ray start and export would take
    most of the budget. Target: the study ahead after night 3.
(c) Ray Tune's ASHAScheduler (grace period 1, max_t 9, reduction factor 3) on the same
    32 configurations and data, two trials at once, after (a) in each repeat: wall time,
    best validation accuracy at 9 epochs, CPU-seconds (each trial's process_time). The
    trainable builds and fits the very model `train` does (fmnist/training/model.py),
    reporting after every epoch.

The machine is shared: compare the CPU-seconds of one repeat, not wall times across
runs. Not collected by pytest; prints figures and load averages, asserts nothing;
writes them to .bench/search.json too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

LIMIT_A, LIMIT_B = 20000, 10000
SPACE = """
[defaults]
batch_size = 128
epochs = 9

[[random]]
name = "r"
samples = 32
sample_seed = {seed}
hidden = {{choice = [[32], [64], [128], [256, 128]]}}
learning_rate = {{loguniform = [1e-4, 3e-2]}}
dropout = {{uniform = [0.0, 0.5]}}
optimizer = {{choice = ["adam", "sgd"]}}
"""
ASHA = '\n[search]\nscheduler = "asha"\nreduction_factor = 3\nmin_epochs = 1\n'
NIGHT = {
    "name": "n",
    "samples": 8,
    "batch_size": 128,
    "epochs": 2,
    "hidden": {"choice": [[32], [64], [128], [256, 128]]},
    "learning_rate": {"loguniform": [1e-4, 3e-2]},
    "dropout": {"uniform": [0.0, 0.5]},
    "optimizer": {"choice": ["adam", "sgd"]},
}


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def train(sweep_text: str, tmp: Path, label: str) -> dict:
    """`fmnist-job train` in a fresh process: its results.json and the process's wall."""
    sweep = tmp / f"{label}.toml"
    sweep.write_text(sweep_text)
    load, t = load_average(), time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "fmnist.cli", "train", "--workers", "2", "--limit", str(LIMIT_A)]
        + ["--sweep", str(sweep), "--runs-dir", str(tmp / label), "--export-dir", str(tmp / "m")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"fmnist-job train failed:\n{proc.stderr[-3000:]}")
    r = json.loads((tmp / label / "results.json").read_text())
    best = next(v for v in r["variants"] if v["name"] == r["best"])
    figures = {
        "best_val": best["val_accuracy"],
        "cpu_seconds": round(sum(v.get("cpu_seconds") or 0 for v in r["variants"]), 1),
        "train_seconds": round(sum(v.get("train_seconds") or 0 for v in r["variants"]), 1),
        "wall": round(wall, 1),
        "finished": sum(v["status"] == "ok" for v in r["variants"]),
        "epochs": sum(v.get("epochs_run") or 0 for v in r["variants"]),
        # Each task opens the variant's epoch log once: attempts add up to the tasks.
        "tasks": sum(v.get("attempts") or 0 for v in r["variants"]),
    }
    print(
        f"  {label:5s} best val {100 * figures['best_val']:.2f}%  CPU {figures['cpu_seconds']:.0f} s"
        f"  epochs {figures['epochs']}  tasks {figures['tasks']}  finished {figures['finished']}"
        f"  wall {wall:.0f} s"
        f"  (load {load} -> {load_average()})",
        flush=True,
    )
    return figures


TUNE = r"""
import json, sys, tempfile, time
sys.path.insert(0, %(root)r)
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from fmnist.core import data
from fmnist.training import variants

def trainable(config, splits):
    import keras
    from fmnist.core import runtime
    from fmnist.training import model as M
    c0 = time.process_time()
    runtime.configure_tensorflow(1.0, None)
    v = variants.from_dict(config["variant"], "tune")
    keras.utils.set_random_seed(v.seed)
    ds, steps, k = M.training_dataset(splits.x_train, splits.y_train, v, M.DEFAULT_CHUNK)
    net = M.build(v)
    M.compile_for_training(net, v, steps * k)

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            tune.report({"val_accuracy": float(logs["val_accuracy"]),
                         "cpu": time.process_time() - c0})

    net.fit(ds, epochs=v.epochs, steps_per_epoch=steps,
            validation_data=(splits.x_val, splits.y_val), validation_batch_size=1000,
            callbacks=[Report()], verbose=0)

t0 = time.perf_counter()
configs = [v.to_dict() for v in variants.parse(%(space)r)]
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
splits = data.load(None, val_size=%(val)d, limit=%(limit)d)
with tempfile.TemporaryDirectory() as tmp:
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, splits=splits), {"cpu": 1}),
        param_space={"variant": tune.grid_search(configs)},
        tune_config=tune.TuneConfig(scheduler=ASHAScheduler(
            metric="val_accuracy", mode="max", time_attr="training_iteration",
            max_t=9, grace_period=1, reduction_factor=3)),
        run_config=tune.RunConfig(storage_path=tmp, verbose=0))
    grid = tuner.fit()
    rows = [(r.metrics.get("training_iteration", 0), r.metrics.get("val_accuracy"),
             r.metrics.get("cpu", 0.0)) for r in grid]
ray.shutdown()
print(json.dumps({"rows": rows, "in_process": time.perf_counter() - t0}))
"""


def ray_tune(seed: int) -> dict:
    code = TUNE % {
        "root": str(ROOT),
        "space": SPACE.format(seed=seed),
        "val": max(100, LIMIT_A // 10),  # what train --limit uses
        "limit": LIMIT_A,
    }
    load, t = load_average(), time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "RAY_AIR_NEW_OUTPUT": "0", "PYTHONPATH": str(ROOT)},
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        print(f"  tune  failed after {wall:.0f} s:\n{proc.stderr[-3000:]}", flush=True)
        return {}
    rows = json.loads(proc.stdout.strip().splitlines()[-1])["rows"]
    full = [acc for it, acc, _ in rows if it >= 9 and acc is not None]
    figures = {
        "best_val": max(full) if full else None,
        "cpu_seconds": round(sum(cpu for _, _, cpu in rows), 1),
        "epochs": sum(it for it, _, _ in rows),
        "wall": round(wall, 1),
        "finished": len(full),
    }
    best = f"{100 * figures['best_val']:.2f}%" if full else "-"
    print(
        f"  tune  best val {best}  CPU {figures['cpu_seconds']:.0f} s  epochs "
        f"{figures['epochs']}  finished {figures['finished']}  wall {wall:.0f} s"
        f"  (load {load} -> {load_average()})",
        flush=True,
    )
    return figures


def part_a(repeats: int, with_tune: bool) -> list[dict]:
    out = []
    for seed in range(repeats):
        print(f"(a) repeat {seed + 1}/{repeats}, sample_seed {seed}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            space = SPACE.format(seed=seed)
            row = {
                "seed": seed,
                "asha": train(space + ASHA, Path(tmp), "asha"),
                "all": train(space, Path(tmp), "all"),
            }
        if with_tune:
            row["tune"] = ray_tune(seed)
        a, b = row["asha"], row["all"]
        print(
            f"  ASHA - all: {100 * (a['best_val'] - b['best_val']):+.2f} points at "
            f"{100 * a['cpu_seconds'] / b['cpu_seconds']:.0f}% of the CPU-seconds "
            f"(target: within 0.2 points at <= 40%)",
            flush=True,
        )
        out.append(row)
    return out


def part_b(repeats: int, nights: int = 5) -> list[dict]:
    from fmnist.core import data, runtime
    from fmnist.ops.results import VariantResult
    from fmnist.training import fit, spaces, study, variants

    runtime.configure_tensorflow(1.0, None)  # one thread, as a task on one CPU
    splits = data.load(None, val_size=LIMIT_B // 10, limit=LIMIT_B)

    def night_best(pairs) -> tuple[float, list]:
        accs = []
        for name, config in pairs:
            v = variants.from_dict({**config, "name": name}, "bench")
            try:
                accs.append(float(fit.fit_variant(v, splits).result.val_accuracy))
            except Exception:  # noqa: BLE001 - a diverging variant counts as 0
                accs.append(0.0)
        return max(accs), accs

    out = []
    for seed in range(repeats):
        print(f"(b) repeat {seed + 1}/{repeats}", flush=True)
        row = {"seed": seed, "study": [], "random": []}
        with tempfile.TemporaryDirectory() as tmp:
            best = {"study": 0.0, "random": 0.0}
            for night in range(nights):
                t0 = time.perf_counter()
                runs_dir = Path(tmp) / f"night{night}"
                asker = study.Asker(runs_dir)
                table = {**NIGHT, "sample_seed": seed, "startup_trials": 8}
                pairs = asker(table)
                top, accs = night_best(pairs)
                results = [
                    VariantResult(name=n, config={}, status="ok", val_accuracy=a)
                    for (n, _), a in zip(pairs, accs)
                ]
                study.tell(runs_dir, asker.trials, results, None)
                best["study"] = max(best["study"], top)
                row["study"].append({"night_best": top, "best_so_far": best["study"]})
                pairs = spaces.sample({**NIGHT, "sample_seed": 1000 * seed + night})
                top_r, _ = night_best(pairs)
                best["random"] = max(best["random"], top_r)
                row["random"].append({"night_best": top_r, "best_so_far": best["random"]})
                print(
                    f"  night {night + 1}: best so far study {100 * best['study']:.2f}% "
                    f"random {100 * best['random']:.2f}%  (this night: study "
                    f"{100 * top:.2f}%, random {100 * top_r:.2f}%)  "
                    f"{time.perf_counter() - t0:.0f} s, load {load_average()}",
                    flush=True,
                )
        out.append(row)
    return out


def summary(a: list[dict], b: list[dict]) -> None:
    if a:
        print("(a) over the repeats (mean):")
        for arm in ("asha", "all", "tune"):
            rows = [r[arm] for r in a if r.get(arm)]
            if rows:
                best = [r["best_val"] for r in rows if r["best_val"] is not None]
                print(
                    f"  {arm:5s} best val {100 * statistics.mean(best):.2f}%  "
                    f"CPU {statistics.mean(r['cpu_seconds'] for r in rows):.0f} s  "
                    f"wall {statistics.mean(r['wall'] for r in rows):.0f} s"
                )
    if b:
        print("(b) best so far after each night (mean of repeats), study vs random:")
        for night in range(len(b[0]["study"])):
            s = statistics.mean(r["study"][night]["best_so_far"] for r in b)
            q = statistics.mean(r["random"][night]["best_so_far"] for r in b)
            ahead = sum(
                r["study"][night]["best_so_far"] > r["random"][night]["best_so_far"] for r in b
            )
            print(
                f"  night {night + 1}: study {100 * s:.2f}%  random {100 * q:.2f}%  "
                f"(study ahead in {ahead} of {len(b)})"
            )


def main() -> None:
    global LIMIT_A
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", nargs="+", default=["a", "b", "c"], choices=["a", "b", "c"])
    parser.add_argument(
        "--limit", type=int, default=LIMIT_A, help="(a), (c): training images (60000: all)"
    )
    args = parser.parse_args()
    LIMIT_A = args.limit
    print(f"load at start {load_average()}; 2 cores, shared with other work", flush=True)
    a = part_a(args.repeats, "c" in args.parts) if "a" in args.parts else []
    if "c" in args.parts and "a" not in args.parts:
        a = [{"seed": s, "tune": ray_tune(s)} for s in range(args.repeats)]
    b = part_b(args.repeats) if "b" in args.parts else []
    summary([r for r in a if "asha" in r] or a, b)
    out = ROOT / ".bench" / "search.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"a": a, "b": b}, indent=1))
    print(f"figures: {out}")


if __name__ == "__main__":
    main()
