"""Case files: `conformance/cases/<area>.yaml`, one mapping per case (format in conformance/README.md).

A file has defaults (`area`, `level`, `corefile`, `server`, `ready`) and a `cases` list. Cases that share
a Corefile (same text, env and extra files) form a group that one started server answers, in file order.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .compare import CaseError, Expectation

HERE = Path(__file__).resolve().parent
CASES_DIR = HERE / "cases"
COREFILES_DIR = HERE / "corefiles"
LEVELS = ("spec", "coredns", "optional")
DEFAULT_REQUIRED = ("spec", "coredns")
STEP_KINDS = ("sleep", "stop_upstream", "start_upstream", "query", "api_apply", "api_delete")
QUERY_KEYS = {"name", "type", "class", "proto", "edns", "do", "cd", "rd", "bufsize", "timeout"}


@dataclass
class Query:
    name: str
    type: str = "A"
    rclass: str = "IN"
    proto: str = "udp"
    edns: bool = False
    bufsize: int = 1232
    do: bool = False
    cd: bool = False
    rd: bool = True
    timeout: float = 3.0

    @classmethod
    def parse(cls, spec: Any) -> Query:
        """A mapping, or the short form `"NAME TYPE [tcp] [edns]"`."""
        if isinstance(spec, str):
            words = spec.split()
            spec = {"name": words[0], "type": words[1] if len(words) > 1 else "A"}
            for w in words[2:]:
                if w in ("tcp", "udp"):
                    spec["proto"] = w
                elif w == "edns":
                    spec["edns"] = True
                else:
                    raise CaseError(f"unknown word {w!r} in query {spec!r}")
        if not isinstance(spec, dict) or "name" not in spec:
            raise CaseError(f"query needs a name: {spec!r}")
        unknown = set(spec) - QUERY_KEYS
        if unknown:
            raise CaseError(f"unknown query keys: {', '.join(sorted(unknown))}")
        edns = spec.get("edns", False)
        q = cls(name=str(spec["name"]), type=str(spec.get("type", "A")).upper(),
                rclass=str(spec.get("class", "IN")).upper(), proto=str(spec.get("proto", "udp")).lower(),
                do=bool(spec.get("do", False)), cd=bool(spec.get("cd", False)), rd=bool(spec.get("rd", True)),
                timeout=float(spec.get("timeout", 3.0)))
        if isinstance(edns, dict):
            q.edns, q.bufsize = True, int(edns.get("size", 1232))
        elif isinstance(edns, int) and not isinstance(edns, bool):
            q.edns, q.bufsize = True, edns
        else:
            q.edns = bool(edns) or q.do
        if "bufsize" in spec:
            q.edns, q.bufsize = True, int(spec["bufsize"])
        if q.proto not in ("udp", "tcp"):
            raise CaseError(f"proto must be udp or tcp, not {q.proto!r}")
        return q

    def text(self) -> str:
        extra = [self.proto] + ([f"edns{self.bufsize}" + ("+do" if self.do else "")] if self.edns else [])
        return f"{self.name} {self.rclass if self.rclass != 'IN' else ''} {self.type} {' '.join(extra)}".replace(
            "  ", " ")


@dataclass
class HttpCheck:
    """GET http://127.0.0.1:@PORT_NAME@PATH (health, ready, metrics endpoints of the started server)."""

    port: str
    path: str = "/"
    status: int = 200
    body: str | None = None  # the whole body, stripped
    contains: list[str] = field(default_factory=list)  # texts the body must contain
    metrics: list[str] = field(default_factory=list)  # `name{label="v",...} [value]`: label order free

    @classmethod
    def parse(cls, spec: Any) -> HttpCheck:
        if not isinstance(spec, dict) or "port" not in spec:
            raise CaseError(f"http needs a port placeholder name (e.g. METRICS_PORT): {spec!r}")
        unknown = set(spec) - {"port", "path", "status", "body", "contains", "metrics"}
        if unknown:
            raise CaseError(f"unknown http keys: {', '.join(sorted(unknown))}")
        def strings(key: str) -> list[str]:
            v = spec.get(key) or []
            return [v] if isinstance(v, str) else [str(x) for x in v]

        return cls(port=str(spec["port"]).strip("@"), path=str(spec.get("path", "/")),
                   status=int(spec.get("status", 200)),
                   body=None if spec.get("body") is None else str(spec["body"]),
                   contains=strings("contains"), metrics=strings("metrics"))

    def text(self) -> str:
        return f"GET :{self.port}{self.path}"

    def summary(self) -> str:
        parts = [f"HTTP {self.status}"]
        if self.body is not None:
            parts.append(f"body {self.body!r}")
        parts += [f"~{c!r}" for c in self.contains]
        parts += [m.split("{")[0] for m in self.metrics]
        return " ".join(parts)


@dataclass
class Step:
    kind: str
    arg: Any = None


@dataclass
class Case:
    area: str
    name: str
    level: str
    description: str = ""
    query: Query | None = None
    expect: Expectation | None = None
    steps: list[Step] = field(default_factory=list)
    corefile: str = ""  # Corefile text (template with @PLACEHOLDERS@)
    corefile_name: str = ""
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    server: bool = False  # also runs against --server targets
    upstream: bool = False  # needs the suite's own upstream: skipped with --server
    http: HttpCheck | None = None  # an HTTP check instead of a DNS query (--binary only)
    exit: int | None = None  # the binary must exit with this status (corefile area)
    stderr: str = ""  # ... printing this (after placeholder substitution) on stderr
    log: str = ""  # a running server's stdout or stderr must contain this (checked after the query)
    ready: Query | None = None
    ready_rcode: str = "NOERROR"
    retry: float = 0.0  # re-query for up to this many seconds until the reply passes (convergence)
    error: str = ""  # a case that could not be read

    @property
    def id(self) -> str:
        return f"{self.area}/{self.name}"

    @property
    def mutates_cluster(self) -> bool:
        return any(s.kind.startswith("api_") for s in self.steps)

    def group_key(self) -> str:
        """Cases with the same key share one started server."""
        blob = json.dumps([self.corefile, self.env, self.files, self.exit is not None and self.name],
                          sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _steps(spec: Any) -> list[Step]:
    out = []
    for item in spec or []:
        if isinstance(item, str):
            kind, arg = item, None
        elif isinstance(item, dict) and len(item) == 1:
            kind, arg = next(iter(item.items()))
        else:
            raise CaseError(f"a step is a word or a one-key mapping: {item!r}")
        if kind not in STEP_KINDS:
            raise CaseError(f"unknown step {kind!r} (one of {', '.join(STEP_KINDS)})")
        if kind == "query":
            arg = Query.parse(arg)
        elif kind == "sleep":
            arg = float(arg)
            if not 0 <= arg <= 30:
                raise CaseError("sleep must be between 0 and 30 seconds")
        elif kind == "api_apply":
            if not isinstance(arg, dict) or "kind" not in arg or "name" not in arg.get("metadata", {}):
                raise CaseError("api_apply takes a Kubernetes object with kind and metadata.name")
        elif kind == "api_delete":
            if not isinstance(arg, dict) or not {"kind", "name"} <= set(arg):
                raise CaseError("api_delete takes {kind, namespace, name}")
        else:
            arg = int(arg or 1)
        out.append(Step(kind, arg))
    return out


def corefile_text(ref: str) -> tuple[str, str]:
    """A Corefile by name (conformance/corefiles/Corefile.<name>) or inline text -> (name, text)."""
    if "\n" in ref:
        return "inline", ref
    path = COREFILES_DIR / f"Corefile.{ref}"
    if not path.is_file():
        raise CaseError(f"no Corefile named {ref!r} ({path})")
    return ref, path.read_text()


def load_file(path: Path) -> list[Case]:
    """Every case of one area file; unreadable cases come back with `error` set."""
    data = yaml.safe_load(path.read_text()) or {}
    area = str(data.get("area", path.stem))
    defaults = {k: data.get(k) for k in ("level", "corefile", "server", "ready", "env", "files", "upstream")}
    out: list[Case] = []
    seen: set[str] = set()
    for i, spec in enumerate(data.get("cases") or []):
        name = str(spec.get("name", f"case-{i}")) if isinstance(spec, dict) else f"case-{i}"
        case = Case(area=area, name=name, level=str(defaults["level"] or "coredns"))
        try:
            if name in seen:
                raise CaseError(f"duplicate case name {name!r}")
            seen.add(name)
            _fill(case, spec, defaults)
        except (CaseError, ValueError, TypeError, KeyError) as exc:
            case.error = str(exc)
        out.append(case)
    return out


def _fill(case: Case, spec: dict[str, Any], defaults: dict[str, Any]) -> None:
    known = {"name", "level", "description", "query", "expect", "steps", "corefile", "env", "files", "server",
             "upstream", "exit", "stderr", "ready", "http", "retry", "log"}
    unknown = set(spec) - known
    if unknown:
        raise CaseError(f"unknown case keys: {', '.join(sorted(unknown))}")
    case.level = str(spec.get("level", case.level))
    if case.level not in LEVELS:
        raise CaseError(f"unknown level {case.level!r} (one of {', '.join(LEVELS)})")
    case.description = str(spec.get("description", ""))
    ref = spec.get("corefile", defaults["corefile"])
    if ref:
        case.corefile_name, case.corefile = corefile_text(str(ref))
    case.env = {str(k): str(v) for k, v in (spec.get("env", defaults["env"]) or {}).items()}
    case.files = {str(k): str(v) for k, v in (spec.get("files", defaults["files"]) or {}).items()}
    case.server = bool(spec.get("server", defaults["server"] or False))
    case.upstream = bool(spec.get("upstream", defaults["upstream"] or False))
    case.steps = _steps(spec.get("steps"))
    case.retry = float(spec.get("retry", 0))
    if not 0 <= case.retry <= 60:
        raise CaseError("retry must be between 0 and 60 seconds")
    if "query" in spec:
        case.query = Query.parse(spec["query"])
        case.expect = Expectation.parse(spec.get("expect") or {})
    elif "expect" in spec:
        raise CaseError("expect without query")
    case.log = str(spec.get("log", ""))
    if "exit" in spec:
        case.exit = int(spec["exit"])
        case.stderr = str(spec.get("stderr", ""))
    if "http" in spec:
        if case.query is not None:
            raise CaseError("a case has either a query or an http check")
        case.http = HttpCheck.parse(spec["http"])
    if case.query is None and case.exit is None and case.http is None:
        raise CaseError("a case needs a query, an http check or an exit status")
    ready = spec.get("ready", defaults["ready"])
    if ready:
        case.ready = Query.parse(ready["query"] if isinstance(ready, dict) and "query" in ready else ready)
        if isinstance(ready, dict):
            case.ready_rcode = str(ready.get("rcode", "NOERROR")).upper()


def load(areas: list[str] | None = None, directory: Path = CASES_DIR) -> list[Case]:
    """All cases of the chosen areas (all files when None), in file order."""
    out: list[Case] = []
    for path in sorted(directory.glob("*.yaml")):
        cases = load_file(path)
        if areas and (not cases or cases[0].area not in areas):
            continue
        out.extend(cases)
    return out
