"""Fuzz target: the Corefile lexer and parser, then every plugin's setup on what parses.

    python tests/fuzz/corefile.py -runs=N [CORPUS_DIR]      (libFuzzer flags; see harness.py)

Each input is Corefile text (UTF-8, undecodable bytes replaced). `parse` must return server blocks
or raise CorefileError; a configuration that parses is then set up as a server would
(`Process.load`: keys, every directive's setup, chains, listeners, no sockets), which must succeed or
raise StartupError with a configuration message — not a wrapped Python error such as
"plugin/x: TypeError: ...", which is how an unexpected exception inside a setup surfaces.
Imports and globs resolve in a private temporary directory holding two small files.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pycoredns import directives  # noqa: E402
from pycoredns.corefile import CorefileError  # noqa: E402
from pycoredns.exceptions import StartupError  # noqa: E402
from pycoredns.process import Process  # noqa: E402
from tests.fuzz.harness import main  # noqa: E402

IMPORTED = {"a.conf": "whoami\n", "b.conf": "(snip) {\n  log\n}\n"}
# How an unexpected exception in a plugin's setup (or in the parser, via Process.load) reads.
PY_ERROR = re.compile(r"(^|: )(setup failed: )?(TypeError|AttributeError|KeyError|IndexError|ValueError|"
                      r"AssertionError|RecursionError|UnboundLocalError|NameError|ZeroDivisionError|"
                      r"OverflowError|UnicodeError|LookupError|RuntimeError|NotImplementedError): ")
NAMES = directives.directives()
ENV = {"FUZZ": "example.org", "EMPTY": ""}


def read_file(path: str) -> str:
    return IMPORTED.get(os.path.basename(path), "")


def target(data: bytes) -> None:
    """One parse and setup, through `Process.load` (parsing first on its own would parse twice)."""
    text = data.decode("utf-8", "replace")
    process = Process(lambda: (text, "Corefile"), dns_port=0, quiet=True)
    try:
        process.load(read_file=read_file)
    except StartupError as e:
        if isinstance(e.__context__, CorefileError):
            return  # the parser's own error (load raises it as StartupError(str(e)) from None)
        assert not PY_ERROR.search(str(e)), f"an unexpected exception during setup: {e}"


def seeds() -> list[bytes]:
    out = [p.read_bytes() for p in sorted(ROOT.glob("**/Corefile*")) if ".git" not in p.parts and p.is_file()]
    out += [
        b"(common) {\n  errors\n  cache 30\n}\n.:53 {\n  import common\n  import a.conf\n  forward . 127.0.0.1\n}\n",
        b"{$FUZZ}:1053 {\n  whoami\n}\nexample.net {\n  import *.conf\n  hosts {\n    1.2.3.4 a.example.net\n  }\n}\n",
        b"dns://.:53 [::1]:54 {\n  bind 127.0.0.1 lo\n  health :8080 {\n    lameduck 1s\n  }\n  ready\n}\n",
        b". {\n  template IN A example {\n    match ^(?P<x>.*)$\n    answer \"{{ .Name }} 60 IN A 1.2.3.4\"\n  }\n}\n",
        b". {\n  rewrite stop {\n    name regex (.*)\\.a {1}.b\n    answer name (.*)\\.b {1}.a\n  }\n"
        b"  acl {\n    block type A net *\n  }\n}\n",
        b"cluster.local {\n  kubernetes cluster.local {\n    pods verified\n    ttl 30\n  }\n"
        b"  autopath @kubernetes\n}\n",
    ]
    return out


if __name__ == "__main__":
    logging.getLogger("pycoredns").setLevel(logging.CRITICAL)  # warnings per input would flood the run
    # A `tls` option's context loads the system CA bundle: a sixth of all the CPU per input (py-spy),
    # input-independent file reading that no connection uses here. The rest of the setup runs as is.
    ssl.SSLContext.load_default_certs = lambda self, purpose=ssl.Purpose.SERVER_AUTH: None  # type: ignore[method-assign]
    os.environ.update(ENV)  # {$FUZZ} and {$EMPTY}: Process.load reads the environment
    os.chdir(tempfile.mkdtemp(prefix="pycoredns-fuzz-corefile-"))
    for name, content in IMPORTED.items():
        Path(name).write_text(content)
    for name in NAMES:
        directives.setup_function(name)  # import every plugin now, so that it is instrumented
    main(target, seeds)
