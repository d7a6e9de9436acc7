"""Reading objects from YAML/JSON: multi-document files, ``kind: List`` / ``*List``, directories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def flatten(doc: Any) -> list[dict[str, Any]]:
    """Objects in one parsed document: a List (or ServiceList ...) yields its items."""
    if doc is None:
        return []
    if isinstance(doc, list):
        return [o for d in doc for o in flatten(d)]
    if not isinstance(doc, dict):
        raise ValueError(f"not a Kubernetes object: {doc!r:.80}")
    kind = str(doc.get("kind", ""))
    if "items" in doc and (kind == "List" or kind.endswith("List")):
        out = []
        item_kind = kind[:-4] if kind != "List" else None
        for it in doc.get("items") or []:
            if item_kind and "kind" not in it:
                it = {"kind": item_kind, "apiVersion": doc.get("apiVersion"), **it}
            out.extend(flatten(it))
        return out
    return [doc]


def parse_text(text: str) -> list[dict[str, Any]]:
    """Objects from YAML (any number of documents) or JSON text."""
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return flatten(json.loads(text))
        except json.JSONDecodeError:
            pass
    return [o for d in yaml.safe_load_all(text) for o in flatten(d)]


def load_objects(path: str | Path) -> list[dict[str, Any]]:
    """Objects from a file, or from every *.yaml / *.yml / *.json file in a directory (sorted)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml", ".json"))
        return [o for f in files for o in parse_text(f.read_text())]
    return parse_text(p.read_text())
