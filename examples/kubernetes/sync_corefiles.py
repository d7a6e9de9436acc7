"""Copy examples/cluster-dns/Corefile and examples/node-local-dns/Corefile into the manifests' ConfigMaps.

The Corefiles are maintained (and tested) as files; the manifests embed them. Run after editing one:
    python examples/kubernetes/sync_corefiles.py
"""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = {"cluster-dns.yaml": "cluster-dns", "node-local-dns.yaml": "node-local-dns"}


def embed(manifest: str, corefile: str) -> str:
    """Replace the `Corefile: |` block of the first ConfigMap with `corefile`, indented 4 spaces."""
    body = "".join(f"    {line}\n" if line else "\n" for line in corefile.splitlines())
    pattern = re.compile(r"(kind: ConfigMap\n(?:.*\n)*?data:\n  Corefile: \|\n)((?:    .*\n|\n)*?)(?=---|\Z)")
    new, n = pattern.subn(lambda m: m.group(1) + body, manifest, count=1)
    if n != 1:
        raise SystemExit("no `Corefile: |` ConfigMap block found")
    return new


def main() -> None:
    for manifest, example in TARGETS.items():
        path = HERE / manifest
        corefile = (HERE.parent / example / "Corefile").read_text()
        path.write_text(embed(path.read_text(), corefile))
        print(f"updated {path.name} from examples/{example}/Corefile")


if __name__ == "__main__":
    main()
