"""RayCluster, RayJob and RayCronJob: the KubeRay v1.7.0 CRDs in tests/data/kuberay-crds/
(JSON schema, the fields the API server would prune, list-map keys, the CEL rules
evaluated with cel-python), their pod templates as Kubernetes pods, the checks the KubeRay
operator makes at reconcile time, the RayJob/RayCronJob policies, and token
authentication on every Ray cluster with the Secret never in a manifest."""

from __future__ import annotations

import copy
import re

import kubernetes_validate
import pytest

from deployment import (
    AUTH_SECRET,
    AUTH_SECRET_KEY,
    BUCKET_SECRET,
    CRD_DIR,
    CRD_FILES,
    DEPLOY,
    K8S_VERSIONS,
    NAMESPACE,
    SHARED_CRD_DIR,
)
from deployment.checks import token_auth_problems
from deployment.crds import crd_problems, crd_schema
from deployment.manifests import (
    DOCS,
    PodT,
    containers,
    cron_period_seconds,
    docs_of,
    ids,
    manifest_files,
    pod_templates,
    raycluster_specs,
    rayjob_specs,
)

RAY_DOCS = [d for d in DOCS if d.is_ray]


def as_pod(pod: PodT) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": copy.deepcopy(pod.metadata) or {"name": "x"},
        "spec": copy.deepcopy(pod.spec),
    }


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("doc", RAY_DOCS, ids=ids(RAY_DOCS))
def test_ray_pod_templates_and_metadata_validate_as_kubernetes(doc, version):
    """The CRD schemas embed PodTemplateSpec; check them (and the custom resource's own
    metadata, which the CRD schema leaves open) against the real Kubernetes schemas too."""
    for pod in pod_templates(doc):
        try:
            kubernetes_validate.validate(as_pod(pod), version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{doc.id} {pod.where}: {'.'.join(map(str, e.path))}: {e.message}")
    meta = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": copy.deepcopy(doc.body["metadata"]),
    }
    kubernetes_validate.validate(meta, version, strict=True)


@pytest.mark.parametrize("doc", RAY_DOCS, ids=ids(RAY_DOCS))
def test_ray_custom_resources_validate_against_kuberay_crds(doc):
    assert doc.body["apiVersion"] == "ray.io/v1", f"{doc.id}: use ray.io/v1"
    assert doc.kind in CRD_FILES, f"{doc.id}: no CRD for {doc.kind} in {CRD_DIR}"
    problems = crd_problems(doc.body)
    assert not problems, f"{doc.id}:\n  " + "\n  ".join(problems)


def test_crd_copies_match_shared_reference():
    if not SHARED_CRD_DIR.is_dir():
        pytest.skip(f"{SHARED_CRD_DIR} not present")
    for name in CRD_FILES.values():
        assert (CRD_DIR / name).read_bytes() == (SHARED_CRD_DIR / name).read_bytes(), name


DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize("doc", RAY_DOCS, ids=ids(RAY_DOCS))
def test_kuberay_operator_rules(doc):
    """Checks the KubeRay operator (v1.7) makes when it reconciles, which no schema has:
    a manifest that fails them is accepted by the API server and then never runs."""
    problems = []
    # RayJob names become RayCluster/Job/Service name prefixes; a RayCronJob's RayJobs are
    # <name>-<5 random chars>. KubeRay wants DNS-1035 labels; stay well below its limits.
    if not DNS1035.match(doc.name) or len(doc.name) > 40:
        problems.append(f"name {doc.name!r}: DNS-1035 label of at most 40 characters")
    for where, js in rayjob_specs(doc):
        rules = js.get("deletionStrategy", {}).get("deletionRules", [])
        shutdown = js.get("shutdownAfterJobFinishes", False)
        if rules and shutdown:
            problems.append(
                f"{where}: shutdownAfterJobFinishes and deletionRules are mutually exclusive"
            )
        if js.get("ttlSecondsAfterFinished", 0) > 0 and not shutdown:
            problems.append(f"{where}: ttlSecondsAfterFinished needs shutdownAfterJobFinishes")
        for field in ("activeDeadlineSeconds", "preRunningDeadlineSeconds"):
            if field in js and js[field] <= 0:
                problems.append(f"{where}.{field} must be positive")
        if js.get("backoffLimit", 0) < 0:
            problems.append(f"{where}.backoffLimit must be >= 0")
        mode = js.get("submissionMode", "K8sJobMode")
        if "submitterPodTemplate" in js and mode != "K8sJobMode":
            problems.append(f"{where}: submitterPodTemplate only applies to K8sJobMode")
        by_condition: dict[tuple, dict[str, int]] = {}
        for r in rules:
            c = r["condition"]
            key = (c.get("jobStatus"), c.get("jobDeploymentStatus"))
            if r["policy"] in by_condition.setdefault(key, {}):
                problems.append(f"{where}: duplicate deletion rule {key} {r['policy']}")
            by_condition[key][r["policy"]] = c.get("ttlSeconds", 0)
        for key, ttl in by_condition.items():
            order = [ttl[p] for p in ("DeleteWorkers", "DeleteCluster", "DeleteSelf") if p in ttl]
            if order != sorted(order):
                problems.append(
                    f"{where}: for {key} TTLs must grow "
                    "DeleteWorkers <= DeleteCluster <= DeleteSelf"
                )
    for where, cluster in raycluster_specs(doc):
        if not cluster.get("rayVersion"):
            problems.append(f"{where}.rayVersion missing")
        groups = [("head", cluster.get("headGroupSpec", {}))] + [
            (g.get("groupName"), g) for g in cluster.get("workerGroupSpecs", [])
        ]
        names = [n for n, _ in groups[1:]]
        if len(set(names)) != len(names):
            problems.append(f"{where}: worker groupNames must be unique")
        for name, g in groups:
            params = g.get("rayStartParams", {})
            if "labels" in params:
                problems.append(f"{where} {name}: rayStartParams.labels is rejected; use labels")
            if g.get("resources") and {"num-cpus", "num-gpus", "memory", "resources"} & set(params):
                problems.append(f"{where} {name}: resources in both rayStartParams and resources")
            bounds = (g.get("minReplicas", 0), g.get("replicas", 0), g.get("maxReplicas", 0))
            if name != "head" and not bounds[0] <= bounds[1] <= bounds[2]:
                problems.append(f"{where} {name}: needs minReplicas <= replicas <= maxReplicas")
        if cluster.get("enableInTreeAutoscaling"):
            problems.append(
                f"{where}: the autoscaler sidecar would be injected without a "
                "securityContext; set autoscalerOptions.securityContext first"
            )
    assert not problems, f"{doc.id}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("doc", docs_of("RayCronJob"), ids=ids(docs_of("RayCronJob")))
def test_raycronjob_policies(doc):
    """RayCronJob (KubeRay v1.7.0) has no concurrencyPolicy, startingDeadlineSeconds or
    history limits: the schema test proves such fields would be dropped. Their effect comes
    from the RayJob template instead, which this test requires."""
    spec = doc.body["spec"]
    schema_fields = set(crd_schema("RayCronJob")["properties"]["spec"]["properties"])
    assert schema_fields == {"jobTemplate", "schedule", "suspend", "timeZone"}, (
        "RayCronJob grew fields: use concurrencyPolicy/history limits if it has them now"
    )
    assert spec.get("timeZone")
    job = spec["jobTemplate"]
    # Forbid: each run ends (deadline) before the next tick creates the next RayJob.
    assert 0 < job.get("activeDeadlineSeconds", 0) < cron_period_seconds(spec["schedule"])
    assert job.get("preRunningDeadlineSeconds", 0) > 0  # the starting deadline
    assert isinstance(job.get("backoffLimit"), int)
    assert isinstance(job.get("submitterConfig", {}).get("backoffLimit"), int)
    # History limits: every way a run can end removes its cluster and, later, itself.
    rules = job.get("deletionStrategy", {}).get("deletionRules", [])
    ends = [{"jobStatus": "SUCCEEDED"}, {"jobStatus": "FAILED"}, {"jobDeploymentStatus": "Failed"}]
    for end in ends:
        for policy in ("DeleteCluster", "DeleteSelf"):
            assert any(
                r["policy"] == policy and end.items() <= r["condition"].items() for r in rules
            ), f"deletion rule {policy} for {end}"


@pytest.mark.parametrize("doc", docs_of("RayJob"), ids=ids(docs_of("RayJob")))
def test_rayjob_tears_its_cluster_down(doc):
    spec = doc.body["spec"]
    assert spec.get("shutdownAfterJobFinishes") is True
    assert "ttlSecondsAfterFinished" in spec
    assert spec.get("activeDeadlineSeconds", 0) > 0
    assert spec.get("preRunningDeadlineSeconds", 0) > 0


@pytest.mark.parametrize(
    "doc", docs_of("RayJob", "RayCronJob"), ids=ids(docs_of("RayJob", "RayCronJob"))
)
def test_rayjob_submitter_is_ours(doc):
    """KubeRay's default submitter pod has no securityContext: define the template."""
    for where, js in rayjob_specs(doc):
        assert js.get("submissionMode", "K8sJobMode") == "K8sJobMode"
        assert "submitterPodTemplate" in js, f"{where}: submitterPodTemplate"


@pytest.mark.parametrize("doc", DOCS, ids=ids(DOCS))
def test_ray_token_auth_everywhere_the_same_way(doc):
    problems = token_auth_problems(doc)
    assert not problems, f"{doc.id}:\n  " + "\n  ".join(problems)


def test_the_token_secret_is_never_in_a_manifest():
    """The Secret is created with kubectl (deploy/README.md); no manifest holds it, so the
    token never lands in git or in `kubectl apply -f deploy/` output."""
    assert not docs_of("Secret"), "a Secret in deploy/: create it with kubectl instead"
    for path in manifest_files():
        text = path.read_text()
        # stringData/data with the token key would be an inlined Secret, whatever its kind.
        assert not re.search(rf"^\s*{AUTH_SECRET_KEY}\s*:", text, re.M), f"{path}: inlined token"
    ray_docs = [d for d in DOCS if raycluster_specs(d)]
    assert ray_docs, "no Ray cluster in deploy/"
    refs = {
        ref["name"]
        for d in DOCS
        for p in pod_templates(d)
        for _, c in containers(p)
        for e in c.get("env", [])
        if (ref := e.get("valueFrom", {}).get("secretKeyRef"))
    }
    assert refs == {AUTH_SECRET}, f"Secrets referenced: {refs}"
    # The bucket's keys: a whole optional Secret (absent with a workload identity).
    env_from = [
        ref
        for d in DOCS
        for p in pod_templates(d)
        for _, c in containers(p)
        for e in c.get("envFrom", [])
        if (ref := e.get("secretRef"))
    ]
    assert env_from and all(r == {"name": BUCKET_SECRET, "optional": True} for r in env_from)
    readme = (DEPLOY / "README.md").read_text()
    for secret in (AUTH_SECRET, BUCKET_SECRET):
        assert f"kubectl -n {NAMESPACE} create secret generic {secret}" in readme, (
            f"deploy/README.md must say how to create the Secret {secret}"
        )
