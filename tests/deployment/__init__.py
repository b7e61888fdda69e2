"""Shared code of the tests/test_deploy_*.py files: loading deploy/, walking manifests down
to pods and containers, the CRDs, the fmnist-job command lines, the Dockerfile.

A plain package next to the tests (imported as `deployment.manifests` and so on, like
tests/photos.py is imported as `photos`): pytest's default import mode puts tests/ on
sys.path. The constants below are what the image and the manifests agree on.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BUCKET_DIR = DEPLOY / "bucket"  # the variants without PVCs: models and photos in a bucket
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"
CRD_DIR = ROOT / "tests" / "data" / "kuberay-crds"
SHARED_CRD_DIR = ROOT.parent / "shared" / "kuberay-crds"

# Kubernetes versions the built-in kinds are validated against: the oldest one the
# manifests target (the namespace's pod-security enforce-version says the same) and the
# newest one kubernetes-validate 1.37.0 ships.
K8S_VERSIONS = ("1.33.0", "1.37.0")
NAMESPACE = "fmnist"
APP_NAME = "fmnist-job"
IMAGE_REPO = "registry.example.com/fmnist-job"
IMAGE_WORKDIR = PurePosixPath("/app")  # the Dockerfile's final WORKDIR (checked)
DATA_MOUNT = PurePosixPath("/data")  # the fmnist-data PVC in every training pod
IMAGE_UID = 1000  # the Dockerfile's USER
HOME_DIR = "/home/fmnist"  # the image's HOME; an emptyDir in every pod

RAY_GROUP = "ray.io"
PROMETHEUS_OPERATOR_GROUP = "monitoring.coreos.com"  # deploy/monitoring/prometheusrule.yaml
CRD_FILES = {
    "RayCluster": "ray.io_rayclusters.yaml",
    "RayJob": "ray.io_rayjobs.yaml",
    "RayCronJob": "ray.io_raycronjobs.yaml",
}
WORKLOAD_KINDS = {"CronJob", "Job", "RayJob", "RayCronJob"}  # must run fmnist-job

# Containers allowed to run with a writable root filesystem, as "file:pod:container" ->
# why. Empty: Ray runs read-only once /tmp (Ray's /tmp/ray), HOME and /dev/shm are
# emptyDirs, so no exception is needed. An entry here must say why.
READONLY_ROOT_EXCEPTIONS: dict[str, str] = {}

AUTH_SECRET = "fmnist-ray-auth"  # created with kubectl by the deployer (deploy/README.md)
AUTH_SECRET_KEY = "auth_token"  # the key KubeRay reads (its RAY_AUTH_TOKEN_SECRET_KEY)
MIN_RAY_FOR_TOKEN_AUTH = (2, 52, 0)  # KubeRay rejects authOptions.mode token below this
AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")

# The bucket variants (deploy/bucket/): the bucket is a placeholder in the command lines,
# substituted when applying, like the image; the endpoint and region come from a
# ConfigMap, the keys from an optional Secret created with kubectl, or a workload identity
# through the ServiceAccount.
BUCKET_URI = "s3://fmnist-example-bucket"
BUCKET_CONFIG = "fmnist-bucket"
BUCKET_SECRET = "fmnist-s3"
BUCKET_ACCOUNT = "fmnist-bucket"
AWS_CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
