"""log's handler: one line per query in CoreDNS's Common or Combined format.

Rules are tried in configuration order and the first whose name scope contains the qname logs the
query, if the reply's class (success, denial, error) is one the rule wants. Lines go out as
`[INFO] <line>` without a `plugin/log:` prefix, like CoreDNS.
"""

from __future__ import annotations

import re
import time
from decimal import Decimal

from pycoredns import log as corelog
from pycoredns import response, wire
from pycoredns.plugin import (
    PluginError,
    Request,
    ResponseWriter,
    Wrapper,
    WrapperHandler,
    client_write,
)
from pycoredns.util import is_subdomain
from pycoredns.wire import Reply

COMMON = ('{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" '
          "{rcode} {>rflags} {rsize} {duration}")
COMBINED = COMMON + ' "{>opcode}"'
_PLACEHOLDER = re.compile(r"\{[^{}]+\}")


class Rule:
    def __init__(self, names: list[str], fmt: str, classes: set[response.Class]) -> None:
        self.names = names
        self.fmt = fmt
        self.classes = classes


class _LogWriter(Wrapper):
    """Keeps the reply for the log line, written when the query completes (either path)."""

    __slots__ = ("log", "reply", "req", "rule", "start")

    def __init__(self, inner: ResponseWriter, log: Log, rule: Rule, req: Request) -> None:
        self.written = False
        self.inner = inner
        self.log = log
        self.rule = rule
        self.req = req
        self.reply: Reply | None = None
        self.start = time.monotonic()

    def write(self, reply: Reply) -> None:
        self.reply = reply
        self.written = True
        self.inner.write(reply)

    def after(self, rcode: int, error: PluginError | None) -> int:
        self.log.log_line(self, error.rcode if error is not None else rcode)
        if error is not None:
            raise error
        return rcode


class Log(WrapperHandler):
    name = "log"

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules

    def _rule(self, req: Request) -> Rule | None:
        name = req.name
        for r in self.rules:
            for n in r.names:
                if is_subdomain(n, name):
                    return r
        return None

    def wrap(self, req: Request, w: ResponseWriter) -> tuple[Request, _LogWriter] | None:
        rule = self._rule(req)
        if rule is None:
            return None
        return req, _LogWriter(w, self, rule, req)

    def log_line(self, rec: _LogWriter, rc: int) -> None:
        req, rule = rec.req, rec.rule
        reply = rec.reply
        if reply is None and not client_write(rc):
            reply = req.empty_reply(rc)  # what the server is about to write
        data = wire.to_bytes(reply) if reply is not None else None
        if response.Class.ERROR not in rule.classes or len(rule.classes) < 3:
            cls = _class_of(req, data)
            if cls not in rule.classes:
                return
        duration = time.monotonic() - rec.start
        corelog.core.info(format_line(rule.fmt, req, data, duration))


def _class_of(req: Request, data: bytes | None) -> response.Class:
    """classify(typify(reply)), with a shortcut for the common positive answer to this very question.

    A QUERY reply with NOERROR, answers and the request's own (non-transfer) question is what
    typify calls NOERROR: success, without walking the message.
    """
    if data is None:
        return response.Class.ERROR
    if (len(data) > req.qend and not data[3] & 0x0F and not data[2] & 0x78 and (data[6] or data[7])
            and req.qtype not in (_AXFR, _IXFR) and data[12 : req.qend] == req.question):
        return response.Class.SUCCESS
    return response.classify(response.typify(data))


_AXFR, _IXFR = wire.TYPE_AXFR, wire.TYPE_IXFR


def _duration(d: float) -> str:
    """Go's Duration.Seconds() printed with 'f' and shortest precision: nanoseconds, no exponent."""
    ns = round(d * 1e9)
    return format(Decimal(ns).scaleb(-9).normalize(), "f") + "s"


def format_line(fmt: str, req: Request, data: bytes | None, duration: float) -> str:
    def value(m: re.Match) -> str:
        key = m.group(0)
        v = _value(key, req, data, duration)
        return key if v is None else v

    return _PLACEHOLDER.sub(value, fmt)


def _value(key: str, req: Request, data: bytes | None, duration: float) -> str | None:
    match key:
        case "{type}":
            return wire.type_name(req.qtype)
        case "{class}":
            return wire.class_name(req.qclass)
        case "{name}":
            return req.name
        case "{proto}":
            return req.proto
        case "{remote}":
            ip = req.remote[0]
            return f"[{ip}]" if ":" in ip else ip
        case "{local}":
            ip = req.local[0]
            return f"[{ip}]" if ":" in ip else ip
        case "{port}":
            return str(req.remote[1])
        case "{size}":
            return str(len(req.wire))
        case "{>id}":
            return str(req.id)
        case "{>opcode}":
            return str((req.flags >> 11) & 0xF)
        case "{>do}":
            return "true" if req.do else "false"
        case "{>bufsize}":
            return str(req.size())
        case "{rcode}":
            if data is None:
                return "-"
            rc = data[3] & 0xF
            return wire.RCODE_NAMES.get(rc, str(rc))
        case "{>rflags}":
            return "-" if data is None else wire.flags_text(wire.flags_of(data))
        case "{rsize}":
            return "0" if data is None else str(wire.uncompressed_length(data))
        case "{duration}":
            return _duration(duration)
        case "{/log/type}" | "{/log/class}":
            # log's own metadata (response type and class); "-" without the metadata plugin
            if req.meta is None:
                return "-"
            t = response.typify(data) if data is not None else response.Type.OTHERERROR
            return t.value if key == "{/log/type}" else response.classify(t).value
    if key.startswith("{/"):
        meta = req.meta or {}
        v = meta.get(key[2:-1])
        return "-" if v is None else str(v)
    return None
