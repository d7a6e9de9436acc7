"""template: answers built from Go-template RR strings for names that match regexes (CoreDNS
`template`, reference §3.16; README.md).

CoreDNS runs Go's text/template; here a small evaluator covers what real Corefiles use
(gotemplate.py; README.md lists the subset). setup.py parses the Corefile and compiles the
templates, so unsupported syntax is a setup error, never a failure at query time; handler.py
renders them per query and rr.py parses the rendered RR text.
"""

from .gotemplate import Struct, Template, TemplateExecError, TemplateSyntaxError
from .handler import TemplateHandler
from .rr import parse_rr
from .setup import setup

__all__ = ["Struct", "Template", "TemplateExecError", "TemplateHandler", "TemplateSyntaxError", "parse_rr", "setup"]
