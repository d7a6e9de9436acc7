# pycoredns container image: a drop-in for the coredns image (same entrypoint arguments and ports).
#
#   docker build -t pycoredns .                                  # cluster DNS (about 120 MB)
#   docker build --build-arg NODECACHE=1 -t pycoredns:nodecache .  # plus ip and iptables for -localip
#   deploy/build-image.sh [IMAGE] [NODECACHE]                    # here: buildah on a debootstrapped base
#
# BASE must be Debian bookworm (or compatible): the interpreter comes from Debian's packages.
# The build stage assembles a root filesystem that holds only what runs: the interpreter and the
# standard library (bytecode compiled), the shared libraries they load (found with ldd), the venv
# with pycoredns and its dependencies (bytecode compiled, no pip), CA certificates, a nonroot user
# and the launcher. No shell, no package manager, no compiler in the final image. Bytecode is
# hash-based (unchecked): it stays valid when layer copies round the sources' modification times.
ARG BASE=docker.io/library/debian:bookworm-slim

FROM ${BASE} AS build
ARG NODECACHE=0
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates gcc libc6-dev \
    && if [ "$NODECACHE" = 1 ]; then apt-get install -y --no-install-recommends iproute2 iptables; fi \
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
       fi \
    && /opt/pycoredns/bin/pip uninstall -y -q pip setuptools \
    && rm -f /opt/pycoredns/bin/activate* /opt/pycoredns/bin/pip* \
    && find /opt/pycoredns -depth \( -name tests -o -name '*.c' -o -name '*.pyx' -o -name '*.pyi' -o -name '*.h' \
         -o -name README.md \) -prune -exec rm -rf {} + \
    && python3 -m compileall -q -j0 -f --invalidation-mode unchecked-hash /opt/pycoredns/lib \
    && gcc -O2 -Wall -o /opt/pycoredns/bin/pycoredns deploy/launcher.c
RUN sh deploy/rootfs.sh /rootfs "$NODECACHE"

FROM scratch
COPY --from=build /rootfs /
# cap_net_bind_service (permitted, inheritable, effective) on the launcher only, set here because
# COPY does not carry file capabilities everywhere; exec form: the image has no shell.
RUN ["/usr/bin/python3.11", "-I", "-c", "import os, struct; os.setxattr('/opt/pycoredns/bin/pycoredns', 'security.capability', struct.pack('<5I', 0x02000001, 1 << 10, 1 << 10, 0, 0))"]
ENV PATH=/opt/pycoredns/bin:/usr/sbin:/usr/bin PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 53/udp 53/tcp 9153/tcp 8080/tcp 8181/tcp
ENTRYPOINT ["/opt/pycoredns/bin/pycoredns"]
CMD ["-conf", "/etc/coredns/Corefile"]
