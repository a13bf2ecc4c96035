"""A library component (library: true) gets no venv or artifact of its own: the build skips it, --component refuses
it, the lock keeps the flag, and a manifest without libraries keeps the lock digest it had before the field."""

from __future__ import annotations

import pytest

from stackcrate import manifest as m
from stackcrate.errors import StackcrateError
from stackcrate.model.lock import Lock, LockedComponent
from stackcrate.model.source import LockedPath, LockedPypi
from stackcrate.pipeline import select
from stackcrate.resolve import manifest_digest


def lock_with_library() -> Lock:
    nova = LockedComponent("nova", "33.0.2", LockedPypi(version="33.0.2"), ["docker", "nova", "stackcrate-x"], 1)
    lib = LockedComponent("stackcrate-x", "0.1.0", LockedPath(path="x", digest="d"), ["docker", "stackcrate-x"], 1,
                          library=True)
    return Lock(series="2026.1", target="debian-bookworm", python_version="3.11.2", python_platform="linux",
                inputs={}, constraints_source="uc", overrides=[], packages={}, components=[nova, lib])


def test_the_build_skips_a_library_and_component_selection_refuses_one():
    lock = lock_with_library()
    assert [c.name for c in select(lock, None)] == ["nova"]
    assert [c.name for c in select(lock, ["nova"])] == ["nova"]
    with pytest.raises(StackcrateError, match="names a library: stackcrate-x"):
        select(lock, ["stackcrate-x"])


def test_the_lock_keeps_the_library_flag(tmp_path):
    lock = lock_with_library()
    lock.write(tmp_path / "x.lock")
    text = (tmp_path / "x.lock").read_text()
    assert text.count("library = true") == 1
    assert [c.library for c in Lock.load(tmp_path / "x.lock").components] == [False, True]


def test_a_manifest_without_libraries_keeps_its_digest(tmp_path):
    p = tmp_path / "stackcrate.yaml"
    p.write_text('series: "2026.1"\ncomponents:\n  - name: keystone\n    pypi: {version: "29.1.0"}\n')
    plain = manifest_digest(m.load(p), [])
    p.write_text(p.read_text() + "    library: false\n")
    assert manifest_digest(m.load(p), []) == plain
