# registryd as a slim, non-root image:  docker build -t registryd .
#   docker run --env-file config/compose.env.example -p 127.0.0.1:9822:9822 registryd
# The entrypoint is the console script; the command defaults to `serve` (any other
# subcommand works: `docker run --rm registryd check`). /metrics and /healthz listen on
# 0.0.0.0:9822 inside the container; publish them on loopback only.
#
# BASE: any Debian-based image with Python >= 3.11 as `python3` and the venv module.
# Where no registry can be reached, one made with debootstrap serves (see
# docs/operations.md, "Building the image without a registry").
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
WORKDIR /src
RUN python3 -m venv /opt/registryd
# Only what the package needs: the build context is filtered by .dockerignore too.
COPY pyproject.toml README.md ./
COPY registryd ./registryd
RUN /opt/registryd/bin/pip install --no-cache-dir --disable-pip-version-check . \
    && /opt/registryd/bin/pip uninstall --yes pip

FROM ${BASE}
# A fixed uid/gid (10001), so volumes and a runAsUser policy can name it; no home, no shell.
RUN groupadd --gid 10001 registryd \
    && useradd --uid 10001 --gid 10001 --no-create-home --no-log-init \
       --home-dir /nonexistent --shell /usr/sbin/nologin registryd
COPY --from=build /opt/registryd /opt/registryd
ENV PATH=/opt/registryd/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    REGISTRYD_LOG_FORMAT=json \
    REGISTRYD_METRICS_HOST=0.0.0.0 \
    REGISTRYD_METRICS_PORT=9822
USER 10001:10001
EXPOSE 9822
# SIGTERM: stop consuming, finish in-flight work (REGISTRYD_GRACE, 10 s), exit 0; give
# the container a stop timeout above the grace (compose: stop_grace_period).
STOPSIGNAL SIGTERM
# The daemon's own verdict: 200 only while consuming with both backends answering.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('REGISTRYD_METRICS_PORT', '9822') + '/healthz', timeout=2)"]
ENTRYPOINT ["registryd"]
CMD ["serve"]
