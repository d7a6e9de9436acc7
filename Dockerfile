# pycoredns container image: a drop-in for the coredns image (same entrypoint arguments and ports).
#
#   docker build -t pycoredns .                      # on a Docker host
#   deploy/build-image.sh                            # here: buildah on a locally debootstrapped Debian base
#
# BASE must be a Debian bookworm (or compatible) image: Python comes from Debian's packages.
ARG BASE=docker.io/library/debian:bookworm-slim

FROM ${BASE} AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-pip ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY pycoredns pycoredns
COPY plugins plugins
COPY deploy deploy
# deploy/wheels (made by deploy/build-image.sh on the host) lets the build run without reaching PyPI.
RUN python3 -m venv /opt/pycoredns \
    && if [ -d deploy/wheels ]; then \
         /opt/pycoredns/bin/pip install --no-cache-dir --no-index --find-links deploy/wheels pycoredns; \
       else \
         /opt/pycoredns/bin/pip install --no-cache-dir . ; \
       fi

FROM ${BASE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 libcap2-bin iproute2 iptables ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && setcap cap_net_bind_service=+ep "$(readlink -f /usr/bin/python3)" \
    && useradd --system --uid 65532 --no-create-home --shell /usr/sbin/nologin nonroot
COPY --from=build /opt/pycoredns /opt/pycoredns
ENV PATH=/opt/pycoredns/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 53/udp 53/tcp 9153/tcp 8080/tcp 8181/tcp
ENTRYPOINT ["pycoredns"]
CMD ["-conf", "/etc/coredns/Corefile"]
