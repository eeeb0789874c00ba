# The Coalmine operator image. Build it where a container engine exists (docker, podman, buildah, kaniko):
#   docker build -t coalmine:0.1.0 .
# then push it or load it into your cluster (`kind load docker-image coalmine:0.1.0`), and install the chart with
# `--set image.repository=… --set image.tag=…` (see docs/install.md).

# -- build: install the project and its runtime dependencies into a virtualenv ------------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# pyproject.toml names README.md as the long description; crds/ is package data (controller/crds links to it), so
# `coalmine validate` and the operator check documents against the very schemas the API server enforces.
COPY pyproject.toml README.md ./
COPY crds ./crds
COPY analysis ./analysis
COPY controller ./controller
RUN python -m venv /opt/coalmine \
 && /opt/coalmine/bin/pip install --no-compile . \
 && /opt/coalmine/bin/python -c "from controller.rollout.schema import load_crd; load_crd('Canary')"

# -- runtime: the virtualenv only, as an unprivileged user ---------------------------------------------------------
FROM python:3.11-slim
RUN groupadd --system --gid 10001 coalmine \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin coalmine
COPY --from=build /opt/coalmine /opt/coalmine
# No .pyc writes (the chart mounts the root filesystem read-only) and unbuffered logs.
ENV PATH=/opt/coalmine/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A numeric user, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
# 8080: /metrics (--metrics-port); 8081: kopf's liveness endpoint /healthz (--liveness-port).
EXPOSE 8080 8081
ENTRYPOINT ["coalmine", "run"]
