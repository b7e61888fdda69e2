"""Every private API of a pinned library that fmnist-job relies on, in one place.

Each is here because no public API does the job (the reason is beside it), and each has
a test in tests/test_internals.py that fails by name when an upgrade removes or renames
what it uses: read that test first when a lock-file bump turns CI red. Imports stay
inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import json
import os


def click_usage_errors() -> tuple[type, type]:
    """(NoArgsIsHelpError, UsageError) of the Click that Typer vendors (typer._click):
    catching them turns a usage error into our one line and exit code 2. Typer has no
    public name for them."""
    from typer._click.exceptions import NoArgsIsHelpError, UsageError

    return NoArgsIsHelpError, UsageError


def run_exit_handlers() -> None:
    """Run the atexit handlers now (the last registered first), as the interpreter would
    on its way out: for a process that then leaves with os._exit, before the teardown
    in which a native thread of Ray or TensorFlow can abort it (docs/performance.md,
    "CI"). CPython has no public call for it: atexit._run_exitfuncs is the one that
    Py_Finalize itself uses."""
    import atexit

    atexit._run_exitfuncs()


def ray_single_machine_mode() -> None:
    """Make an embedded Ray bind to 127.0.0.1: its single-machine mode, switched on by a
    documented variable for the processes ray.init starts, and by the constant this
    process already read at import (ray._private.ray_constants)."""
    import ray._private.ray_constants as ray_constants

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


def ray_init_on_loopback(**kwargs) -> None:
    """ray.init for an embedded Ray whose node address is 127.0.0.1, through ray.init's
    private `_node_ip_address` keyword: `ray start --node-ip-address` has no public
    ray.init counterpart, and without it the node takes the machine's first address."""
    import ray

    ray.init(_node_ip_address="127.0.0.1", **kwargs)


def ray_queue_put_async(queue, item) -> None:
    """Put `item` on a ray.util.queue.Queue without waiting for the reply, through the
    queue's actor handle (`Queue.actor`, not documented). Queue.put_nowait waits for the
    actor, and a task blocked in ray.get lends its CPUs back to Ray, which then starts
    another queued task in them (with 1 CPU per task, a third task on two cores)."""
    queue.actor.put_nowait.remote(item)


def ray_reload_auth_config() -> None:
    """After setting RAY_AUTH_MODE=token in this process: Ray read its config and cached
    the (absent) token at import; make it read both again (ray._raylet)."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def ray_probe(hostport: str, client: bool, token: str | None, timeout: float) -> str:
    """What answers at `hostport`, asked with one harmless call of Ray's own gRPC stubs
    (ray.core.generated): the Ray client server's PING (ray://) or the GCS's GetClusterId
    (host:port). ray.init instead retries for 20 s to forever, printing a log line per
    attempt, when the port holds something else.

    Returns:
        "ok"; "unauthenticated" (it wants a token, or another one); "unimplemented" (a
        Ray server of the other kind: the GCS asked as ray://, or the client server as
        host:port); "http" (an HTTP server, such as Ray's dashboard); "silent" (no answer
        within `timeout`); "refused" (nothing listens); "unknown host"; or
        "other: <details>".
    """
    import grpc
    from ray.core.generated import (
        gcs_service_pb2,
        gcs_service_pb2_grpc,
        ray_client_pb2,
        ray_client_pb2_grpc,
    )

    metadata = [("authorization", f"Bearer {token}")] if token else []
    with grpc.insecure_channel(hostport) as channel:
        try:
            if client:
                ray_client_pb2_grpc.RayletDriverStub(channel).ClusterInfo(
                    ray_client_pb2.ClusterInfoRequest(type=ray_client_pb2.ClusterInfoType.PING),
                    timeout=timeout,
                    metadata=metadata,
                )
            else:
                gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
                    gcs_service_pb2.GetClusterIdRequest(), timeout=timeout, metadata=metadata
                )
        except grpc.RpcError as e:
            code, details = e.code(), e.details() or ""
            if code == grpc.StatusCode.UNAUTHENTICATED:
                return "unauthenticated"
            if code == grpc.StatusCode.UNIMPLEMENTED:
                return "unimplemented"
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                return "silent"
            if "HTTP" in details:
                return "http"
            if "resolving" in details or "lookup" in details:
                return "unknown host"
            if "Failed to connect" in details or "Connection refused" in details:
                return "refused"
            return f"other: {code.name} {details.splitlines()[0] if details else ''}".strip()
    return "ok"


def keras_atomic_backup(backup_dir: str, delete_checkpoint: bool = True):
    """Keras's BackupAndRestore with every checkpoint written aside and renamed into
    place. Keras writes `latest.weights.h5` in place, so a process killed mid-save (the
    very case the callback exists for) left a truncated file that failed the retry.
    Weights are renamed before the epoch counter: a kill between the two repeats an
    epoch, never skips one. Overrides the callback's private _save_model and uses its
    private paths and counters."""
    import keras

    from fmnist.core.files import atomic_file, atomic_path

    class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
        def _save_model(self):
            os.makedirs(self.backup_dir, exist_ok=True)
            # Keras wants the name to end in .weights.h5.
            with atomic_path(self._weights_path, suffix=".weights.h5") as tmp:
                self.model.save_weights(str(tmp), overwrite=True)
            with atomic_file(self._training_metadata_path, "w") as f:
                json.dump({"epoch": self._current_epoch, "batch": self._last_batch_seen}, f)

    return AtomicBackupAndRestore(backup_dir, delete_checkpoint=delete_checkpoint)


def optuna_trial(study, number: int):
    """The live optuna.Trial of a study's trial `number` (None once it is finished), to
    report intermediate values for a trial asked in an earlier process (a resumed run).
    Optuna reaches a trial's id from its number only through the study's private
    storage and id."""
    import optuna

    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    if study._storage.get_trial(trial_id).state.is_finished():
        return None
    return optuna.Trial(study, trial_id)
