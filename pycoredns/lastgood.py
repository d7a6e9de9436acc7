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
from typing import TYPE_CHECKING

from . import log, metrics
from .corefile import fingerprint, parse

if TYPE_CHECKING:
    from .instance import Instance, StartupError
    from .process import Process

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
        filename, text, sha512, saved = fields
        return cls(filename, text, files, sha512, saved)


class LastGood:
    """The `-lastgood PATH` store and the process's fallback state."""

    def __init__(self, path: str, process: Process) -> None:
        self.path = path
        self.process = process
        self.active = False
        self.disk_error = ""
        self._saved_hash = ""
        # registered only when the feature is on, so /metrics stays CoreDNS's without the flag
        self.active_gauge = metrics.REGISTRY.gauge(
            "pycoredns_lastgood_active", "1 while the process runs on its last known good configuration, else 0.")
        self.info_gauge = metrics.REGISTRY.gauge(
            "pycoredns_lastgood_info", "The stored last known good configuration, labeled by its SHA512.", ("hash",))
        self.active_gauge.set(value=0)

    # -- storing -------------------------------------------------------------------------------
    def save(self, inst: Instance) -> None:
        """Store `inst`'s configuration atomically (temp file + rename); unchanged ones are skipped."""
        assert inst.source is not None
        text, filename, files = inst.source
        snap = Snapshot(filename, text, files, inst.fingerprint,
                        datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        key = f"{inst.fingerprint}:{hash((text, tuple(sorted(files.items()))))}"
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
        self.info_gauge.values.clear()
        self.info_gauge.set(inst.fingerprint, value=1)

    def load(self) -> Snapshot:
        """The stored snapshot. Raises OSError or ValueError."""
        with open(self.path, encoding="utf-8") as f:
            return Snapshot.from_json(f.read())

    # -- state ---------------------------------------------------------------------------------
    def activated(self, inst: Instance) -> None:
        """A configuration is serving: store it (from disk), or flag the fallback (from the store)."""
        if inst.from_lastgood:
            self.active = True
            self.active_gauge.set(value=1)
            self.info_gauge.values.clear()
            self.info_gauge.set(inst.fingerprint, value=1)
            self.process.shared["ready_detail"] = (
                f"running the last known good configuration (SHA512 {inst.fingerprint}) from {self.path}: "
                f"the Corefile on disk failed: {self.disk_error}")
            return
        if self.active:
            log.core.info("The Corefile on disk loaded: no longer running the last known good configuration")
            self.active = False
            self.disk_error = ""
            self.active_gauge.set(value=0)
            self.process.shared.pop("ready_detail", None)
        self.save(inst)

    async def fallback(self, error: StartupError) -> Instance:
        """Start on the stored configuration after the disk one failed with `error` (re-raised when
        there is no usable snapshot or it fails too)."""
        try:
            snap = self.load()
        except FileNotFoundError:
            log.core.error(f"{error}: no last known good configuration in {self.path}")
            raise error from None
        except (OSError, ValueError) as e:
            log.core.error(f"{error}: cannot read the last known good configuration {self.path}: {e}")
            raise error from None
        log.core.error(f"{error}: starting with last known good configuration from {self.path} "
                       f"(saved {snap.saved}, SHA512 = {snap.sha512})")
        self.disk_error = str(error)
        from .instance import StartupError

        try:
            inst = self.process.load((snap.text, snap.filename), read_file=snap.read_file)
        except StartupError as e:
            log.core.error(f"The last known good configuration failed too: {e}")
            raise error from None
        if inst.fingerprint != snap.sha512:
            log.core.warning("The last known good configuration differs from the stored one "
                             "(files matched by an import glob changed); serving it anyway")
        inst.from_lastgood = True
        inst.watch_hash = self._disk_hash()
        if "reload" not in inst.state:
            log.core.warning("The last known good configuration has no reload: fix the Corefile, then send SIGUSR1")
        try:
            await self.process._activate(inst, old=None)
        except StartupError as e:
            log.core.error(f"The last known good configuration failed too: {e}")
            raise error from None
        return inst

    def _disk_hash(self) -> str:
        """The fingerprint of the failed disk configuration (reload retries only once it changes);
        empty when it does not even parse, so the first parseable edit is tried."""
        try:
            text, filename = self.process.read_config()
            return fingerprint(parse(text, filename, directives=None))
        except Exception:  # StartupError, CorefileError, anything a broken file can raise
            return ""
