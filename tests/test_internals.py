"""The private APIs fmnist/core/internals.py relies on are still there. When a lock-file bump
breaks one, the test names it here, instead of a sweep failing somewhere far from the
cause. Each test also exercises the function the way fmnist-job does."""

import os
import subprocess
import sys

from fmnist.core import internals

from conftest import ROOT


def test_click_usage_errors_are_typers_own():
    import typer

    no_args, usage = internals.click_usage_errors()
    assert issubclass(no_args, usage) and issubclass(usage, Exception)
    # What the vendored Click raises for a bad option is that UsageError.
    app = typer.Typer()
    app.command()(lambda count: None)
    try:
        app(["--nope"], standalone_mode=False)
    except usage as e:
        assert "No such option" in e.format_message()
    else:
        raise AssertionError("typer did not raise the vendored UsageError")


def test_exit_handlers_run_when_asked_the_last_registered_first():
    code = (
        "import atexit, os\nfrom fmnist.core import internals\n"
        "atexit.register(print, 'first')\natexit.register(print, 'second')\n"
        "internals.run_exit_handlers()\nprint('after', flush=True)\nos._exit(0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["second", "first", "after"]


def test_ray_single_machine_mode_sets_the_constant_ray_reads():
    code = (
        "import os, ray._private.ray_constants as c\n"
        "assert isinstance(c.ENABLE_RAY_CLUSTER, bool)\n"
        "from fmnist.core import internals\ninternals.ray_single_machine_mode()\n"
        "assert c.ENABLE_RAY_CLUSTER is False\n"
        "assert os.environ['RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER'] == '0'\nprint('ok')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"},
    )
    assert proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_ray_auth_config_reload_is_callable():
    from ray._raylet import AuthenticationTokenLoader, Config

    assert callable(Config.initialize) and callable(AuthenticationTokenLoader.instance)
    assert callable(AuthenticationTokenLoader.instance().reset_cache)
    code = "from fmnist.core import internals\ninternals.ray_reload_auth_config()\nprint('ok')"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_ray_grpc_stubs_for_the_authentication_probe():
    from ray.core.generated import (
        gcs_service_pb2,
        gcs_service_pb2_grpc,
        ray_client_pb2,
        ray_client_pb2_grpc,
    )

    assert hasattr(gcs_service_pb2_grpc.NodeInfoGcsServiceStub, "__init__")
    assert gcs_service_pb2.GetClusterIdRequest() is not None
    assert (
        ray_client_pb2.ClusterInfoRequest(type=ray_client_pb2.ClusterInfoType.PING).type
        == ray_client_pb2.ClusterInfoType.PING
    )
    import grpc

    with grpc.insecure_channel("127.0.0.1:1") as channel:
        assert callable(gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId)
        assert callable(ray_client_pb2_grpc.RayletDriverStub(channel).ClusterInfo)
    # Nothing listens on port 1.
    assert internals.ray_probe("127.0.0.1:1", False, None, 2.0) == "refused"
    assert internals.ray_probe("127.0.0.1:1", True, None, 2.0) == "refused"


def test_ray_probe_tells_an_http_server_and_a_silent_one():
    """Real servers on loopback: Python's HTTP server, and a socket that accepts and
    never answers. (Real Ray servers: tests/test_addresses.py.)"""
    import http.server
    import socket
    import threading

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        for client in (False, True):
            assert (
                internals.ray_probe(f"127.0.0.1:{httpd.server_port}", client, None, 2.0) == "http"
            )
            assert (
                internals.ray_probe(f"127.0.0.1:{silent.getsockname()[1]}", client, None, 1.0)
                == "silent"
            )
    finally:
        httpd.shutdown()
        silent.close()


def test_keras_backup_callback_has_what_the_override_uses(tmp_path):
    import keras

    assert callable(getattr(keras.callbacks.BackupAndRestore, "_save_model", None))
    cb = internals.keras_atomic_backup(str(tmp_path / "backup"))
    assert isinstance(cb, keras.callbacks.BackupAndRestore)
    for name in (
        "backup_dir",
        "_weights_path",
        "_training_metadata_path",
        "_current_epoch",
        "_last_batch_seen",
    ):
        assert hasattr(cb, name), f"keras BackupAndRestore lost {name}"
    assert cb._weights_path.endswith(".weights.h5")


def test_ray_init_takes_the_node_address_keyword():
    import inspect

    import ray

    # A keyword of **kwargs that ray.init pops by name.
    assert 'kwargs.pop("_node_ip_address"' in inspect.getsource(ray.init).replace("'", '"')


def test_ray_queue_put_async_reaches_the_queue():
    # A real local Ray: the item put through the actor handle is what get() returns.
    code = (
        "import ray\nfrom ray.util.queue import Queue\n"
        "from fmnist.core import internals\ninternals.ray_single_machine_mode()\n"
        "internals.ray_init_on_loopback(address='local', include_dashboard=False,\n"
        "                               num_cpus=1, logging_level='ERROR')\n"
        "assert ray.nodes()[0]['NodeManagerAddress'] == '127.0.0.1'\n"
        "q = Queue(actor_options={'num_cpus': 0})\n"
        "internals.ray_queue_put_async(q, {'kind': 'epoch'})\n"
        "assert q.get(timeout=30) == {'kind': 'epoch'}\nray.shutdown()\nprint('ok')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.strip().splitlines()[-1:] == ["ok"], proc.stderr[-2000:]


def test_optuna_trial_reports_to_a_trial_asked_elsewhere(tmp_path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    def study():
        storage = JournalStorage(JournalFileBackend(str(tmp_path / "s.journal")))
        return optuna.create_study(study_name="s", storage=storage, load_if_exists=True)

    number = study().ask({"x": optuna.distributions.FloatDistribution(0, 1)}).number
    again = study()  # as a resumed run: another Study object on the same journal
    internals.optuna_trial(again, number).report(0.5, 3)
    again.tell(number, state=optuna.trial.TrialState.PRUNED)
    assert study().trials[number].intermediate_values == {3: 0.5}
    assert internals.optuna_trial(study(), number) is None  # finished: nothing to report to
