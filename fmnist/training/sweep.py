"""Run a sweep: one Ray task per variant, at most --workers at once, then export.

Data flows one way: the CLI hands over validated variants; this module connects to Ray,
puts the dataset in the object store once, runs the tasks, gathers their results (and
live events through a small queue actor), writes the run directory, and exports the
variant with the best *validation* accuracy (built in one more task: this process never
imports TensorFlow). The test set never chooses anything.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import platform
import secrets
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import ray
from ray.util.queue import Empty, Queue
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from fmnist.core import data, export, runtime
from fmnist.ops import versions
from fmnist.training import ensemble, fit, report, savedmodel, schedule
from fmnist.core.cluster import connect
from fmnist.core.files import atomic_file, write_json_atomic
from fmnist.training.variants import Variant

def task_for(cpus: float, gpus: float):
    """The remote function for one variant's task, and its resource request."""
    return (train_task_gpu if gpus else train_task), {"num_cpus": cpus, "num_gpus": gpus}


def plan_resources(workers: int, cpus: float | None, gpus: float | None,
                   cluster: dict, node_cpus: list[float]) -> tuple[float, float]:
    """(cpus, gpus) per task. Defaults: the cluster's CPUs shared among the workers, but
    at least one CPU (and no more than one node has), and a GPU share when the cluster
    has GPUs.

    At least one CPU because a training task keeps its core busy: tasks sharing a core
    only take turns on it and evict each other's caches. Measured on 2 cores, the
    default sweep with --workers 4: 60.3/62.5/59.6 s with 1 CPU per task (two at a
    time) against 68.2/63.6/61.8 s with half a CPU (all four at once), alternating
    runs. --workers stays the upper bound; --cpus-per-worker 0.5 shares cores."""
    if cpus is None:
        total = cluster.get("CPU", 1.0)
        biggest = max(node_cpus or [total])
        cpus = min(max(1.0, total / workers), biggest)
        cpus = max(0.1, round(cpus, 2))
    if gpus is None:
        total_gpus = cluster.get("GPU", 0.0)
        gpus = round(min(1.0, total_gpus / workers), 2) if total_gpus else 0.0
    return cpus, gpus


def slots(workers: int, cpus: float, gpus: float, cluster: dict) -> int:
    """How many tasks run at once: --workers, or fewer when the cluster's CPUs (or
    GPUs) hold fewer such tasks (as it is now)."""
    n = min(workers, int(cluster.get("CPU", 0) // cpus))  # cpus > 0: the CLI's minimum
    if gpus:
        n = min(n, int(cluster.get("GPU", 0) // gpus))
    return max(1, n)


def at_once(workers: int, cpus: float, gpus: float, cluster: dict) -> str:
    """How many tasks run at once, for the run's first line: '4', or '2 (of --workers
    4)'."""
    n = slots(workers, cpus, gpus, cluster)
    return str(workers) if n >= workers else f"{n} (of --workers {workers})"


def _train_task(variant: Variant, splits: data.Splits, events: Queue, cpus: float,
               checkpoint_dir: str, threads: int | None = None):
    """One variant. Failures of the variant itself come back as a failed result (the
    sweep goes on); Ray retries the task only when its process or node is lost, and the
    retry resumes from the variant's last finished epoch in `checkpoint_dir`."""
    entered = time.monotonic()
    runtime.skip_optional_imports()
    runtime.batch_scheduling()
    device = runtime.configure_tensorflow(cpus, threads)
    # TensorFlow's import, in a new worker process; about 0 in one that trained before.
    setup_seconds = round(time.monotonic() - entered, 2)
    host = socket.gethostname()
    # Containers on one machine share a host name; the Ray node id tells nodes apart.
    node_id = ray.get_runtime_context().get_node_id()

    def emit(ev):
        # Fire and forget. Queue.put_nowait would wait for the actor's reply, and a task
        # blocked in ray.get lends its CPUs back to Ray, which starts a queued task in
        # them: with 1 CPU per task, a third task ran on the two cores here.
        try:
            events.actor.put_nowait.remote({"variant": variant.name, **ev})
        except Exception:  # a lost queue must not fail the training
            pass

    emit({"kind": "start", "host": host, "device": device})
    try:
        # runs/<run>/tensorboard/<variant>/: `tensorboard --logdir runs/` compares the
        # variants of a run and the runs of several nights. (Beside checkpoints/<variant>.)
        tensorboard_dir = str(Path(checkpoint_dir).parents[1] / "tensorboard" / variant.name)
        result, weights = fit.fit_variant(
            variant, splits, device=device, checkpoint_dir=checkpoint_dir,
            tensorboard_dir=tensorboard_dir,
            on_epoch=lambda epoch, logs: emit({"kind": "epoch", "epoch": epoch, **logs}))
    except Exception as e:  # noqa: BLE001 - any error of one variant is recorded, not raised
        return failed(variant, one_line(e), host=host, node_id=node_id, device=device), \
            None, None
    # What TensorFlow runs with, not what was asked: a reused worker process keeps the
    # threads of its first task.
    import tensorflow as tf
    result["threads"] = tf.config.threading.get_intra_op_parallelism_threads()
    val_probs = result.pop("val_probabilities").astype("float32")
    result = insert_after(result, "train_seconds", "setup_seconds", setup_seconds)
    # Beside `host`: where the task ran, read together.
    return insert_after(result, "host", "node_id", node_id), weights, val_probs


def insert_after(result: dict, after: str, key: str, value) -> dict:
    """The result with `key` right after `after` (or at the end without it)."""
    out = {}
    for k, v in result.items():
        out[k] = v
        if k == after:
            out[key] = value
    out.setdefault(key, value)
    return out


# Ray retries a task (3 times) only when its process or node is lost. The GPU flavour's
# worker process exits after each task (max_calls=1, which .options() cannot set), so
# TensorFlow's hold on GPU memory (it never gives memory back) ends with the variant.
train_task = ray.remote(max_retries=3, retry_exceptions=False)(_train_task)
train_task_gpu = ray.remote(max_retries=3, retry_exceptions=False, max_calls=1)(_train_task)


def one_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def failed(variant: Variant, error: str, status: str = "failed", **extra) -> dict:
    return {"name": variant.name, "config": variant.to_dict(), "status": status,
            "error": error, **extra}


def new_run_dir() -> Path:
    """runs/<timestamp>-<random id>: unique, and sorted by start time."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{secrets.token_hex(3)}"


def library_versions() -> dict:
    import keras
    import numpy
    import tensorflow as tf
    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "ray": ray.__version__, "numpy": numpy.__version__}


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; `code` is the exit code (128 + signal)."""

    def __init__(self, signum: int, run_dir: Path | None = None,
                 published: Path | None = None):
        super().__init__(signal.Signals(signum).name)
        self.code = 128 + signum
        self.run_dir = run_dir      # for the resume hint
        self.published = published  # the export, when the signal came after it


class RunDir:
    """The run directory: results.json, per-variant checkpoints and final weights.

    Everything a resumed or inspected sweep needs is here, so it must live on storage
    every Ray node sees (a ReadWriteMany PVC on Kubernetes)."""

    def __init__(self, path: Path):
        self.path = path.resolve()
        self.results = self.path / "results.json"

    def checkpoint(self, name: str) -> str:
        return str(self.path / "checkpoints" / name)

    def save_weights(self, name: str, weights) -> None:
        import numpy as np
        target = self.path / "weights" / f"{name}.npz"
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(target) as f:
            np.savez(f, *weights)

    def load_weights(self, name: str) -> list:
        import numpy as np
        with np.load(self.path / "weights" / f"{name}.npz") as z:
            return [z[f"arr_{i}"] for i in range(len(z.files))]

    def has_weights(self, name: str) -> bool:
        return (self.path / "weights" / f"{name}.npz").exists()

    def save_val_probs(self, name: str, probs) -> None:
        """The variant's validation probabilities, for ensemble selection (and a resume's)."""
        import numpy as np
        target = self.path / "weights" / f"{name}.val.npy"
        with atomic_file(target) as f:
            np.save(f, probs)

    def load_val_probs(self, name: str):
        """None for a variant finished before runs kept them."""
        import numpy as np
        path = self.path / "weights" / f"{name}.val.npy"
        return np.load(path) if path.exists() else None


class ResumeError(Exception):
    """--resume names something that is not a resumable run directory."""


def read_resume_state(run_dir: Path) -> dict:
    """The settings and finished variants of an interrupted run (its results.json)."""
    path = run_dir / "results.json"
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResumeError(f"{path}: not found; --resume takes a run directory that "
                          f"fmnist-job train created") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ResumeError(f"{path}: unreadable ({e}); cannot resume from it") from None
    if "sweep" not in saved:
        raise ResumeError(f"{path}: has no sweep definition; cannot resume from it")
    return saved


def run(variants: list[Variant], *, sweep_file: Path | None, workers: int,
        address: str | None, cpus_per_worker: float | None, gpus_per_worker: float | None,
        runs_dir: Path | None, export_dir: Path, data_dir: Path | None, val_size: int,
        limit: int | None, resume: dict | None = None,
        threads_per_worker: int | None = None, ensemble_size: int = 1,
        gate_tolerance: float = versions.DEFAULT_TOLERANCE) -> dict:
    """Returns the results (as written to results.json); `best` is None when every
    variant failed. Raises DataError / ConnectError before any training starts, and
    Interrupted (after writing what is known) on SIGINT / SIGTERM.

    `resume`: the results.json of an interrupted run in `runs_dir`; its finished
    variants are kept, the others run (from their checkpoints where they have some).
    `ensemble_size`: selection steps for an exported ensemble (1: the single best).

    The winner is exported, then labelled `stable` or `candidate` by the quality gate
    (versions.apply_gate; `gate_tolerance` in accuracy points)."""
    started, started_at = time.monotonic(), fit.utc_now()  # data loading included
    # Seconds from `started` to each step: where the time outside training goes.
    timeline: dict[str, float] = {}

    def mark(step: str) -> None:
        timeline[step] = round(time.monotonic() - started, 2)

    console = report.make_console()
    versions.read_config(export_dir)  # a corrupt models.config fails now, not after training
    data.check_present(data_dir)  # a wrong --data-dir fails now, before Ray starts
    # The data loads (checksums, decompression: hashlib and zlib release the GIL) while
    # ray.init waits for Ray's processes to start.
    loading = concurrent.futures.ThreadPoolExecutor(1, "fmnist-data")
    splits_future = loading.submit(data.load, data_dir, val_size=val_size, limit=limit)
    loading.shutdown(wait=False)
    splits_future.add_done_callback(lambda _: mark("data_loaded"))
    try:
        connect(address)
    except BaseException:
        splits_future.result()  # bad data is named first: it is the first thing to fix
        raise
    mark("ray_ready")
    try:
        splits = splits_future.result()
    except BaseException:
        ray.shutdown()
        raise
    run_dir = RunDir(runs_dir or new_run_dir())
    run_dir.path.mkdir(parents=True, exist_ok=True)
    run_id = run_dir.path.name
    header = {"run_id": run_id, "started_at": started_at, "timeline": timeline,
              "sweep_file": str(sweep_file) if sweep_file else None,
              "sweep": [v.to_dict() for v in variants],
              "settings": {"val_size": val_size, "limit": limit, "ensemble": ensemble_size,
                           "data_dir": str(data_dir) if data_dir else None},
              "dataset_sha256": splits.sha256, "address": address or "embedded",
              "train_size": len(splits.y_train), "val_size": len(splits.y_val),
              "test_size": len(splits.y_test)}
    done = {r["name"]: r for r in (resume or {}).get("variants", [])
            if r["status"] == "ok" and run_dir.has_weights(r["name"])}

    # After ray.init, which installs handlers of its own. The handler only takes note:
    # raising inside Ray's C++ wait corrupts it, so the loop checks between waits.
    stop_signal: list[int] = []

    def note(signum, frame):
        stop_signal.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        cluster = ray.cluster_resources()
        cpus, gpus = plan_resources(workers, cpus_per_worker, gpus_per_worker, cluster,
                                    [n["Resources"].get("CPU", 0) for n in nodes])
        threads = threads_per_worker or runtime.threads_for(cpus)
        header.update(cpus_per_worker=cpus, gpus_per_worker=gpus, threads_per_worker=threads)
        estimates = {v.name: schedule.estimate_seconds(v, len(splits.y_train))
                     for v in variants}
        todo = schedule.longest_first([v for v in variants if v.name not in done], estimates)
        n_slots = slots(workers, cpus, gpus, cluster)
        header.update(slots=n_slots, order=[v.name for v in todo])
        console.print(f"run {run_id}: {len(variants)} variants"
                      + (f" from {sweep_file}" if sweep_file else "")
                      + (f" ({len(done)} already finished, resuming)" if done else "")
                      + f", {at_once(workers, cpus, gpus, cluster)} at once, "
                      f"{cpus:g} CPU + {gpus:g} GPU "
                      f"({threads} TensorFlow thread{'s' * (threads > 1)}) each, "
                      f"on {len(nodes)} Ray node(s); run dir {run_dir.path}")
        splits_ref = ray.put(splits)  # once; every task reads the same shared-memory copy
        mark("data_put")
        baseline = versions.gate_baseline(export_dir)  # what the winner must match
        exporter = EarlyExport(variants, run_dir, splits_ref, cpus, baseline["archive"],
                               on_start=lambda: mark("export_started"))

        def idle(finished: list[dict]) -> None:
            # A core is idle from now on: the plots' library loads there, not at the end.
            report.warm_up()
            # An ensemble's members are known only at the end: nothing to start early.
            best_so_far = best_of(finished)
            if best_so_far and ensemble_size <= 1:
                exporter.start([(best_so_far["name"], 1.0)])

        results = _execute(variants, todo, done, splits_ref, workers, cpus, gpus, threads,
                           run_dir, header, console, stop_signal, estimates,
                           idle=idle, n_slots=n_slots)
        mark("training_done")
        ok = [r for r in results["variants"] if r["status"] == "ok"]
        best = best_of(ok)
        if best:
            members, results["ensemble"] = choose_members(ok, best, run_dir, splits.y_val,
                                                          ensemble_size)
            try:
                built = exporter.result(members, stop_signal)
                mark("export_built")
            except Interrupted as stop:  # every variant finished: a resume only exports
                results["interrupted"] = str(stop)
                write_json_atomic(run_dir.results, results)
                raise
    except BaseException as e:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if isinstance(e, Interrupted):
            e.run_dir = run_dir.path  # for the resume hint
        raise
    finally:
        # Stopping the embedded Ray is a second of waiting for its processes to exit; on
        # an error, the interpreter waits for this thread before it exits.
        closing = threading.Thread(target=ray.shutdown, name="ray-shutdown")
        closing.start()
    # While Ray's processes exit, the curves (they depend on nothing that follows; a
    # plot that cannot be written costs a warning, never the run).
    try:
        report.plot_curves(results["variants"], run_dir.path / "val_accuracy.png")
    except OSError as e:
        console.print(f"[yellow]warning:[/] {run_dir.path / 'val_accuracy.png'} not "
                      f"written: {e}", highlight=False)
    # ray.shutdown puts SIGTERM back to the default action below Python (seen: a SIGTERM
    # after it killed the process, exit -15, our handler notwithstanding), so wait for
    # it and install our handlers again before publishing.
    closing.join()
    mark("ray_closed")
    for sig in previous:
        signal.signal(sig, note)
    # Our handlers stay until the end, so no signal is dropped: one that came after
    # the export task's last check stops the run here, before anything is published;
    # one that comes while publishing (a rename: the version appears whole or not at
    # all) is reported once results.json is complete.
    try:
        if stop_signal:
            results["interrupted"] = signal.Signals(stop_signal[0]).name
            write_json_atomic(run_dir.results, results)
            raise Interrupted(stop_signal[0], run_dir.path)
        results["best"] = best["name"] if best else None
        if best:
            exported = exported_model(results, members, built["predictions"], splits)
            path = export.publish(lambda staging: export.unpack(built["archive"], staging),
                                  export_metadata(exported, run_dir, splits,
                                                  built["libraries"]),
                                  export_dir)
            mark("published")
            results["export"] = str(path)
            results["exported_model_test"] = describe_export(
                built["predictions"], splits, path, run_dir.path)
            results["gate"] = versions.gate(export_dir, int(path.name), built, baseline,
                                            gate_tolerance, run_id)
        mark("export_written")
        # Everything but the wait for Ray's processes to exit (overlapped with the above).
        results["wall_seconds"] = round(time.monotonic() - started, 2)
        results.update(schedule.efficiency(
            [r for r in results["variants"] if r["name"] not in done],
            results["wall_seconds"],
            schedule.cpus_used(len(todo), results["slots"], results["cpus_per_worker"])))
        write_json_atomic(run_dir.results, results)

        console.print(report.leaderboard(results["variants"], results["best"],
                                         results.get("ensemble")))
        if not best:
            console.print(f"[red]every variant failed[/]; details in {run_dir.results}")
        else:
            console.print(f"exported: [bold]{exported['config']['name']}[/] val "
                          f"{100 * exported['val_accuracy']:.2f}% test "
                          f"{100 * exported['test_accuracy']:.2f}% -> {path}")
            # One line, however long: a log line to grep for (rich would wrap it at 80
            # columns).
            console.print(versions.gate_line(results["gate"]), highlight=False,
                          markup=False, soft_wrap=True)
            per_class = results["exported_model_test"]["per_class_accuracy"]
            console.print("exported model, test accuracy per class: " + ", ".join(
                f"{name} {100 * acc:.1f}%" for name, acc in per_class.items()))
            console.print(f"results: {run_dir.results}  ({wall_line(results)})")
        if stop_signal:
            raise Interrupted(stop_signal[0], run_dir.path,
                              published=path if best else None)
        return results
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        closing.join()


def wall_line(results: dict) -> str:
    """'61.8s wall, 1.21x the training floor of 51.1s (2 CPUs)': the run's last figure."""
    text = f"{results['wall_seconds']:.1f}s wall"
    if results.get("floor_seconds"):
        text += (f", {results['wall_over_floor']:.2f}x the training floor of "
                 f"{results['floor_seconds']:.1f}s ({results['cpus_used']:g} CPUs)")
    return text


def choose_members(ok: list[dict], best: dict, run_dir: RunDir, y_val, size: int):
    """([(variant name, weight)], the selection record or None): the single best
    variant, or with `size` > 1 an ensemble chosen on validation predictions
    (fmnist/training/ensemble.py). Variants without saved predictions (finished by an older
    version, before a resume) cannot be members."""
    if size <= 1 or len(ok) < 2:
        return [(best["name"], 1.0)], None
    probs = {r["name"]: run_dir.load_val_probs(r["name"]) for r in ok}
    probs = {n: p for n, p in probs.items() if p is not None and len(p) == len(y_val)}
    if len(probs) < 2:
        return [(best["name"], 1.0)], None
    selection = ensemble.select(probs, y_val, size)
    members = sorted(selection.pop("weights").items(), key=lambda m: (-m[1], m[0]))
    selection["members"] = [{"name": m, "weight": w} for m, w in members]
    selection["size"] = size
    return members, selection


def exported_model(results: dict, members: list[tuple[str, float]], predictions,
                   splits: data.Splits) -> dict:
    """The exported model as a leaderboard row: the best variant's own, or the
    ensemble's (its test accuracy from the exported SavedModel's predictions; fills
    results["ensemble"]["test_accuracy"])."""
    by_name = {r["name"]: r for r in results["variants"]}
    if len(members) == 1:
        return by_name[members[0][0]]
    selection = results["ensemble"]
    selection["test_accuracy"] = float((predictions == splits.y_test).mean())
    return {"name": "ensemble", "val_accuracy": selection["val_accuracy"],
            "test_accuracy": selection["test_accuracy"],
            "config": {"name": "ensemble-" + "+".join(m for m, _ in members),
                       "members": [{"weight": w, **by_name[m]["config"]}
                                   for m, w in members]}}


def _export_task(members: list[tuple], splits: data.Splits,
                 stable_archive: bytes | None = None) -> dict:
    """Build the serving SavedModel from the members' weights ([(variant, weights,
    share)]: one member, or an ensemble), load it back from disk and score the test set
    with it: the confusion matrix then describes exactly the files that ship, not the
    in-memory nets.

    For the quality gate, the same SavedModel and the `stable` version (packed by the
    driver, so the task may run on any node) are scored on this run's validation split:
    both numbers come from the same images and the same code, whatever --val-size or
    --limit the stable version was trained with.

    A Ray task, so that it runs in a worker that already imported TensorFlow to train
    and the driver never imports it (2.3 s of CPU and start-up time saved per sweep).
    The SavedModel comes back as a tar archive, so --export-dir is written where the
    driver runs, a ray:// client included."""
    runtime.skip_optional_imports()
    import tensorflow as tf

    def predict(directory: str, x):
        serve = tf.saved_model.load(directory).signatures[export.SIGNATURE]
        return serve(**{export.INPUT_KEY: tf.constant(x)})[export.OUTPUT_KEY].numpy() \
            .argmax(axis=1).astype("uint8")

    def val_accuracy(directory: str) -> float:
        return float((predict(directory, splits.x_val) == splits.y_val).mean())

    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp)
        savedmodel.save_ensemble(members, saved)
        built = {"archive": export.pack(saved), "libraries": library_versions(),
                 "predictions": predict(tmp, splits.x_test),
                 "val_accuracy": val_accuracy(tmp)}
    if stable_archive is not None:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                export.unpack(stable_archive, Path(tmp))
                built["stable_val_accuracy"] = val_accuracy(tmp)
            except Exception as e:  # noqa: BLE001 - recorded; the gate then refuses
                built["stable_error"] = one_line(e)
    return built


export_task = ray.remote(max_retries=3, retry_exceptions=False)(_export_task)


def best_of(results: list[dict]) -> dict | None:
    """The best variant: the best validation accuracy (the first of equals, in the
    sweep's order), among those that finished."""
    ok = [r for r in results if r["status"] == "ok"]
    return max(ok, key=lambda r: r["val_accuracy"]) if ok else None


class EarlyExport:
    """Builds the export while the last variants still train.

    Once the variants still training are fewer than the slots, a slot stays idle to the
    end of training: the export task (build the SavedModel, load it back, score the test
    set and, for the gate, the stable version's validation accuracy) runs there for the
    best variant so far instead of after the last variant. A better variant finishing
    later starts it again for that one; at the end, the export of the final members is
    used (built then if it was not already: always so for an ensemble, whose members are
    known only when every variant has finished)."""

    def __init__(self, variants: list[Variant], run_dir: RunDir, splits_ref, cpus: float,
                 stable_archive: bytes | None, on_start=lambda: None):
        self.variants = {v.name: v for v in variants}
        self.run_dir, self.splits_ref, self.cpus = run_dir, splits_ref, cpus
        self.stable_archive, self.on_start = stable_archive, on_start
        self.members: list | None = None
        self.ref = None

    def start(self, members: list[tuple[str, float]]) -> None:
        if members == self.members:
            return
        self.members = members
        self.on_start()
        self.ref = export_task.options(num_cpus=self.cpus).remote(
            [(self.variants[m], self.run_dir.load_weights(m), share) for m, share in members],
            self.splits_ref, self.stable_archive)

    def result(self, members: list[tuple[str, float]], stop_signal: list[int]) -> dict:
        self.start(members)
        while not ray.wait([self.ref], timeout=0.25)[0]:
            if stop_signal:
                raise Interrupted(stop_signal[0])  # ray.shutdown stops the task: see _execute
        return ray.get(self.ref)


def export_metadata(exported: dict, run_dir: RunDir, splits: data.Splits,
                    libraries: dict) -> dict:
    """What travels beside the SavedModel (fmnist.json). `variant` is the exported
    variant's config; for an ensemble, its name and `members` (each a config with its
    `weight`)."""
    return {"class_names": list(data.CLASS_NAMES), "run_id": run_dir.path.name,
            "variant": exported["config"], "val_accuracy": exported["val_accuracy"],
            "test_accuracy": exported["test_accuracy"], "dataset_sha256": splits.sha256,
            "input": {"signature": export.SIGNATURE, "key": export.INPUT_KEY,
                      "dtype": "uint8", "shape": [None, 28, 28], "background": 0},
            "output": {"key": export.OUTPUT_KEY, "shape": [None, 10]},
            "libraries": libraries,
            "exported_at": dt.datetime.now(dt.timezone.utc).isoformat()}


def describe_export(pred, splits: data.Splits, version: Path, out_dir: Path) -> dict:
    """Test accuracy, confusion matrix (and its PNG) and per-class accuracy of the
    exported SavedModel's test-set predictions."""
    matrix, per_class = report.confusion(splits.y_test, pred)
    accuracy = float((pred == splits.y_test).mean())
    report.plot_confusion(matrix, data.CLASS_NAMES,
                          f"exported model {version}: test accuracy {100 * accuracy:.2f}%",
                          out_dir / "confusion_matrix.png")
    return {"accuracy": accuracy, "confusion_matrix": matrix.tolist(),
            "per_class_accuracy": dict(zip(data.CLASS_NAMES, map(float, per_class)))}


def _execute(variants, todo, done, splits_ref, workers, cpus, gpus, threads, run_dir: RunDir,
             header, console, stop_signal: list[int], estimates: dict,
             idle=lambda finished: None, n_slots: int = 1) -> dict:
    """Runs `todo` in its order, at most `workers` in flight: Ray starts them in the order
    they were submitted, so the order of `todo` is the order in which they start.
    `idle(finished results)` is called after a variant finishes whenever fewer than
    `n_slots` variants are left training (a slot will stay idle)."""
    # The event queue lives on the driver's node, so losing a worker node does not lose it.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    events = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})
    fn, resources = task_for(cpus, gpus)
    task = fn.options(**resources)
    by_name = dict(done)
    results = {**header, "variants": []}

    def save():
        # Keep what is known on disk after every change: a killed sweep loses nothing.
        results["variants"] = [by_name[v.name] for v in variants if v.name in by_name]
        write_json_atomic(run_dir.results, results)

    def record(result, weights, val_probs):
        if weights is not None:  # before results.json says "ok"
            run_dir.save_weights(result["name"], weights)
            run_dir.save_val_probs(result["name"], val_probs)
        # The plan's figure beside the measured one (at the end on a failed variant).
        result = insert_after(result, "train_seconds", "estimate_seconds",
                              round(estimates[result["name"]], 2))
        by_name[result["name"]] = result
        progress.finished(result)
        save()

    def drain():
        while True:
            try:
                progress.event(events.get_nowait())
            except Empty:
                return
            except ray.exceptions.RayError:  # queue lost: only the live view suffers
                return

    queued = list(todo)
    running: dict = {}
    save()
    with report.Progress([v.name for v in variants], {v.name: v.epochs for v in variants},
                         console) as progress:
        for r in done.values():
            progress.finished(r)
        try:
            while queued or running:
                while queued and len(running) < workers:
                    v = queued.pop(0)
                    ref = task.remote(
                        v, splits_ref, events, cpus, run_dir.checkpoint(v.name), threads)
                    running[ref] = v
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.25)
                if stop_signal:
                    raise Interrupted(stop_signal[0])
                drain()
                for ref in ready:
                    v = running.pop(ref)
                    try:
                        result, weights, val_probs = ray.get(ref)
                    except ray.exceptions.RayError as e:  # retries exhausted: lost again
                        result, weights, val_probs = failed(v, one_line(e)), None, None
                    record(result, weights, val_probs)
                    if not queued and len(running) < n_slots:
                        idle([by_name[v.name] for v in variants if v.name in by_name])
            drain()
        except Interrupted as stop:
            # No ray.cancel: in Ray 2.60 it crashes the driver (exit 1, "Check failed ...
            # Tried to complete task that was not pending") when it meets a task that is
            # just returning (tests/repro/ray_cancel_race.py). The ray.shutdown that follows
            # stops the tasks anyway: Ray kills a driver's tasks when it leaves, on a
            # cluster too.
            for v in running.values():
                by_name[v.name] = failed(v, f"interrupted by {stop}", status="interrupted")
            for v in queued:
                by_name[v.name] = failed(v, f"not started: interrupted by {stop}",
                                         status="interrupted")
            results["interrupted"] = str(stop)
            save()
            raise
    return results
