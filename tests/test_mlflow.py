"""MLflow tracking of `train` (fmnist/ops/tracking.py) against a real MLflow tracking
server (ROOT/.venv-mlflow, SQLite backend, started here on loopback, stopped by PID),
read back with MlflowClient."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest

from fmnist.ops import serving_config

from conftest import ROOT, cli, run_cli, wait_for
from procnet import stop
from promtools import free_port

SERVER = ROOT / ".venv-mlflow" / "bin" / "mlflow"


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    if not SERVER.exists():
        pytest.skip(f"{SERVER} missing: run ./dev setup")
    tmp = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [SERVER, "server", "--backend-store-uri", f"sqlite:///{tmp}/db.sqlite",
         "--artifacts-destination", str(tmp / "art"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: _up(url), proc, timeout=120, what="the MLflow server")
        yield url
    finally:
        stop(proc)


TINY = ["--limit", "600", "--val-size", "100", "--workers", "1"]


@pytest.mark.slow
def test_train_logs_variants_registers_and_mirrors_labels(
    mlflow_server, tmp_path, sweep_file, monkeypatch, capsys, ray_cluster
):
    from mlflow.tracking import MlflowClient

    sweep = sweep_file(
        '[[variant]]\nname = "a"\nhidden = [16]\nepochs = 2\n'
        '[[variant]]\nname = "b"\nhidden = [8]\nepochs = 2\n'
    )
    on_ray = ["--address", ray_cluster.gcs]
    proc = run_cli(
        "train", "--sweep", sweep, *TINY, *on_ray, "--mlflow-uri", mlflow_server, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "MLflow" not in proc.stderr
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("fmnist-job")
    runs = client.search_runs([experiment.experiment_id])
    children = {r.info.run_name: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert sorted(children) == ["a", "b"]
    assert children["a"].data.params["hidden"] == "[16]"
    history = client.get_metric_history(children["a"].info.run_id, "val_accuracy")
    assert [m.step for m in history] == [0, 1]
    model = client.get_registered_model("fmnist")
    version = client.get_model_version_by_alias("fmnist", "stable")
    assert version.tags["fmnist_version"] == "1"
    assert "candidate" not in model.aliases
    # A second run the gate does not promote (tolerance 0 and a worse net is likely
    # but not certain): the aliases follow models.config whatever it decided.
    proc = run_cli(
        "train", "--sweep", sweep, *TINY, *on_ray, "--gate-tolerance", "0", "--epochs", "1",
        cwd=tmp_path, env={"MLFLOW_TRACKING_URI": mlflow_server},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    config = serving_config.read_config(tmp_path / "models" / "fmnist")
    labels = {label: str(version) for label, version in config.labels.items()}
    aliases = {
        alias: client.get_model_version_by_alias("fmnist", alias).tags["fmnist_version"]
        for alias in client.get_registered_model("fmnist").aliases
    }
    assert aliases == labels
    # An operator's promote and rollback move the aliases too (run in this process).
    other = "2" if labels["stable"] == "1" else "1"
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(
        ["models", "promote", other, "--mlflow-uri", mlflow_server], monkeypatch, capsys
    )
    assert code == 0 and err == "", err
    assert client.get_model_version_by_alias("fmnist", "stable").tags["fmnist_version"] == other
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    code, _, err = cli(["models", "rollback"], monkeypatch, capsys)
    assert code == 0 and err == "", err
    assert serving_config.read_config(tmp_path / "models" / "fmnist").labels["stable"] != int(other)
    alias = client.get_model_version_by_alias("fmnist", "stable")
    assert alias.tags["fmnist_version"] == labels["stable"]


@pytest.mark.slow
def test_an_unreachable_server_costs_a_warning_not_the_run(tmp_path, sweep_file, ray_cluster):
    sweep = sweep_file('[[variant]]\nname = "a"\nhidden = [8]\nepochs = 1\n')
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    proc = run_cli(
        "train", "--sweep", sweep, *TINY, "--address", ray_cluster.gcs, "--mlflow-uri", url,
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "not logged to MLflow" in line]
    assert len(warnings) == 1 and url in warnings[0], proc.stderr
    assert (tmp_path / "models" / "fmnist" / "1" / "saved_model.pb").exists()
    proc = run_cli("models", "promote", "1", "--mlflow-uri", url, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "MLflow aliases not updated" in proc.stderr and url in proc.stderr, proc.stderr


def test_help_imports_no_mlflow():
    code = (
        "import sys\nfrom fmnist.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print([m for m in sys.modules if m.split('.')[0] == 'mlflow'])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "train", "--help"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "--mlflow-uri" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"
