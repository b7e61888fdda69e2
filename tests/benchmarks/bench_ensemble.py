"""What an ensemble gained in a finished run, against how much its members disagree.

    .venv/bin/python tests/benchmarks/bench_ensemble.py RUN_DIR          # validation only
    .venv/bin/python tests/benchmarks/bench_ensemble.py RUN_DIR --test   # and the test set

Reads a run directory of `fmnist-job train` (results.json and weights/<variant>.val.npy,
the validation probabilities the ensemble selection used) and prints:

* each variant's validation (and test) accuracy;
* for every pair of variants: how often their predicted classes differ on validation
  (disagreement) and what the plain mean of the two gains over the better of the two,
  on validation (and test): the measure of diversity that pays;
* the plain mean of all variants, and the ensemble the run selected (weights, its
  validation accuracy, the exported model's test accuracy) against the best single
  variant by validation, the one a run without --ensemble exports.

With --test, each variant is rebuilt from weights/<variant>.npz and predicts the test
set.
Not collected by pytest; prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == y).mean())


def test_probabilities(run: Path, results: dict, names: list[str], splits) -> dict:
    from fmnist.core import runtime

    runtime.skip_optional_imports()
    import tensorflow as tf

    from fmnist.training import model, sweep, variants

    configs = {r["name"]: r["config"] for r in results["variants"]}
    out = {}
    for name in names:
        variant = variants.from_dict(configs[name], f"{run / 'results.json'}: {name}")
        net = model.build(variant, jit=False)
        net.set_weights(sweep.RunDir(run).load_weights(name))
        out[name] = tf.nn.softmax(net.predict(splits.x_test, batch_size=1000, verbose=0)).numpy()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument(
        "--test",
        action="store_true",
        help="also rebuild the variants and measure the pairs on the test set (imports TensorFlow)",
    )
    args = p.parse_args()
    from fmnist.core import data

    results = json.loads((args.run / "results.json").read_text())
    ok = {r["name"]: r for r in results["variants"] if r["status"] == "ok"}
    val = {
        n: np.load(args.run / "weights" / f"{n}.val.npy")
        for n in ok
        if (args.run / "weights" / f"{n}.val.npy").exists()
    }
    names = sorted(val, key=lambda n: -ok[n]["val_accuracy"])
    s = results["settings"]
    splits = data.load(s.get("data_dir"), val_size=results["val_size"], limit=s.get("limit"))
    test = test_probabilities(args.run, results, names, splits) if args.test else {}
    y_val, y_test = splits.y_val, splits.y_test

    print(f"run {results['run_id']} ({results.get('sweep_file')}): {len(names)} variants")
    print(f"{'variant':<26} {'val %':>7} {'test %':>7}")
    for n in names:
        print(f"{n:<26} {100 * accuracy(val[n], y_val):7.2f} {100 * ok[n]['test_accuracy']:7.2f}")

    print("\npairs, by disagreement on validation (plain mean of the two vs the better one):")
    rows = []
    for a, b in itertools.combinations(names, 2):
        disagree = float((val[a].argmax(1) != val[b].argmax(1)).mean())
        gain_val = accuracy((val[a] + val[b]) / 2, y_val) - max(
            accuracy(val[a], y_val), accuracy(val[b], y_val)
        )
        gain_test = (
            (
                accuracy((test[a] + test[b]) / 2, y_test)
                - max(accuracy(test[a], y_test), accuracy(test[b], y_test))
            )
            if test
            else None
        )
        rows.append((disagree, a, b, gain_val, gain_test))
    for disagree, a, b, gain_val, gain_test in sorted(rows, reverse=True):
        print(
            f"  {a} + {b}: disagree {100 * disagree:.2f}%, gain val {100 * gain_val:+.2f}"
            + (f", test {100 * gain_test:+.2f}" if gain_test is not None else "")
        )
    if len(rows) > 2:
        d, gv = np.array([r[0] for r in rows]), np.array([r[3] for r in rows])
        print(
            f"  correlation of disagreement and validation gain over the pairs: "
            f"{np.corrcoef(d, gv)[0, 1]:+.2f}"
        )

    mean_val = accuracy(sum(val.values()) / len(val), y_val)
    line = f"\nplain mean of all {len(val)}: val {100 * mean_val:.2f}%"
    if test:
        line += f", test {100 * accuracy(sum(test.values()) / len(test), y_test):.2f}%"
    print(line)
    best = names[0]
    print(
        f"best single by validation: {best}, val {100 * ok[best]['val_accuracy']:.2f}%, "
        f"test {100 * ok[best]['test_accuracy']:.2f}%"
    )
    chosen = results.get("ensemble")
    if chosen and chosen.get("members"):
        print(
            f"selected ensemble ({chosen['kept_steps']} of {len(chosen['steps'])} steps): "
            + ", ".join(f"{m['name']} {m['weight']:.2f}" for m in chosen["members"])
        )
        print(
            f"  val {100 * chosen['val_accuracy']:.2f}% "
            f"({100 * (chosen['val_accuracy'] - ok[best]['val_accuracy']):+.2f} points), "
            f"exported model's test {100 * chosen['test_accuracy']:.2f}% "
            f"({100 * (chosen['test_accuracy'] - ok[best]['test_accuracy']):+.2f} points)"
        )


if __name__ == "__main__":
    main()
