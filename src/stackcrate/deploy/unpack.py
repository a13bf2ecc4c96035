"""An artifact tarball read whole before anything is written, and unpacked into place atomically: into a
temporary folder beside its venv (same filesystem), renamed in only once the whole archive was unpacked. What is
unpacked is what was checked: check() reads the archive whole under the member rules and returns the sha256 of
what it read; unpack() reads the file once, into memory, and unpacks it only when those bytes have the sha256 the
caller checked. Whatever happens, the temporary folder goes."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..archive import BadArchive, read_tar_zst
from ..cache import remove_tree
from ..errors import StackcrateError
from ..tools import ToolFailed, run, which
from .members import BadMember, MemberRules

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
UNPACK_TIMEOUT = 600.0  # the largest venv (nova, 23,000 files) takes 1-15 s on these machines' disks


def bad_artifact(path: Path, why: str) -> StackcrateError:
    return StackcrateError(f"the artifact {path} cannot be installed: {why}",
                           hint="nothing was installed; build it again (`stackcrate deploy build`) or copy it again "
                                "from the build's output folder, with its artifacts.json")


def check(path: Path, install_path: str) -> str:
    """Read path to its end, applying the member rules for install_path and writing nothing; its sha256."""
    rules = MemberRules(install_path)

    def visit(tf: tarfile.TarFile) -> None:
        for m in tf:
            rules.check(m)

    try:
        sha = read_tar_zst(path, visit)
        rules.finish()
    except (BadArchive, BadMember) as exc:
        raise bad_artifact(path, str(exc)) from None
    return sha


def remove_leftovers(target: Path) -> None:
    """Remove the temporary folders of target's earlier installs that were killed before they could clean up
    (only while no other install of target runs: the caller holds its lock)."""
    for leftover in sorted(target.parent.glob(f".{target.name}.tmp-*")):
        remove_tree(leftover)


def unpack(path: Path, install_path: str, checked_sha256: str, target: Path) -> None:
    """Unpack the artifact at path as target, when its bytes are the ones check() passed for install_path (their
    sha256 is checked_sha256): target appears whole or not at all (put_in_place)."""
    data = path.read_bytes()  # hashed and unpacked from memory: the file may change meanwhile, these bytes do not
    got = hashlib.sha256(data).hexdigest()
    if got != checked_sha256:
        raise bad_artifact(path, f"it changed after it was checked (sha256 {got}, {checked_sha256} expected)")

    def extracted(new: Path) -> None:
        new.mkdir()
        _extract(data, install_path, new)
        os.chmod(new, 0o755)  # the venv's own folder (its member is one of those stripped)

    try:
        put_in_place(target, extracted)
    except ToolFailed as exc:
        raise StackcrateError(f"could not install {path} at {target}: tar failed: {exc.stderr.strip()[-500:]}",
                              hint=f"nothing was changed at {target}; fix the cause (space, permissions) and run "
                                   "again") from None


def put_in_place(target: Path, fill: Callable[[Path], object]) -> None:
    """target as the folder fill(new) makes in a temporary folder beside it (same filesystem), renamed in only
    once fill returned; an existing target is replaced whole (the caller made sure nothing runs from it) and its
    old tree removed. Whatever happens, the temporary folder goes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        fill(tmp / "new")
        _rename_in(tmp / "new", target)
    except OSError as exc:
        raise StackcrateError(f"could not install {target}: {exc}",
                              hint=f"nothing was changed at {target}; fix the cause (space, permissions) and run "
                                   "again") from None
    finally:
        remove_tree(tmp)  # after a replacement, the old tree


def _extract(data: bytes, install_path: str, dest: Path) -> None:
    """GNU tar and zstd write a checked archive's venv into dest: the install path's folders stripped off, owned
    by whoever installs, without setuid, setgid or sticky bits and without write for group and others (umask 022
    without --same-permissions). Python's tarfile took 4.4 s of
    CPU for nova's 23,000 files, GNU tar 0.7 s. --keep-old-files: a name given twice fails, as in the rules."""
    run([which("tar"), "--extract", "--file=-", f"--use-compress-program={which('zstd')}",
         f"--strip-components={install_path.strip('/').count('/') + 1}", "--no-same-owner",
         "--no-same-permissions", "--keep-old-files", "--directory", dest],
        input=data, umask=0o022, timeout=UNPACK_TIMEOUT)


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
