"""tls: the certificate of a block's `tls://` listeners (DNS over TLS, RFC 7858; CoreDNS `tls`)."""

from .setup import setup

__all__ = ["setup"]
