"""The alert rules that ship in deploy/monitoring/: `promtool check rules` and
`promtool test rules` (Debian's prometheus package) on the plain rules file, the
PrometheusRule made from it, and a real Prometheus that scrapes a real Pushgateway
the jobs pushed to and fires the alerts."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from fmnist.ops import metrics

import procnet
from conftest import ROOT
from deployment import K8S_VERSIONS
from promtools import Pushgateway, binary, free_port

MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "fmnist.rules.yml"
MANIFEST = MONITORING / "prometheusrule.yaml"
UNIT_TESTS = ROOT / "tests" / "data" / "alerts" / "fmnist.rules.test.yml"
ALERTS = {
    "FmnistTrainingMissed",
    "FmnistTrainingNeverReported",
    "FmnistGateRefusing",
    "FmnistScoringErrorRate",
    "FmnistScoringNoNewFiles",
    "FmnistScoringNotRunning",
}


def promtool(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [binary("promtool"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_the_rules_file_passes_promtool_check():
    proc = promtool("check", "rules", RULES)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in proc.stdout


def test_every_alert_is_shipped_and_unit_tested():
    assert {r["alert"] for r in rules()} == ALERTS
    tested = {
        case["alertname"]
        for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert tested == ALERTS, "every alert has a case where it fires"


def test_the_rules_pass_their_unit_tests():
    proc = promtool("test", "rules", UNIT_TESTS.name, cwd=UNIT_TESTS.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_the_unit_tests_catch_a_changed_threshold(tmp_path):
    """The same cases against a rules file whose 26 hours became 40: they must fail."""
    data = tmp_path / "tests" / "data" / "alerts"
    deploy = tmp_path / "deploy" / "monitoring"
    data.mkdir(parents=True)
    deploy.mkdir(parents=True)
    text = RULES.read_text()
    assert "> 26 * 3600" in text
    (deploy / RULES.name).write_text(text.replace("> 26 * 3600", "> 40 * 3600"))
    (data / UNIT_TESTS.name).write_text(UNIT_TESTS.read_text())
    proc = promtool("test", "rules", UNIT_TESTS.name, cwd=data)
    assert proc.returncode != 0
    assert "FmnistTrainingMissed" in proc.stdout + proc.stderr


def test_the_rules_use_only_metrics_the_jobs_set():
    known = {metrics.metric_name(job, key) for job, keys in metrics.METRICS.items() for key in keys}
    used = {name for r in rules() for name in re.findall(r"\bfmnist_[a-z_]+", r["expr"])}
    assert used and used <= known, used - known


def _render() -> str:
    spec = importlib.util.spec_from_file_location("make", MONITORING / "make-prometheusrule.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    return make.render(RULES.read_text())


def test_the_prometheusrule_is_made_from_the_rules_file():
    assert MANIFEST.read_text() == _render(), (
        f"{MANIFEST} differs from what {RULES.name} makes: "
        f"run python3 deploy/monitoring/make-prometheusrule.py"
    )
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert manifest["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_promtool_checks_the_prometheusrule_groups_too(tmp_path):
    """What the operator hands Prometheus is spec as a rules file: that YAML, checked."""
    spec = yaml.safe_load(MANIFEST.read_text())["spec"]
    extracted = tmp_path / "from-prometheusrule.yml"
    extracted.write_text(yaml.safe_dump(spec))
    proc = promtool("check", "rules", extracted)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# The PrometheusRule's v1 fields as the Prometheus Operator documents them; its CRD is not
# in this repository, so this is a hand-written check of the structure, not its schema.
GROUP_KEYS = {"name", "interval", "rules", "limit", "labels", "partial_response_strategy"}
GROUP_KEYS |= {"query_offset"}
RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
DURATION = re.compile(
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)


def prometheusrule_problems(body: dict) -> list[str]:
    problems = []
    if body.get("apiVersion") != "monitoring.coreos.com/v1":
        problems.append("apiVersion: monitoring.coreos.com/v1")
    if body.get("kind") != "PrometheusRule":
        problems.append("kind: PrometheusRule")
    if set(body) - {"apiVersion", "kind", "metadata", "spec"}:
        problems.append(f"top-level keys {sorted(set(body))}")
    spec = body.get("spec")
    if not isinstance(spec, dict) or set(spec) != {"groups"}:
        return problems + ["spec: exactly groups"]
    names = [g.get("name") for g in spec["groups"]]
    if len(names) != len(set(names)) or not all(isinstance(n, str) and n for n in names):
        problems.append(f"group names must be unique and non-empty: {names}")
    for g in spec["groups"]:
        if set(g) - GROUP_KEYS:
            problems.append(f"group {g.get('name')}: unknown {sorted(set(g) - GROUP_KEYS)}")
        for r in g.get("rules", []):
            where = f"group {g.get('name')} rule {r.get('alert') or r.get('record')}"
            if set(r) - RULE_KEYS:
                problems.append(f"{where}: unknown {sorted(set(r) - RULE_KEYS)}")
            if ("alert" in r) == ("record" in r):
                problems.append(f"{where}: exactly one of alert and record")
            if not isinstance(r.get("expr"), (str, int)):
                problems.append(f"{where}: expr")
            for key in ("for", "keep_firing_for"):
                if key in r and not (isinstance(r[key], str) and DURATION.match(r[key])):
                    problems.append(f"{where}: {key} {r[key]!r} is not a duration")
            for key in ("labels", "annotations"):
                if not all(isinstance(v, str) for v in r.get(key, {}).values()):
                    problems.append(f"{where}: {key} values must be strings")
    return problems


def test_the_prometheusrule_has_the_operators_structure():
    body = yaml.safe_load(MANIFEST.read_text())
    assert prometheusrule_problems(body) == []
    broken = copy.deepcopy(body)
    broken["spec"]["groups"][0]["rules"][0]["for"] = "ten minutes"
    broken["spec"]["groups"][0]["rules"][1]["record"] = "x"
    broken["spec"]["groups"][0]["rules"][2]["expression"] = "x"
    assert len(prometheusrule_problems(broken)) == 3


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_the_prometheusrule_metadata_is_valid_kubernetes(version):
    """metadata is the API server's to check whatever the kind: as a ConfigMap's."""
    body = yaml.safe_load(MANIFEST.read_text())
    meta = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": body["metadata"]}
    kubernetes_validate.validate(meta, version, strict=True)


# -----------------------------------------------------------------------------
# A real Prometheus scraping a real Pushgateway, with the shipped rules


class Prometheus:
    def __init__(self, tmp: Path, target: str):
        self.tmp, self.target = tmp, target
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self) -> Prometheus:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {
                    "job_name": "pushgateway",
                    "honor_labels": True,
                    "static_configs": [{"targets": [self.target]}],
                }
            ],
        }
        (self.tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        log = open(self.tmp / "prometheus.log", "ab")
        self.proc = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={self.tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        self.wait_for(lambda: self.get("/-/ready") is not None, "ready")
        return self

    def get(self, path: str):
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as r:
                body = r.read().decode()
                return json.loads(body) if path.startswith("/api/") else body
        except OSError:
            return None

    def wait_for(self, check, what: str, seconds: float = 60):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited; log: {self.tmp / 'prometheus.log'}")
            if found := check():
                return found
            time.sleep(0.5)
        raise AssertionError(f"prometheus: not {what} within {seconds}s")

    def firing(self) -> set[str]:
        answer = self.get("/api/v1/alerts") or {"data": {"alerts": []}}
        return {
            a["labels"]["alertname"] for a in answer["data"]["alerts"] if a["state"] == "firing"
        }

    def stop(self):
        procnet.stop(self.proc, timeout=20)


@pytest.mark.slow
def test_prometheus_fires_the_shipped_alerts_on_what_the_jobs_push(tmp_path):
    (tmp_path / "gw").mkdir()
    (tmp_path / "prom").mkdir()
    gateway = Pushgateway(tmp_path / "gw").start()
    prometheus = None
    try:
        prometheus = Prometheus(tmp_path / "prom", gateway.url.removeprefix("http://")).start()
        rule_names = prometheus.wait_for(
            lambda: {
                r["name"]
                for g in (prometheus.get("/api/v1/rules") or {"data": {"groups": []}})["data"][
                    "groups"
                ]
                for r in g["rules"]
            },
            "loading the rules",
        )
        assert rule_names == ALERTS
        # A scoring run where half the files failed, and a night whose gate refused for
        # the third time: the two alerts without a `for`.
        score = metrics.JobMetrics("score", push=gateway.url)
        score.set_score(files=10, failed=5, uncertain=0, images_per_second=1.0, model=Path("1"))
        assert score.publish(3) == []
        train = metrics.JobMetrics("train", push=gateway.url)
        train.set("gate_refusals_in_a_row", 3)
        assert train.publish(0) == []
        firing = prometheus.wait_for(
            lambda: (
                prometheus.firing() >= {"FmnistScoringErrorRate", "FmnistGateRefusing"}
                and prometheus.firing()
            ),
            "firing",
        )
        assert "FmnistTrainingMissed" not in firing  # it just succeeded
        answer = prometheus.get("/api/v1/query?query=fmnist_train_success")
        (series,) = answer["data"]["result"]
        assert series["metric"]["job"] == "fmnist-train" and series["value"][1] == "1"
    finally:
        if prometheus:
            prometheus.stop()
        gateway.stop()


# -----------------------------------------------------------------------------
# The manifests' wiring: every scheduled train and score pushes where the ConfigMap says


def test_every_train_and_score_in_deploy_pushes_where_the_configmap_says():
    from deployment.commands import invocations, parse_cli
    from deployment.manifests import DOCS, containers, env_of, pod_templates

    (configmap,) = [d for d in DOCS if d.kind == "ConfigMap" and d.name == "fmnist-metrics"]
    assert metrics.check_push_url(configmap.body["data"]["pushgateway-url"])
    expected = {
        "configMapKeyRef": {"name": "fmnist-metrics", "key": "pushgateway-url", "optional": True}
    }
    checked = []
    for d in DOCS:
        for inv, pod, container in invocations(d):
            if parse_cli(inv.argv)[0] not in ("train", "score", "guard"):
                continue
            if container is None:  # a RayJob's entrypoint: its driver runs on the head
                (container,) = [
                    c for p in pod_templates(d) if p.role == "ray-head" for _, c in containers(p)
                ]
            env = env_of(container).get("FMNIST_METRICS_PUSH")
            assert env and env.get("valueFrom") == expected, f"{d.id} {inv.argv[:2]}"
            checked.append(d.id)
    assert len(set(checked)) >= 6, sorted(set(checked))
