"""--metrics-push and --metrics-file, shared by `train`, `score` and `guard`: the
options, and the decorator that publishes a command's metrics when it ends, however it
ends (fmnist/ops/metrics.py). A failed push is one warning line; the exit code stays
the command's own."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from fmnist.cli import common

MetricsPush = Annotated[
    Optional[str],
    typer.Option(
        "--metrics-push",
        envvar="FMNIST_METRICS_PUSH",
        help="Pushgateway URL (http://HOST:9091): push this run's metrics there when it "
        "ends, failed or not, to the group job=fmnist-<command>. A gateway that "
        "cannot be reached costs a warning, never the run. Empty: no push.",
    ),
]
MetricsFile = Annotated[
    Optional[Path],
    typer.Option(
        "--metrics-file",
        help="Also write this run's metrics to this .prom file for node_exporter's "
        "textfile collector, atomically; metrics this run does not set are kept from "
        "the file as it was.",
    ),
]

MlflowUri = Annotated[
    Optional[str],
    typer.Option(
        "--mlflow-uri",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking server (http://HOST:5000; needs pip install "
        "'fmnist-job[mlflow]'): log the sweep and its variants there, register the "
        "export and mirror stable/candidate as aliases. A server that cannot be "
        "reached costs a warning, never the run. Empty: no MLflow.",
    ),
]

_current = None  # the running command's JobMetrics, when it reports


def reported(job: str, skip_when=None):
    """Publish the metrics of a command that takes metrics_push and metrics_file,
    whatever its exit; not when its `skip_when` option is set (a dry run), or when
    `skip_when`, a function, says so given the options (a run another process reports)."""

    def wrap(command):
        @functools.wraps(command)
        def run(*args, **kwargs):
            global _current
            push, file = kwargs.get("metrics_push") or None, kwargs.get("metrics_file")
            skip = skip_when(kwargs) if callable(skip_when) else kwargs.get(skip_when or "")
            if (not push and not file) or skip:
                return command(*args, **kwargs)
            from fmnist.ops import metrics

            try:
                _current = metrics.JobMetrics(job, push, file)
            except metrics.MetricsError as e:
                raise common.fail(str(e))
            common.before_exit.append(publish)
            code = common.EXIT_FAILED  # an unexpected error, as Python would exit
            try:
                command(*args, **kwargs)
                code = common.EXIT_OK
            except typer.Exit as e:
                code = e.exit_code
                raise
            except KeyboardInterrupt:
                code = 130
                raise
            except common.Terminated:
                code = 143
                raise
            finally:
                common.before_exit.remove(publish)
                if _current.published_code != code:
                    publish(code)
                _current = None

        return run

    return wrap


def current():
    """The running command's JobMetrics, or None when it does not report."""
    return _current


def publish(code: int) -> None:
    """Publish now (the guard before it becomes its command); warnings on stderr."""
    if _current is None:
        return
    warn(_current.publish(code))


def check_mlflow(uri: str | None) -> str | None:
    """`uri` (None or empty: no MLflow), once the mlflow extra is known to be there;
    without it a one-line usage error (exit 2) before anything runs."""
    if not uri:
        return None
    from fmnist.ops import tracking

    try:
        return tracking.check_available(uri)
    except tracking.TrackingError as e:
        # MLFLOW_TRACKING_URI may be set for other tools: only an explicit option fails.
        if not any(a.split("=")[0] == "--mlflow-uri" for a in sys.argv[1:]):
            warn([f"MLFLOW_TRACKING_URI is set but {e}; not logging to MLflow"])
            return None
        raise common.fail(str(e))


def warn(warnings: list[str]) -> None:
    """Warnings of a sink that failed, one line each on stderr."""
    for warning in warnings:
        typer.echo(f"fmnist-job: warning: {warning}", err=True)
