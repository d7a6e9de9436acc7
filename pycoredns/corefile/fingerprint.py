"""What ``reload`` compares: a hash of the parsed Corefile, imports and snippets expanded."""

from __future__ import annotations

import hashlib
import json

from .parser import ServerBlock


def fingerprint(blocks: list[ServerBlock]) -> str:
    """SHA-512 hex over canonical JSON of keys and every directive token's (file, line, text).

    Mirrors CoreDNS's reload, which hashes ``json.Marshal`` of the parsed blocks: comments and
    whitespace that do not move tokens to other lines leave it unchanged, while any edit in an
    imported file changes it. Directive names are sorted, as Go's JSON encoder sorts map keys.
    """
    doc = [
        {
            "Keys": [k.text for k in b.keys],
            "Tokens": {
                name: [{"File": t.file, "Line": t.line, "Text": t.text} for t in toks]
                for name, toks in sorted(b.tokens.items())
            },
        }
        for b in blocks
    ]
    data = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
    return hashlib.sha512(data.encode("utf-8", errors="surrogatepass")).hexdigest()
