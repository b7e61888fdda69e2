"""Prometheus metrics of a job (`train`, `score`, `guard`): pushed to a Pushgateway
(`--metrics-push`) and/or written for node_exporter's textfile collector
(`--metrics-file`), once the job ends, however it ends.

Every write replaces only the metric families this run sets, as the Pushgateway's POST
does: the Pushgateway gets a push-add (pushadd_to_gateway), and the textfile keeps the
families of its previous version that this run does not write. So a failed run
overwrites `fmnist_train_success`, `..._exit_code` and `..._duration_seconds` but leaves
`fmnist_train_last_success_timestamp_seconds`, and the accuracies, version and gate of
the last run that had them: an alert on the last success's age keeps working.

A push or a write that fails costs one warning line, never the job's result or exit
code. Nothing here imports TensorFlow or Ray; prometheus_client is imported when a job
reports.
"""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path

from fmnist.core import storage
from fmnist.ops import results as results_mod
from fmnist.ops import runs as runs_mod

JOBS = ("train", "score", "guard")
# Exit codes after which a job counts as a success (score's 3: some images failed, the
# predictions are written; its error rate has an alert of its own).
SUCCESS_CODES = {"train": {0}, "score": {0, 3}, "guard": {0}}
PUSH_TIMEOUT = 10.0  # seconds: a gateway that does not answer must not hold the job up
GATE_DECISIONS = ("promote", "candidate", "unlabelled")
VARIANT_STATUSES = ("ok", "failed", "interrupted", "stopped")

# Every metric a job may set, without the fmnist_<job>_ prefix: its help and labels.
COMMON = {
    "success": ("1 when the last run succeeded, else 0", ()),
    "exit_code": ("The last run's exit code", ()),
    "duration_seconds": ("Seconds the last run took, from the command's start", ()),
    "last_run_timestamp_seconds": ("When the last run ended (Unix time)", ()),
    "last_success_timestamp_seconds": ("When the last successful run ended (Unix time)", ()),
}
METRICS = {
    "train": {
        **COMMON,
        "variants": ("Variants of the last run by status", ("status",)),
        "wall_seconds": ("The sweep's wall time, start to export written", ()),
        "floor_seconds": ("The training floor: no schedule on these CPUs is faster", ()),
        "wall_over_floor_ratio": ("wall_seconds / floor_seconds", ()),
        "best_val_accuracy": ("Validation accuracy of the run's best variant (0-1)", ()),
        "best_test_accuracy": ("Test accuracy of the run's best variant (0-1)", ()),
        "exported_version": ("The model version the run exported", ()),
        "gate_decision": ("The quality gate's decision: 1 for the one taken", ("decision",)),
        "gate_refusals_in_a_row": (
            "Runs in a row into this export dir whose winner the gate did not promote",
            (),
        ),
    },
    "score": {
        **COMMON,
        "files": ("Image files the last run read", ()),
        "images_scored": ("Images the last run scored", ()),
        "images_failed": ("Image files the last run could not score", ()),
        "images_uncertain": ("Scored images flagged uncertain", ()),
        "images_per_second": ("Images per second of decoding and prediction", ()),
        "model_version": ("The model version the last run scored with", ()),
    },
    "guard": {
        **COMMON,
        "decision": ("1 for what the guard did: run the command or skip it", ("decision",)),
    },
}


class MetricsError(Exception):
    """A --metrics-push or --metrics-file that cannot work: one line, exit 2."""


def check_push_url(url: str) -> str:
    """The Pushgateway's base URL, http(s)://host[:port][/path]."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MetricsError(
            f"--metrics-push {url!r}: not a Pushgateway URL; give http://HOST:PORT "
            f"(e.g. http://pushgateway.monitoring:9091)"
        )
    if parts.query or parts.fragment:
        raise MetricsError(f"--metrics-push {url!r}: drop the query or fragment")
    return url.rstrip("/")


def check_file(path: Path) -> Path:
    """A .prom file (node_exporter's textfile collector reads only those)."""
    if path.suffix != ".prom":
        raise MetricsError(
            f"--metrics-file {path}: must end in .prom (node_exporter's textfile "
            f"collector reads only those)"
        )
    if path.is_dir():
        raise MetricsError(f"--metrics-file {path}: is a directory; name a .prom file")
    return path


def _last_part(location) -> str:
    """'3' of models/fmnist/3 or s3://bucket/fmnist/3 (a str, Path or UPath)."""
    return str(location).rstrip("/").rsplit("/", 1)[-1]


def metric_name(job: str, key: str) -> str:
    return f"fmnist_{job}_{key}"


class JobMetrics:
    """What one run of a job reports; `publish` sends it."""

    def __init__(self, job: str, push: str | None = None, file: Path | None = None):
        if job not in JOBS:
            raise ValueError(job)
        self.job = job
        self.push = check_push_url(push) if push else None
        self.file = check_file(Path(file)) if file else None
        self.started = time.monotonic()
        self.values: dict[str, dict[tuple[str, ...], float]] = {}
        self.published_code: int | None = None
        self.train_run: tuple[Path, Path] | None = None  # (run dir, export dir) once known

    def set(self, key: str, value: float | None, **labels: str) -> None:
        """Set a metric of METRICS[job] (a None value is left out)."""
        _, names = METRICS[self.job][key]
        if set(labels) != set(names):
            raise ValueError(f"{key}: labels {sorted(labels)}, expected {sorted(names)}")
        if value is not None:
            self.values.setdefault(key, {})[tuple(labels[n] for n in names)] = float(value)

    def one_hot(self, key: str, label: str, choices: tuple[str, ...], chosen: str) -> None:
        """A labelled gauge with every choice present: 1 for `chosen`, 0 for the rest
        (so a push replaces yesterday's choice)."""
        for choice in choices:
            self.set(key, 1.0 if choice == chosen else 0.0, **{label: choice})

    def set_train(self, run_dir: Path, export_dir: Path) -> None:
        """What the run's results.json says, as far as the run got."""
        try:
            record = results_mod.read(run_dir)
        except (OSError, results_mod.ResultsError):
            return  # failed before the run started: the exit code says it all
        for status in VARIANT_STATUSES:
            self.set(
                "variants", sum(1 for v in record.variants if v.status == status), status=status
            )
        self.set("wall_seconds", record.wall_seconds)
        self.set("floor_seconds", record.floor_seconds)
        self.set("wall_over_floor_ratio", record.wall_over_floor)
        best = record.variant(record.best)
        if best:
            self.set("best_val_accuracy", best.val_accuracy)
            self.set("best_test_accuracy", best.test_accuracy)
        if record.export and _last_part(record.export).isdigit():
            self.set("exported_version", int(_last_part(record.export)))
        if record.gate is not None:
            self.one_hot("gate_decision", "decision", GATE_DECISIONS, record.gate.decision)
            self.set("gate_refusals_in_a_row", gate_refusals_in_a_row(run_dir, export_dir))

    def set_score(
        self,
        *,
        files: int,
        failed: int,
        uncertain: int,
        images_per_second: float,
        model: Path,
    ) -> None:
        self.set("files", files)
        self.set("images_scored", files - failed)
        self.set("images_failed", failed)
        self.set("images_uncertain", uncertain)
        self.set("images_per_second", images_per_second)
        if _last_part(model).isdigit():
            self.set("model_version", int(_last_part(model)))

    def set_guard(self, ran: bool) -> None:
        self.one_hot("decision", "decision", ("run", "skip"), "run" if ran else "skip")

    def registry(self, exit_code: int, now: float | None = None):
        """A prometheus_client registry with this run's metrics and the outcome."""
        from prometheus_client import CollectorRegistry, Gauge

        now = time.time() if now is None else now
        success = exit_code in SUCCESS_CODES[self.job]
        self.values.pop("last_success_timestamp_seconds", None)  # from an earlier publish
        self.set("success", 1 if success else 0)
        self.set("exit_code", exit_code)
        self.set("duration_seconds", round(time.monotonic() - self.started, 3))
        self.set("last_run_timestamp_seconds", now)
        if success:
            self.set("last_success_timestamp_seconds", now)
        registry = CollectorRegistry()
        for key, samples in self.values.items():
            doc, labels = METRICS[self.job][key]
            gauge = Gauge(metric_name(self.job, key), doc, labels, registry=registry)
            for label_values, value in samples.items():
                (gauge.labels(*label_values) if labels else gauge).set(value)
        return registry

    def publish(self, exit_code: int) -> list[str]:
        """Push and/or write this run's metrics. Returns one warning line per sink that
        failed; raises nothing a sink does."""
        warnings = []
        if self.train_run:
            try:
                self.set_train(*self.train_run)
            except Exception as e:  # noqa: BLE001 - a bucket's errors too; the outcome still goes
                warnings.append(f"metrics: {self.train_run[0]}'s results not read ({reason(e)})")
        registry = self.registry(exit_code)
        self.published_code = exit_code
        if self.push:
            try:
                push(self.push, self.job, registry)
            except Exception as e:  # noqa: BLE001 - whatever the network or gateway did
                warnings.append(
                    f"metrics not pushed to {self.push} ({reason(e)}); the job's result "
                    f"and exit code stand"
                )
        if self.file:
            try:
                write_file(self.file, registry)
            except Exception as e:  # noqa: BLE001 - a full disk, a read-only mount
                warnings.append(
                    f"metrics not written to {self.file} ({reason(e)}); the job's result "
                    f"and exit code stand"
                )
        return warnings


def push(url: str, job: str, registry) -> None:
    """POST to the Pushgateway's group job=fmnist-<job>: replaces the families pushed."""
    from prometheus_client import pushadd_to_gateway

    pushadd_to_gateway(url, job=f"fmnist-{job}", registry=registry, timeout=PUSH_TIMEOUT)


def write_file(path: Path, registry) -> None:
    """Write `registry` to `path` atomically (written aside, renamed), keeping the
    families of the file's previous version that `registry` does not have."""
    from prometheus_client import write_to_textfile
    from prometheus_client.parser import text_string_to_metric_families

    ours = {m.name for m in registry.collect()}
    try:
        old = [
            m
            for m in text_string_to_metric_families(path.read_text())
            if m.name not in ours and m.name.startswith("fmnist_")
        ]
    except (OSError, ValueError):
        old = []  # none yet, or not ours to keep

    class Kept:
        def collect(self):
            return old

    registry.register(Kept())
    write_to_textfile(str(path), registry)


def reason(e: Exception) -> str:
    """An exception as a few words: urllib's nested reasons unwrapped."""
    inner = getattr(e, "reason", None)
    if isinstance(inner, BaseException):
        e = inner
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    code = getattr(e, "code", None)
    return f"HTTP {code}: {text}" if isinstance(code, int) else text


def gate_refusals_in_a_row(run_dir, export_dir) -> int:
    """How many runs in a row, up to `run_dir`'s, exported into `export_dir` a winner the
    gate did not promote: the run directories beside `run_dir` (runs/ by default),
    oldest first, counting only those that exported into the same directory. Both are
    locations (fmnist/core/storage.py)."""
    mine = storage.as_location(run_dir)
    target = storage.uri(storage.as_location(export_dir))
    gated = []
    try:
        siblings = runs_mod.run_dirs(mine.parent)
    except runs_mod.RunsError:
        siblings = []
    for path in siblings:
        try:
            record = results_mod.read(path)
        except (OSError, results_mod.ResultsError):
            continue
        if record.gate is None or not record.export:
            continue
        exported = storage.location(record.export, "export")
        if storage.uri(exported.parent) != target:
            continue
        this = storage.uri(path) == storage.uri(mine)
        gated.append((this, record.started_at, record.gate.decision))
    gated.sort(key=lambda g: (g[0], g[1]))  # this run last, whatever the clocks said
    streak = 0
    for *_, decision in reversed(gated):
        if decision == "promote":
            break
        streak += 1
    return streak
