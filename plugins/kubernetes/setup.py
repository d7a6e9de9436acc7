"""kubernetes setup: the Corefile stanza (every option and its CoreDNS error text), then the handler."""

from __future__ import annotations

import os
from collections.abc import Callable

from pycoredns.plugin import ConfigError, Controller, config_atoi
from pycoredns.util import normalize_zones, parse_duration

from .handler import Kubernetes, _below_reverse, log


def setup(c: Controller) -> None:
    k: Kubernetes | None = None
    for _ in c.occurrences(once=True):
        k = parse(c)
    assert k is not None
    k.build()
    c.start_soon(k.rebuilder)
    c.on_serving(k.activated.set)
    c.on_startup(k.start)
    c.on_shutdown(k.stop)
    c.add_handler(k)


def parse(c: Controller) -> Kubernetes:
    args = c.remaining_args()
    zones = normalize_zones(args) if args else list(c.zones)
    if all(_below_reverse(z) for z in zones):
        raise ConfigError("non-reverse zone name must be used")
    k = Kubernetes(zones)
    k.listen_hosts = c.listen_hosts()
    endpoints: list[str] = []
    while c.next_block():
        opt = c.val()
        a = c.remaining_args()
        if opt == "endpoint":
            endpoints = _endpoint(c, a)
            continue
        option = OPTIONS.get(opt)
        if option is None:
            if opt in ("multicluster", "zonal"):
                raise c.err(f"{opt} is not supported by pycoredns")
            raise c.err(f"unknown property '{opt}'")
        option(c, k, a)
    if k.namespaces and k.namespace_labels:
        raise c.err("namespaces and namespace_labels cannot both be set")
    if endpoints and not k.conn.kubeconfig:
        k.conn.endpoint = endpoints[0]
    if not k.conn.kubeconfig and not k.conn.endpoint and not (
            os.environ.get("KUBERNETES_SERVICE_HOST") and os.environ.get("KUBERNETES_SERVICE_PORT")):
        # CoreDNS (client-go's rest.InClusterConfig) refuses to start here
        raise ConfigError("unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
                          "KUBERNETES_SERVICE_PORT must be defined")
    if k.conn.kubeconfig:
        _check_kubeconfig(k.conn.kubeconfig, k.conn.context)
    return k


# -- the options: name -> reader(controller, plugin, arguments) -----------------------------------


def _nargs(c: Controller, a: list[str], allowed: Callable[[int], bool]) -> None:
    if not allowed(len(a)):
        raise c.arg_err()


def _flag(attr: str, value: bool) -> Option:
    def read(c: Controller, k: Kubernetes, a: list[str]) -> None:
        _nargs(c, a, lambda n: n == 0)
        setattr(k, attr, value)
    return read


def _pods(c: Controller, k: Kubernetes, a: list[str]) -> None:
    _nargs(c, a, lambda n: n == 1)
    if a[0] not in ("disabled", "insecure", "verified"):
        raise ConfigError(f"wrong value for pods: {a[0]},  must be one of: disabled, verified, insecure")
    k.pods = a[0]


def _namespaces(c: Controller, k: Kubernetes, a: list[str]) -> None:
    _nargs(c, a, lambda n: n > 0)
    k.namespaces += a


def _endpoint(c: Controller, a: list[str]) -> list[str]:
    _nargs(c, a, lambda n: n > 0)
    if len(a) > 1:
        log.warning(f"Multiple endpoints have been deprecated, only the first specified endpoint '{a[0]}' is used")
    return a


def _tls(c: Controller, k: Kubernetes, a: list[str]) -> None:
    _nargs(c, a, lambda n: n == 3)
    k.conn.tls = (c.path(a[0]), c.path(a[1]), c.path(a[2]))


def _selector(attr: str) -> Option:
    def read(c: Controller, k: Kubernetes, a: list[str]) -> None:
        _nargs(c, a, lambda n: n > 0)
        sel = " ".join(a)
        _check_selector(sel, attr)
        setattr(k, attr, sel)
    return read


def _fallthrough(c: Controller, k: Kubernetes, a: list[str]) -> None:
    k.fall.set_zones(a)


def _ttl(c: Controller, k: Kubernetes, a: list[str]) -> None:
    _nargs(c, a, lambda n: n > 0)
    t = config_atoi(a[0])  # Go's Atoi and its %q-quoted errors
    if not 0 <= t <= 3600:
        raise c.err(f"ttl must be in range [0, 3600]: {t}")
    k.ttl = t


def _ignore(c: Controller, k: Kubernetes, a: list[str]) -> None:
    if a and a[0] != "empty_service":
        raise ConfigError(f"unable to parse ignore value: '{a[0]}'")
    if a:
        k.ignore_empty = True


def _kubeconfig(c: Controller, k: Kubernetes, a: list[str]) -> None:
    _nargs(c, a, lambda n: n in (1, 2))
    k.conn.kubeconfig = c.path(a[0])
    k.conn.context = a[1] if len(a) == 2 else ""


def _startup_timeout(c: Controller, k: Kubernetes, a: list[str]) -> None:
    _nargs(c, a, lambda n: n == 1)
    try:
        k.startup_timeout = parse_duration(a[0])
    except ValueError as e:
        raise c.err(str(e)) from None


def _number(opt: str, attr: str, kind: type) -> Option:
    """apiserver_qps (float), apiserver_burst and apiserver_max_inflight (int): >= 0."""
    def read(c: Controller, k: Kubernetes, a: list[str]) -> None:
        _nargs(c, a, lambda n: n == 1)
        try:
            v = kind(a[0])
        except ValueError:
            raise c.err(f"{opt} must be a number: {a[0]}") from None
        if v < 0:
            raise c.err(f"{opt} must be >= 0: {a[0]}")
        setattr(k.conn, attr, v)
    return read


Option = Callable[[Controller, Kubernetes, list[str]], None]
OPTIONS: dict[str, Option] = {
    "endpoint_pod_names": _flag("pod_names", True),
    "noendpoints": _flag("endpoints", False),
    "pods": _pods,
    "namespaces": _namespaces,
    "tls": _tls,
    "labels": _selector("labels"),
    "namespace_labels": _selector("namespace_labels"),
    "fallthrough": _fallthrough,
    "ttl": _ttl,
    "ignore": _ignore,
    "kubeconfig": _kubeconfig,
    "startup_timeout": _startup_timeout,
    "apiserver_qps": _number("apiserver_qps", "qps", float),
    "apiserver_burst": _number("apiserver_burst", "burst", int),
    "apiserver_max_inflight": _number("apiserver_max_inflight", "max_inflight", int),
}


def _check_kubeconfig(path: str, context: str) -> None:
    """Fail at setup, as CoreDNS's client config does, when the file or the context is unusable."""
    import yaml

    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"kubeconfig {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"kubeconfig {path}: not YAML: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"kubeconfig {path}: not a kubeconfig")
    wanted = context or doc.get("current-context") or ""
    names = {c.get("name") for c in doc.get("contexts") or () if isinstance(c, dict)}
    if wanted and wanted not in names:
        raise ConfigError(f"invalid configuration: context was not found for specified context: {wanted}")


def _check_selector(sel: str, opt: str) -> None:
    """A light syntax check of a label selector (the API server does the full one)."""
    import re

    term = re.compile(r"^\s*!?[A-Za-z0-9./_-]+\s*(?:(?:==?|!=)\s*[A-Za-z0-9._-]*|\s+(?:in|notin)\s*\([^)]*\))?\s*$")
    depth = 0
    parts, cur = [], ""
    for ch in sel:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    if any(not term.match(p) for p in parts):
        what = "label" if opt == "labels" else "namespace_label"
        raise ConfigError(f"unable to parse {what} selector value: '{sel}'")
