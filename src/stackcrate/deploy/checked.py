"""Artifact files already checked, remembered by file identity in the cache (not the state folder: nothing of a
deployment is written before its checks pass), so `init` does not read 300 MB of tarballs again each time. Any
write to a file changes its ctime (which no one can set back), a replaced file has another inode: either makes
it be read again."""

from __future__ import annotations

import json
import os
from pathlib import Path

FILE = "artifacts-checked.json"


def identity(path: Path) -> list[int]:
    """Taken before reading the file: if it changes while being read, the identity remembered is already stale."""
    st = os.stat(path)
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class CheckedArtifacts:
    """path -> {identity, sha256 of the bytes, whole_for: the install path its members were checked for}."""

    def __init__(self, folder: Path):
        self.path = folder / FILE
        try:
            self.entries: dict[str, dict] = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            self.entries = {}
        self.changed = False

    def sha256(self, path: Path, whole_for: str | None = None) -> str | None:
        """The sha256 found when path was last read, if it has not changed since (and, with whole_for, if it was
        then read whole with the member rules of that install path)."""
        entry = self.entries.get(str(path.resolve()))
        try:
            same = entry is not None and entry["identity"] == identity(path)
        except OSError:
            return None
        if not same or (whole_for is not None and entry.get("whole_for") != whole_for):
            return None
        return entry["sha256"]

    def remember(self, path: Path, ident: list[int], sha256: str, whole_for: str | None) -> None:
        self.entries[str(path.resolve())] = {"identity": ident, "sha256": sha256, "whole_for": whole_for}
        self.changed = True

    def save(self) -> None:
        if not self.changed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{FILE}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(self.entries, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.path)
