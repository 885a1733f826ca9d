# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cryptomon ./cryptomon
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --create-home --home-dir /var/lib/crypto-monitor --shell /usr/sbin/nologin cryptomon \
    && mkdir -p /etc/crypto-monitor && chown cryptomon /etc/crypto-monitor
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY config.example.yaml /etc/crypto-monitor/config.yaml
USER cryptomon
WORKDIR /var/lib/crypto-monitor
ENV NUMBA_CACHE_DIR=/var/lib/crypto-monitor/.numba \
    CRYPTOMON_API__HOST=0.0.0.0
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["crypto-monitor"]
CMD ["--config", "/etc/crypto-monitor/config.yaml"]
