# syntax=docker/dockerfile:1
# The online service on CPUs: FastAPI + FAISS (faiss-cpu) + ONNX Runtime. No torch.
#   docker build -f docker/serve-cpu.Dockerfile -t vitrine-serve:cpu .
# BASE: any Debian bookworm with python3 and python3-venv; docker/image.sh builds one from Debian's
# mirror (mmdebstrap) where no registry is reachable and runs the image with podman.
ARG BASE=python:3.11.14-slim-bookworm
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VITRINE_ARTIFACTS_DIR=/bundles PATH=/opt/venv/bin:$PATH
WORKDIR /app

# Dependencies first (pinned by docker/lock.py), so a code change does not reinstall them; in a venv,
# which works on both bases (Debian's own python refuses installs into the system, PEP 668).
COPY docker/requirements-serve-cpu.txt /tmp/requirements.txt
# /etc/pip-ca.crt: a CA bundle for a TLS-inspecting proxy, mounted only by docker/image.sh
# (podman build --volume); absent elsewhere.
RUN python3 -m venv /opt/venv \
    && if [ -f /etc/pip-ca.crt ]; then export PIP_CERT=/etc/pip-ca.crt; fi \
    && pip install --no-cache-dir --require-hashes -r /tmp/requirements.txt

COPY pyproject.toml README.md ./
COPY common common
COPY bundle bundle
COPY recsys recsys
COPY vision vision
COPY serving serving
COPY pipelines pipelines
RUN if [ -f /etc/pip-ca.crt ]; then export PIP_CERT=/etc/pip-ca.crt; fi \
    && pip install --no-cache-dir --no-deps . \
    && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin vitrine

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# one worker per core the container may use (its CPU quota counts: common/threads.py), a socket each
CMD ["vitrine", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "0"]
