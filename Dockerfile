# syntax=docker/dockerfile:1
# The project's image: both entry points (`shipper`, `gateway`), non-root, no build tools at run time.
#   docker build -t loki-gateway:local .
#   docker run --rm loki-gateway:local shipper check
#   docker run --rm -p 127.0.0.1:8001:8001 -e AI_MONITORING_API_KEY=... loki-gateway:local
ARG PYTHON_IMAGE=python:3.12.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Only what the package needs (see .dockerignore); tests, bench and the ops stack stay out.
COPY pyproject.toml README.md ./
COPY shipper ./shipper
COPY gateway ./gateway
RUN pip install --no-compile . \
    && python -m compileall -q /opt/venv/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="loki-gateway" \
      org.opencontainers.image.description="Log shipper (GCS, Firestore, pod logs -> Loki) and monitoring gateway" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SHIPPER_STATE_DIR=/var/lib/shipper \
    SHIPPER_METRICS_HOST=0.0.0.0
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home --shell /usr/sbin/nologin app \
    && install -d -o app -g app -m 0750 /var/lib/shipper
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /home/app
# 8001: gateway API and /metrics; 9102: shipper /metrics (SHIPPER_METRICS_PORT).
EXPOSE 8001 9102
# The gateway's liveness; compose gives the shipper its own check on SHIPPER_METRICS_PORT.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8001/health', timeout=4)"]
CMD ["gateway", "serve", "--host", "0.0.0.0", "--port", "8001"]
