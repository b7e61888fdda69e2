"""MLflow tracking and registry of a `train` run (`--mlflow-uri`, optional extra
`fmnist-job[mlflow]`): logged by the driver from results.json once the sweep ends.

A parent run per sweep, a nested run per variant with its config as params and its
per-epoch history as metrics (step = epoch), the run's plots as artifacts; the export
is logged under the winner's run and registered as a version of the model named as in
models.config, tagged with its fmnist version. MLflow aliases `stable` and `candidate`
then mirror models.config's labels.

A server that cannot be reached costs one warning line, never the run's result or exit
code: the client's retries are capped (RETRIES, TIMEOUT) so a dead server is given up
on in seconds, not the client's default of minutes. mlflow is imported only here, and
only when a run tracks.
"""

from __future__ import annotations

import os
from pathlib import Path

from fmnist.core import storage
from fmnist.ops import results as results_mod
from fmnist.ops import serving_config

EXTRA = "pip install 'fmnist-job[mlflow]'"
EXPERIMENT = "fmnist-job"
LABELS = (serving_config.STABLE, serving_config.CANDIDATE)
VERSION_TAG = "fmnist_version"
# The client's defaults (7 retries with backoff, 120 s timeouts) hold a run for minutes
# on a dead server; a user's own settings win.
RETRIES = "1"
TIMEOUT = "10"
METRICS_PER_BATCH = 1000  # MLflow's log_batch limit


class TrackingError(Exception):
    """--mlflow-uri without the mlflow extra installed: one line, exit 2."""


def check_available(uri: str) -> str:
    """The tracking URI, once mlflow is known to be importable.

    Raises:
        TrackingError: the mlflow extra is not installed.
    """
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        raise TrackingError(f"--mlflow-uri {uri}: MLflow is not installed; {EXTRA}")
    return uri


def _client(uri: str):
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", RETRIES)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", TIMEOUT)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _params(config: dict) -> dict[str, str]:
    # MLflow params are strings of at most 6000 characters.
    return {str(k): str(v)[:6000] for k, v in config.items()}


def log_train(uri: str, run_dir: Path, export_dir: Path) -> list[str]:
    """Log the run in `run_dir` (its results.json) to the tracking server at `uri`, and
    register its export. Returns one warning line if that failed; raises nothing the
    server or network does."""
    try:
        record = results_mod.read(run_dir)
    except (OSError, results_mod.ResultsError):
        return []  # failed before the run started: nothing to log
    try:
        _log(_client(uri), record, storage.as_location(run_dir), storage.as_location(export_dir))
    except Exception as e:  # noqa: BLE001 - whatever the network or server did
        return [
            f"not logged to MLflow at {uri} ({_reason(e)}); the run's result and exit code stand"
        ]
    return []


def sync_aliases(uri: str, export_dir: Path) -> list[str]:
    """Point MLflow aliases `stable`/`candidate` at the versions models.config labels
    (after `models promote`/`rollback`). Returns one warning line if that failed."""
    try:
        config = serving_config.read_config(storage.as_location(export_dir))
        if config is not None:
            _sync_aliases(_client(uri), config)
    except Exception as e:  # noqa: BLE001 - whatever the network or server did
        return [f"MLflow aliases not updated at {uri} ({_reason(e)}); models.config stands"]
    return []


def _log(client, record: results_mod.RunResults, run_dir, export_dir) -> None:
    from mlflow.entities import Metric, Param, RunTag

    experiment = client.get_experiment_by_name(EXPERIMENT)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(EXPERIMENT)
    parent = client.create_run(
        experiment_id, run_name=record.run_id, tags={"fmnist.run_dir": storage.uri(run_dir)}
    )
    pid = parent.info.run_id
    summary = {
        "train_size": record.train_size,
        "val_size": record.val_size,
        "test_size": record.test_size,
        "variants": len(record.variants),
        "best": record.best,
        "export": record.export,
        "sweep_file": record.sweep_file,
    }
    client.log_batch(pid, params=[Param(k, str(v)) for k, v in summary.items() if v is not None])
    ids = {}
    for variant in record.variants:
        child = client.create_run(
            experiment_id,
            run_name=variant.name,
            tags={"mlflow.parentRunId": pid, "fmnist.status": variant.status},
        )
        cid = ids[variant.name] = child.info.run_id
        metrics = [
            Metric(key, float(value), 0, epoch)
            for key, values in (variant.history or {}).items()
            for epoch, value in enumerate(values)
        ]
        for key in ("val_accuracy", "val_loss", "test_accuracy", "test_loss", "train_seconds"):
            value = getattr(variant, key)
            if value is not None:
                metrics.append(Metric(f"final_{key}", float(value), 0, 0))
        client.log_batch(cid, params=[Param(k, v) for k, v in _params(variant.config).items()])
        for start in range(0, len(metrics), METRICS_PER_BATCH):
            client.log_batch(cid, metrics=metrics[start : start + METRICS_PER_BATCH])
        # A variant stopped by successive halving was cut short, not broken.
        ended = {"ok": "FINISHED", "stopped": "KILLED"}.get(variant.status, "FAILED")
        client.set_terminated(cid, ended)
    for plot in sorted(run_dir.glob("*.png")) if not storage.is_remote(run_dir) else []:
        client.log_artifact(pid, str(plot), "plots")
    best = record.variant(record.best)
    if best is not None:
        client.log_batch(
            pid,
            metrics=[
                Metric(f"best_{k}", float(getattr(best, k)), 0, 0)
                for k in ("val_accuracy", "test_accuracy")
                if getattr(best, k) is not None
            ],
            tags=[RunTag("fmnist.gate", record.gate.decision)] if record.gate else [],
        )
    if record.export and best is not None and not storage.is_remote(export_dir):
        _register(client, ids[best.name], Path(record.export), export_dir)
    client.set_terminated(pid, "FINISHED" if best is not None else "FAILED")


def _register(client, run_id: str, export: Path, export_dir) -> None:
    from mlflow.exceptions import MlflowException

    config = serving_config.read_config(export_dir)
    name = config.name if config else (export_dir.name or "fmnist")
    client.log_artifacts(run_id, str(export), "model")
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    client.create_model_version(
        name, source, run_id=run_id, tags={VERSION_TAG: export.name}, await_creation_for=0
    )
    if config is not None:
        _sync_aliases(client, config)


def _sync_aliases(client, config: serving_config.Config) -> None:
    found = {
        v.tags.get(VERSION_TAG): v.version
        for v in client.search_model_versions(f"name='{config.name}'")
    }
    if not found:
        return  # never registered there (trained without MLflow): nothing to mirror
    for label in LABELS:
        version = found.get(str(config.labels.get(label)))
        if version is not None:
            client.set_registered_model_alias(config.name, label, version)
        elif label in client.get_registered_model(config.name).aliases:
            client.delete_registered_model_alias(config.name, label)


def _reason(e: Exception) -> str:
    """The first line of an exception, clipped: MLflow's messages can be pages long."""
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return text if len(text) <= 200 else text[:197] + "..."
