"""Every `fmnist-job` command line in deploy/ (container command/args, RayJob
entrypoints, shell scripts, what `guard` runs) parses with the real Typer/Click CLI
without running it, so a renamed or misspelt option fails here; its paths are checked
against the image and the volumes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path, PurePosixPath

import pytest

from deployment import BUCKET_URI, DATA_MOUNT, IMAGE_WORKDIR, ROOT, WORKLOAD_KINDS
from deployment.checks import bucket_access_problems
from deployment.commands import SHELLS, invocations, parse_cli
from deployment.manifests import (
    DOCS,
    containers,
    docs_of,
    ids,
    mount_for,
    pod_gpus,
    pod_templates,
    rayjob_specs,
)

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
    # deploy/bucket/: models and photos in the bucket, the rest on the pods' emptyDirs.
    shared_kind = "emptyDir" if doc.in_bucket_variant else "persistentVolumeClaim"
    for inv, pod, c in found:
        try:
            name, params = parse_cli(inv.argv)
        except Exception as e:  # noqa: BLE001 - UsageError, BadParameter, NoSuchOption, ...
            pytest.fail(f"{doc.id} {inv.where}: `fmnist-job {' '.join(inv.argv)}`: {e}")
        # The containers and pods that see the paths of this command line.
        if pod is not None:
            pods_and_containers = [(pod, c)]
            drivers = pods_and_containers
        else:  # the driver runs on the head, its tasks on the workers: all must see the paths
            pods_and_containers = [(p, p.spec["containers"][0]) for p in ray_pods]
            drivers = [(p, cont) for p, cont in pods_and_containers if p.role == "ray-head"]
        assert pods_and_containers, f"{inv.where}: no pod runs this"

        def on_storage(path, writable: bool) -> None:
            """`path` is where every pod running the command sees it: on the shared volume
            (an emptyDir of each pod in deploy/bucket/), or in the bucket, which the
            driver reaches."""
            if str(path).startswith("s3://"):
                assert doc.in_bucket_variant, f"{inv.where}: {path}: buckets in deploy/bucket/"
                assert str(path).startswith(f"{BUCKET_URI}/"), (
                    f"{inv.where}: {path}: the placeholder bucket {BUCKET_URI} (substituted)"
                )
                for p, cont in drivers:
                    problems = bucket_access_problems(p, cont)
                    assert not problems, f"{inv.where}: {path}: " + "; ".join(problems)
                return
            pp = PurePosixPath(str(path))
            assert pp.is_absolute(), f"{inv.where}: {path} must be absolute"
            for p, cont in pods_and_containers:
                m = mount_for(p, cont, pp)
                assert m and shared_kind in m[1], (
                    f"{inv.where}: {path} is not on a volume of kind {shared_kind} in {p.where}"
                )
                if writable:
                    assert not m[0].get("readOnly"), f"{inv.where}: {path} is mounted read-only"

        if name == "train":
            sweep = PurePosixPath(str(params["sweep"]))
            if not sweep.is_absolute():
                assert inv.cwd, f"{inv.where}: relative --sweep with an unknown working directory"
                sweep = inv.cwd / sweep
            assert image_path_to_repo(sweep).is_file(), f"{inv.where}: {sweep} is not in the image"
            on_storage(params["export_dir"], writable=True)
            if params["runs_dir"] is not None:
                on_storage(params["runs_dir"], writable=True)
            else:  # the default runs/<timestamp>-<id>/ is relative to the working directory
                assert inv.cwd, (
                    f"{inv.where}: default --runs-dir with an unknown working directory (cd first)"
                )
                on_storage(inv.cwd / "runs", writable=True)
            assert params["data_dir"] is None, "use the data set bundled in the image"
            assert params["limit"] is None and params["epochs"] is None, (
                "no quick-run options in production"
            )
            gpw = params["gpus_per_worker"] or 0
            if gpu_cluster:
                assert gpw > 0, f"{inv.where}: GPU pods but no --gpus-per-worker"
            else:
                assert gpw == 0, f"{inv.where}: --gpus-per-worker without nvidia.com/gpu resources"
        elif name == "score":
            directory, model, out = (
                PurePosixPath(str(params[k])) for k in ("directory", "model", "out")
            )
            on_storage(params["directory"], writable=False)
            on_storage(params["model"], writable=False)
            on_storage(params["out"], writable=True)
            assert out.parent == directory.parent, (
                f"{inv.where}: predictions go next to {directory}"
            )
            if not doc.in_bucket_variant:
                assert DATA_MOUNT in model.parents, (
                    f"{inv.where}: the model comes from {DATA_MOUNT}"
                )
            assert out.suffix in (".csv", ".jsonl")
            if params["done"] is not None:  # scored files move there: writable, not inside
                on_storage(params["done"], writable=True)
                done = PurePosixPath(str(params["done"]))
                assert directory not in (done, *done.parents), f"{inv.where}: --done in the inbox"
        elif name == "guard":
            on_storage(params["lease"], writable=True)
            assert inv.argv[inv.argv.index("--") + 1] == "fmnist-job", (
                f"{inv.where}: guards fmnist-job"
            )
        elif name.startswith("models "):
            on_storage(params["export_dir"], writable=name != "models list")
        elif name == "runs prune":
            on_storage(params["runs_dir"], writable=True)
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


def test_nightly_training_runs_behind_one_guard():
    """Every scheduled training (CronJob, RayCronJob) runs `fmnist-job train` through
    `fmnist-job guard` with the same lease on the data PVC: the RayCronJob has no
    concurrencyPolicy or starting deadline (tests/test_nightly.py replays a backlog), and
    scenarios applied together must not train at once either."""
    leases: dict[bool, set[str]] = {False: set(), True: set()}  # by in_bucket_variant
    for d in docs_of("CronJob", "RayCronJob"):
        argvs = [inv.argv for inv, _, _ in invocations(d)]
        if not any(parse_cli(a)[0] == "train" for a in argvs):
            continue
        guards = [a for a in argvs if parse_cli(a)[0] == "guard"]
        assert len(guards) == 1, f"{d.id}: train runs behind fmnist-job guard"
        guard = guards[0]
        params = parse_cli(guard)[1]
        assert params["max_lateness_hours"] <= 6
        assert parse_cli(guard[guard.index("--") + 2 :])[0] == "train"
        leases[d.in_bucket_variant].add(str(params["lease"]))
        names = [
            e
            for p in pod_templates(d)
            for _, c in containers(p)
            for e in c.get("env", [])
            if e["name"] == "FMNIST_JOB_NAME"
        ]
        assert names, f"{d.id}: FMNIST_JOB_NAME (the scheduled time) for the guard"
    # deploy/bucket/'s lease is on each pod's /tmp: it checks lateness only (README).
    assert len(leases[False]) == 1, f"one lease for all scenarios: {leases[False]}"
    assert len(leases[True]) == 1, f"one lease path for the bucket's: {leases[True]}"


def exports(in_bucket: bool, subcommand: str = "train", key: str = "export_dir") -> set[str]:
    """What the PVC scenarios' or the bucket scenarios' command lines name as `key`."""
    return {
        str(parse_cli(inv.argv)[1][key])
        for d in WORKLOADS
        if d.in_bucket_variant == in_bucket
        for inv, _, _ in invocations(d)
        if parse_cli(inv.argv)[0] == subcommand
    }


def test_scoring_reads_the_models_training_exports():
    for in_bucket in (False, True):
        trainers = exports(in_bucket)
        assert len(trainers) == 1, f"one export base (bucket: {in_bucket}): {trainers}"
        assert exports(in_bucket, "score", "model") == trainers
    assert all(e.startswith(f"{BUCKET_URI}/") for e in exports(True))


def test_tf_serving_serves_what_score_uses_read_only():
    (serving,) = [d for d in DOCS if d.kind == "Deployment" and d.name == "fmnist-serving"]
    (pod,) = pod_templates(serving)
    (c,) = pod.spec["containers"]
    args = dict(a.split("=", 1) for a in c["args"])
    config = PurePosixPath(args["--model_config_file"])
    trainers = exports(in_bucket=False)
    assert {str(config.parent)} == trainers and config.name == "models.config"
    mount = mount_for(pod, c, config)
    assert mount and mount[0].get("readOnly") and mount[1]["persistentVolumeClaim"]["readOnly"]
    assert int(args["--model_config_file_poll_wait_seconds"]) > 0  # promotions reach it
