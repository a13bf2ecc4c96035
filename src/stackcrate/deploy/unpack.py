"""An artifact tarball read whole before anything is written, and unpacked into place atomically: into a
temporary folder beside its venv (same filesystem), renamed in only once the whole archive was read, obeyed the
member rules and hashed to the sha256 expected. Whatever happens, the temporary folder goes."""

from __future__ import annotations

import ctypes
import errno
import os
import tarfile
import tempfile
from pathlib import Path

from ..archive import BadArchive, read_tar_zst
from ..cache import remove_tree
from ..errors import StackcrateError
from .members import BadMember, MemberRules

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def bad_artifact(path: Path, why: str) -> StackcrateError:
    return StackcrateError(f"the artifact {path} cannot be installed: {why}",
                           hint="nothing was installed; build it again (`stackcrate deploy build`) or copy it again "
                                "from the build's output folder, with its artifacts.json")


def check(path: Path, install_path: str) -> str:
    """Read path to its end, applying the member rules for install_path and writing nothing; its sha256."""
    rules = MemberRules(install_path)

    def visit(tf: tarfile.TarFile) -> None:
        for m in tf:
            rules.place(m)

    try:
        sha = read_tar_zst(path, visit)
        rules.finish()
    except (BadArchive, BadMember) as exc:
        raise bad_artifact(path, str(exc)) from None
    return sha


def leftovers(target: Path) -> list[Path]:
    """Temporary folders of target's earlier installs that were killed before they could clean up."""
    return sorted(target.parent.glob(f".{target.name}.tmp-*"))


def unpack(path: Path, install_path: str, sha256: str, target: Path) -> None:
    """Unpack the artifact at path as target: target appears whole or not at all; an existing target is
    replaced whole (the caller made sure nothing runs from it) and its old tree removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        rules = MemberRules(install_path)

        def keep(m: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
            placed = rules.place(m)
            return None if placed is None else tarfile.tar_filter(placed, dest)

        def kept(tf: tarfile.TarFile):
            """Python < 3.11.4 (Debian 12's 3.11.2) has no extraction filters: the members our rules keep, with
            what tarfile's `tar` filter would clear cleared (setuid/setgid/sticky, write for group and others)."""
            for m in tf:
                placed = rules.place(m)
                if placed is not None:
                    placed.mode &= ~0o7022
                    yield placed

        def extract(tf: tarfile.TarFile) -> None:
            if hasattr(tarfile, "tar_filter"):
                tf.extractall(tmp, filter=keep)
            else:
                tf.extractall(tmp, members=kept(tf))

        try:
            got = read_tar_zst(path, extract)
            rules.finish()
        except (BadArchive, BadMember, getattr(tarfile, "FilterError", BadMember)) as exc:
            raise bad_artifact(path, str(exc)) from None
        if got != sha256:
            raise bad_artifact(path, f"it changed while it was being installed (sha256 {got}, {sha256} expected)")
        _rename_in(tmp, target)
    except OSError as exc:
        raise StackcrateError(f"could not install {path} at {target}: {exc}",
                              hint=f"nothing was changed at {target}; fix the cause (space, permissions) and run "
                                   "again") from None
    finally:
        remove_tree(tmp)  # after a replacement, the old tree


def _rename_in(new: Path, target: Path) -> None:
    """Rename new to target in one step. An existing target is exchanged with new (renameat2), so it is never
    missing, and new then holds the old tree; where the filesystem cannot exchange, the old tree is renamed aside
    first (target is missing for an instant)."""
    if not os.path.lexists(target):
        os.rename(new, target)
        return
    if _exchange(new, target):
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.rename(target, aside / "old")
    try:
        os.rename(new, target)
    except OSError:
        os.rename(aside / "old", target)
        raise
    finally:
        remove_tree(aside)


def _exchange(a: Path, b: Path) -> bool:
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))
