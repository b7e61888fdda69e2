"""Run a sweep: one Ray task per variant, at most --workers at once, then export.

Data flows one way: the CLI hands over validated variants; this module connects to Ray,
puts the dataset in the object store once, runs the tasks, gathers their results (and
live events through a small queue actor), writes the run directory, and exports the
variant with the best *validation* accuracy (built in one more task: this process never
imports TensorFlow). The test set never chooses anything.
"""

from __future__ import annotations

import datetime as dt
import json
import os
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

from fmnist import data, export, report, schedule, train
from fmnist.files import atomic_file, write_json_atomic
from fmnist.variants import Variant

# What every task process needs in its environment, on any node.
WORKER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


class ConnectError(Exception):
    """The Ray cluster at --address / RAY_ADDRESS could not be reached, or refused us."""


def connect(address: str | None) -> None:
    """Join the cluster at `address`, or start an embedded Ray bound to loopback with
    no dashboard (nothing listens beyond this machine)."""
    if address:
        _check_reachable(address)
        _prepare_authentication(address)
    from ray.exceptions import AuthenticationError
    try:
        if address:
            ray.init(address=address, runtime_env={"env_vars": WORKER_ENV},
                     log_to_driver=False, logging_level="ERROR")
        else:
            # The embedded Ray's processes inherit this environment. A runtime_env
            # would do the same but keep the workers Ray prestarts at ray.init from
            # being used (they have no runtime_env): measured, four tasks started in
            # 2.0 s with it, 1.0 s without.
            os.environ.update(WORKER_ENV)
            _loopback_only()
            # "local": a new Ray of our own. Without it, ray.init joins the cluster the
            # last `ray start` here recorded in /tmp/ray/ray_current_cluster, and waits
            # minutes on it when that cluster is gone.
            ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1",
                     log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, ValueError, RuntimeError, TimeoutError, AuthenticationError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConnectError(f"cannot connect to Ray at '{address}': {first}; check "
                           f"--address / RAY_ADDRESS (e.g. 'auto' or 'ray://head:10001')") from None


def _loopback_only() -> None:
    """Make the embedded Ray listen on 127.0.0.1 only.

    Ray binds its servers to the node IP, and resolves even an explicit 127.0.0.1 to the
    machine's external address, except in its single-machine mode (the default on macOS
    and Windows), switched on by this documented variable. Set in the environment for
    the processes ray.init starts, and in the constant this process read at import."""
    import ray._private.ray_constants as ray_constants

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


def task_for(cpus: float, gpus: float):
    """The remote function for one variant's task, and its resource request."""
    return (train_task_gpu if gpus else train_task), {"num_cpus": cpus, "num_gpus": gpus}


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


AUTH_HINT = ("set RAY_AUTH_TOKEN to the cluster's token (or RAY_AUTH_TOKEN_PATH to a file "
             "holding it, or put it in ~/.ray/auth_token); on Kubernetes it is in the Secret "
             "fmnist-ray-auth (deploy/README.md)")


def _prepare_authentication(address: str, timeout: float = 5.0) -> None:
    """Ask the cluster whether it wants a token (Ray 2.52+ token authentication), and
    switch this process to token mode when it does and one is found.

    Ray itself turns token mode on only for a local 'auto' cluster; for an explicit
    address it needs RAY_AUTH_MODE=token, and without it waits 20 s (host:port) or 30 s
    (ray://) and then reports a timeout that does not mention authentication. One small
    gRPC call without a token tells at once: the GCS (host:port) and the Ray client
    server (ray://) both answer UNAUTHENTICATED when they want a token. A second call
    with the token found checks that the cluster accepts it."""
    hostport = address.removeprefix("ray://")
    if hostport == "auto" or ":" not in hostport:
        return  # 'auto': Ray turns token mode on itself when it finds a token
    client = address.startswith("ray://")
    if _accepts(hostport, client, None, timeout):
        return  # no authentication, or a problem ray.init will name
    mode = os.environ.get("RAY_AUTH_MODE", "").strip().lower()
    if mode not in ("", "token"):
        raise ConnectError(f"the Ray cluster at '{address}' requires token authentication, "
                           f"but RAY_AUTH_MODE is '{mode}': set RAY_AUTH_MODE=token (or unset "
                           f"it) and {AUTH_HINT}")
    token, source = _find_token()
    if token is None:
        raise ConnectError(f"the Ray cluster at '{address}' requires token authentication "
                           f"and no token was found: {AUTH_HINT}")
    if not _accepts(hostport, client, token, timeout):
        raise ConnectError(f"the Ray cluster at '{address}' rejected the authentication "
                           f"token from {source} (not its current token?): {AUTH_HINT}")
    if mode != "token":
        from ray._raylet import AuthenticationTokenLoader, Config
        os.environ["RAY_AUTH_MODE"] = "token"  # for ray.init, and what it starts
        Config.initialize("")  # Ray's config was read at import, without it
        AuthenticationTokenLoader.instance().reset_cache()


def _find_token() -> tuple[str | None, str]:
    """The token Ray will use, in Ray's order: RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH
    names, ~/.ray/auth_token. (An unreadable RAY_AUTH_TOKEN_PATH makes Ray abort the
    process, so it is an error here.)"""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return os.environ["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        try:
            text = Path(path).expanduser().read_text().strip()
        except OSError as e:
            raise ConnectError(f"RAY_AUTH_TOKEN_PATH={path}: cannot read the token "
                               f"({e.strerror or e}); name a readable file") from None
        if not text:
            raise ConnectError(f"RAY_AUTH_TOKEN_PATH={path}: the file is empty; it must "
                               f"hold the cluster's token")
        return text, f"RAY_AUTH_TOKEN_PATH={path}"
    default = Path.home() / ".ray" / "auth_token"
    try:
        text = default.read_text().strip()
    except OSError:
        return None, ""
    return (text, str(default)) if text else (None, "")


def _accepts(hostport: str, client: bool, token: str | None, timeout: float) -> bool:
    """False only when the server answers UNAUTHENTICATED to a harmless call: the Ray
    client server's PING (ray://), the GCS's GetClusterId (host:port)."""
    import grpc
    from ray.core.generated import (gcs_service_pb2, gcs_service_pb2_grpc, ray_client_pb2,
                                    ray_client_pb2_grpc)

    metadata = [("authorization", f"Bearer {token}")] if token else []
    with grpc.insecure_channel(hostport) as channel:
        try:
            if client:
                ray_client_pb2_grpc.RayletDriverStub(channel).ClusterInfo(
                    ray_client_pb2.ClusterInfoRequest(type=ray_client_pb2.ClusterInfoType.PING),
                    timeout=timeout, metadata=metadata)
            else:
                gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
                    gcs_service_pb2.GetClusterIdRequest(), timeout=timeout, metadata=metadata)
        except grpc.RpcError as e:
            return e.code() != grpc.StatusCode.UNAUTHENTICATED
    return True


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
    train.skip_optional_imports()
    train.batch_scheduling()
    device = train.configure_tensorflow(cpus, threads)
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
        result, weights = train.fit_variant(
            variant, splits, device=device, checkpoint_dir=checkpoint_dir,
            on_epoch=lambda epoch, logs: emit({"kind": "epoch", "epoch": epoch, **logs}))
    except Exception as e:  # noqa: BLE001 - any error of one variant is recorded, not raised
        return failed(variant, one_line(e), host=host, node_id=node_id, device=device), None
    result = insert_after(result, "train_seconds", "setup_seconds", setup_seconds)
    # Beside `host`: where the task ran, read together.
    return insert_after(result, "host", "node_id", node_id), weights


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


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; `code` is the exit code (128 + signal)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.code = 128 + signum
        self.run_dir: Path | None = None


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
        threads_per_worker: int | None = None) -> dict:
    """Returns the results (as written to results.json); `best` is None when every
    variant failed. Raises DataError / ConnectError before any training starts, and
    Interrupted (after writing what is known) on SIGINT / SIGTERM.

    `resume`: the results.json of an interrupted run in `runs_dir`; its finished
    variants are kept, the others run (from their checkpoints where they have some)."""
    started, started_at = time.monotonic(), train.utc_now()  # data loading included
    # Seconds from `started` to each step: where the time outside training goes.
    timeline: dict[str, float] = {}

    def mark(step: str) -> None:
        timeline[step] = round(time.monotonic() - started, 2)

    console = report.make_console()
    splits = data.load(data_dir, val_size=val_size, limit=limit)
    mark("data_loaded")
    run_dir = RunDir(new_run_dir(runs_dir))
    run_dir.path.mkdir(parents=True, exist_ok=True)
    run_id = run_dir.path.name
    header = {"run_id": run_id, "started_at": started_at, "timeline": timeline,
              "sweep_file": str(sweep_file) if sweep_file else None,
              "sweep": [v.to_dict() for v in variants],
              "settings": {"val_size": val_size, "limit": limit,
                           "data_dir": str(data_dir) if data_dir else None},
              "dataset_sha256": splits.sha256, "address": address or "embedded",
              "train_size": len(splits.y_train), "val_size": len(splits.y_val),
              "test_size": len(splits.y_test)}
    done = {r["name"]: r for r in (resume or {}).get("variants", [])
            if r["status"] == "ok" and run_dir.has_weights(r["name"])}

    connect(address)
    mark("ray_ready")
    # After ray.init, which installs handlers of its own. The handler only takes note:
    # raising inside Ray's C++ wait corrupts it, so the loop checks between waits.
    stop_signal: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: stop_signal.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        cluster = ray.cluster_resources()
        cpus, gpus = plan_resources(workers, cpus_per_worker, gpus_per_worker, cluster,
                                    [n["Resources"].get("CPU", 0) for n in nodes])
        threads = threads_per_worker or train.threads_for(cpus)
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
        exporter = EarlyExport(variants, run_dir, splits_ref, cpus,
                               on_start=lambda: mark("export_started"))
        results = _execute(variants, todo, done, splits_ref, workers, cpus, gpus, threads,
                           run_dir, header, console, stop_signal, estimates,
                           idle=lambda finished: exporter.start(best_of(finished)),
                           n_slots=n_slots)
        mark("training_done")
        best = best_of(results["variants"])
        if best:
            try:
                built = exporter.result(best, stop_signal)
                mark("export_built")
            except Interrupted as stop:  # every variant finished: a resume only exports
                results["interrupted"] = str(stop)
                write_json_atomic(run_dir.results, results)
                raise
    except Interrupted as stop:
        stop.run_dir = run_dir.path  # for the resume hint
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        # Stopping the embedded Ray is a second of waiting for its processes to exit;
        # wait for them while this thread writes the export and the plots. (On an
        # error the interpreter waits for the thread before it exits.)
        closing = threading.Thread(target=ray.shutdown, name="ray-shutdown")
        closing.start()
    try:
        results["best"] = best["name"] if best else None
        if best:
            path = export.publish(lambda staging: export.unpack(built["archive"], staging),
                                  export_metadata(best, run_dir, splits, built["libraries"]),
                                  export_dir)
            results["export"] = str(path)
            results["exported_model_test"] = describe_export(
                built["predictions"], splits, path, run_dir.path)
        mark("export_written")
        report.plot_curves(results["variants"], run_dir.path / "val_accuracy.png")
        # Everything but the wait for Ray's processes to exit (overlapped with the above).
        results["wall_seconds"] = round(time.monotonic() - started, 2)
        results.update(schedule.efficiency(
            [r for r in results["variants"] if r["name"] not in done],
            results["wall_seconds"],
            schedule.cpus_used(len(todo), results["slots"], results["cpus_per_worker"])))
        write_json_atomic(run_dir.results, results)

        console.print(report.leaderboard(results["variants"], results["best"]))
        if not best:
            console.print(f"[red]every variant failed[/]; details in {run_dir.results}")
            return results
        console.print(f"best: [bold]{best['name']}[/] val {100 * best['val_accuracy']:.2f}% "
                      f"test {100 * best['test_accuracy']:.2f}% -> exported to {results['export']}")
        per_class = results["exported_model_test"]["per_class_accuracy"]
        console.print("exported model, test accuracy per class: " + ", ".join(
            f"{name} {100 * acc:.1f}%" for name, acc in per_class.items()))
        console.print(f"results: {run_dir.results}  ({wall_line(results)})")
        return results
    finally:
        closing.join()


def wall_line(results: dict) -> str:
    """'61.8s wall, 1.21x the training floor of 51.1s (2 CPUs)': the run's last figure."""
    text = f"{results['wall_seconds']:.1f}s wall"
    if results.get("floor_seconds"):
        text += (f", {results['wall_over_floor']:.2f}x the training floor of "
                 f"{results['floor_seconds']:.1f}s ({results['cpus_used']:g} CPUs)")
    return text


def _export_task(variant: Variant, weights: list, splits: data.Splits) -> dict:
    """Build the serving SavedModel from the winner's weights, load it back from disk
    and score the test set with it: the confusion matrix then describes exactly the
    files that ship, not the in-memory net.

    A Ray task, so that it runs in a worker that already imported TensorFlow to train
    and the driver never imports it (2.3 s of CPU and start-up time saved per sweep).
    The SavedModel comes back as a tar archive, so --export-dir is written where the
    driver runs, a ray:// client included."""
    train.skip_optional_imports()
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp)
        export.save_model(variant, weights, saved)
        serve = tf.saved_model.load(tmp).signatures[export.SIGNATURE]
        probs = serve(**{export.INPUT_KEY: tf.constant(splits.x_test)})[export.OUTPUT_KEY]
        return {"archive": export.pack(saved), "libraries": library_versions(),
                "predictions": probs.numpy().argmax(axis=1).astype("uint8")}


export_task = ray.remote(max_retries=3, retry_exceptions=False)(_export_task)


def best_of(results: list[dict]) -> dict | None:
    """The variant to export: the best validation accuracy (the first of equals, in
    the sweep's order), among those that finished."""
    ok = [r for r in results if r["status"] == "ok"]
    return max(ok, key=lambda r: r["val_accuracy"]) if ok else None


class EarlyExport:
    """Builds the export of the best variant so far while the last variants still train.

    Once the variants still training are fewer than the slots, a slot stays idle to the
    end of training: the export task (build the SavedModel, load it back, score the test
    set) runs there instead of after the last variant. A better variant finishing later
    starts it again for that one; at the end, the export of the final best is used."""

    def __init__(self, variants: list[Variant], run_dir: RunDir, splits_ref, cpus: float,
                 on_start=lambda: None):
        self.variants = {v.name: v for v in variants}
        self.run_dir, self.splits_ref, self.cpus = run_dir, splits_ref, cpus
        self.on_start = on_start
        self.name: str | None = None
        self.ref = None

    def start(self, best: dict | None) -> None:
        if best is None or best["name"] == self.name:
            return
        self.name = best["name"]
        self.on_start()
        self.ref = export_task.options(num_cpus=self.cpus).remote(
            self.variants[self.name], self.run_dir.load_weights(self.name), self.splits_ref)

    def result(self, best: dict, stop_signal: list[int]) -> dict:
        self.start(best)
        while not ray.wait([self.ref], timeout=0.25)[0]:
            if stop_signal:
                raise Interrupted(stop_signal[0])  # ray.shutdown stops the task: see _execute
        return ray.get(self.ref)


def export_metadata(best: dict, run_dir: RunDir, splits: data.Splits,
                    libraries: dict) -> dict:
    """What travels beside the SavedModel (fmnist.json)."""
    return {"class_names": list(data.CLASS_NAMES), "run_id": run_dir.path.name,
            "variant": best["config"], "val_accuracy": best["val_accuracy"],
            "test_accuracy": best["test_accuracy"], "dataset_sha256": splits.sha256,
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

    def record(result, weights):
        if weights is not None:
            run_dir.save_weights(result["name"], weights)  # before results.json says "ok"
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
                        result, weights = ray.get(ref)
                    except ray.exceptions.RayError as e:  # retries exhausted: lost again
                        result, weights = failed(v, one_line(e)), None
                    record(result, weights)
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
