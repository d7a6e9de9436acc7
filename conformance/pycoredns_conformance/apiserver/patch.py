"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and the part of strategic merge
patch that kubectl apply/edit/label send (list merge keys from the Go types of our five kinds)."""

from __future__ import annotations

import copy
from typing import Any

from . import errors


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$"):  # strategic-merge directives ($patch, $retainKeys, ...) are not data
            continue
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _walk(doc: Any, pointer: str) -> tuple[Any, str]:
    if not pointer.startswith("/"):
        raise errors.bad_request(f"invalid JSON pointer {pointer!r}")
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]
    cur = doc
    for p in parts[:-1]:
        try:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        except (KeyError, IndexError, ValueError, TypeError):
            raise errors.APIError(422, "Invalid", f"the server rejected our request due to an error in our "
                                  f"request: path {pointer} not found")
    return cur, parts[-1]


def _get(doc: Any, pointer: str) -> Any:
    if pointer == "":
        return doc
    parent, last = _walk(doc, pointer)
    try:
        return parent[int(last)] if isinstance(parent, list) else parent[last]
    except (KeyError, IndexError, ValueError, TypeError):
        raise errors.APIError(422, "Invalid", f"path {pointer} not found")


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 add / remove / replace / move / copy / test."""
    doc = copy.deepcopy(doc)
    if not isinstance(ops, list):
        raise errors.bad_request("json patch must be a list of operations")
    for op in ops:
        kind, path = op.get("op"), op.get("path", "")
        if kind == "test":
            if _get(doc, path) != op.get("value"):
                raise errors.APIError(422, "Invalid", f"testing value {path} failed")
            continue
        if kind in ("move", "copy"):
            val = copy.deepcopy(_get(doc, op.get("from", "")))
            if kind == "move":
                json_patch_remove(doc, op["from"])
            kind, op = "add", {"path": path, "value": val}
        parent, last = _walk(doc, path)
        if kind == "add":
            if isinstance(parent, list):
                idx = len(parent) if last == "-" else int(last)
                parent.insert(idx, copy.deepcopy(op.get("value")))
            else:
                parent[last] = copy.deepcopy(op.get("value"))
        elif kind == "replace":
            _get(doc, path)
            if isinstance(parent, list):
                parent[int(last)] = copy.deepcopy(op.get("value"))
            else:
                parent[last] = copy.deepcopy(op.get("value"))
        elif kind == "remove":
            json_patch_remove(doc, path)
        else:
            raise errors.bad_request(f"unknown json patch op {kind!r}")
    return doc


def json_patch_remove(doc: Any, path: str) -> None:
    """Remove the value at ``path`` (422 when missing)."""
    _get(doc, path)
    parent, last = _walk(doc, path)
    if isinstance(parent, list):
        del parent[int(last)]
    else:
        del parent[last]


# Lists that strategic merge patch merges by a key (patchMergeKey in the Go types); other lists are
# replaced whole, like in a merge patch.
MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "ports": ("port", "containerPort"),  # ServicePort / ContainerPort
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "imagePullSecrets": ("name",),
    "podIPs": ("ip",),
    "hostAliases": ("ip",),
}


def _merge_list(field: str, target: list[Any], patch: list[Any]) -> list[Any]:
    keys = MERGE_KEYS.get(field)
    if not keys or not all(isinstance(x, dict) for x in [*target, *patch]):
        return copy.deepcopy(patch)
    out = [copy.deepcopy(x) for x in target]

    def key_of(item: dict[str, Any]) -> tuple[str, Any] | None:
        for k in keys:
            if k in item:
                return k, item[k]
        return None

    for item in patch:
        kv = key_of(item)
        idx = next((i for i, cur in enumerate(out) if kv is not None and cur.get(kv[0]) == kv[1]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                del out[idx]
        elif idx is None:
            out.append(strategic_merge_patch({}, item))
        else:
            out[idx] = strategic_merge_patch(out[idx], item)
    return out


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """The subset of strategic merge patch kubectl apply/edit/label send: maps merge, ``null``
    deletes, lists with a known merge key merge item by item (``$patch: delete`` removes one),
    ``$deleteFromPrimitiveList/<f>`` removes values, ``$patch: replace`` replaces a map;
    ``$setElementOrder``/``$retainKeys`` are accepted and ignored."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$deleteFromPrimitiveList/"):
            f = k.split("/", 1)[1]
            if isinstance(out.get(f), list):
                out[f] = [x for x in out[f] if x not in (v or [])]
        elif k.startswith("$"):
            continue
        elif v is None:
            out.pop(k, None)
        elif isinstance(v, list) and isinstance(out.get(k), list):
            out[k] = _merge_list(k, out[k], v)
        elif isinstance(v, dict):
            out[k] = strategic_merge_patch(out.get(k), v)
        else:
            out[k] = copy.deepcopy(v)
    return out
