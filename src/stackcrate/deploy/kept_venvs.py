"""Venvs as their tar.zst artifacts unpack, kept in stackcrate's cache and installed again as hard links: a deploy
made anew (`rm --purge`, then `run` with the same artifacts) or a second deployment on the host links each file
instead of unpacking 1.4 GB and 100,000 files again. On these 2-core machines unpacking the example's seven venvs
took 6-10 s of a `deploy run` (tar writing new inodes, zstd); linking nova's 23,000 files takes 0.45 s.

An entry is kept per install path and artifact (its sha256, checked before anything is unpacked), with the tree
digest of the venv as unpacked (installed.tree_digest: each entry's path, type, mode, size, mtime). A venv and
the entry it came from share their files: a file written over in place in the venv (a hotfix) changes the
entry too, so an entry is used only when its tree still has the digest it was kept with; otherwise it is
unpacked again from the artifact. Files written anew (Python's bytecode, pip, editors that rename) leave the
entry as it was. Only the artifact installed last at an install path is kept: a rebuilt version replaces its
entry, which bounds the cache to what the install root itself holds. Where the cache is on another filesystem than
the install root, or its venvs/ folders are not the installing user's alone (writable by group or others: the
digest is of sizes and times, which whoever can write a file can set back), nothing is kept and each install
unpacks: what runs from the install root is then the checked artifact's, as without the cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..cache import Cache, digest_of, linked_tree, remove_tree
from . import installed, unpack

FORMAT = 1  # of an entry: a change of what is kept, or how, changes it
RECORD = "tree.json"


def place(cache_root: Path, file: Path, install_path: str, sha256: str, target: Path) -> str | None:
    """target installed (unpack.put_in_place) as links to the kept entry of the artifact at file, which is made
    first from the artifact when none is kept or the one kept changed; the tree digest of what was installed.
    None, with nothing done, when files of the cache cannot be linked from target's folder (another filesystem,
    another mount), or when others than this user could change what the cache keeps."""
    cache = Cache(cache_root)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not _linkable(cache, target):
        return None
    slot = cache.root / "venvs" / digest_of({"format": FORMAT, "install_path": install_path})[:24]
    for folder in (slot.parent, slot):
        folder.mkdir(mode=0o755, exist_ok=True)
    if not _private(slot.parent, slot):
        return None
    entry = slot / sha256
    with cache.locked(f"venvs/{slot.name}"):
        digest = _intact(entry)
        if digest is not None:
            cache.used(entry)  # its own folder: the tree below it, whose digest is checked, keeps its times
        else:
            remove_tree(entry)
            entry.mkdir(mode=0o755)
            unpack.unpack(file, install_path, sha256, entry / "tree")
            digest = installed.tree_digest(entry / "tree")
            _write_record(entry, {"install_path": install_path, "sha256": sha256, "tree": digest})
            for other in slot.iterdir():  # older artifacts of this install path
                if other.name != sha256:
                    remove_tree(other)
        # the links share each file's mode, size and mtime; the folders are made with their modes: the venv's
        # tree digest is the entry's
        unpack.put_in_place(target, lambda new: linked_tree(entry / "tree", new))
    return digest


def _private(*folders: Path) -> bool:
    """Whether the folders are this user's and writable by no one else: the tree digest is of sizes and times,
    which whoever can write a file can set back."""
    return all(st.st_uid == os.geteuid() and not st.st_mode & 0o022 for st in map(os.stat, folders))


def _linkable(cache: Cache, target: Path) -> bool:
    """Whether a file of the cache can be linked beside target (a hard link fails across filesystems, and across
    two mounts of one). The probe's name is one of target's leftovers (unpack.leftovers), should it stay."""
    probe, beside = cache.tempdir("link-probe-"), target.with_name(f".{target.name}.tmp-link-probe")
    try:
        (probe / "f").touch()
        os.link(probe / "f", beside)
    except OSError:
        return False
    else:
        beside.unlink()
        return True
    finally:
        remove_tree(probe)


def _intact(entry: Path) -> str | None:
    """The entry's tree digest when its tree still has the one it was kept with (and its folders are private);
    None otherwise."""
    try:
        kept = json.loads((entry / RECORD).read_text())["tree"]
        if not _private(entry, entry / "tree"):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return kept if installed.tree_digest(entry / "tree") == kept else None


def _write_record(entry: Path, record: dict) -> None:
    tmp = entry / f".{RECORD}.tmp"
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    tmp.replace(entry / RECORD)
