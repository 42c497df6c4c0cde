# syntax=docker/dockerfile:1
# The online service on CPUs: FastAPI + FAISS (faiss-cpu) + ONNX Runtime. No torch.
#   docker build -f docker/serve-cpu.Dockerfile -t vitrine-serve:cpu .
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VITRINE_ARTIFACTS_DIR=/bundles
WORKDIR /app

# Dependencies first (pinned by docker/lock.py), so a code change does not reinstall them.
COPY docker/requirements-serve-cpu.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements.txt

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
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["uvicorn", "serving.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--workers", "2", "--no-access-log"]
