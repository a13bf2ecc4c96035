"""What an artifact tarball may hold: its venv's own folder and what lies below it, nothing else. Applied while
checking an artifact, before anything is written; GNU tar then unpacks the very bytes that passed (unpack.py)."""

from __future__ import annotations

import posixpath
import tarfile


class BadMember(Exception):
    """A member that must not be unpacked; the message names it and why."""


def _kind(m: tarfile.TarInfo) -> str | None:
    """What kind of entry m is, when it is one a venv may hold."""
    if m.isreg():
        return "file"
    if m.isdir():
        return "folder"
    if m.issym():
        return "symlink"
    if m.islnk():
        return "hard link"
    return None


def _forbidden_kind(m: tarfile.TarInfo) -> str:
    if m.ischr() or m.isblk():
        return "a device file"
    if m.isfifo():
        return "a FIFO"
    return f"an entry of tar type {m.type!r}"


def _clean(name: str) -> str | None:
    """name without a leading './' or a trailing '/', or None when it is absolute or has '..' or empty parts."""
    name = name.removeprefix("./").rstrip("/")
    if name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")):
        return None
    return name


class MemberRules:
    """One pass over an artifact's members, in archive order, for the venv at install_path.

    Allowed: the folders above install_path (skipped: they exist already), install_path's own folder, and files,
    folders, symlinks and hard links below it. Refused: absolute names, '..', device files and FIFOs, names given
    twice, anything below a symlink (it would be written through the link), relative symlinks and hard links
    pointing out of the venv. Absolute symlinks are allowed: a venv's bin/python points at the system's
    interpreter, and nothing is ever written through a symlink.
    """

    def __init__(self, install_path: str):
        self.install_path = install_path
        self.top = install_path.strip("/")
        self.above = {"/".join(self.top.split("/")[:i]) for i in range(1, self.top.count("/") + 1)}
        self.seen: set[str] = set()
        self.symlinks: set[str] = set()
        self.has_top = False

    def _fail(self, name: str, why: str) -> BadMember:
        return BadMember(f"member {name!r} {why}")

    def _inside(self, member: str, name: str, what: str) -> str:
        """name (clean, relative to /) as a path relative to the venv's folder; refused outside it or below a
        symlink."""
        if not name.startswith(self.top + "/"):
            raise self._fail(member, f"{what} outside {self.install_path}")
        rel = name[len(self.top) + 1:]
        parts = rel.split("/")
        through = next(("/".join(parts[:i]) for i in range(1, len(parts)) if "/".join(parts[:i]) in self.symlinks),
                       None)
        if through is not None:
            raise self._fail(member, f"{what} below the symlink /{self.top}/{through} (it would be written through "
                                     "it)")
        return rel

    def check(self, m: tarfile.TarInfo) -> None:
        """The next member: raises BadMember when it breaks a rule."""
        name = _clean(m.name)
        if name is None:
            raise self._fail(m.name, "has an absolute name or a '..' or empty part")
        kind = _kind(m)
        if kind is None:
            raise self._fail(m.name, f"is {_forbidden_kind(m)}")
        if name in self.seen:
            raise self._fail(m.name, "appears twice")
        self.seen.add(name)
        if name in self.above or name == self.top:
            if kind != "folder":
                raise self._fail(m.name, f"is a {kind} where the folder {'/' + name} belongs")
            self.has_top |= name == self.top
            return
        rel = self._inside(m.name, name, "lies")
        if m.islnk():
            target = _clean(m.linkname)
            if target is None or target not in self.seen:
                raise self._fail(m.name, f"is a hard link to {m.linkname!r}, which is no member before it")
            self._inside(m.name, target, f"links to {target},")
            return
        if m.issym():
            self.symlinks.add(rel)
            if not m.linkname.startswith("/"):
                resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), m.linkname))
                if resolved == ".." or resolved.startswith("../"):
                    raise self._fail(m.name, f"is a symlink to {m.linkname!r}, out of {self.install_path}")

    def finish(self) -> None:
        """After the last member: the archive held the venv's folder and its interpreter."""
        if not self.has_top:
            raise BadMember(f"it has no entry for {self.install_path} itself (built for another install path?)")
        if f"{self.top}/bin/python" not in self.seen:
            raise BadMember(f"it has no {self.install_path}/bin/python: it is not a venv")

