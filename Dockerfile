# syntax=docker/dockerfile:1
#
# fmnist-job: the CLI, its locked dependencies (requirements/*.lock, with hashes) and the
# bundled Fashion-MNIST files on Python 3.11. The same image is the Ray head, every Ray
# worker and the RayJob submitter in deploy/: it carries ray[default] at RAY_VERSION, so
# `ray start`, the dashboard (job API, health endpoints) and `ray job submit` all work.
#
#   CPU: docker build -t registry.example.com/fmnist-job:0.1.0-ray2.60.0 .
#   GPU: docker build --build-arg FLAVOUR=gpu -t registry.example.com/fmnist-job:0.1.0-ray2.60.0-gpu .
#
# BASE_IMAGE: any Debian-based image with CPython 3.11 (>= 3.11.0) and its venv module.
# CI builds on a Debian 12 root made with debootstrap (tests/container/run, Python 3.11.2);
# see docs/containers.md for pinning the base by digest and bumping it.
#
# Layers, so that a code change rebuilds only the last, small ones: the locked
# dependencies are installed before any of the project's code is copied.
#
# tests/test_deploy_image.py lints this file with hadolint and checks that RAY_VERSION equals the
# ray pin in pyproject.toml and the rayVersion fields and image tags under deploy/.
# Usage and design notes: deploy/README.md, docs/containers.md.

ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------
# deps: the OS part and the locked dependencies in /opt/venv. Only requirements/ is
# copied, so these layers stay cached until a lock changes; the runtime stage builds on
# this one (no copy of the 1.9 GB venv between stages).
# ---------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS deps

# cpu: requirements/cpu.lock (tensorflow-cpu, runs on CPU anywhere).
# gpu: requirements/gpu.lock (tensorflow[and-cuda]: TensorFlow with the CUDA/cuDNN wheels);
#      the node only needs the NVIDIA driver and device plugin.
ARG FLAVOUR=cpu

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_NO_CACHE=1 \
    UV_SYSTEM_CERTS=1

# wget: KubeRay's default liveness/readiness probes and its submitter's wait loop have run
# `wget ... | grep success` inside the Ray image; that KubeRay 1.7 no longer does could
# not be verified (docs/containers.md), so it stays (1 MB).
# Not version-pinned on purpose: Debian replaces the package in place with security
# updates, so an exact pin breaks the build as soon as one lands; the base fixes the
# Debian release instead.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends wget \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 fmnist \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/fmnist --shell /bin/bash fmnist

WORKDIR /src
COPY requirements/tools.lock requirements/cpu.lock requirements/gpu.lock requirements/

# uv (itself hash-checked by pip, in a throwaway venv) installs exactly the lock, hashes
# required, compiled to bytecode (the read-only root cannot take .pyc files later).
# Dropped, as nothing imports them at run time: TensorFlow's C++ headers
# (tensorflow/include, 287 MB, for building custom ops), Ray's Java jars (33 MB), the test
# suites of numpy, pandas, pyarrow and matplotlib (63 MB).
RUN case "${FLAVOUR}" in \
      cpu|gpu) ;; \
      *) echo "FLAVOUR must be cpu or gpu, not '${FLAVOUR}'" >&2; exit 2 ;; \
    esac \
 && python3 -m venv /tmp/uv \
 && /tmp/uv/bin/pip install --require-hashes -r requirements/tools.lock \
 && python3 -m venv --without-pip /opt/venv \
 && /tmp/uv/bin/uv pip sync --python /opt/venv/bin/python --require-hashes --compile-bytecode \
      "requirements/${FLAVOUR}.lock" \
 && rm -rf /tmp/uv \
 && site=$(echo /opt/venv/lib/python3*/site-packages) \
 && rm -rf "$site/tensorflow/include" "$site/ray/jars" "$site/pandas/tests" "$site/pyarrow/tests" \
      "$site/matplotlib/tests" \
 && find "$site/numpy" -type d -name tests -prune -exec rm -rf {} +

# ---------------------------------------------------------------------------------------
# app: the project itself, installed into a copy of the venv without dependencies; only
# its own files go on to the runtime stage
# ---------------------------------------------------------------------------------------
FROM deps AS app

COPY pyproject.toml README.md ./
COPY fmnist/ fmnist/

# The wheel carries fmnist/datasets/*.gz and fmnist/jobs/*.toml as package data.
# --no-build-isolation: setuptools comes from the lock too, nothing unpinned is fetched.
RUN python3 -m venv /tmp/uv \
 && /tmp/uv/bin/pip install --require-hashes -r requirements/tools.lock \
 && /tmp/uv/bin/uv pip install --python /opt/venv/bin/python --no-deps --no-build-isolation \
      --compile-bytecode . \
 && mkdir /out

WORKDIR /opt/venv
RUN cp -a --parents bin/fmnist-job lib/python3*/site-packages/fmnist \
      lib/python3*/site-packages/fmnist_job-*.dist-info /out/

# ---------------------------------------------------------------------------------------
# runtime: the deps stage plus the project's files, a non-root user; no build tools
# ---------------------------------------------------------------------------------------
FROM deps AS runtime

ARG FLAVOUR=cpu
ARG RAY_VERSION=2.60.0

LABEL org.opencontainers.image.title="fmnist-job" \
      org.opencontainers.image.description="Distributed Fashion-MNIST training (Ray + TensorFlow) and batch scoring CLI" \
      org.opencontainers.image.licenses="MIT" \
      io.ray.version="${RAY_VERSION}" \
      fmnist-job.flavour="${FLAVOUR}"

COPY --from=app /out/ /opt/venv/

# Read-only root filesystem: writable mounts are needed at /tmp and /home/fmnist, nothing
# else (deploy/ mounts emptyDirs there; tests/test_packaging.py compares the two lists).
#   /tmp: TMPDIR; Ray's sessions, logs and spilled objects (/tmp/ray), MPLCONFIGDIR,
#         KERAS_HOME, XDG_CACHE_HOME, CUDA_CACHE_PATH.
#   /home/fmnist ($HOME): Ray 2.60 writes its authentication token to ~/.ray/auth_token
#         when it starts a cluster (token authentication), and reads it there.
# Ray's object store also wants a large /dev/shm (an emptyDir with medium Memory, or
# docker run --shm-size).
ENV PATH="/opt/venv/bin:${PATH}" \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    HOME=/home/fmnist \
    TMPDIR=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    KERAS_HOME=/tmp/keras \
    XDG_CACHE_HOME=/tmp/cache \
    CUDA_CACHE_PATH=/tmp/cuda-cache \
    TF_CPP_MIN_LOG_LEVEL=2 \
    RAY_USAGE_STATS_ENABLED=0

# The sweep files, also at /app/jobs (the manifests name /app/jobs/default.toml). Without
# --sweep, fmnist-job uses the copy inside the package, whatever the working directory.
WORKDIR /app
COPY fmnist/jobs/ jobs/

# Fail the build, not the first job, if the image is inconsistent: the CLI starts, Ray is
# the version the manifests declare (with the dashboard extra), the data set and the
# default sweep are inside the package.
RUN fmnist-job --help > /dev/null \
 && python -c "import sys, importlib.metadata as md, importlib.resources as r, aiohttp; \
v = md.version('ray'); assert v == sys.argv[1], f'ray {v} != RAY_VERSION {sys.argv[1]}'; \
d = r.files('fmnist') / 'datasets'; \
names = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']; \
missing = [n for n in names if not (d / n).is_file()]; assert not missing, missing; \
assert (r.files('fmnist') / 'jobs' / 'default.toml').is_file(), 'default sweep missing'" "${RAY_VERSION}"

USER 1000:1000

ENTRYPOINT ["fmnist-job"]
CMD ["--help"]
