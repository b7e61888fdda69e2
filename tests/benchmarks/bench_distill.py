"""Distillation, measured: `jobs/distill.toml` run with shifted seeds, one run after another.

    .venv/bin/python tests/benchmarks/bench_distill.py [--shifts 0 10 20] [--workers 4]
        [--sweep jobs/distill.toml] [--out .bench/distill]

A script, not a test (pytest does not collect it). Each run is a real `fmnist-job train`
of a copy of the sweep with every `seed = N` line shifted by the run's shift (the
teacher's too). From each run's results.json and weights it prints, and appends to
OUT/summary.json as soon as the run ends (a run cut short loses only itself):

* test accuracy of the teacher, of the variants trained alone (not students: the same
  recipe without distillation) and of the distilled students, and of the export;
* McNemar's paired test of each distilled student against the alone variant of the
  same shape (`hidden`), on the 10,000 test images: the images only one of the two gets
  right (b: only distilled, c: only alone) and the exact two-sided binomial p-value;
* the wall time (the load average is printed: on a shared machine it is no speed figure).

A shift whose run directory exists (an interrupted run) is resumed with `--resume`: its
finished variants are kept, and its wall time is the resumed part's.

At the end: mean and min over the runs, and McNemar's test on the runs pooled.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
FMNIST_JOB = Path(sys.executable).with_name("fmnist-job")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def mcnemar(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value: b and c are the discordant pairs, each as likely
    as the other under the null (a binomial with p = 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def shifted(text: str, shift: int) -> str:
    """The sweep with every `seed = N` line's N raised by `shift`."""
    out, n = re.subn(
        r"^(\s*seed\s*=\s*)(\d+)",
        lambda m: f"{m.group(1)}{int(m.group(2)) + shift}",
        text,
        flags=re.M,
    )
    if not n:
        raise SystemExit("the sweep has no `seed = N` line to shift")
    return out


def test_predictions(run_dir: Path, config: dict, x_test) -> np.ndarray:
    from fmnist.training import model, variants
    from fmnist.training.rundir import RunDir

    variant = variants.from_dict(config, "results.json")
    net = model.build(variant, jit=False)
    net.set_weights(RunDir(run_dir).load_weights(variant.name))
    return net.predict(x_test, batch_size=1000, verbose=0).argmax(axis=1)


def one_run(sweep: Path, shift: int, workers: int, out: Path) -> dict:
    from fmnist.core import data

    here = out / f"shift-{shift}"
    here.mkdir(parents=True, exist_ok=True)
    copy = here / "sweep.toml"
    copy.write_text(shifted(sweep.read_text(), shift))
    run_dir, models = here / "run", here / "models"
    # An interrupted run of this shift is resumed: its finished variants are kept.
    resumed = (run_dir / "results.json").exists()
    where = (
        ["--resume", str(run_dir)]
        if resumed
        else ["--sweep", str(copy), "--runs-dir", str(run_dir)]
    )
    started = time.monotonic()
    print(f"shift +{shift}: {'resuming' if resumed else 'training'} ({load()})", flush=True)
    with open(here / "train.log", "a") as log:
        code = subprocess.call(
            [
                str(FMNIST_JOB),
                "train",
                *where,
                "--workers",
                str(workers),
                "--export-dir",
                str(models),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wall = time.monotonic() - started
    if code != 0:
        raise SystemExit(f"shift +{shift}: train exited {code}; see {here / 'train.log'}")
    results = json.loads((run_dir / "results.json").read_text())
    rows = {r["name"]: r for r in results["variants"] if r["status"] == "ok"}
    x_test, y_test = data.load_arrays()[2:4]
    record = {
        "shift": shift,
        "wall_seconds": round(wall, 1),
        "resumed": resumed,
        "load_after": load(),
        "export": results["best"],
        "export_test": results["exported_model_test"]["accuracy"],
        "teacher": {},
        "alone": {},
        "distilled": {},
        "mcnemar": [],
    }
    correct = {}
    for name, r in rows.items():
        kind = (
            "teacher"
            if r["config"].get("conv")
            else "distilled"
            if r["config"].get("teacher")
            else "alone"
        )
        record[kind][name] = {"val": r["val_accuracy"], "test": r["test_accuracy"]}
        if kind != "teacher":
            correct[name] = test_predictions(run_dir, r["config"], x_test) == y_test
    for student in record["distilled"]:
        shape = rows[student]["config"]["hidden"]
        for alone in record["alone"]:
            if rows[alone]["config"]["hidden"] != shape:
                continue
            b = int((correct[student] & ~correct[alone]).sum())
            c = int((~correct[student] & correct[alone]).sum())
            record["mcnemar"].append(
                {"distilled": student, "alone": alone, "b": b, "c": c, "p": mcnemar(b, c)}
            )
    return record


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def report(records: list[dict]) -> None:
    for r in records:
        print(
            f"shift +{r['shift']}: {r['wall_seconds']:.0f} s wall"
            f"{' (resumed)' if r.get('resumed') else ''} ({r['load_after']}); "
            f"export {r['export']} test {pct(r['export_test'])}%"
        )
        for kind in ("teacher", "alone", "distilled"):
            for name, acc in r[kind].items():
                print(f"  {kind:9} {name:28} val {pct(acc['val'])}  test {pct(acc['test'])}")
        for m in r["mcnemar"]:
            print(
                f"  McNemar {m['distilled']} vs {m['alone']}: only distilled right {m['b']}, "
                f"only alone right {m['c']}, p = {m['p']:.3g}"
            )
    print(f"\nover {len(records)} run(s), test accuracy % (mean / min):")

    def summary(label, values):
        if values:
            print(f"  {label:22} {pct(float(np.mean(values)))} / {pct(min(values))}")

    summary("teacher", [a["test"] for r in records for a in r["teacher"].values()])
    summary("alone", [a["test"] for r in records for a in r["alone"].values()])
    summary("distilled", [a["test"] for r in records for a in r["distilled"].values()])
    summary("export", [r["export_test"] for r in records])
    b = sum(m["b"] for r in records for m in r["mcnemar"])
    c = sum(m["c"] for r in records for m in r["mcnemar"])
    if b + c:
        print(
            f"  McNemar, runs pooled: only distilled right {b}, only alone right {c}, "
            f"p = {mcnemar(b, c):.3g}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sweep", type=Path, default=ROOT / "jobs" / "distill.toml")
    p.add_argument("--shifts", type=int, nargs="+", default=[0, 10, 20])
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--out", type=Path, default=ROOT / ".bench" / "distill")
    p.add_argument("--report", action="store_true", help="only print OUT/summary.json")
    args = p.parse_args()
    summary = args.out / "summary.json"
    records = json.loads(summary.read_text()) if summary.exists() else []
    if not args.report:
        for shift in args.shifts:
            records = [r for r in records if r["shift"] != shift]
            records.append(one_run(args.sweep, shift, args.workers, args.out))
            summary.write_text(json.dumps(records, indent=1))
            report([records[-1]])
    report(records)


if __name__ == "__main__":
    main()
