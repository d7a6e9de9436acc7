"""autopath: follow the client's search path on the server (CoreDNS `autopath`, reference §3.17; README.md).

`autopath [ZONE...] RESOLV-CONF|@PLUGIN`: setup.py parses it (and reads the resolv.conf), handler.py
walks the search path, metrics.py holds coredns_autopath_success_total.
"""

from .handler import AutoPath
from .setup import parse_resolv_conf, setup

__all__ = ["AutoPath", "parse_resolv_conf", "setup"]
