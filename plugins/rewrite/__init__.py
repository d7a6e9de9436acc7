"""rewrite: change the question (name, type, class, EDNS0 options) on the way in and the reply on
the way out (CoreDNS `rewrite`, reference §3.15; README.md).

setup.py reads the Corefile, rules.py parses each rule line into a request rule (names.py: the name
matchers) and its response rules (response.py, with the reverter); handler.py runs them.
"""

from .handler import Rewrite
from .setup import setup

__all__ = ["Rewrite", "setup"]
