# syntax=docker/dockerfile:1
# Two images from one file: `api` (no PyTorch, small) and `worker` (the unlearning engine).
#   docker build --target api -t lethe-api .
#   docker build --target worker -t lethe-worker .
#   docker build --target worker --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 -t lethe-worker-gpu .
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv/lethe
RUN useradd --create-home --uid 10001 lethe
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY workers ./workers
COPY bench ./bench
COPY migrations ./migrations

FROM base AS api
RUN pip install --no-cache-dir .
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["uvicorn", "app.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]

FROM base AS worker
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX_URL="https://download.pytorch.org/whl/cpu"
# The torch pin comes from TORCH_SPEC and the rest from pyproject.toml's ranges.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "${TORCH_SPEC}" \
    && pip install --no-cache-dir ".[worker]"
USER 10001
CMD ["celery", "-A", "workers.celery_app", "worker", "-Q", "cpu", "--loglevel", "INFO"]
