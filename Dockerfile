# Stablewatch: a slim image that runs `stablewatch run` as a non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STABLEWATCH_HTTP__HOST=0.0.0.0

RUN groupadd --system stablewatch \
    && useradd --system --gid stablewatch --home-dir /app --shell /usr/sbin/nologin stablewatch

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install .

COPY rules ./rules
COPY settings ./settings
RUN mkdir -p /app/var && chown -R stablewatch:stablewatch /app/var

USER stablewatch
VOLUME ["/app/var"]

# /healthz, /readyz and /metrics. 0.0.0.0 above so Prometheus in another container can scrape;
# nothing reaches it from the host unless a port is published.
EXPOSE 9108

# Liveness only: /healthz answers while the event loop does (a standby replica is healthy too).
# The slim image has no curl: python's urllib raises on a refused connection or any 4xx/5xx, so
# the exit code is 1; its own timeout ends a hung request before Docker's --timeout does.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('STABLEWATCH_HTTP__PORT', '9108') + '/healthz', timeout=3)"]

CMD ["stablewatch", "run"]
