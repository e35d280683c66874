# One image for every service: `docker run IMAGE services.<name>` (ingest, classifier, approval,
# distributor, retention); Kubernetes passes the module as the container's args
# (deploy/k8s/base/<service>/deployment.yaml).
#
#   docker build -t dagmonitor:0.1.0 .
#
# The code runs from /app (the codec finds schemas/ beside the dagmonitor package); the
# dependencies live in /opt/venv. It runs as uid 10001 with a read-only root filesystem:
# writable are only /tmp and /var/lib/dagmonitor (DAGMONITOR_LOCAL_DIR: faust's <app id>-data),
# both mounted as emptyDir volumes in Kubernetes.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY dagmonitor ./dagmonitor
COPY services ./services
# Install the dependencies the project declares, then drop the project itself: /app holds it.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install . \
    && /opt/venv/bin/pip uninstall --yes dagmonitor

FROM python:3.11-slim-bookworm
RUN groupadd --gid 10001 dagmonitor \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin dagmonitor \
    && install -d -o 10001 -g 10001 /var/lib/dagmonitor
COPY --from=build /opt/venv /opt/venv
COPY dagmonitor /app/dagmonitor
COPY services /app/services
COPY schemas /app/schemas
RUN /opt/venv/bin/python -m compileall -q /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    DAGMONITOR_HTTP_HOST=0.0.0.0 \
    DAGMONITOR_LOCAL_DIR=/var/lib/dagmonitor
WORKDIR /var/lib/dagmonitor
USER 10001:10001
ENTRYPOINT ["python", "-m"]
CMD ["services.ingest"]
