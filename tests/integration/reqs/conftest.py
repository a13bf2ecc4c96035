"""Real OpenStack sdists of series 2026.1, downloaded from PyPI once into the test cache and unpacked."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest
from packaging.utils import parse_sdist_filename

from stackcrate.cache import Cache
from stackcrate.sources import download, index_files


def fetch_sdist(name: str, version: str, cache_dir: Path) -> Path:
    for f in index_files(name):
        fn = f["filename"]
        if fn.endswith(".tar.gz") and str(parse_sdist_filename(fn)[1]) == version:
            return download(f["url"], f["hashes"]["sha256"], fn, Cache(cache_dir))
    raise AssertionError(f"{name} {version} has no sdist on PyPI")


@pytest.fixture(scope="session")
def keystone_tree(cache_dir, tmp_path_factory) -> Path:
    """keystone 29.1.0 (2026.1) unpacked, pristine: copy it before changing it."""
    sdist = fetch_sdist("keystone", "29.1.0", cache_dir)
    dest = tmp_path_factory.mktemp("keystone-sdist")
    with tarfile.open(sdist) as tf:
        try:
            tf.extractall(dest, filter="data")
        except TypeError:  # Python < 3.10.12 / 3.11.4: no extraction filters
            tf.extractall(dest)  # noqa: S202 - a PyPI sdist verified by its sha256
    (top,) = list(dest.iterdir())
    return top


@pytest.fixture
def keystone_copy(keystone_tree, tmp_path) -> Path:
    dest = tmp_path / "keystone"
    shutil.copytree(keystone_tree, dest)
    return dest
