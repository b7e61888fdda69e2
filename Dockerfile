# syntax=docker/dockerfile:1
#
# fmnist-job: the CLI, its pinned dependencies (pyproject.toml) and the bundled
# Fashion-MNIST files on python:3.11-slim. The same image is the Ray head, every Ray
# worker and the RayJob submitter in deploy/: it carries ray[default] at RAY_VERSION, so
# `ray start`, the dashboard (job API, health endpoints) and `ray job submit` all work.
#
#   CPU: docker build -t registry.example.com/fmnist-job:0.1.0-ray2.60.0 .
#   GPU: docker build --build-arg FLAVOUR=gpu -t registry.example.com/fmnist-job:0.1.0-ray2.60.0-gpu .
#
# tests/test_deploy.py lints this file with hadolint and checks that RAY_VERSION equals the
# ray pin in pyproject.toml and the rayVersion fields and image tags under deploy/.
# Usage and design notes: deploy/README.md.

ARG BASE_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------
# builder: build the project's wheel from pyproject.toml, install it into /opt/venv
# ---------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS builder

# cpu: TensorFlow from PyPI as pinned in pyproject.toml (runs on CPU anywhere).
# gpu: the project's [gpu] extra, tensorflow[and-cuda], which adds the CUDA/cuDNN wheels;
#      the node only needs the NVIDIA driver and device plugin.
ARG FLAVOUR=cpu
# Must equal the ray pin in pyproject.toml (tests/test_deploy.py checks). pyproject.toml
# asks for ray[data,default]; naming the [default] extra here too keeps the image honest: the
# Ray dashboard (job API, KubeRay's health checks) and `ray job submit` need it.
ARG RAY_VERSION=2.60.0

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY fmnist/ fmnist/

# The wheel carries fmnist/datasets/*.gz as package data, so the data set travels with
# the package. Installed with its extras into a venv that the runtime stage copies whole.
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /dist . \
 && case "${FLAVOUR}" in \
      cpu) extras="" ;; \
      gpu) extras="[gpu]" ;; \
      *) echo "FLAVOUR must be cpu or gpu, not '${FLAVOUR}'" >&2; exit 2 ;; \
    esac \
 && set -- /dist/fmnist_job-*.whl \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir "$1${extras}" "ray[default]==${RAY_VERSION}" \
 && /opt/venv/bin/pip check

# ---------------------------------------------------------------------------------------
# runtime: the venv, the sweep files, a non-root user; nothing from the build left behind
# ---------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime

ARG FLAVOUR=cpu
ARG RAY_VERSION=2.60.0

LABEL org.opencontainers.image.title="fmnist-job" \
      org.opencontainers.image.description="Distributed Fashion-MNIST training (Ray + TensorFlow) and batch scoring CLI" \
      org.opencontainers.image.licenses="MIT" \
      io.ray.version="${RAY_VERSION}" \
      fmnist-job.flavour="${FLAVOUR}"

# wget: KubeRay's default liveness/readiness probes and its submitter's wait loop run
# `wget ... | grep success` inside the Ray image; python:3.11-slim has no wget.
# Not version-pinned on purpose: Debian replaces the package in place with security
# updates, so an exact pin breaks the build as soon as one lands; the base tag fixes the
# Debian release instead.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends wget \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 fmnist \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/fmnist --shell /bin/bash fmnist

COPY --from=builder /opt/venv /opt/venv

# Every writable location points under /tmp (or HOME), so the container runs with a
# read-only root filesystem once an emptyDir is mounted on /tmp (deploy/ does this).
# Ray keeps its sessions, logs and spilled objects in $TMPDIR/ray (/tmp/ray).
ENV PATH="/opt/venv/bin:${PATH}" \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/fmnist \
    TMPDIR=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    KERAS_HOME=/tmp/keras \
    XDG_CACHE_HOME=/tmp/cache \
    CUDA_CACHE_PATH=/tmp/cuda-cache \
    TF_CPP_MIN_LOG_LEVEL=2 \
    RAY_USAGE_STATS_ENABLED=0

# WORKDIR holds the sweep files, so `fmnist-job train` finds its default
# --sweep jobs/default.toml when run from here (docker run IMAGE train ...).
WORKDIR /app
COPY jobs/ jobs/

# Fail the build, not the first job, if the image is inconsistent: the CLI starts, Ray is
# the version the manifests declare (with the dashboard extra) and the data set is inside.
RUN fmnist-job --help > /dev/null \
 && python -c "import sys, importlib.metadata as md, importlib.resources as r, aiohttp; \
v = md.version('ray'); assert v == sys.argv[1], f'ray {v} != RAY_VERSION {sys.argv[1]}'; \
d = r.files('fmnist') / 'datasets'; \
names = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']; \
missing = [n for n in names if not (d / n).is_file()]; assert not missing, missing" "${RAY_VERSION}"

USER 1000:1000

ENTRYPOINT ["fmnist-job"]
CMD ["--help"]
