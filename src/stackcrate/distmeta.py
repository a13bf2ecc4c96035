"""Core metadata (the METADATA file) of locked distributions, for the override proof and the inventory.

Fetched as the small PEP 658 ``<wheel URL>.metadata`` file when the index serves it, else read from the
wheel; cached by the wheel's sha256, so asking again is offline.
"""

from __future__ import annotations

import email.parser
import logging
from concurrent.futures import ThreadPoolExecutor
from email.message import Message

from . import tools
from .cache import Cache
from .errors import StackcrateError
from .model.lock import LockedPackage
from .sources import download, wheel_metadata

log = logging.getLogger("stackcrate")


def metadata_text(pkg: LockedPackage, cache: Cache) -> str | None:
    if not pkg.wheels:
        return None
    wheel = pkg.wheels[0]
    sha = (wheel.get("hashes") or {}).get("sha256")
    url = wheel.get("url")
    if not sha or not url:
        return None
    cached = cache.dir("metadata") / f"{sha}.METADATA"
    if cached.exists():
        return cached.read_text()
    try:
        text: str | None = tools.http(url + ".metadata", timeout=60, quiet=True).text()
    except tools.FetchFailed:
        text = None  # not every index serves PEP 658 metadata: read it from the wheel
    if text is None or "Metadata-Version" not in text:
        try:
            text = wheel_metadata(download(url, sha, url.rsplit("/", 1)[-1], cache))
        except StackcrateError as exc:
            log.warning("no metadata for %s %s: %s", pkg.name, pkg.version, exc.message)
            return None
    tmp = cached.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(cached)
    return text


def all_metadata(packages: list[LockedPackage], cache: Cache) -> dict[str, Message]:
    """canonical name -> parsed metadata, for the packages that have a wheel (fetched in parallel)."""
    with ThreadPoolExecutor(16) as pool:
        texts = list(pool.map(lambda p: metadata_text(p, cache), packages))
    parser = email.parser.Parser()
    return {p.key: parser.parsestr(t) for p, t in zip(packages, texts, strict=True) if t}
