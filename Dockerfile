# syntax=docker/dockerfile:1
# pulsehook: GitHub webhooks in on :8000, state in the /data volume.
#   docker build -t pulsehook .
#   docker run -d -p 127.0.0.1:8000:8000 -v pulsehook-data:/data pulsehook
# The Python is CI's (3.11). On x86_64 every dependency comes as a manylinux
# wheel, so neither stage needs a compiler (other architectures: not checked).

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# The context is what .dockerignore lets through: pyproject.toml, README.md,
# LICENSE, src/ and rules/ (the package's shipped rules link to rules/).
COPY . .
# pulsehook's wheel and the wheels of all its dependencies; the final stage
# installs from these alone.
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    PULSEHOOK_HOST=0.0.0.0 \
    PULSEHOOK_PORT=8000 \
    PULSEHOOK_DATA_DIR=/data \
    PULSEHOOK_RULES_DIR=/etc/pulsehook/rules
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/pulsehook-*.whl
# A fixed uid, so a bind-mounted data directory can be chowned to it beforehand.
RUN groupadd --system --gid 10001 pulsehook \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin pulsehook \
    && mkdir -p /data \
    && chown pulsehook:pulsehook /data \
    && chmod 0700 /data
# The shipped rules; mount a directory over it to use your own.
COPY rules /etc/pulsehook/rules
# The SQLite database, the generated webhook secret and the API token: a new
# named volume takes this directory's owner and mode.
VOLUME /data
USER 10001:10001
EXPOSE 8000
# The image has no curl: the standard library asks /healthz over loopback
# (http.client, so no *_proxy variable can send it elsewhere).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import http.client, os, sys; c = http.client.HTTPConnection('127.0.0.1', int(os.environ.get('PULSEHOOK_PORT', '8000')), timeout=4); c.request('GET', '/healthz'); sys.exit(c.getresponse().status != 200)"]
# Exec form: pulsehook is PID 1 and receives docker stop's SIGTERM itself.
# Other commands run in its place: docker run --rm -v pulsehook-data:/data pulsehook replay
ENTRYPOINT ["pulsehook"]
CMD ["serve"]
