# syntax=docker/dockerfile:1.7
# Skyspot's one image: the PDS (python -m pds), the local PLC directory (python -m pds.plc), the
# firehose consumer (python -m firehose_consumer) and the feed generator (python -m feedgen);
# docker-compose.yml picks the command. Build: docker build -t skyspot .
#
# The services run from the source tree in /app (an editable install into /opt/venv), because
# they find the lexicons next to their packages (/app/lexicons). The `cockroach` extra adds the
# PostgreSQL/CockroachDB drivers the index needs outside SQLite.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

FROM base AS build
# Compilers only in this stage, for any dependency without a wheel for the platform.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY atcore ./atcore
COPY pds ./pds
COPY firehose_consumer ./firehose_consumer
COPY feedgen ./feedgen
COPY skyspot_client ./skyspot_client
COPY lexicons ./lexicons
COPY scripts ./scripts
ARG EXTRAS=cockroach
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --upgrade pip \
    && /opt/venv/bin/pip install -e ".[${EXTRAS}]"

FROM base
# A fixed, unprivileged user; its home holds ~/.postgresql/root.crt (the database CA) when the
# index is on a TLS-verified PostgreSQL or CockroachDB (docker-compose.yml mounts it there).
RUN groupadd --system --gid 10001 skyspot \
    && useradd --system --uid 10001 --gid skyspot --create-home --home-dir /home/skyspot \
        --shell /usr/sbin/nologin skyspot \
    && mkdir -p /data /home/skyspot/.postgresql \
    && chown skyspot:skyspot /data /home/skyspot/.postgresql
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
USER skyspot:skyspot
# PLC, PDS, feed generator, consumer metrics
EXPOSE 2582 2583 3000 9102
STOPSIGNAL SIGTERM
CMD ["python", "-m", "pds"]
