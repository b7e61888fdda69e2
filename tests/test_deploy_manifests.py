"""deploy/ as a whole: every YAML document parses, built-in kinds validate strictly
(unknown fields fail) against the Kubernetes OpenAPI schemas kubernetes-validate ships for
K8S_VERSIONS, names/labels/namespaces, claims, nothing exposed outside the cluster,
CronJob policies, and deploy/README.md covering every file.

No Docker engine and no Kubernetes API server are available where this project is built,
so tests/test_deploy_*.py check what can be checked statically (deploy/README.md says what
that leaves out); the shared loading and walking code is the tests/deployment/ package.
"""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from deployment import (
    APP_NAME,
    AWS_CREDENTIAL_ENV,
    BUCKET_ACCOUNT,
    BUCKET_CONFIG,
    DEPLOY,
    K8S_VERSIONS,
    NAMESPACE,
)
from deployment.checks import bucket_variant_problems
from deployment.commands import invocations, parse_cli
from deployment.manifests import (
    ALL_PODS,
    DOCS,
    YAML_ERRORS,
    cron_period_seconds,
    docs_of,
    ids,
    manifest_files,
    pod_gpus,
    pod_templates,
    raycluster_specs,
)

FORBIDDEN_KINDS = {
    "Ingress",
    "IngressClass",
    "Gateway",
    "HTTPRoute",
    "GRPCRoute",
    "TCPRoute",
    "TLSRoute",
    "Route",
    "RayService",
}
EXPOSING_SERVICE_TYPES = {"LoadBalancer", "NodePort"}


def test_manifests_exist_and_parse():
    assert manifest_files(), "no manifests under deploy/"
    assert not YAML_ERRORS, f"YAML that does not parse: {YAML_ERRORS}"
    for d in DOCS:
        assert d.body.get("apiVersion") and d.kind and d.name, (
            f"{d.id}: apiVersion/kind/metadata.name"
        )


def test_every_scenario_is_covered():
    kinds = {d.kind for d in DOCS}
    assert {
        "Namespace",
        "PersistentVolumeClaim",
        "RayCluster",
        "RayJob",
        "RayCronJob",
        "CronJob",
    } <= kinds
    subcommands = {
        parse_cli(inv.argv)[0] for d in docs_of("CronJob") for inv, _, _ in invocations(d)
    }
    assert subcommands - {"guard"} == {"train", "score"}, "plain CronJobs: one trains, one scores"
    assert any(pod_gpus(p) > 0 for _, p in ALL_PODS), "a GPU variant"
    bucket = [d for d in DOCS if d.in_bucket_variant]
    assert {"ConfigMap", "ServiceAccount", "RayJob", "RayCronJob", "CronJob"} == {
        d.kind for d in bucket
    }, "the bucket variant of each scenario"
    subcommands = {
        parse_cli(inv.argv)[0]
        for d in bucket
        if d.kind == "CronJob"
        for inv, _, _ in invocations(d)
    }
    assert subcommands - {"guard"} == {"train", "score"}, "bucket CronJobs: train and score"


BUCKET_DOCS = [d for d in DOCS if d.in_bucket_variant]


@pytest.mark.parametrize("doc", BUCKET_DOCS, ids=ids(BUCKET_DOCS))
def test_bucket_variant_needs_no_shared_volume_and_holds_no_key(doc):
    problems = bucket_variant_problems(doc)
    assert not problems, f"{doc.id}:\n  " + "\n  ".join(problems)


def test_bucket_settings_and_identity():
    (config,) = [d for d in docs_of("ConfigMap") if d.name == BUCKET_CONFIG]
    assert config.in_bucket_variant
    data = config.body["data"]
    assert set(data) == {"AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"}, "no keys in a ConfigMap"
    assert not set(AWS_CREDENTIAL_ENV) & set(data)
    (account,) = [d for d in docs_of("ServiceAccount") if d.name == BUCKET_ACCOUNT]
    assert account.body.get("automountServiceAccountToken") is False
    # The IRSA annotation is the deployer's (README); an example role must not ship.
    assert not account.body["metadata"].get("annotations"), "annotate it when deploying"


BUILTIN_DOCS = [d for d in DOCS if not d.is_ray and not d.is_prometheus_operator]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("doc", BUILTIN_DOCS, ids=ids(BUILTIN_DOCS))
def test_builtin_kinds_validate_strictly(doc, version):
    kubernetes_validate.validate(copy.deepcopy(doc.body), version, strict=True)


@pytest.mark.parametrize("doc", DOCS, ids=ids(DOCS))
def test_namespace_and_labels(doc):
    meta = doc.body["metadata"]
    labels = meta.get("labels", {})
    assert labels.get("app.kubernetes.io/name") == APP_NAME, f"{doc.id}: app.kubernetes.io/name"
    assert labels.get("app.kubernetes.io/part-of") == APP_NAME, (
        f"{doc.id}: app.kubernetes.io/part-of"
    )
    assert labels.get("app.kubernetes.io/component"), f"{doc.id}: app.kubernetes.io/component"
    if doc.kind == "Namespace":
        assert doc.name == NAMESPACE
    else:
        assert meta.get("namespace") == NAMESPACE, f"{doc.id}: metadata.namespace: {NAMESPACE}"
    for pod in pod_templates(doc):
        if pod.role == "pod":
            continue
        pl = pod.metadata.get("labels", {})
        assert pl.get("app.kubernetes.io/name") == APP_NAME, f"{doc.id} {pod.where}: pod labels"
        assert pl.get("app.kubernetes.io/component"), f"{doc.id} {pod.where}: component label"


def test_namespace_enforces_restricted_pod_security():
    (ns,) = docs_of("Namespace")
    labels = ns.body["metadata"]["labels"]
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted"
    oldest = "v" + ".".join(K8S_VERSIONS[0].split(".")[:2])
    assert labels.get("pod-security.kubernetes.io/enforce-version") == oldest


def test_claims_exist_and_multi_node_claims_are_rwx():
    pvcs = {d.name: d.body for d in docs_of("PersistentVolumeClaim")}
    for doc, pod in ALL_PODS:
        for v in pod.spec.get("volumes", []):
            if "persistentVolumeClaim" not in v:
                continue
            claim = v["persistentVolumeClaim"]["claimName"]
            assert claim in pvcs, f"{doc.id} {pod.where}: claim {claim} is not defined in deploy/"
            if pod.role in ("ray-head", "ray-worker"):  # pods of one Ray cluster span nodes
                modes = pvcs[claim]["spec"]["accessModes"]
                assert "ReadWriteMany" in modes, (
                    f"{claim}: Ray pods on many nodes need ReadWriteMany"
                )


def test_no_service_or_ingress_exposes_ray():
    for d in DOCS:
        assert d.kind not in FORBIDDEN_KINDS, (
            f"{d.id}: nothing here may be exposed outside the cluster"
        )
        if d.kind == "Service":
            spec = d.body.get("spec", {})
            assert spec.get("type", "ClusterIP") not in EXPOSING_SERVICE_TYPES, d.id
            assert not spec.get("externalIPs"), d.id
        for where, cluster in raycluster_specs(d):
            head = cluster.get("headGroupSpec", {})
            assert head.get("serviceType", "ClusterIP") not in EXPOSING_SERVICE_TYPES, (
                f"{d.id} {where}"
            )
            assert not head.get("enableIngress"), f"{d.id} {where}: enableIngress"
            svc = head.get("headService", {}).get("spec", {})
            assert svc.get("type", "ClusterIP") not in EXPOSING_SERVICE_TYPES, f"{d.id} {where}"


@pytest.mark.parametrize("doc", docs_of("CronJob"), ids=ids(docs_of("CronJob")))
def test_cronjob_policies(doc):
    spec = doc.body["spec"]
    job = spec["jobTemplate"]["spec"]
    assert spec.get("concurrencyPolicy") == "Forbid"
    assert spec.get("startingDeadlineSeconds", 0) > 0
    assert spec.get("timeZone"), "pin the schedule's time zone"
    assert "successfulJobsHistoryLimit" in spec and "failedJobsHistoryLimit" in spec
    assert 0 < job.get("activeDeadlineSeconds", 0) < cron_period_seconds(spec["schedule"])
    assert isinstance(job.get("backoffLimit"), int)
    # Deterministic CLI failures (exit codes) must not be retried.
    rules = job.get("podFailurePolicy", {}).get("rules", [])
    assert any(
        r["action"] == "FailJob" and 2 in r.get("onExitCodes", {}).get("values", []) for r in rules
    )


def test_readme_covers_every_manifest():
    readme = (DEPLOY / "README.md").read_text()
    for path in manifest_files():
        rel = f"deploy/{path.relative_to(DEPLOY)}"
        assert rel in readme, f"deploy/README.md does not mention {rel}"
