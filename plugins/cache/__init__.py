"""cache: a positive and a denial cache in front of the rest of the chain (CoreDNS `cache`; README.md).

setup.py parses the Corefile, handler.py serves hits from stored wire bytes and stores misses
(store.py: the bounded store and the one walk over a reply), metrics.py holds the metrics.
"""

from .handler import Cache, CacheWriter, RefreshWriter, key_of
from .setup import parse, setup

__all__ = ["Cache", "CacheWriter", "RefreshWriter", "key_of", "parse", "setup"]
