"""Run a sweep: one Ray task per variant, at most --workers at once, then export.

Data flows one way: the CLI hands over validated variants; this module connects to Ray,
puts the dataset in the object store once, runs the tasks, gathers their results (and
live events through a small queue actor), writes the run directory, and exports the
variant with the best *validation* accuracy. The test set never chooses anything.
"""

from __future__ import annotations

import datetime as dt
import platform
import secrets
import socket
import time
from pathlib import Path

import ray
from ray.util.queue import Empty, Queue

from fmnist import data, export, report, train
from fmnist.variants import Variant

# What every task process needs in its environment, on any node.
WORKER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


class ConnectError(Exception):
    """The Ray cluster at --address / RAY_ADDRESS could not be reached."""


def connect(address: str | None) -> None:
    """Join the cluster at `address`, or start an embedded Ray bound to loopback with
    no dashboard (nothing listens beyond this machine)."""
    runtime_env = {"env_vars": WORKER_ENV}
    if address:
        _check_reachable(address)
    try:
        if address:
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False,
                     logging_level="ERROR")
        else:
            ray.init(include_dashboard=False, _node_ip_address="127.0.0.1",
                     runtime_env=runtime_env, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConnectError(f"cannot connect to Ray at '{address}': {first}; check "
                           f"--address / RAY_ADDRESS (e.g. 'auto' or 'ray://head:10001')") from None


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast on a host:port nobody listens on; ray.init would retry for minutes."""
    hostport = address.removeprefix("ray://")
    if hostport == "auto" or ":" not in hostport:
        return  # 'auto' is resolved by Ray itself, from this node's running cluster
    host, _, port = hostport.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except (OSError, ValueError) as e:
        raise ConnectError(f"cannot connect to Ray at '{address}': {e}; check --address / "
                           f"RAY_ADDRESS (e.g. 'auto' or 'ray://head:10001')") from None


def plan_resources(workers: int, cpus: float | None, gpus: float | None,
                   cluster: dict, node_cpus: list[float]) -> tuple[float, float]:
    """(cpus, gpus) per task. Defaults: the cluster's CPUs shared among the workers (no
    more than one node has), and a GPU share when the cluster has GPUs."""
    if cpus is None:
        total = cluster.get("CPU", 1.0)
        cpus = min(total / workers, max(node_cpus or [total]))
        cpus = max(0.1, round(cpus, 2))
    if gpus is None:
        total_gpus = cluster.get("GPU", 0.0)
        gpus = round(min(1.0, total_gpus / workers), 2) if total_gpus else 0.0
    return cpus, gpus


@ray.remote(max_retries=3, retry_exceptions=False)
def train_task(variant: Variant, splits: data.Splits, events: Queue, cpus: float):
    """One variant. Failures of the variant itself come back as a failed result (the
    sweep goes on); Ray retries the task only when its process or node is lost."""
    device = train.configure_tensorflow(cpus)
    host = socket.gethostname()

    def emit(ev):
        try:
            events.put_nowait({"variant": variant.name, **ev})
        except Exception:  # a full or lost queue must not fail the training
            pass

    emit({"kind": "start", "host": host, "device": device})
    try:
        result, weights = train.fit_variant(
            variant, splits, device=device,
            on_epoch=lambda epoch, logs: emit({"kind": "epoch", "epoch": epoch, **logs}))
    except Exception as e:  # noqa: BLE001 - any error of one variant is recorded, not raised
        return failed(variant, f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}",
                      host=host, device=device), None
    return result, weights


def failed(variant: Variant, error: str, **extra) -> dict:
    return {"name": variant.name, "config": variant.to_dict(), "status": "failed",
            "error": error, **extra}


def new_run_dir(base: Path | None) -> Path:
    if base is not None:
        return base
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{secrets.token_hex(3)}"


def library_versions() -> dict:
    import keras
    import numpy
    import tensorflow as tf
    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "ray": ray.__version__, "numpy": numpy.__version__}


def run(variants: list[Variant], *, sweep_file: Path, workers: int, address: str | None,
        cpus_per_worker: float | None, gpus_per_worker: float | None, runs_dir: Path | None,
        export_dir: Path, data_dir: Path | None, val_size: int, limit: int | None) -> dict:
    """Returns the results (as written to results.json); `best` is None when every
    variant failed. Raises DataError / ConnectError before any training starts."""
    console = report.Console()
    splits = data.load(data_dir, val_size=val_size, limit=limit)
    run_dir = new_run_dir(runs_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    run_id = run_dir.name
    started = time.monotonic()

    connect(address)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        cpus, gpus = plan_resources(workers, cpus_per_worker, gpus_per_worker,
                                    ray.cluster_resources(),
                                    [n["Resources"].get("CPU", 0) for n in nodes])
        console.print(f"run {run_id}: {len(variants)} variants from {sweep_file}, "
                      f"{workers} at once, {cpus:g} CPU + {gpus:g} GPU each, "
                      f"on {len(nodes)} Ray node(s); run dir {run_dir}")
        results = _execute(variants, splits, workers, cpus, gpus, run_dir,
                           header={"run_id": run_id, "sweep_file": str(sweep_file),
                                   "address": address or "embedded",
                                   "cpus_per_worker": cpus, "gpus_per_worker": gpus,
                                   "train_size": len(splits.y_train),
                                   "val_size": len(splits.y_val),
                                   "test_size": len(splits.y_test)},
                           console=console)
    finally:
        ray.shutdown()

    ok = [r for r in results["variants"] if r["status"] == "ok"]
    best = max(ok, key=lambda r: r["val_accuracy"]) if ok else None
    results["best"] = best["name"] if best else None
    results["wall_seconds"] = round(time.monotonic() - started, 2)
    if best:
        variant = next(v for v in variants if v.name == best["name"])
        meta = {"class_names": list(data.CLASS_NAMES), "run_id": run_id,
                "variant": best["config"], "val_accuracy": best["val_accuracy"],
                "test_accuracy": best["test_accuracy"], "dataset_sha256": splits.sha256,
                "input": {"signature": export.SIGNATURE, "key": export.INPUT_KEY,
                          "dtype": "uint8", "shape": [None, 28, 28],
                          "background": 0},
                "output": {"key": export.OUTPUT_KEY, "shape": [None, 10]},
                "libraries": library_versions(),
                "exported_at": dt.datetime.now(dt.timezone.utc).isoformat()}
        path = export.export(variant, results.pop("_weights")[best["name"]], meta, export_dir)
        results["export"] = str(path)
    results.pop("_weights", None)
    export.write_json_atomic(run_dir / "results.json", results)
    report.plot_curves(results["variants"], run_dir / "val_accuracy.png")

    console.print(report.leaderboard(results["variants"], results["best"]))
    if not best:
        console.print(f"[red]every variant failed[/]; details in {run_dir / 'results.json'}")
        return results
    console.print(f"best: [bold]{best['name']}[/] val {100 * best['val_accuracy']:.2f}% "
                  f"test {100 * best['test_accuracy']:.2f}% -> exported to {results['export']}")
    console.print(f"results: {run_dir / 'results.json'}  ({results['wall_seconds']:.1f}s wall)")
    return results


def _execute(variants, splits, workers, cpus, gpus, run_dir, header, console) -> dict:
    splits_ref = ray.put(splits)  # once; every task reads the same shared-memory copy
    events = Queue(actor_options={"num_cpus": 0})
    options = {"num_cpus": cpus, "num_gpus": gpus}
    if gpus:
        options["max_calls"] = 1  # the worker exits after its task: GPU memory is freed
    results = {**header, "variants": [], "_weights": {}}
    by_name = {}
    best_val = -1.0

    def record(result):
        nonlocal best_val
        by_name[result["name"]] = result
        results["variants"] = [by_name[v.name] for v in variants if v.name in by_name]
        progress.finished(result)
        # Keep what is known on disk after every variant: a killed sweep loses nothing.
        export.write_json_atomic(run_dir / "results.json",
                                 {k: v for k, v in results.items() if k != "_weights"})

    def drain():
        while True:
            try:
                progress.event(events.get_nowait())
            except Empty:
                return

    queued = list(variants)
    running: dict = {}
    with report.Progress([v.name for v in variants], {v.name: v.epochs for v in variants},
                         console) as progress:
        while queued or running:
            while queued and len(running) < workers:
                v = queued.pop(0)
                running[train_task.options(**options).remote(v, splits_ref, events, cpus)] = v
            done, _ = ray.wait(list(running), num_returns=1, timeout=0.25)
            drain()
            for ref in done:
                v = running.pop(ref)
                try:
                    result, weights = ray.get(ref)
                except ray.exceptions.RayError as e:  # retries exhausted: worker/node lost
                    result, weights = failed(v, f"{type(e).__name__}: "
                                                f"{str(e).strip().splitlines()[0]}"), None
                if weights is not None and result["val_accuracy"] > best_val:
                    # Only the leader's weights are kept: memory stays flat with sweep size.
                    best_val = result["val_accuracy"]
                    results["_weights"] = {result["name"]: weights}
                record(result)
        drain()
    return results

