"""What stackcrate knows about the venvs it installed, kept beside them in <prefix>/.stackcrate-installed/ (never
inside a venv, which holds exactly its artifact's files):

- `<venv>.sha256`: the sha256 of the artifact the venv was installed from (the marker older versions read too);
- `<venv>.json`: that sha256 again, a digest of the venv's files as installed (to notice later changes), and
  the deployments (state folders) using it, so `rm --purge` removes only what no other deployment uses.

Both are written atomically; read-modify-write happens under the prefix's lock (`locked`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import BaseModel, ValidationError

from ..cache import file_lock

RECORDS = ".stackcrate-installed"
LOCK_TIMEOUT = 900.0  # another deployment's whole install (six venvs) takes about a minute


class VenvRecord(BaseModel):
    sha256: str                    # the artifact the venv was installed from
    tree: str | None = None        # tree_digest() right after installing; None: not known
    users: list[str] = []          # state folders of the deployments using the venv
    unlisted_users: bool = False   # it was installed before users were recorded: others may use it unlisted


def _records(venv: Path) -> Path:
    return venv.parent / RECORDS


def _marker(venv: Path) -> Path:
    return _records(venv) / f"{venv.name}.sha256"


def _record(venv: Path) -> Path:
    return _records(venv) / f"{venv.name}.json"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


def read(venv: Path) -> VenvRecord | None:
    """The record of venv; None when nothing says stackcrate installed it. A marker without a record (or with
    a record of another artifact) was written by an older stackcrate: its users are not known."""
    try:
        sha = _marker(venv).read_text().strip()
    except FileNotFoundError:
        return None
    try:
        rec = VenvRecord.model_validate(json.loads(_record(venv).read_text()))
    except (FileNotFoundError, ValueError, ValidationError):
        return VenvRecord(sha256=sha, unlisted_users=True)
    if rec.sha256 != sha:
        return VenvRecord(sha256=sha, users=rec.users, unlisted_users=True)
    return rec


def used_by(state: str, prefixes: Iterable[Path]) -> list[Path]:
    """The venvs in prefixes whose records name the deployment of the state folder `state` as a user."""
    found = []
    for prefix in prefixes:
        for record in sorted((prefix / RECORDS).glob("*.json")):
            venv = prefix / record.name.removesuffix(".json")
            if (rec := read(venv)) is not None and state in rec.users:
                found.append(venv)
    return found


def write(venv: Path, rec: VenvRecord) -> None:
    _records(venv).mkdir(parents=True, exist_ok=True)
    _write(_record(venv), json.dumps(rec.model_dump(), indent=2, sort_keys=True) + "\n")
    _write(_marker(venv), rec.sha256 + "\n")  # last: a record without its marker means "not installed"


def forget(venv: Path) -> None:
    for path in (_record(venv), _marker(venv)):
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def locked(prefix: Path) -> Iterator[None]:
    """The lock of the records of every venv in prefix (e.g. /opt/openstack); creates the records folder."""
    (prefix / RECORDS).mkdir(parents=True, exist_ok=True)
    with file_lock(prefix / RECORDS / ".lock", LOCK_TIMEOUT, f"installing under {prefix}"):
        yield


def tree_digest(venv: Path) -> str:
    """A digest of the venv's entries (path, type, mode, size, mtime, symlink target) from a walk of stat calls
    (~0.1 s for 12,000 files), not of their contents. __pycache__ folders are left out: Python may write there
    at run time. Symlinks' mtimes are left out: extraction does not set them. Each folder's files, then its
    folders (a symlink to a folder among them, not followed), by name; then each folder's own entries."""
    h = hashlib.sha256()

    def walk(folder: str, rel: str) -> None:
        files, dirs = [], []
        try:
            entries = os.scandir(folder)
        except OSError:  # gone or unreadable: left out, as os.walk did
            return
        with entries:
            for e in entries:
                try:
                    is_dir = e.is_dir()
                except OSError:
                    is_dir = False
                (dirs if is_dir else files).append(e)
        files.sort(key=lambda e: e.name)
        dirs = sorted((e for e in dirs if e.name != "__pycache__"), key=lambda e: e.name)
        for e in files + dirs:
            st = e.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                h.update(f"L {rel}{e.name} -> {os.readlink(e.path)}\n".encode())
            elif stat.S_ISDIR(st.st_mode):  # a folder's mtime changes when anything is added to it
                h.update(f"D {rel}{e.name} {st.st_mode:o}\n".encode())
            else:
                h.update(f"F {rel}{e.name} {st.st_mode:o} {st.st_size} {int(st.st_mtime)}\n".encode())
        for e in dirs:
            if not e.is_symlink():
                walk(e.path, f"{rel}{e.name}/")

    walk(str(venv), "")
    return h.hexdigest()
