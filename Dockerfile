# syntax=docker/dockerfile:1
# cryptomon daemon image. README "Deployment / Docker" documents the run; in short:
#   docker build -t cryptomon .
#   docker run -d -v cryptomon-data:/data -v $PWD/config.yaml:/etc/crypto-monitor/config.yaml:ro \
#     -v $PWD/api_token:/run/secrets/api_token:ro -p 127.0.0.1:8080:8080 cryptomon
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY cryptomon ./cryptomon
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# A fixed uid/gid so files on volumes and mounted secrets can be given to it (10001).
RUN groupadd --system --gid 10001 cryptomon \
    && useradd --system --uid 10001 --gid cryptomon --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin cryptomon \
    && mkdir -p /etc/crypto-monitor /data \
    && chown cryptomon:cryptomon /data && chmod 0700 /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY config.example.yaml /etc/crypto-monitor/config.yaml
USER cryptomon
# data_dir (the protective-exit journal), a SQLite database if used and numba's cache.
WORKDIR /data
# The API listens on all interfaces inside the container, so it needs a token: by default
# the file /run/secrets/api_token (a Docker/compose secret or a read-only bind mount);
# -e CRYPTOMON_API__TOKENS='[{"name": "ops", "token": "..."}]' gives one directly instead.
ENV NUMBA_CACHE_DIR=/data/.numba \
    CRYPTOMON_DATA_DIR=/data \
    CRYPTOMON_API__HOST=0.0.0.0 \
    CRYPTOMON_API__PORT=8080 \
    CRYPTOMON_API__TOKENS='[{"name": "docker", "token_file": "/run/secrets/api_token"}]' \
    CRYPTOMON_LOGGING__FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
# `crypto-monitor healthcheck` follows the config and the CRYPTOMON_* variables: /health over
# http or https (api.tls_cert_file) at api.host/api.port, or, with api.enabled false, the
# heartbeat file the daemon rewrites in data_dir. Running another config (a CMD of your own)?
# Override this with --health-cmd "crypto-monitor healthcheck --config YOURS".
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["crypto-monitor", "healthcheck", "--config", "/etc/crypto-monitor/config.yaml", "--timeout", "4"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["crypto-monitor"]
CMD ["--config", "/etc/crypto-monitor/config.yaml"]
