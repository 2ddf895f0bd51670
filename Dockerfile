# Stablewatch: a slim image that runs `stablewatch run` as a non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

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

CMD ["stablewatch", "run"]
