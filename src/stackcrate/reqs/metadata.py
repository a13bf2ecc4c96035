"""Core metadata of locked packages (to tell OpenStack's own libraries from third-party ones).

Fetched as the small PEP 658 ``<wheel URL>.metadata`` file when the index serves it, else read from the
wheel; cached by the wheel's sha256, so a second report is offline.
"""

from __future__ import annotations

import email.parser
import logging
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from email.message import Message

from ..cache import Cache
from ..errors import StackcrateError
from ..lockfile import LockedPackage
from ..sources import download, wheel_metadata

log = logging.getLogger("stackcrate")

# Where OpenStack deliverables say they come from (Home-page, Project-URL, Author-email).
OPENSTACK_MARKS = ("openstack.org", "opendev.org/openstack", "openstack-discuss@", "openstack-dev@",
                   "launchpad.net/oslo", "launchpad.net/python-")
# For packages without metadata (sdist-only, or series that cannot be locked): OpenStack's naming habits.
OPENSTACK_NAMES = {"pbr", "stevedore", "keystoneauth1", "keystonemiddleware", "osc-lib", "openstacksdk",
                   "cliff", "debtcollector", "futurist", "taskflow", "tooz", "automaton", "castellan", "cursive",
                   "pycadf", "osprofiler", "microversion-parse", "glance-store", "neutron-lib", "ovsdbapp",
                   "oslotest", "reno", "bashate", "hacking", "sqlalchemy-migrate", "ryu", "os-ken"}


def _fetch_text(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            return resp.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError):
        return None


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
    text = _fetch_text(url + ".metadata")
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


def is_openstack(name: str, meta: Message | None) -> bool:
    if meta is not None:
        where = " ".join([meta.get("Home-page", ""), meta.get("Author-email", ""), meta.get("Author", ""),
                          meta.get("Maintainer-email", ""), *meta.get_all("Project-URL", [])]).lower()
        if any(m in where for m in OPENSTACK_MARKS):
            return True
    return name in OPENSTACK_NAMES or name.startswith(("oslo-", "os-")) or (
        name.startswith("python-") and name.endswith("client"))
