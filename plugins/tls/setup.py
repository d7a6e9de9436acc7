"""`tls CERT KEY [CA] { client_auth ...; keylog FILE }`: an ssl.SSLContext for the block's listeners.

No handler: the context goes into the block's `extra["tls"]`, which `tls://` listeners read
(`pycoredns.server.Listener.add_zone`). Relative paths are joined with `root`.
"""

from __future__ import annotations

import os
import ssl

from pycoredns.log import plugin_logger
from pycoredns.plugin import ConfigError, Controller

log = plugin_logger("tls")

# Go's tls.ClientAuthType names -> what Python's ssl can do (it always verifies a certificate it takes)
CLIENT_AUTH = {
    "nocert": ssl.CERT_NONE,
    "request": ssl.CERT_OPTIONAL,
    "require": ssl.CERT_REQUIRED,
    "verify_if_given": ssl.CERT_OPTIONAL,
    "require_and_verify": ssl.CERT_REQUIRED,
}


def server_context(cert: str, key: str, ca: str, verify: ssl.VerifyMode, keylog: str = "") -> ssl.SSLContext:
    """A TLS 1.2+ server context; the CA (or the system roots) verifies client certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    for path in (cert, key):
        if not os.path.exists(path):  # Go's os.Open error text
            raise ConfigError(f"could not load TLS cert: open {path}: no such file or directory")
    try:
        ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(f"could not load TLS cert: {e}") from None
    ctx.verify_mode = verify
    if verify != ssl.CERT_NONE:
        try:
            if ca:
                ctx.load_verify_locations(ca)
            else:
                ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        except (ssl.SSLError, OSError) as e:
            raise ConfigError(f"error reading CA file {ca}: {e}") from None
    if keylog:
        ctx.keylog_filename = keylog
    return ctx


def setup(c: Controller) -> None:
    for _ in c.occurrences():
        args = c.remaining_args()
        if not args:
            raise ConfigError("ACME (tls without CERT and KEY) is not supported by pycoredns")
        if not 2 <= len(args) <= 3:
            raise ConfigError(f"plugin/tls: {c.arg_err()}")
        verify = ssl.CERT_NONE
        keylog = ""
        while c.next_block():
            option = c.val()
            if option == "client_auth":
                auth = c.remaining_args()
                if len(auth) != 1:
                    raise c.arg_err()
                if auth[0] not in CLIENT_AUTH:
                    raise c.errf("unknown authentication type '%s'", auth[0])
                verify = CLIENT_AUTH[auth[0]]
            elif option == "keylog":
                kl = c.remaining_args()
                if len(kl) != 1:
                    raise c.arg_err()
                keylog = os.path.abspath(c.path(kl[0]))
                log.warning(f'Writing TLS Key Log to "{keylog}"')
            else:
                raise c.errf("unknown option '%s'", option)
        paths = [c.path(a) for a in args]
        c.block.extra["tls"] = server_context(paths[0], paths[1], paths[2] if len(paths) > 2 else "", verify, keylog)
