# The hook server image: ghcr.io/flink-sync/flink-sync:<version> (manifests/base/deployment.yaml runs it).
#   docker build -t ghcr.io/flink-sync/flink-sync:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed numeric user, so Kubernetes' runAsNonRoot can verify it (the manifest runs as 10001:10001 too).
RUN groupadd --system --gid 10001 flink-sync \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin flink-sync

WORKDIR /src
COPY pyproject.toml README.md ./
COPY sync ./sync
COPY hooks ./hooks
RUN pip install . && rm -rf /src

WORKDIR /
USER 10001:10001
EXPOSE 8080
# Inside a container the server has to listen on every interface; the pod's Service is the way in.
ENV FLINK_SYNC_BIND=0.0.0.0:8080
ENTRYPOINT ["flink-sync"]
CMD ["serve"]
