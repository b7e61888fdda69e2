"""The YAML documents under deploy/ and the walk from a manifest down to its pod
templates, containers, volumes and resource quantities."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from deployment import BUCKET_DIR, DEPLOY, PROMETHEUS_OPERATOR_GROUP, RAY_GROUP


@dataclass(frozen=True)
class Doc:
    """One YAML document of a manifest file."""

    path: Path
    index: int
    body: dict

    @property
    def kind(self) -> str:
        return self.body.get("kind", "")

    @property
    def name(self) -> str:
        return self.body.get("metadata", {}).get("name", "")

    @property
    def rel(self) -> str:
        return str(self.path.relative_to(DEPLOY))

    @property
    def id(self) -> str:
        return f"{self.rel}[{self.index}]:{self.kind}/{self.name}"

    @property
    def in_bucket_variant(self) -> bool:
        """Under deploy/bucket/: no PVC, the data in a bucket."""
        return BUCKET_DIR in self.path.parents

    @property
    def is_ray(self) -> bool:
        return self.body.get("apiVersion", "").split("/")[0] == RAY_GROUP

    @property
    def is_prometheus_operator(self) -> bool:
        """A Prometheus Operator resource: no schema here (tests/test_alerts.py)."""
        return self.body.get("apiVersion", "").split("/")[0] == PROMETHEUS_OPERATOR_GROUP


def manifest_files() -> list[Path]:
    """Kubernetes manifests: every YAML file under deploy/ but Prometheus rule files
    (*.rules.yml; tests/test_alerts.py checks them with promtool)."""
    return sorted(
        p
        for p in DEPLOY.rglob("*")
        if p.suffix in (".yaml", ".yml") and not p.name.endswith(".rules.yml")
    )


def _load_all() -> tuple[list[Doc], dict[str, str]]:
    docs, errors = [], {}
    for path in manifest_files():
        try:
            bodies = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as e:
            errors[str(path.relative_to(DEPLOY))] = str(e)
            continue
        for i, body in enumerate(bodies):
            if body is None:
                continue
            if not isinstance(body, dict):
                errors[f"{path.relative_to(DEPLOY)}[{i}]"] = f"not a mapping: {body!r}"
                continue
            docs.append(Doc(path, i, body))
    return docs, errors


DOCS, YAML_ERRORS = _load_all()


def docs_of(*kinds: str) -> list[Doc]:
    return [d for d in DOCS if d.kind in kinds]


def ids(docs: list[Doc]) -> list[str]:
    return [d.id for d in docs]


def rayjob_specs(doc: Doc) -> list[tuple[str, dict]]:
    """(where, RayJobSpec) of a RayJob or of a RayCronJob's jobTemplate."""
    spec = doc.body.get("spec", {})
    if doc.kind == "RayJob":
        return [("spec", spec)]
    if doc.kind == "RayCronJob":
        return [("spec.jobTemplate", spec.get("jobTemplate", {}))]
    return []


def raycluster_specs(doc: Doc) -> list[tuple[str, dict]]:
    """(where, RayClusterSpec) of a RayCluster, or of the cluster a RayJob creates."""
    if doc.kind == "RayCluster":
        return [("spec", doc.body.get("spec", {}))]
    return [
        (f"{where}.rayClusterSpec", js["rayClusterSpec"])
        for where, js in rayjob_specs(doc)
        if "rayClusterSpec" in js
    ]


@dataclass(frozen=True)
class PodT:
    """A pod template (or a Pod) somewhere in a manifest."""

    where: str
    metadata: dict
    spec: dict
    role: str  # "ray-head", "ray-worker", "submitter", "job", "server", "pod"


def ray_cluster_pods(where: str, cluster: dict) -> list[PodT]:
    pods = []
    head = cluster.get("headGroupSpec", {}).get("template", {})
    pods.append(
        PodT(
            f"{where}.headGroupSpec.template",
            head.get("metadata", {}),
            head.get("spec", {}),
            "ray-head",
        )
    )
    for i, group in enumerate(cluster.get("workerGroupSpecs", [])):
        t = group.get("template", {})
        pods.append(
            PodT(
                f"{where}.workerGroupSpecs[{i}]({group.get('groupName')}).template",
                t.get("metadata", {}),
                t.get("spec", {}),
                "ray-worker",
            )
        )
    return pods


def pod_templates(doc: Doc) -> list[PodT]:
    """Every pod template of a manifest: workloads, Ray head and worker groups, submitters."""
    b = doc.body
    spec = b.get("spec", {})
    if doc.kind == "Pod":
        return [PodT("spec", b.get("metadata", {}), spec, "pod")]
    if doc.kind == "Job":
        t = spec.get("template", {})
        return [PodT("spec.template", t.get("metadata", {}), t.get("spec", {}), "job")]
    if doc.kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        t = spec.get("template", {})
        return [PodT("spec.template", t.get("metadata", {}), t.get("spec", {}), "server")]
    if doc.kind == "CronJob":
        t = spec.get("jobTemplate", {}).get("spec", {}).get("template", {})
        return [
            PodT("spec.jobTemplate.spec.template", t.get("metadata", {}), t.get("spec", {}), "job")
        ]
    pods = []
    for where, cluster in raycluster_specs(doc):
        pods += ray_cluster_pods(where, cluster)
    for where, js in rayjob_specs(doc):
        if "submitterPodTemplate" in js:
            t = js["submitterPodTemplate"]
            pods.append(
                PodT(
                    f"{where}.submitterPodTemplate",
                    t.get("metadata", {}),
                    t.get("spec", {}),
                    "submitter",
                )
            )
    return pods


def all_pods() -> list[tuple[Doc, PodT]]:
    return [(d, p) for d in DOCS for p in pod_templates(d)]


ALL_PODS = all_pods()


def containers(pod: PodT) -> list[tuple[str, dict]]:
    """(section, container) for the init containers, then the containers."""
    spec = pod.spec
    return [("initContainers", c) for c in spec.get("initContainers", [])] + [
        ("containers", c) for c in spec.get("containers", [])
    ]


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


_QTY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))([a-zA-Z]*)$")
_SUFFIX = {
    "": 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def quantity(q: Any) -> float:
    """A Kubernetes quantity ("500m", "2Gi") as a number."""
    m = _QTY.match(str(q))
    assert m and m.group(2) in _SUFFIX, f"not a Kubernetes quantity: {q!r}"
    return float(m.group(1)) * _SUFFIX[m.group(2)]


def gpus(container: dict) -> float:
    return quantity(container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))


def pod_gpus(pod: PodT) -> float:
    return sum(gpus(c) for _, c in containers(pod))


def volume_of(pod: PodT, mount: dict) -> dict:
    vols = {v["name"]: v for v in pod.spec.get("volumes", [])}
    assert mount["name"] in vols, f"{pod.where}: volumeMount {mount['name']} has no volume"
    return vols[mount["name"]]


def mount_for(pod: PodT, container: dict, path: PurePosixPath) -> tuple[dict, dict] | None:
    """The (volumeMount, volume) whose mountPath holds `path` (longest match)."""
    best = None
    for m in container.get("volumeMounts", []):
        mp = PurePosixPath(m["mountPath"])
        holds = path == mp or mp in path.parents
        if holds and (best is None or len(mp.parts) > len(PurePosixPath(best["mountPath"]).parts)):
            best = m
    return (best, volume_of(pod, best)) if best else None


def cron_period_seconds(schedule: str) -> int:
    """How often a cron schedule fires (daily or hourly ones; others fail the test)."""
    fields = schedule.split()
    assert len(fields) == 5, schedule
    minute, hour, dom, month, dow = fields
    if (dom, month, dow) == ("*", "*", "*") and minute.isdigit():
        if hour.isdigit():
            return 86400
        if hour == "*":
            return 3600
    pytest.fail(f"teach cron_period_seconds about {schedule!r}")
