"""Where a sweep task's CPU-seconds go (issue 27, successive halving's fixed cost per task).

    .venv/bin/python tests/benchmarks/bench_task_cost.py
    .venv/bin/python tests/benchmarks/bench_task_cost.py --limit 60000 --hidden 512 256
    .venv/bin/python tests/benchmarks/bench_task_cost.py --no-jit     # or --no-grappler

Runs, in this one process on one TensorFlow thread (what a task on one CPU gets), the
tasks a Ray worker of `bench_search.py` (a) runs one after another: a first rung (1 epoch)
of variant A in a fresh process (TensorFlow not yet imported), a first rung of B (the
worker reused), A promoted to 3 epochs (restored from its checkpoint), A to 9 (its last
rung: evaluated). Each goes through fit.fit_variant with its checkpoint and TensorBoard
directories, as tasks.py calls it; the phases are timed with time.process_time (this
process's CPU, all threads) by wrapping the functions fit_variant calls and by callbacks
at both ends of its callback list. Prints a table of CPU-seconds per phase and task.

The machine is shared: read the shares within one run, not the absolute seconds.
Not collected by pytest; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

cpu = time.process_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=20000)
    parser.add_argument("--hidden", type=int, nargs="+", default=[128])
    parser.add_argument("--no-jit", action="store_true", help="train without XLA")
    parser.add_argument(
        "--no-grappler", action="store_true", help="TensorFlow's graph optimizer off"
    )
    args = parser.parse_args()

    t0 = cpu()
    from fmnist.core import data, runtime

    splits = data.load(None, val_size=max(100, args.limit // 10), limit=args.limit)
    load_cpu = cpu() - t0
    t0 = cpu()
    runtime.skip_optional_imports()
    runtime.configure_tensorflow(1.0, None)  # imports TensorFlow: a worker's first task
    import_cpu = cpu() - t0
    if args.no_grappler:
        import tensorflow as tf

        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})

    import keras

    from fmnist.training import fit, variants
    from fmnist.training import model as model_mod

    phases: dict[str, float] = defaultdict(float)
    marks: dict[str, float] = {}

    def timed(module, name, phase):
        inner = getattr(module, name)

        def wrapper(*a, **k):
            t = cpu()
            try:
                return inner(*a, **k)
            finally:
                phases[phase] += cpu() - t

        setattr(module, name, wrapper)

    timed(model_mod, "training_dataset", "tf.data pipeline")
    timed(model_mod, "build", "model build")
    timed(model_mod, "compile_for_training", "model.compile")
    timed(fit, "_evaluate", "final evaluation (val, test, predict)")
    timed(fit, "EpochLog", "epoch log (history.json)")

    class First(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            marks["train_begin"] = cpu()

        def on_epoch_begin(self, epoch, logs=None):
            marks["epoch_begin"] = cpu()

        def on_train_batch_begin(self, batch, logs=None):
            marks["batch"] = cpu()

        def on_train_batch_end(self, batch, logs=None):
            marks.setdefault("epochs_done", 0)
            key = "first train step (trace, XLA compile, run)" if not marks.get("stepped") else ""
            phases[key or "train steps"] += cpu() - marks["batch"]
            marks["stepped"] = True

        def on_test_begin(self, logs=None):
            marks["test"] = cpu()

        def on_test_end(self, logs=None):
            key = "first validation (trace, run)" if not marks.get("tested") else "validation"
            phases[key] += cpu() - marks["test"]
            marks["tested"] = True

        def on_epoch_end(self, epoch, logs=None):
            marks["epoch_end"] = cpu()

    class Last(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            phases["checkpoint restore, callbacks' start"] += cpu() - marks["train_begin"]

        def on_epoch_end(self, epoch, logs=None):
            phases["epoch end: log, checkpoint, TensorBoard"] += cpu() - marks["epoch_end"]

    original = fit._callbacks

    def callbacks(*a, **k):
        return [First(), *original(*a, **k), Last()]

    fit._callbacks = callbacks

    def variant(name: str, seed: int):
        return variants.from_dict(
            {
                "name": name,
                "hidden": args.hidden,
                "batch_size": 128,
                "epochs": 9,
                "dropout": 0.2,
                "seed": seed,
            },
            "bench",
        )

    a, b = variant("a", 1), variant("b", 2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, v, until in [
            ("A rung 1 (fresh)", a, 1),
            ("B rung 1 (reused)", b, 1),
            ("A to 3 (promoted)", a, 3),
            ("A to 9 (last)", a, 9),
        ]:
            phases.clear()
            marks.clear()
            start = cpu()
            fitted = fit.fit_variant(
                v,
                splits,
                checkpoint_dir=f"{tmp}/checkpoints/{v.name}",
                tensorboard_dir=f"{tmp}/tensorboard/{v.name}",
                until_epoch=until,
                jit=not args.no_jit,
            )
            total = cpu() - start
            phases["other (fit's own, Keras's set-up)"] = total - sum(phases.values())
            trained = fitted.result.epochs_run - fitted.result.resumed_from_epoch
            rows.append((label, trained, total, dict(phases)))

    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; 2 shared cores")
    print(f"driver's data load (not in a task): {load_cpu:.2f} CPU-s")
    print(f"import TensorFlow, configure (a worker's first task only): {import_cpu:.2f} CPU-s")
    names = sorted({p for *_, ph in rows for p in ph}, key=lambda p: -rows[0][3].get(p, 0))
    print(f"{'CPU-s':44s}" + "".join(f"{r[0]:>20s}" for r in rows))
    for p in names:
        print(f"{p[:44]:44s}" + "".join(f"{r[3].get(p, 0.0):20.2f}" for r in rows))
    print(f"{'total':44s}" + "".join(f"{r[2]:20.2f}" for r in rows))
    print(f"{'epochs trained':44s}" + "".join(f"{r[1]:20d}" for r in rows))


if __name__ == "__main__":
    main()
