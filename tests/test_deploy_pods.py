"""Every pod (Ray head and worker groups and RayJob submitters included) meets the
security baseline (non-root, no privilege escalation, capabilities dropped, read-only
root filesystem with writable emptyDirs) and has requests and limits; Ray nodes get
shared memory and the data volume (none in deploy/bucket/)."""

from __future__ import annotations

import pytest

from deployment import DATA_MOUNT, READONLY_ROOT_EXCEPTIONS
from deployment.checks import pod_security_problems
from deployment.manifests import ALL_PODS, containers, mount_for, volume_of


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


@pytest.mark.parametrize(
    ("doc", "pod"), RAY_NODE_PODS, ids=[f"{d.id}:{p.where}" for d, p in RAY_NODE_PODS]
)
def test_ray_nodes_have_shared_memory_and_the_data_volume(doc, pod):
    (c,) = [c for s, c in containers(pod) if s == "containers"]
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    assert "/dev/shm" in mounts, (
        f"{pod.where}: Ray's object store wants a memory emptyDir on /dev/shm"
    )
    assert volume_of(pod, mounts["/dev/shm"]).get("emptyDir", {}).get("medium") == "Memory"
    data = mount_for(pod, c, DATA_MOUNT)
    if doc.in_bucket_variant:  # the driver reaches the bucket; nothing shared is mounted
        assert data is None, f"{pod.where}: deploy/bucket/ mounts nothing on {DATA_MOUNT}"
        return
    assert data and "persistentVolumeClaim" in data[1], f"{pod.where}: the data PVC on {DATA_MOUNT}"
