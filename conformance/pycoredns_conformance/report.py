"""Output formats: a readable table, JUnit XML (one testsuite per area), JSON."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from typing import TextIO

from .runner import ERROR, FAIL, SKIP, XFAIL, XPASS, Run


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def table(run: Run, out: TextIO, verbose: bool = False, footer: bool = True) -> None:
    """One line per case (failures with their detail below), then the summary line."""
    width = max(100, shutil.get_terminal_size((160, 20)).columns)
    col = max(20, (width - 60) // 2)
    out.write(f"{'result':<6} {'level':<8} {'case':<40} {'expected':<{col}} {'got':<{col}}\n")
    for r in run.results:
        mark = r.status.upper() if r.status != "pass" else "ok"
        req = "" if r.required(run.required) else "~"
        out.write(f"{mark:<6} {req + r.case.level:<8} {_clip(r.case.id, 40):<40} {_clip(r.expected, col):<{col}} "
                  f"{_clip(r.got, col):<{col}}\n")
        if r.detail and (r.status in (FAIL, ERROR, XPASS) or verbose):
            out.write(f"{'':<6} {'':<8} -> {r.detail}\n")
    if footer:
        out.write(summary(run) + "\n")


def summary(run: Run) -> str:
    """`conformance: N passed, N failed, N skipped` style line plus required-level verdict."""
    c = run.counts()
    failed = c.get(FAIL, 0) + c.get(ERROR, 0)
    bad = len(run.failed_required())
    parts = [f"{c.get('pass', 0)} passed", f"{failed} failed"]
    if c.get(SKIP):
        parts.append(f"{c[SKIP]} skipped")
    if c.get(XFAIL) or c.get(XPASS):
        parts.append(f"{c.get(XFAIL, 0)} xfailed, {c.get(XPASS, 0)} xpassed")
    verdict = "OK" if not bad else f"{bad} REQUIRED FAILED"
    return (f"conformance: {', '.join(parts)} in {run.seconds:.1f}s; required levels "
            f"{','.join(run.required)}: {verdict}")


def to_json(run: Run) -> str:
    return json.dumps({"summary": {**run.counts(), "required_levels": list(run.required),
                                   "required_failed": [r.case.id for r in run.failed_required()],
                                   "seconds": round(run.seconds, 3)},
                       "results": [r.as_dict() for r in run.results]}, indent=2)


def to_junit(run: Run) -> str:
    """JUnit XML: testsuite per area, testcase classname `conformance.<area>.<level>`; failures of
    non-required levels are `skipped` entries whose message says so (the exit status ignores them too)."""
    root = ET.Element("testsuites", name="conformance", tests=str(len(run.results)),
                      time=f"{run.seconds:.3f}")
    areas: dict[str, ET.Element] = {}
    stats: dict[str, dict[str, int]] = {}
    for r in run.results:
        area = r.case.area
        if area not in areas:
            areas[area] = ET.SubElement(root, "testsuite", name=area)
            stats[area] = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        st = stats[area]
        st["tests"] += 1
        tc = ET.SubElement(areas[area], "testcase", name=r.case.name, classname=f"conformance.{area}.{r.case.level}",
                           time=f"{r.seconds:.3f}")
        msg = f"expected {r.expected}; got {r.got}" + (f"; {r.detail}" if r.detail else "")
        if r.status in (FAIL, ERROR) and not r.required(run.required):
            # Reported, but a non-required level must not turn a CI's JUnit view red.
            st["skipped"] += 1
            ET.SubElement(tc, "skipped", message=f"{r.case.level} level (not required) failed: {msg}"[:2000])
        elif r.status == FAIL:
            st["failures"] += 1
            ET.SubElement(tc, "failure", message=msg[:2000]).text = msg
        elif r.status == ERROR:
            st["errors"] += 1
            ET.SubElement(tc, "error", message=msg[:2000]).text = msg
        elif r.status in (SKIP, XFAIL):
            st["skipped"] += 1
            ET.SubElement(tc, "skipped", message=(r.detail or r.status)[:2000])
        ET.SubElement(tc, "system-out").text = msg
    for area, el in areas.items():
        for k, v in stats[area].items():
            el.set(k, str(v))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
