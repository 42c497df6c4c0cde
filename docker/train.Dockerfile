# syntax=docker/dockerfile:1
# The nightly job (training, export, bundle, publish) with torch on CUDA; falls back to the CPU with
# a log line where no GPU is visible. The bundle root is a volume (or an object store: docs/scaling.md).
#   docker build -f docker/train.Dockerfile -t vitrine-train:cuda .
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
WORKDIR /app

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.12=3.12.3-1ubuntu0.* python3.12-venv=3.12.3-1ubuntu0.* \
    && rm -rf /var/lib/apt/lists/* \
    && python3.12 -m venv /opt/venv

# torch and torchvision at constraints.txt's versions, built for CUDA 12.6; then the rest, pinned.
COPY constraints.txt docker/requirements-train.txt /tmp/
RUN pip install --no-cache-dir -c /tmp/constraints.txt --index-url https://download.pytorch.org/whl/cu126 \
        torch torchvision \
    && pip install --no-cache-dir --require-hashes -r /tmp/requirements-train.txt

COPY pyproject.toml README.md ./
COPY common common
COPY bundle bundle
COPY recsys recsys
COPY vision vision
COPY serving serving
COPY pipelines pipelines
RUN pip install --no-cache-dir --no-deps . \
    && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin vitrine

USER 10001:10001
# Exit codes (pipelines/errors.py): 0 published, 1 a step failed (the next run resumes), 2 bad data,
# 3 refused by the quality gate, 75 another run holds the lock.
HEALTHCHECK NONE
ENTRYPOINT ["vitrine", "nightly"]
CMD ["--data", "/data", "--artifacts", "/bundles"]
