# syntax=docker/dockerfile:1
# The online service on an NVIDIA GPU: ONNX Runtime's CUDA provider (onnxruntime-gpu) and FAISS with
# GPU indexes (faiss-gpu-cu12) on the CUDA 12 runtime + cuDNN 9. No torch. Run with --gpus all
# (NVIDIA Container Toolkit) and VITRINE_DEVICE=cuda.
#   docker build -f docker/serve-gpu.Dockerfile -t vitrine-serve:gpu .
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VITRINE_ARTIFACTS_DIR=/bundles VITRINE_DEVICE=cuda PATH=/opt/venv/bin:$PATH
WORKDIR /app

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.12=3.12.3-1ubuntu0.* python3.12-venv=3.12.3-1ubuntu0.* \
    && rm -rf /var/lib/apt/lists/* \
    && python3.12 -m venv /opt/venv

COPY docker/requirements-serve-gpu.txt /tmp/requirements.txt
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
HEALTHCHECK --interval=30s --timeout=3s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# One worker per GPU: each worker holds its own ONNX Runtime sessions and index on the device.
CMD ["uvicorn", "serving.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--workers", "1", "--no-access-log"]
