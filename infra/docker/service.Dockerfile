# syntax=docker/dockerfile:1.7
#
# One image recipe for every Python service of the workspace.
#
#   docker build -f infra/docker/service.Dockerfile --build-arg SERVICE=identity \
#     -t ghcr.io/quantumlayer/qlp-identity:dev .
#
# Build context: the repository root (the uv workspace and its uv.lock).
# SERVICE names the workspace package qlp-${SERVICE} (services/${SERVICE}).
# EXTRA_PACKAGES adds more workspace packages to the same environment, e.g.
# "qlp-infra" for the gateway image, whose `qlp` CLI the topic-provisioning
# Helm hook runs.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# ---------------------------------------------------------------- builder ----
FROM ${PYTHON_IMAGE} AS builder
ARG SERVICE
ARG EXTRA_PACKAGES=""
RUN test -n "${SERVICE}" || (echo "--build-arg SERVICE=<name> is required" >&2; exit 1)

COPY --from=uv /uv /uvx /usr/local/bin/

# Compile bytecode at build time (the runtime filesystem is read-only), copy
# rather than hard-link out of the cache mount, never download a Python, and
# put the environment where the runtime stage expects it.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_FROZEN=1

WORKDIR /src

# Third-party dependencies first: this layer is reused until uv.lock or a
# pyproject.toml changes. uv needs every workspace member's pyproject.toml to
# read the lock, so the whole tree is bind-mounted (not copied) for this step.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=.,target=/src,readonly \
    packages="--package qlp-${SERVICE}"; \
    for p in ${EXTRA_PACKAGES}; do packages="${packages} --package ${p}"; done; \
    uv sync --frozen --no-dev --no-install-workspace --no-editable ${packages}

# Then the workspace packages themselves, installed as wheels (no editable
# links back into /src, which does not exist in the runtime image).
COPY . /src
RUN --mount=type=cache,target=/root/.cache/uv \
    packages="--package qlp-${SERVICE}"; \
    for p in ${EXTRA_PACKAGES}; do packages="${packages} --package ${p}"; done; \
    uv sync --frozen --no-dev --no-editable ${packages} \
    && /app/.venv/bin/python -c "import qlp_kit.serve"

# ---------------------------------------------------------------- runtime ----
FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE

LABEL org.opencontainers.image.title="qlp-${SERVICE}" \
      org.opencontainers.image.source="https://github.com/quantumlayer/qlp" \
      org.opencontainers.image.description="QuantumLayer Platform service ${SERVICE}"

# A fixed numeric non-root user (Kubernetes checks runAsNonRoot against the uid).
RUN groupadd --system --gid 10001 qlp \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin qlp

# System libraries a service needs at run time, from Debian (bookworm), in the
# runtime stage only: the console renders invoice PDFs with WeasyPrint, which loads
# Pango, PangoFT2 and HarfBuzz's subsetter through ctypes and needs a font.
RUN case "${SERVICE}" in \
      console) packages="libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core" ;; \
      *) packages="" ;; \
    esac; \
    if [ -n "${packages}" ]; then \
      apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${packages} \
      && rm -rf /var/lib/apt/lists/*; \
    fi

# The environment is owned by root and read-only to the service user.
COPY --from=builder /app/.venv /app/.venv

# The console's PDFs: WeasyPrint finds its libraries (fails the build when not).
RUN if [ "${SERVICE}" = console ]; then \
      /app/.venv/bin/python -c "import weasyprint; weasyprint.HTML(string='<p>ok</p>').write_pdf()"; \
    fi

# Nothing is written outside /tmp (an emptyDir on Kubernetes): no bytecode
# writes, HOME and TMPDIR under /tmp. QLP_SERVICE tells `python -m qlp_kit.serve`
# which service to run when no argument is given (docker run without a command).
ENV PATH=/app/.venv/bin:${PATH} \
    VIRTUAL_ENV=/app/.venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    QLP_SERVICE=${SERVICE}

WORKDIR /app
USER 10001:10001
EXPOSE 8000

# For `docker run`; Kubernetes uses the chart's probes instead.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]

ENTRYPOINT ["python", "-m", "qlp_kit.serve"]
# Exec-form CMD cannot expand variables, so the service comes from QLP_SERVICE
# above; Kubernetes passes it explicitly as args: ["<service>"].
CMD []
