"""template's Corefile parsing: `template CLASS TYPE [ZONE...] { ... }`, every option (a table of
parsers) and its errors; templates compile here."""

from __future__ import annotations

import re
from collections.abc import Callable

from dnslib import QTYPE

from pycoredns import wire
from pycoredns.corefile.errors import go_quote
from pycoredns.plugin import Controller

from .gotemplate import Template, TemplateSyntaxError
from .handler import Section, TemplateHandler, Tmpl

MAX_REGEX = 10000
CLASSES = {"IN": 1, "CS": 2, "CH": 3, "HS": 4, "NONE": 254, "ANY": 255}  # miekg StringToClass
_RCODES = {**wire.RCODE_VALUES, "NOTIMPL": wire.NOTIMP}


def setup(c: Controller) -> None:
    templates: list[Tmpl] = []
    zones: list[str] = []
    for _ in c.occurrences():
        if not c.next_arg():
            raise c.arg_err()
        qclass = CLASSES.get(c.val())
        if qclass is None:
            raise c.errf("invalid query class %s", c.val())
        if not c.next_arg():
            raise c.arg_err()
        qtype = QTYPE.reverse.get(c.val()) if c.val().isupper() else None
        if qtype is None:
            raise c.errf("invalid RR class %s", c.val())
        tz = c.zones_from(c.remaining_args())
        zones.extend(z for z in tz if z not in zones)
        t = Tmpl(qclass, qtype, tz)
        while c.next_block():
            parse = OPTIONS.get(c.val())
            if parse is None:
                raise c.arg_err()
            parse(c, t)
        if not t.regex:
            t.regex.append(re.compile(".*"))
        templates.append(t)
    c.add_handler(TemplateHandler(zones, templates, c.server_label()))


def _match(c: Controller, t: Tmpl) -> None:
    args = c.remaining_args()
    if not args:
        raise c.arg_err()
    for rx in args:
        if len(rx) > MAX_REGEX:
            raise c.errf("regex pattern too long: %d > %d", len(rx), MAX_REGEX)
        try:
            t.regex.append(re.compile(rx))
        except re.error as e:
            raise c.errf("could not parse regex: %s, %v", rx, f"error parsing regexp: {e}") from None


def _section(c: Controller, t: Tmpl) -> None:
    """answer|additional|authority TEMPLATE...: compiled now, so bad syntax fails the setup."""
    opt = c.val()
    args = c.remaining_args()
    if not args:
        raise c.arg_err()
    sec: Section = getattr(t, opt)
    for text in args:
        try:
            sec.templates.append(Template(opt, text))
        except TemplateSyntaxError as e:
            nl = "" if opt == "answer" else "\n"
            raise c.errf("could not compile template: %s, %v" + nl, c.val(), str(e)) from None


def _rcode(c: Controller, t: Tmpl) -> None:
    if not c.next_arg():
        raise c.arg_err()
    rc = _RCODES.get(c.val())
    if rc is None:
        raise c.errf("unknown rcode %s", c.val())
    t.rcode = rc


def _ederror(c: Controller, t: Tmpl) -> None:
    args = c.remaining_args()
    if len(args) not in (1, 2):
        raise c.arg_err()
    digits = args[0].isascii() and args[0].isdigit()
    if not digits or int(args[0]) > 0xFFFF:
        err = "value out of range" if digits else "invalid syntax"
        raise c.errf("error parsing extended DNS error code %s, %v\n", c.val(),
                     f"strconv.ParseUint: parsing {go_quote(args[0])}: {err}")
    t.ederror = (int(args[0]), args[1] if len(args) == 2 else "")


def _fallthrough(c: Controller, t: Tmpl) -> None:
    t.fall.set_zones(c.remaining_args())


def _upstream(c: Controller, t: Tmpl) -> None:
    c.remaining_args()  # deprecated: CNAME targets are always resolved through the server


OPTIONS: dict[str, Callable[[Controller, Tmpl], None]] = {
    "match": _match,
    "answer": _section,
    "additional": _section,
    "authority": _section,
    "rcode": _rcode,
    "ederror": _ederror,
    "fallthrough": _fallthrough,
    "upstream": _upstream,
}
"""Block options of one template stanza; anything else is an argument error."""
