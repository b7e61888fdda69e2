"""Prometheus metrics of train, score and guard (fmnist/ops/metrics.py): pushed to a
real Pushgateway (Debian's, started here on loopback and stopped by PID) and written
for node_exporter's textfile collector; read back with prometheus_client's parser."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from fmnist.ops import metrics
from fmnist.ops.gate import GateDecision
from fmnist.ops.results import RunResults, RunSettings, VariantResult

from conftest import FMNIST_JOB, ROOT, run_cli
from promtools import Pushgateway, binary, free_port, jobs_of, samples, value


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    gw = Pushgateway(tmp_path_factory.mktemp("pushgateway")).start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def no_metrics_env(monkeypatch):
    monkeypatch.delenv("FMNIST_METRICS_PUSH", raising=False)


def _record(run_id: str, started: str, export: str | None, decision: str | None) -> RunResults:
    record = RunResults(
        run_id=run_id,
        started_at=started,
        sweep=[],
        settings=RunSettings(val_size=100),
        dataset_sha256={},
        address="embedded",
        train_size=1,
        val_size=1,
        test_size=1,
        variants=[
            VariantResult(name="a", config={}, status="ok", val_accuracy=0.9, test_accuracy=0.8),
            VariantResult(name="b", config={}, status="failed", error="x"),
        ],
        best="a",
        export=export,
        wall_seconds=12.5,
        floor_seconds=10.0,
        wall_over_floor=1.25,
    )
    if decision:
        record.gate = GateDecision(
            decision=decision,
            reason="r",
            version=int(Path(export).name),
            val_accuracy=0.9,
            tolerance_points=0.2,
        )
    return record


def _write_run(runs: Path, run_id: str, started: str, export, decision) -> Path:
    d = runs / run_id
    d.mkdir(parents=True)
    _record(run_id, started, str(export) if export else None, decision).write(d)
    return d


# -----------------------------------------------------------------------------
# The values, the textfile, the gate streak: no binaries needed


def test_a_missing_tool_fails_under_ci_and_skips_elsewhere(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install"):
        binary("fmnist-no-such-tool")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        binary("fmnist-no-such-tool")


def test_a_run_reports_its_outcome_and_only_a_success_moves_the_last_success():
    m = metrics.JobMetrics("score", file=Path("x.prom"))
    ok = samples(_text(m.registry(0, now=1000.0)))
    assert value(ok, "fmnist_score_success") == 1
    assert value(ok, "fmnist_score_last_success_timestamp_seconds") == 1000.0
    m = metrics.JobMetrics("score", file=Path("x.prom"))
    bad = samples(_text(m.registry(2, now=2000.0)))
    assert value(bad, "fmnist_score_success") == 0
    assert value(bad, "fmnist_score_exit_code") == 2
    assert value(bad, "fmnist_score_last_run_timestamp_seconds") == 2000.0
    assert value(bad, "fmnist_score_last_success_timestamp_seconds") is None
    assert value(bad, "fmnist_score_duration_seconds") >= 0
    # Exit 3 (some images failed, the predictions written) is a scoring run that worked.
    some = samples(_text(metrics.JobMetrics("score", file=Path("x.prom")).registry(3)))
    assert value(some, "fmnist_score_success") == 1


def _text(registry) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry).decode()


def test_a_second_publish_with_a_failure_is_no_success(tmp_path):
    """The guard publishes before it execs; an exec that fails publishes again."""
    m = metrics.JobMetrics("guard", file=tmp_path / "g.prom")
    assert m.publish(0) == []
    stamp = value(
        samples((tmp_path / "g.prom").read_text()), "fmnist_guard_last_success_timestamp_seconds"
    )
    time.sleep(0.01)
    assert m.publish(2) == []
    found = samples((tmp_path / "g.prom").read_text())
    assert value(found, "fmnist_guard_success") == 0
    assert value(found, "fmnist_guard_last_success_timestamp_seconds") == stamp  # kept, not moved


def test_labels_must_be_those_declared():
    m = metrics.JobMetrics("train", file=Path("x.prom"))
    with pytest.raises(ValueError, match="labels"):
        m.set("variants", 1)
    with pytest.raises(KeyError):
        m.set("images_failed", 1)


@pytest.mark.parametrize(
    "url, problem",
    [
        ("pushgateway:9091", "not a Pushgateway URL"),
        ("ftp://host:9091", "not a Pushgateway URL"),
        ("http://", "not a Pushgateway URL"),
        ("http://host:9091/?x=1", "drop the query"),
    ],
)
def test_bad_push_urls_are_refused(url, problem):
    with pytest.raises(metrics.MetricsError, match=problem):
        metrics.check_push_url(url)


def test_the_textfile_keeps_what_a_failed_run_does_not_set(tmp_path):
    path = tmp_path / "fmnist_train.prom"
    m = metrics.JobMetrics("train", file=path)
    run_dir = _write_run(
        tmp_path / "runs", "r1", "2026-01-01T02:00:00", tmp_path / "m/1", "promote"
    )
    m.train_run = (run_dir, tmp_path / "m")
    assert m.publish(0) == []
    first = samples(path.read_text())
    assert value(first, "fmnist_train_best_val_accuracy") == 0.9
    assert value(first, "fmnist_train_variants", status="failed") == 1
    assert value(first, "fmnist_train_gate_decision", decision="promote") == 1
    assert value(first, "fmnist_train_gate_decision", decision="candidate") == 0
    assert value(first, "fmnist_train_exported_version") == 1
    assert value(first, "fmnist_train_wall_over_floor_ratio") == 1.25

    assert metrics.JobMetrics("train", file=path).publish(1) == []  # failed before a run
    after = samples(path.read_text())
    assert value(after, "fmnist_train_success") == 0
    assert value(after, "fmnist_train_exit_code") == 1
    kept = "fmnist_train_last_success_timestamp_seconds"
    assert value(after, kept) == value(first, kept)
    assert value(after, "fmnist_train_best_val_accuracy") == 0.9
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == [path.name]  # no leftovers


def test_a_file_that_cannot_be_written_is_a_warning(tmp_path):
    m = metrics.JobMetrics("guard", file=tmp_path / "missing" / "g.prom")
    (warning,) = m.publish(0)
    assert "metrics not written to" in warning and "exit code stand" in warning


def test_the_gate_streak_counts_refusals_since_the_last_promotion(tmp_path):
    runs, models, other = tmp_path / "runs", tmp_path / "models", tmp_path / "elsewhere"
    _write_run(runs, "a", "2026-01-01T02:00:00", models / "1", "candidate")
    _write_run(runs, "b", "2026-01-02T02:00:00", models / "2", "promote")
    _write_run(runs, "c", "2026-01-03T02:00:00", models / "3", "candidate")
    _write_run(runs, "d", "2026-01-04T02:00:00", None, None)  # every variant failed
    _write_run(runs, "e", "2026-01-04T03:00:00", other / "1", "promote")  # another export dir
    (runs / "f").mkdir()  # no results.json
    last = _write_run(runs, "g", "2026-01-05T02:00:00", models / "4", "unlabelled")
    assert metrics.gate_refusals_in_a_row(last, models) == 2
    assert metrics.gate_refusals_in_a_row(runs / "b", models) == 2 - 2  # its own: promoted


# -----------------------------------------------------------------------------
# Through the CLI


def test_guard_writes_its_decision_before_it_becomes_the_command(tmp_path, no_metrics_env):
    prom = tmp_path / "guard.prom"
    proc = run_cli(
        "guard", "--lease", tmp_path / "lease", "--metrics-file", prom, "--",
        sys.executable, "-c", "import sys; sys.exit(7)",
    )  # fmt: skip
    assert proc.returncode == 7, proc.stderr  # the command's own exit code
    found = samples(prom.read_text())
    assert value(found, "fmnist_guard_decision", decision="run") == 1
    assert value(found, "fmnist_guard_decision", decision="skip") == 0
    assert value(found, "fmnist_guard_success") == 1


def test_a_bad_metrics_option_is_a_usage_error(tmp_path, no_metrics_env):
    proc = run_cli("score", tmp_path, "--metrics-push", "gateway:9091")
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "--metrics-push 'gateway:9091': not a Pushgateway URL" in line
    proc = run_cli("score", tmp_path, "--metrics-file", tmp_path / "m.txt")
    assert proc.returncode == 2 and "must end in .prom" in proc.stderr


def test_an_unreachable_gateway_costs_one_warning_and_not_the_exit_code(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    prom = tmp_path / "score.prom"
    proc = run_cli(
        "score", tmp_path / "missing", "--metrics-file", prom, env={"FMNIST_METRICS_PUSH": url}
    )
    assert proc.returncode == 2  # the job's own: no such directory
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2, proc.stderr
    assert "missing: no such directory" in lines[0]
    assert lines[1].startswith(f"fmnist-job: warning: metrics not pushed to {url} (")
    assert "exit code stand" in lines[1]
    found = samples(prom.read_text())  # the other sink still got it
    assert value(found, "fmnist_score_exit_code") == 2


def test_a_dry_run_reports_nothing(tmp_path, no_metrics_env):
    prom = tmp_path / "train.prom"
    proc = run_cli("train", "--dry-run", "--metrics-file", prom)
    assert proc.returncode == 0 and not prom.exists()


# -----------------------------------------------------------------------------
# A real Pushgateway


def test_pushes_add_to_the_group_and_a_failure_keeps_the_last_success(gateway):
    ok = metrics.JobMetrics("score", push=gateway.url)
    ok.set_score(files=10, failed=1, uncertain=2, images_per_second=50.0, model=Path("m/3"))
    assert ok.publish(3) == []
    first = gateway.metrics()
    assert value(first, "fmnist_score_images_failed") == 1
    assert value(first, "fmnist_score_images_scored") == 9
    assert value(first, "fmnist_score_model_version") == 3
    assert value(first, "fmnist_score_success") == 1

    assert metrics.JobMetrics("score", push=gateway.url).publish(1) == []
    after = gateway.metrics()
    assert value(after, "fmnist_score_success") == 0
    assert value(after, "fmnist_score_exit_code") == 1
    stamp = "fmnist_score_last_success_timestamp_seconds"
    assert value(after, stamp) == value(first, stamp)
    with urllib.request.urlopen(gateway.url + "/metrics") as r:
        assert jobs_of(r.read().decode(), "fmnist_score_success") == {"fmnist-score"}


def test_a_gateway_that_refuses_the_push_is_a_warning(gateway):
    # The Pushgateway refuses a push whose families clash with what it holds: a type.
    clash = b"# TYPE fmnist_guard_success counter\nfmnist_guard_success 1\n"
    request = urllib.request.Request(gateway.url + "/metrics/job/someone-else", clash)
    urllib.request.urlopen(request, timeout=5).close()
    (warning,) = metrics.JobMetrics("guard", push=gateway.url).publish(0)
    assert warning.startswith(f"metrics not pushed to {gateway.url} (HTTP 400"), warning
    delete = urllib.request.Request(gateway.url + "/metrics/job/someone-else", method="DELETE")
    urllib.request.urlopen(delete, timeout=5).close()


@pytest.mark.slow
def test_score_pushes_its_counts(gateway, scoring_model, test_set, tmp_path):
    x, _ = test_set
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(5):
        Image.fromarray(x[i]).save(inbox / f"{i}.png")
    (inbox / "broken.png").write_bytes(b"not a png")
    proc = run_cli(
        "score", inbox, "--model", scoring_model, "--out", tmp_path / "p.csv",
        "--decoders", "1", env={"FMNIST_METRICS_PUSH": gateway.url},
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "warning" not in proc.stderr
    found = gateway.metrics()
    assert value(found, "fmnist_score_files") == 6
    assert value(found, "fmnist_score_images_scored") == 5
    assert value(found, "fmnist_score_images_failed") == 1
    assert value(found, "fmnist_score_images_per_second") > 0
    assert value(found, "fmnist_score_model_version") == 1
    assert value(found, "fmnist_score_exit_code") == 3


@pytest.mark.slow
def test_train_pushes_the_run_and_a_later_failure(gateway, tmp_path, sweep_file):
    sweep = sweep_file('[[variant]]\nname = "tiny"\nhidden = [16]\nepochs = 1\n')
    env = {"FMNIST_METRICS_PUSH": gateway.url, "RAY_ADDRESS": ""}
    args = ["train", "--sweep", sweep, "--limit", "600", "--val-size", "100", "--workers", "1"]
    args += ["--export-dir", tmp_path / "models", "--runs-dir", tmp_path / "runs" / "r1"]
    proc = run_cli(*args, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    found = gateway.metrics()
    record = json.loads((tmp_path / "runs" / "r1" / "results.json").read_text())
    assert value(found, "fmnist_train_success") == 1
    assert value(found, "fmnist_train_variants", status="ok") == 1
    assert value(found, "fmnist_train_best_val_accuracy") == record["variants"][0]["val_accuracy"]
    assert value(found, "fmnist_train_best_test_accuracy") == record["variants"][0]["test_accuracy"]
    assert value(found, "fmnist_train_exported_version") == 1
    assert value(found, "fmnist_train_gate_decision", decision="promote") == 1
    assert value(found, "fmnist_train_gate_refusals_in_a_row") == 0
    assert value(found, "fmnist_train_wall_seconds") == record["wall_seconds"]
    assert value(found, "fmnist_train_wall_over_floor_ratio") == record["wall_over_floor"]
    assert value(found, "fmnist_train_duration_seconds") >= record["wall_seconds"]

    # The next night's data is broken: it fails before training, and says so.
    bad = run_cli("train", "--data-dir", tmp_path / "nodata", cwd=tmp_path, env=env)
    assert bad.returncode == 2
    after = gateway.metrics()
    assert value(after, "fmnist_train_success") == 0
    assert value(after, "fmnist_train_exit_code") == 2
    stamp = "fmnist_train_last_success_timestamp_seconds"
    assert value(after, stamp) == value(found, stamp)
    assert (tmp_path / "models" / "1").is_dir()


@pytest.mark.slow
def test_an_interrupted_score_still_reports(scoring_model, tmp_path, no_metrics_env):
    """SIGTERM leaves score through exit_at_once, past every `finally`: the hook reports."""
    import numpy as np

    inbox = tmp_path / "big"
    inbox.mkdir()
    ramp = np.linspace(0, 255, 6000, dtype=np.float32)[None, :].repeat(4000, 0).astype(np.uint8)
    for i in range(30):  # 24-megapixel PNGs: seconds of decoding on one core
        Image.fromarray(np.roll(ramp, 37 * i, axis=1)).save(inbox / f"{i:02}.png", compress_level=1)
    prom = tmp_path / "score.prom"
    proc = subprocess.Popen(
        [*FMNIST_JOB, "score", str(inbox), "--model", str(scoring_model), "--decoders", "1",
         "--out", str(tmp_path / "p.csv"), "--metrics-file", str(prom)],
        cwd=ROOT, text=True, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for line in proc.stderr:
            if "image files under" in line:  # decoding has begun
                break
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    assert proc.returncode == 143, rest[-2000:]
    found = samples(prom.read_text())
    assert value(found, "fmnist_score_exit_code") == 143
    assert value(found, "fmnist_score_success") == 0
    assert value(found, "fmnist_score_last_success_timestamp_seconds") is None
