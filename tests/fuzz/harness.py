"""What the fuzz targets share: atheris setup with a seed corpus, and a bounded-run entry point.

Each target is a script run with libFuzzer's flags, e.g.

    python tests/fuzz/packet.py -runs=100000            # seeds only, no corpus kept
    python tests/fuzz/packet.py -max_total_time=3600 CORPUS_DIR   # long run, corpus grows in CORPUS_DIR

The target's seeds are always read too (from a temporary directory); without a corpus directory on
the command line, new inputs go to a temporary one.
A crash (an uncaught exception, or a failed check inside the target) makes libFuzzer print the
traceback and the input and exit non-zero; `-artifact_prefix=DIR/` says where the input is saved.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterable


def seed_dir(seeds: Iterable[bytes]) -> str:
    path = tempfile.mkdtemp(prefix="pycoredns-fuzz-")
    for i, data in enumerate(seeds):
        with open(os.path.join(path, f"seed{i:05d}"), "wb") as f:
            f.write(data)
    return path


def instrument(prefix: str) -> None:
    """Coverage instrumentation for the functions of modules named `prefix*` (plugins included, as
    `pycoredns.plugins.*`). `atheris.instrument_all()` would also instrument dnspython, aiohttp and the
    kubernetes client: 14,500 functions, over a minute of CPU before the first input."""
    import gc
    import types

    import atheris

    funcs = [obj for obj in gc.get_objects()
             if isinstance(obj, types.FunctionType) and (obj.__module__ or "").startswith(prefix)]
    sys.stderr.write(f"INFO: Instrumenting {len(funcs)} {prefix} functions\n")
    for func in funcs:
        try:
            atheris.instrument_func(func)
        except Exception as e:  # a function atheris cannot patch stays uninstrumented
            sys.stderr.write(f"WARNING: not instrumented: {func.__qualname__}: {e}\n")


def changed_since(started: float, prefix: str = "pycoredns") -> list[str]:
    """Source files of the loaded `prefix*` modules modified after `started` (a time.time()).

    A long run keeps the code it imported: a fix saved meanwhile is not in it, so its findings must
    be replayed against the current tree. (The "unexplained" packet panic of 2026-12-06 was such a
    finding: its log was created at 03:37:58 and the fix to file's wildcard owner names,
    a36e39f, was saved at 03:40:27; alone, on the old code, the input panics the same way.)"""
    out = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name.startswith(prefix) and path and os.path.exists(path) and os.path.getmtime(path) > started:
            out.append(path)
    return sorted(out)


def stale_code_warning(target: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """`target`, which on a failure first says which of the run's modules changed on disk since it started."""
    import time

    started = time.time()

    def checked(data: bytes) -> None:
        try:
            target(data)
        except BaseException:
            changed = changed_since(started)
            if changed:
                sys.stderr.write("WARNING: this run's code is older than the tree: changed since it started: "
                                 + ", ".join(changed) + " (replay the input on the current code)\n")
            raise

    return checked


def main(target: Callable[[bytes], None], seeds: Callable[[], Iterable[bytes]]) -> None:
    """Run `target` under atheris (instrumenting the pycoredns modules loaded so far)."""
    import atheris

    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):
        argv.append(tempfile.mkdtemp(prefix="pycoredns-fuzz-corpus-"))  # new inputs, thrown away
    argv.append(seed_dir(seeds()))  # read after the corpus directory the caller named
    name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    regressions = os.path.join(os.path.dirname(os.path.abspath(__file__)), "regressions", name)
    if os.path.isdir(regressions):
        argv.append(regressions)  # inputs that once crashed the target: they must keep passing
    instrument("pycoredns")
    atheris.Setup(argv, stale_code_warning(target))
    atheris.Fuzz()
