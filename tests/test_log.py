"""`PluginLogger.error` writes configure()'s line directly while that handler is the only place the
record would go; an added handler or filter gets every record as before."""

from __future__ import annotations

import io
import logging

from pycoredns import log


def test_direct_error_lines_match_the_formatter() -> None:
    buf = io.StringIO()
    before = log._installed
    log.configure(buf)
    try:
        lg = log.plugin_logger("errors")
        assert log._sole_handler(lg._log, logging.ERROR) is not None
        lg.error("2 example.org. PTR: plugin/kubernetes: no next plugin found")
        seen: list[str] = []

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                seen.append(record.getMessage())

        extra = Keep()
        root = logging.getLogger(log.ROOT)
        root.addHandler(extra)
        assert log._sole_handler(lg._log, logging.ERROR) is None
        lg.error("second")
        root.removeHandler(extra)
        lg._log.addFilter(lambda r: "hidden" not in r.getMessage())
        lg.error("hidden")
        lg._log.filters.clear()
        lg.error("third")
        assert buf.getvalue() == ("[ERROR] plugin/errors: 2 example.org. PTR: plugin/kubernetes: no next plugin "
                                  "found\n[ERROR] plugin/errors: second\n[ERROR] plugin/errors: third\n")
        assert seen == ["plugin/errors: second"]
    finally:  # conftest's handler back (a new one would write to this test's captured stdout)
        root = logging.getLogger(log.ROOT)
        root.removeHandler(log._installed)  # type: ignore[arg-type]
        if before is not None:
            root.addHandler(before)
        log._installed = before
