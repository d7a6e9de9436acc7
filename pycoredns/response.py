"""Response classification shared by log, cache and metrics (CoreDNS `plugin/pkg/response`)."""

from __future__ import annotations

import enum

from . import wire
from .wire import TYPE_AXFR, TYPE_IXFR, TYPE_NS, TYPE_SOA, Reply


class Type(enum.Enum):
    NOERROR = "NOERROR"  # positive answer (or NOERROR without SOA)
    NAMEERROR = "NXDOMAIN"  # NXDOMAIN with SOA
    NODATA = "NODATA"  # NOERROR, no answer, SOA in authority
    DELEGATION = "DELEGATION"
    META = "META"  # NOTIFY, AXFR/IXFR
    UPDATE = "UPDATE"
    SERVERERROR = "SERVERERROR"  # SERVFAIL, NOTIMP
    OTHERERROR = "OTHERERROR"


class Class(enum.Enum):
    SUCCESS = "success"
    DENIAL = "denial"
    ERROR = "error"


def typify(reply: Reply) -> Type:
    """CoreDNS's response.Typify on wire bytes (expired-signature check not implemented)."""
    data = wire.to_bytes(reply)
    _id, flags, qd, an, ns, _ar = wire.header(data)
    opcode = (flags & wire.OPCODE_MASK) >> wire.OPCODE_SHIFT
    rcode = flags & 0xF
    if opcode == wire.OPCODE_UPDATE:
        return Type.UPDATE
    if opcode == wire.OPCODE_NOTIFY:
        return Type.META
    off = 12
    for i in range(qd):
        off = wire.skip_name(data, off)
        if i == 0 and int.from_bytes(data[off : off + 2], "big") in (TYPE_AXFR, TYPE_IXFR):
            return Type.META
        off += 4
    if an and rcode == 0:
        return Type.NOERROR
    for _ in range(an):
        _t, _ttl, off = wire.skip_rr(data, off)
    soa = False
    nscount = 0
    for _ in range(ns):
        rtype, _ttl, off = wire.skip_rr(data, off)
        if rtype == TYPE_SOA:
            soa = True
        elif rtype == TYPE_NS:
            nscount += 1
    if soa and rcode == 0:
        return Type.NODATA
    if soa and rcode == 3:
        return Type.NAMEERROR
    if rcode in (2, 4):
        return Type.SERVERERROR
    if nscount and rcode == 0:
        return Type.DELEGATION
    if rcode == 0:
        return Type.NOERROR
    return Type.OTHERERROR


def classify(t: Type) -> Class:
    if t in (Type.NOERROR, Type.DELEGATION):
        return Class.SUCCESS
    if t in (Type.NAMEERROR, Type.NODATA):
        return Class.DENIAL
    return Class.ERROR
