"""Label and field selectors with the apiserver's syntax and error texts.

Label selectors follow k8s.io/apimachinery/pkg/labels: ``k``, ``!k``, ``k=v``, ``k==v``, ``k!=v``,
``k in (a,b)``, ``k notin (a,b)``, ``k>1``, ``k<1``. Field selectors follow
k8s.io/apimachinery/pkg/fields: ``f=v``, ``f==v``, ``f!=v`` joined by commas, on a per-kind set of
fields; an unknown field is a 400 like the real server's ``field label not supported``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import APIError

_KEY_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Requirement:
    """One label requirement; ``values`` is empty for exists / not-exists."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        """Apply the requirement with apimachinery's semantics (``!=`` matches a missing key)."""
        has = self.key in labels
        val = labels.get(self.key)
        if self.op in ("=", "in"):
            return has and val in self.values
        if self.op in ("!=", "notin"):
            return not has or val not in self.values
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        if self.op in ("gt", "lt"):
            if not has:
                return False
            try:
                n = int(val or "")
            except ValueError:
                return False
            return n > int(self.values[0]) if self.op == "gt" else n < int(self.values[0])
        return False  # pragma: no cover


def _bad(msg: str) -> APIError:
    return APIError(400, "BadRequest", msg)


def _split_top(s: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _check_key(key: str, whole: str) -> None:
    if not key or len(key) > 316 or not _KEY_RE.match(key):
        raise _bad(f"unable to parse requirement: invalid label key {key!r} in {whole!r}")


_SET_RE = re.compile(r"^(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<vals>[^()]*)\)$")


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse a label selector; empty means "everything". Raises a 400 APIError on bad syntax."""
    if not text or not text.strip():
        return []
    reqs: list[Requirement] = []
    for raw in _split_top(text):
        part = raw.strip()
        if not part:
            raise _bad(f"unable to parse requirement: found '', expected: identifier in {text!r}")
        m = _SET_RE.match(part)
        if m:
            key = m.group("key")
            _check_key(key, text)
            vals = tuple(v.strip() for v in m.group("vals").split(",") if v.strip() != "")
            if m.group("op") == "in" and not vals:
                raise _bad(f"for 'in', 'notin' operators, values set can't be empty in {text!r}")
            reqs.append(Requirement(key, m.group("op"), vals))
            continue
        if part.startswith("!"):
            key = part[1:].strip()
            _check_key(key, text)
            reqs.append(Requirement(key, "!"))
            continue
        for op, name in (("==", "="), ("!=", "!="), ("=", "="), (">", "gt"), ("<", "lt")):
            if op in part:
                key, _, val = part.partition(op)
                key, val = key.strip(), val.strip()
                _check_key(key, text)
                if name in ("gt", "lt"):
                    try:
                        int(val)
                    except ValueError:
                        raise _bad(f"for 'Gt', 'Lt' operators, the value must be an integer in {text!r}")
                reqs.append(Requirement(key, name, (val,)))
                break
        else:
            _check_key(part, text)
            reqs.append(Requirement(part, "exists"))
    return reqs


def labels_match(reqs: list[Requirement], obj: dict[str, Any]) -> bool:
    """True when every requirement holds for the object's labels."""
    if not reqs:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(r.matches(labels) for r in reqs)


def _get(obj: dict[str, Any], path: str) -> Any:
    cur: Any = obj
    for p in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur


def _as_field(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


# Fields each kind's registry exposes to field selectors (pkg/registry/*/strategy.go).
FIELDS: dict[str, dict[str, Callable[[dict[str, Any]], str]]] = {
    "Namespace": {"status.phase": lambda o: _as_field(_get(o, "status.phase"))},
    "Service": {
        "spec.clusterIP": lambda o: _as_field(_get(o, "spec.clusterIP")),
        "spec.type": lambda o: _as_field(_get(o, "spec.type")),
    },
    "Pod": {
        "spec.nodeName": lambda o: _as_field(_get(o, "spec.nodeName")),
        "spec.restartPolicy": lambda o: _as_field(_get(o, "spec.restartPolicy")),
        "spec.schedulerName": lambda o: _as_field(_get(o, "spec.schedulerName")),
        "spec.serviceAccountName": lambda o: _as_field(_get(o, "spec.serviceAccountName")),
        "spec.hostNetwork": lambda o: _as_field(bool(_get(o, "spec.hostNetwork"))),
        "status.phase": lambda o: _as_field(_get(o, "status.phase")),
        "status.podIP": lambda o: _as_field(_get(o, "status.podIP")),
        "status.nominatedNodeName": lambda o: _as_field(_get(o, "status.nominatedNodeName")),
    },
    "EndpointSlice": {"addressType": lambda o: _as_field(o.get("addressType"))},
    "Endpoints": {},
}

FieldReq = tuple[Callable[[dict[str, Any]], str], bool, str]  # (getter, equal?, value)


def parse_field_selector(text: str | None, kind: str, namespaced: bool) -> list[FieldReq]:
    """Parse a field selector for ``kind``; unsupported fields are a 400 like the real server."""
    if not text or not text.strip():
        return []
    fields: dict[str, Callable[[dict[str, Any]], str]] = {
        "metadata.name": lambda o: _as_field(_get(o, "metadata.name")),
    }
    if namespaced:
        fields["metadata.namespace"] = lambda o: _as_field(_get(o, "metadata.namespace"))
    fields.update(FIELDS.get(kind, {}))
    out: list[FieldReq] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        for op, is_eq in (("!=", False), ("==", True), ("=", True)):
            if op in part:
                key, _, val = part.partition(op)
                key, eq = key.strip(), is_eq
                break
        else:
            raise _bad(f"invalid selector: '{text}'; can't understand '{part}'")
        getter = fields.get(key)
        if getter is None:
            raise _bad(f'field label not supported: {key}')
        out.append((getter, eq, val.strip()))
    return out


def fields_match(reqs: list[FieldReq], obj: dict[str, Any]) -> bool:
    """True when every field requirement holds."""
    return all((getter(obj) == val) == eq for getter, eq, val in reqs)
