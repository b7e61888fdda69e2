"""What tests/container/run needs from deploy/ and from the runs it makes.

Reads the manifests at test time, so the containers run the way the manifests say
(user, read-only root, dropped capabilities, emptyDirs, working directory, the RayJob's
entrypoint and how the token reaches Ray), and checks the results. Every check exits 1
with a line naming what missed.

  manifests.py pod-args cronjob-NAME.yaml [UID:GID]  docker run options for that CronJob's pod
  manifests.py ray-args head|worker         docker run options for the RayJob's head / worker
  manifests.py ray-start head|worker        the `ray start` options (rayStartParams)
  manifests.py entrypoint                   the RayJob's entrypoint, verbatim
  manifests.py token-env                    the env names that carry the token, NAME=secret|value
  manifests.py check-train DATA                  a training run on the volume: results, export, modes
  manifests.py check-score OUT N            predictions file: N rows, no errors
  manifests.py check-cluster DATA NODES HOSTS [EPOCHS]  a run on the cluster: tasks on both nodes
"""

from __future__ import annotations

import csv
import json
import re
import stat
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def fail(message: str) -> None:
    print(f"container test: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def quantity(q: str) -> int:
    """A Kubernetes quantity ("8Gi", "256Mi", "1073741824") in bytes."""
    m = re.fullmatch(r"(\d+)([KMGT]i?)?", str(q))
    if not m:
        fail(f"cannot read the quantity {q!r}")
    mult = {
        None: 1,
        "K": 10**3,
        "M": 10**6,
        "G": 10**9,
        "T": 10**12,
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
    }[m.group(2)]
    return int(m.group(1)) * mult


def docker_args(pod: dict, container: dict, where: str, as_user: str | None = None) -> list[str]:
    """docker run options equivalent to the pod's security context, emptyDirs and
    working directory. The data PVC becomes the test's volume (added by the caller).
    as_user ("uid:gid") runs it as another user than the manifest's."""
    psc, csc = pod.get("securityContext", {}), container.get("securityContext", {})
    user, group = (
        csc.get("runAsUser", psc.get("runAsUser")),
        csc.get("runAsGroup", psc.get("runAsGroup")),
    )
    if user is None or group is None:
        fail(f"{where}: no runAsUser/runAsGroup")
    if as_user:
        user, group = as_user.split(":")
    fs_group = group if as_user else psc.get("fsGroup", group)
    args = ["--user", f"{user}:{group}"]
    if csc.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    if csc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    for cap in csc.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", cap]
    if pod.get("shareProcessNamespace"):
        args.append("--init")  # the pod's pause process reaps; --init does it here
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for m in container.get("volumeMounts", []):
        v = volumes[m["name"]]
        if "emptyDir" not in v:
            continue
        size = quantity(v["emptyDir"].get("sizeLimit", "1Gi"))
        if m["mountPath"] == "/dev/shm":
            args += ["--shm-size", str(size)]
        else:
            # An emptyDir: writable by the pod's user. Docker gives a tmpfs over a directory
            # of the image that directory's mode (/home/fmnist: 0755, root) whatever mode=
            # says, so the tmpfs is owned by the user and fsGroup instead.
            args += [
                "--tmpfs",
                f"{m['mountPath']}:rw,exec,nosuid,size={size},mode=1777,uid={user},gid={fs_group}",
            ]
    if container.get("workingDir"):
        args += ["--workdir", container["workingDir"]]
    return args


def cronjob_pod(name: str) -> tuple[dict, dict]:
    (cron,) = [d for d in docs(name) if d["kind"] == "CronJob"]
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = [
        c
        for c in pod["containers"]
        if "fmnist-job" in " ".join(c.get("command", []) + c.get("args", []))
    ]
    return pod, container


def rayjob() -> dict:
    (job,) = [d for d in docs("rayjob-train.yaml") if d["kind"] == "RayJob"]
    return job


def ray_group(role: str) -> tuple[dict, dict, dict]:
    spec = rayjob()["spec"]["rayClusterSpec"]
    group = spec["headGroupSpec"] if role == "head" else spec["workerGroupSpecs"][0]
    pod = group["template"]["spec"]
    return group, pod, pod["containers"][0]


def token_env(container: dict, where: str) -> list[tuple[str, str | None]]:
    """(name, literal value) for the auth env; value None = from the token Secret."""
    out = []
    for e in container.get("env", []):
        if not e["name"].startswith("RAY_AUTH"):
            continue
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        out.append((e["name"], None if ref else e.get("value")))
    if not any(v is None for _, v in out):
        fail(f"{where}: no RAY_AUTH_* variable takes the token from a Secret")
    return out


def cmd_pod_args(name: str, as_user: str | None = None) -> None:
    pod, container = cronjob_pod(name)
    print("\n".join(docker_args(pod, container, name, as_user)))


def cmd_ray_args(role: str) -> None:
    _, pod, container = ray_group(role)
    print("\n".join(docker_args(pod, container, f"rayjob-train.yaml {role}")))


def cmd_ray_start(role: str) -> None:
    """rayStartParams as `ray start` options, as KubeRay passes them. num-cpus is left
    out: the test sets it (the manifests' head has none, and a two-core test machine
    needs the head to take tasks for both nodes to get some)."""
    group, _, _ = ray_group(role)
    params = group.get("rayStartParams", {})
    print("\n".join(f"--{k}={v}" for k, v in params.items() if k != "num-cpus"))


def cmd_entrypoint() -> None:
    entry = rayjob()["spec"].get("entrypoint")
    if not entry or "fmnist-job train" not in entry:
        fail(f"rayjob-train.yaml: entrypoint {entry!r} does not run fmnist-job train")
    print(entry)


def cmd_token_env() -> None:
    job = rayjob()
    auth = job["spec"]["rayClusterSpec"].get("authOptions", {})
    if auth.get("mode") != "token":
        fail(f"rayjob-train.yaml: authOptions {auth!r}: token authentication is off")
    seen = set()
    for role in ("head", "worker"):
        _, _, container = ray_group(role)
        seen.add(tuple(token_env(container, f"rayjob-train.yaml {role}")))
    submitter = job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]
    seen.add(tuple(token_env(submitter, "rayjob-train.yaml submitter")))
    if len(seen) != 1:
        fail(f"rayjob-train.yaml: head, worker and submitter get the token differently: {seen}")
    for name, value in seen.pop():
        print(f"{name}={'secret' if value is None else 'value:' + value}")


def mode_check(path: Path) -> None:
    """Readable by other users: files o+r, directories o+rx, all the way down."""
    for p in [path, *path.rglob("*")]:
        mode = p.lstat().st_mode
        need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
        if mode & need != need:
            fail(f"{p}: mode {stat.filemode(mode)} is not readable by other users")


def results_of(data: Path) -> tuple[Path, dict]:
    runs = sorted((data / "runs").glob("*/results.json"))
    if len(runs) != 1:
        fail(f"{data}/runs: expected one run with a results.json, found {len(runs)}")
    return runs[0], json.loads(runs[0].read_text())


def cmd_check_train(data: str) -> None:
    """A run of `train` without --sweep: the packaged default sweep, every variant ok, the
    export on the volume and readable by everyone."""
    import tomllib

    data_dir = Path(data)
    path, results = results_of(data_dir)
    names = [v["name"] for v in results["variants"]]
    sweep = tomllib.loads((ROOT / "fmnist" / "jobs" / "default.toml").read_text())
    want = [v["name"] for v in sweep["variant"]]
    if names != want:
        fail(f"{path}: variants {names}, expected the default sweep's {want}")
    if not str(results.get("sweep_file")).endswith("site-packages/fmnist/jobs/default.toml"):
        fail(f"{path}: sweep_file {results.get('sweep_file')!r} is not the packaged default")
    bad = [
        f"{v['name']}: {v['status']} {v.get('error') or ''}"
        for v in results["variants"]
        if v["status"] != "ok"
    ]
    if bad:
        fail(f"{path}: not every variant finished: {bad}")
    export = results.get("export")
    if not export or not export.startswith("/data/models/fmnist/"):
        fail(f"{path}: export {export!r} is not under /data/models/fmnist")
    version = data_dir / Path(export).relative_to("/data")
    for f in ("saved_model.pb", "fmnist.json", "variables"):
        if not (version / f).exists():
            fail(f"{version}: {f} missing")
    mode_check(data_dir / "models")
    staging = list((data_dir / "models" / "fmnist").glob(".staging-*"))
    if staging:
        fail(f"staging directories left behind: {staging}")
    print(
        f"{path.relative_to(data_dir)}: {len(names)} variants ok, exported {export}, "
        f"best {results.get('best')}"
    )


def cmd_check_score(out: str, n: str) -> None:
    """N rows, none with an error, and the model better than chance on images drawn from
    the test set (each under a folder named by its true class)."""
    rows = list(csv.DictReader(open(out, newline="")))
    if len(rows) != int(n):
        fail(f"{out}: {len(rows)} rows, expected {n}")
    errors = [r for r in rows if r["error"]]
    if errors:
        fail(f"{out}: rows with errors: {errors[:3]}")
    wrong = sum(r["class_name"] != Path(r["path"]).parent.name for r in rows)
    if len(rows) - wrong < 0.3 * len(rows):
        fail(f"{out}: only {len(rows) - wrong} of {len(rows)} right: the model does not work")
    print(
        f"{out}: {len(rows)} rows, no errors; {len(rows) - wrong} of {len(rows)} "
        f"predicted as the class they were drawn from"
    )


def cmd_check_cluster(data: str, nodes: str, hosts: str, epochs: str = "") -> None:
    """NODES: the cluster's node ids (from ray.nodes() on the head), HOSTS: the head's and
    the worker's hostnames, comma-separated. Every variant must have run on one of the
    two containers and report a node id of this cluster, and together they must cover
    both: tasks ran on both nodes. EPOCHS, when given: every variant ran that many
    epochs (the sweep the test mounted is the one the entrypoint read)."""
    path, results = results_of(Path(data))
    if epochs:
        ran = {v["name"]: v.get("epochs_run") for v in results["variants"]}
        if set(ran.values()) != {int(epochs)}:
            fail(f"{path}: epochs run {ran}, expected {epochs} each (the mounted sweep)")
    cluster, containers = set(nodes.split(",")), set(hosts.split(","))
    if len(cluster) < 2 or len(containers) < 2:
        fail(
            f"the cluster has {len(cluster)} node(s) on {len(containers)} host(s), expected a head and a worker"
        )
    for v in results["variants"]:
        if v["status"] != "ok":
            fail(f"{path}: {v['name']}: {v['status']} {v.get('error') or ''}")
    where = {v["name"]: v.get("host") for v in results["variants"]}
    for v in results["variants"]:
        print(f"  {v['name']}: host {v.get('host')}, node {v.get('node_id', '(no node_id)')}")
    if set(where.values()) != containers:
        fail(
            f"{path}: tasks ran on hosts {sorted(set(where.values()))}, not on both {sorted(containers)}"
        )
    if not results.get("export", "").startswith("/data/models/fmnist/"):
        fail(f"{path}: no export under /data/models/fmnist: {results.get('export')!r}")
    missing = [v["name"] for v in results["variants"] if "node_id" not in v]
    if missing:
        fail(
            f"{path}: no node_id for {missing} (results.json must record each variant's Ray "
            f"node id)"
        )
    ids = {v["name"]: v["node_id"] for v in results["variants"]}
    stray = {n: i for n, i in ids.items() if i not in cluster}
    if stray:
        fail(f"{path}: node ids not of this cluster: {stray} (cluster: {sorted(cluster)})")
    if set(ids.values()) != cluster:
        fail(f"{path}: tasks ran on {len(set(ids.values()))} of {len(cluster)} nodes: {ids}")
    print(
        f"{path.name}: {len(ids)} variants on both nodes (node ids and hosts), exported "
        f"{results['export']}"
    )


def main() -> None:
    cmd, *args = sys.argv[1:] or ["help"]
    commands = {
        "pod-args": cmd_pod_args,
        "ray-args": cmd_ray_args,
        "ray-start": cmd_ray_start,
        "entrypoint": cmd_entrypoint,
        "token-env": cmd_token_env,
        "check-train": cmd_check_train,
        "check-score": cmd_check_score,
        "check-cluster": cmd_check_cluster,
    }
    if cmd not in commands:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    commands[cmd](*args)


if __name__ == "__main__":
    main()
