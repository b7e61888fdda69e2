"""The checks of tests/test_deploy_*.py are not vacuous: a broken copy of a real manifest
makes each validator fail (JSON schema, pruned fields, CEL rules, strict Kubernetes
validation, pod security, the CLI parser, token authentication)."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from deployment import K8S_VERSIONS
from deployment.checks import bucket_variant_problems, pod_security_problems, token_auth_problems
from deployment.commands import parse_cli
from deployment.crds import crd_problems
from deployment.manifests import Doc, docs_of, pod_templates


def test_validators_catch_mistakes(clean_cli_env):
    """The checks above are not vacuous: typical mistakes make them fail."""
    rayjob = docs_of("RayJob")[0]
    broken = copy.deepcopy(rayjob.body)
    broken["spec"]["shutdownAfterJobFinish"] = broken["spec"].pop("shutdownAfterJobFinishes")
    assert any("shutdownAfterJobFinish:" in p for p in crd_problems(broken))
    broken = copy.deepcopy(rayjob.body)
    broken["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0][
        "resource"
    ] = {}
    assert any(".resource: unknown field" in p for p in crd_problems(broken))
    broken = copy.deepcopy(rayjob.body)
    broken["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] = "two"
    assert crd_problems(broken)
    # The CRDs' CEL rules, evaluated: a managedBy nobody reconciles, legacy deletion
    # policies next to deletionRules, a deletion condition naming both statuses.
    broken = copy.deepcopy(rayjob.body)
    broken["spec"]["managedBy"] = "example.com/someone-else"
    assert any(
        "spec.managedBy: the managedBy field value must be" in p for p in crd_problems(broken)
    )
    cron = copy.deepcopy(docs_of("RayCronJob")[0].body)
    strategy = cron["spec"]["jobTemplate"]["deletionStrategy"]
    strategy["onSuccess"] = {"policy": "DeleteCluster"}
    strategy["deletionRules"][0]["condition"]["jobDeploymentStatus"] = "Failed"
    problems = crd_problems(cron)
    for expected in (
        "legacy policies (onSuccess/onFailure) and deletionRules",
        "deletionRules[0].condition: JobStatus and JobDeploymentStatus",
    ):
        assert any(expected in p for p in problems), (expected, problems)
    del strategy["deletionRules"]
    assert any(
        "deletionStrategy requires either BOTH onSuccess and onFailure" in p
        for p in crd_problems(cron)
    )

    cron = docs_of("CronJob")[0]
    broken = copy.deepcopy(cron.body)
    broken["spec"]["concurrencyPolicyy"] = "Forbid"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)

    broken_doc = Doc(cron.path, cron.index, copy.deepcopy(cron.body))
    pod = pod_templates(broken_doc)[0]
    pod.spec.get("securityContext", {}).pop("runAsNonRoot", None)
    pod.spec["containers"][0].get("securityContext", {}).pop("runAsNonRoot", None)
    pod.spec["containers"][0].get("resources", {}).get("limits", {}).pop("memory", None)
    problems = pod_security_problems(broken_doc, pod)
    assert any("runAsNonRoot" in p for p in problems) and any(
        "limits.memory" in p for p in problems
    )

    with pytest.raises(Exception, match="No such option"):
        parse_cli(("train", "--worker", "4"))

    # Token auth: a worker without the token, an inlined token, auth off, an old Ray.
    broken_doc = Doc(rayjob.path, rayjob.index, copy.deepcopy(rayjob.body))
    cluster = broken_doc.body["spec"]["rayClusterSpec"]
    cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["env"] = [
        e
        for e in cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["env"]
        if e["name"] != "RAY_AUTH_TOKEN"
    ]
    submitter = broken_doc.body["spec"]["submitterPodTemplate"]["spec"]["containers"][0]
    submitter["env"] = [
        {"name": "RAY_AUTH_MODE", "value": "token"},
        {"name": "RAY_AUTH_TOKEN", "value": "0123456789abcdef"},
    ]
    cluster["authOptions"] = {"mode": "disabled"}
    cluster["rayVersion"] = "2.50.0"
    problems = token_auth_problems(broken_doc)
    for expected in (
        "ray-worker: env RAY_AUTH_TOKEN from secretKeyRef",
        "RAY_AUTH_TOKEN inlined",
        "authOptions.mode: token",
        "rayVersion 2.50.0",
    ):
        assert any(expected in p for p in problems), (expected, problems)
    cron = docs_of("CronJob")[0]
    broken_doc = Doc(cron.path, cron.index, copy.deepcopy(cron.body))
    pod_templates(broken_doc)[0].spec["containers"][0]["env"] = [
        {"name": "RAY_AUTH_MODE", "value": "token"}
    ]
    assert any("needs no" in p for p in token_auth_problems(broken_doc))


def test_bucket_checks_catch_mistakes():
    """deploy/bucket/'s rules are not vacuous: a PVC, a key in env, a Secret that must
    exist, a worker with the bucket's identity, a head without it."""
    (rayjob,) = [d for d in docs_of("RayJob") if d.in_bucket_variant]
    assert not bucket_variant_problems(rayjob)
    broken = Doc(rayjob.path, rayjob.index, copy.deepcopy(rayjob.body))
    cluster = broken.body["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]["spec"]
    head["containers"][0]["envFrom"][1]["secretRef"].pop("optional")
    head["containers"][0]["env"].append({"name": "AWS_SECRET_ACCESS_KEY", "value": "x"})
    worker = cluster["workerGroupSpecs"][0]["template"]["spec"]
    worker["serviceAccountName"] = "fmnist-bucket"
    worker["volumes"].append(
        {"name": "data", "persistentVolumeClaim": {"claimName": "fmnist-data"}}
    )
    problems = bucket_variant_problems(broken)
    for expected in (
        "ray-head: envFrom",
        "AWS_SECRET_ACCESS_KEY in env",
        "never touches the bucket",
        "volume data is a PVC",
    ):
        assert any(expected in p for p in problems), (expected, problems)
    head.pop("serviceAccountName")
    assert any("serviceAccountName fmnist-bucket" in p for p in bucket_variant_problems(broken))
