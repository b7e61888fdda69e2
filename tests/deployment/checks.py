"""The per-pod and per-manifest rules that return a list of problems (empty: fine), so
that tests/test_deploy_validators.py can show each of them rejecting a broken copy."""

from __future__ import annotations

import re

from deployment import (
    AUTH_ENV,
    AUTH_SECRET,
    AUTH_SECRET_KEY,
    AWS_CREDENTIAL_ENV,
    BUCKET_ACCOUNT,
    BUCKET_CONFIG,
    BUCKET_SECRET,
    HOME_DIR,
    MIN_RAY_FOR_TOKEN_AUTH,
    READONLY_ROOT_EXCEPTIONS,
)
from deployment.manifests import (
    Doc,
    PodT,
    containers,
    env_of,
    pod_templates,
    quantity,
    raycluster_specs,
    volume_of,
)


def pod_security_problems(doc: Doc, pod: PodT) -> list[str]:
    """What a pod breaks of the security baseline (non-root, no escalation, capabilities
    dropped, read-only root with emptyDirs, no host namespaces) and of the resource rules."""
    spec = pod.spec
    psc = spec.get("securityContext", {})
    problems = []
    if spec.get("automountServiceAccountToken") is not False:
        problems.append("automountServiceAccountToken must be false (no pod here talks to the API)")
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problems.append(f"{field} must not be set")
    if psc.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
        problems.append("securityContext.seccompProfile.type: RuntimeDefault")
    if psc.get("runAsUser") == 0 or psc.get("runAsGroup") == 0:
        problems.append("pod runs as root (runAsUser/runAsGroup 0)")
    for v in spec.get("volumes", []):
        if "hostPath" in v:
            problems.append(f"volume {v['name']}: hostPath")
    if pod.role in ("job", "submitter") and spec.get("restartPolicy") not in ("Never", "OnFailure"):
        problems.append("restartPolicy Never/OnFailure for batch pods")
    for section, c in containers(pod):
        name = f"{section}.{c.get('name')}"
        sc = c.get("securityContext", {})
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root is not True:
            problems.append(f"{name}: runAsNonRoot true (pod or container)")
        if sc.get("runAsUser") == 0:
            problems.append(f"{name}: runAsUser 0")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation false")
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            problems.append(f"{name}: capabilities.drop [ALL]")
        if caps.get("add"):
            problems.append(f"{name}: capabilities.add {caps['add']}")
        key = f"{doc.rel}:{pod.where}:{c.get('name')}"
        if sc.get("readOnlyRootFilesystem") is not True and key not in READONLY_ROOT_EXCEPTIONS:
            problems.append(f"{name}: readOnlyRootFilesystem true (or a justified exception)")
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        for path in ("/tmp", HOME_DIR):
            if path not in mounts or "emptyDir" not in volume_of(pod, mounts[path]):
                problems.append(f"{name}: an emptyDir on {path} (the root filesystem is read-only)")
        for port in c.get("ports", []):
            if "hostPort" in port:
                problems.append(f"{name}: hostPort {port['hostPort']} exposes the node")
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in res.get(kind, {}):
                    problems.append(f"{name}: resources.{kind}.{r}")
        for r, req in res.get("requests", {}).items():
            lim = res.get("limits", {}).get(r)
            if lim is not None and quantity(req) > quantity(lim):
                problems.append(f"{name}: request {r} {req} above its limit {lim}")
        image = c.get("image", "")
        if not image or image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]:
            problems.append(f"{name}: image {image!r} needs an explicit tag")
    return problems


def token_auth_problems(doc: Doc) -> list[str]:
    """Every Ray cluster has token authentication on, with the token from one Secret, and
    every Ray container and submitter gets it the same way: RAY_AUTH_MODE=token and
    RAY_AUTH_TOKEN from that Secret (never a literal). Pods that are not part of a Ray
    cluster (embedded Ray in a CronJob, the PVC browser) get neither."""
    problems = []
    for where, cluster in raycluster_specs(doc):
        auth = cluster.get("authOptions", {})
        if auth.get("mode") != "token":
            problems.append(f"{where}.authOptions.mode: token")
        if auth.get("secretName") != AUTH_SECRET:
            problems.append(f"{where}.authOptions.secretName: {AUTH_SECRET}")
        if auth.get("enableK8sTokenAuth"):
            problems.append(f"{where}.authOptions.enableK8sTokenAuth excludes secretName")
        version = tuple(int(x) for x in re.findall(r"\d+", str(cluster.get("rayVersion", "0")))[:3])
        if version < MIN_RAY_FOR_TOKEN_AUTH:
            problems.append(
                f"{where}.rayVersion {cluster.get('rayVersion')}: token auth needs "
                f">= {'.'.join(map(str, MIN_RAY_FOR_TOKEN_AUTH))}"
            )
    for pod in pod_templates(doc):
        for section, c in containers(pod):
            env = env_of(c)
            name = f"{pod.where}.{section}.{c.get('name')}"
            token = env.get("RAY_AUTH_TOKEN", {})
            if "value" in token:
                problems.append(f"{name}: RAY_AUTH_TOKEN inlined; take it from the Secret")
            ray_container = (
                section == "containers"
                and c is pod.spec["containers"][0]
                and pod.role in ("ray-head", "ray-worker", "submitter")
            )
            if not ray_container:
                if set(AUTH_ENV) & set(env):
                    problems.append(
                        f"{name}: not a Ray cluster container, needs no {sorted(set(AUTH_ENV) & set(env))}"
                    )
                continue
            if env.get("RAY_AUTH_MODE", {}).get("value") != "token":
                problems.append(f"{name}: env RAY_AUTH_MODE=token")
            ref = token.get("valueFrom", {}).get("secretKeyRef", {})
            if ref != {"name": AUTH_SECRET, "key": AUTH_SECRET_KEY}:
                problems.append(
                    f"{name}: env RAY_AUTH_TOKEN from secretKeyRef "
                    f"{{name: {AUTH_SECRET}, key: {AUTH_SECRET_KEY}}}, got {ref or token}"
                )
            if "RAY_AUTH_TOKEN_PATH" in env:
                problems.append(f"{name}: RAY_AUTH_TOKEN_PATH would compete with RAY_AUTH_TOKEN")
    return problems


BUCKET_ENV_FROM = [
    {"configMapRef": {"name": BUCKET_CONFIG}},
    {"secretRef": {"name": BUCKET_SECRET, "optional": True}},
]


def bucket_access_problems(pod: PodT, container: dict) -> list[str]:
    """A container that reads or writes the bucket gets it one way: the endpoint and
    region from the ConfigMap, the keys from the optional Secret (absent: a workload
    identity), the ServiceAccount that a workload identity is bound to."""
    problems = []
    if pod.spec.get("serviceAccountName") != BUCKET_ACCOUNT:
        problems.append(f"{pod.where}: serviceAccountName {BUCKET_ACCOUNT} (workload identity)")
    if container.get("envFrom") != BUCKET_ENV_FROM:
        problems.append(
            f"{pod.where}.{container.get('name')}: envFrom {BUCKET_ENV_FROM}, "
            f"got {container.get('envFrom')}"
        )
    return problems


def bucket_variant_problems(doc: Doc) -> list[str]:
    """deploy/bucket/ needs no shared volume: no pod mounts a PVC. Only the pods that run
    fmnist-job against the bucket (a CronJob's pod, the Ray head where the driver runs)
    get its identity and keys; the Ray workers and the submitters get neither. No
    manifest holds a key, in any pod."""
    problems = []
    for pod in pod_templates(doc):
        for v in pod.spec.get("volumes", []):
            if "persistentVolumeClaim" in v:
                problems.append(f"{pod.where}: volume {v['name']} is a PVC")
        drives = pod.role in ("job", "ray-head")
        for section, c in containers(pod):
            name = f"{pod.where}.{section}.{c.get('name')}"
            for key in set(AWS_CREDENTIAL_ENV) & set(env_of(c)):
                problems.append(f"{name}: {key} in env; the Secret {BUCKET_SECRET} holds it")
            first = section == "containers" and c is pod.spec["containers"][0]
            if drives and first:
                problems += bucket_access_problems(pod, c)
            elif c.get("envFrom") or pod.spec.get("serviceAccountName"):
                problems.append(f"{name}: never touches the bucket, needs no access to it")
    return problems
