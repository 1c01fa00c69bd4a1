# OMS image: one image, two roles.
#   worker (default):  docker run IMAGE            -> oms-worker
#   API:               docker run IMAGE oms-api    -> listens on OMS_API_PORT (8080)
# Configuration comes from OMS_* environment variables (see docker-compose.yml).

# --- build stage: install the project and its dependencies into a virtualenv ---
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# README.md is part of the package metadata (pyproject `readme`), so it is needed to build.
COPY pyproject.toml README.md ./
COPY workflows ./workflows
COPY activities ./activities
COPY store ./store
COPY workers ./workers
COPY api ./api
COPY oms ./oms
RUN pip install .

# --- runtime stage: the virtualenv only, no sources, no build tools ---
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH

RUN groupadd --system --gid 10001 oms \
    && useradd --system --uid 10001 --gid oms --create-home --home-dir /home/oms oms

COPY --from=build /opt/venv /opt/venv

USER oms
WORKDIR /home/oms

# Inside a container the API must listen on all interfaces; the local data
# directory is only used when OMS_DATABASE_URL is unset (SQLite fallback).
ENV OMS_API_HOST=0.0.0.0 \
    OMS_API_PORT=8080 \
    OMS_DATA_DIR=/home/oms/.oms

EXPOSE 8080

CMD ["oms-worker"]
