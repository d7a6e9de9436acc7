"""Last known good configuration (opt-in, beyond CoreDNS): start on the last Corefile that loaded.

CoreDNS exits when the Corefile is broken at startup; in Kubernetes that turns one bad ConfigMap
edit plus a node reboot (or a rollout) into a cluster without DNS. With `-lastgood PATH` every
configuration that loaded successfully is stored in PATH (the main text plus every imported file's
content, one JSON document written atomically). When the configuration on disk fails at startup
the process starts on the stored one instead, says so loudly (log, metrics, `/ready` detail), and
the reload poller keeps watching the disk: the first configuration there that loads replaces it.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from collections.abc import Callable

from . import log, metrics

FORMAT = "pycoredns-lastgood/1"


class Recorder:
    """A `parse(read_file=...)` reader that remembers every imported file's content."""

    def __init__(self, inner: Callable[[str], str] | None = None) -> None:
        self.inner = inner
        self.files: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        if self.inner is not None:
            text = self.inner(path)
        else:
            with open(path, "rb") as f:  # same decoding as the parser's own reader
                text = f.read().decode("utf-8", errors="replace")
        self.files[path] = text
        return text


class Snapshot:
    """A stored configuration: what `Process.load` needs to rebuild it without the disk."""

    def __init__(self, filename: str, text: str, files: dict[str, str], sha512: str, saved: str) -> None:
        self.filename = filename
        self.text = text
        self.files = files
        self.sha512 = sha512
        self.saved = saved

    def read_file(self, path: str) -> str:
        """Imported files come from the snapshot. A path it does not hold (a file that appeared
        later under an import glob) reads as empty, so only the stored files contribute."""
        return self.files.get(path, "")

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "filename": self.filename, "sha512": self.sha512,
                           "saved": self.saved, "text": self.text, "files": self.files},
                          ensure_ascii=False, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, data: str) -> Snapshot:
        """Raises ValueError on anything that is not a snapshot this version wrote."""
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        files = doc.get("files")
        fields = [doc.get(k) for k in ("filename", "text", "sha512", "saved")]
        if not all(isinstance(v, str) for v in fields) or not isinstance(files, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            raise ValueError("malformed snapshot")
        filename, text, sha512, saved = (str(v) for v in fields)
        return cls(filename, text, files, sha512, saved)


class LastGood:
    """The `-lastgood PATH` store: the snapshot file and the metrics that say which one runs.

    The fallback itself (when to use the snapshot, what `/ready` says) is the process's
    (`pycoredns.process.Process`); this class only stores, loads and reports.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.active = False  # the process runs on the stored configuration
        self._saved_hash = ""
        # registered only when the feature is on, so /metrics stays CoreDNS's without the flag
        self.active_gauge = metrics.REGISTRY.gauge(
            "pycoredns_lastgood_active", "1 while the process runs on its last known good configuration, else 0.")
        self.info_gauge = metrics.REGISTRY.gauge(
            "pycoredns_lastgood_info", "The stored last known good configuration, labeled by its SHA512.", ("hash",))
        self.active_gauge.set(value=0)

    def save(self, text: str, filename: str, files: dict[str, str], sha512: str) -> None:
        """Store a configuration atomically (temp file + rename); unchanged ones are skipped."""
        snap = Snapshot(filename, text, files, sha512,
                        datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        key = f"{sha512}:{hash((text, tuple(sorted(files.items()))))}"
        if key == self._saved_hash:
            return
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            fd, tmp = tempfile.mkstemp(prefix=".lastgood.", dir=directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(snap.to_json())
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as e:
            log.core.error(f"Could not save the last known good configuration to {self.path}: {e}")
            return
        self._saved_hash = key
        self._show(sha512)

    def load(self) -> Snapshot:
        """The stored snapshot. Raises OSError or ValueError."""
        with open(self.path, encoding="utf-8") as f:
            return Snapshot.from_json(f.read())

    def mark_active(self, active: bool, sha512: str = "") -> None:
        """Report whether the process runs on the stored configuration (`sha512`)."""
        self.active = active
        self.active_gauge.set(value=1 if active else 0)
        if active:
            self._show(sha512)

    def _show(self, sha512: str) -> None:
        self.info_gauge.values.clear()
        self.info_gauge.set(sha512, value=1)
