"""Where a series' constraints come from (official URL, a URL, a file, or an air-gapped folder) and parsing.

Precedence: the manifest's ``constraints`` (URL or file) > ``--constraints-dir`` / ``$STACKCRATE_CONSTRAINTS_DIR``
(``<dir>/<series>/upper-constraints.txt``) > ``https://releases.openstack.org/constraints/upper/<series>``.
Fetched URLs are cached on disk; when the network fails, a cached copy is used with a warning.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from . import tools
from .cache import Cache, sha256_bytes
from .errors import StackcrateError
from .textfile import read_text

log = logging.getLogger("stackcrate")
OFFICIAL = "https://releases.openstack.org/constraints/upper/{series}"
CONSTRAINTS_DIR_ENV = "STACKCRATE_CONSTRAINTS_DIR"


@dataclass
class ConstraintLine:
    name: str           # canonical
    text: str           # the requirement as written (without comment)
    lineno: int
    requirement: Requirement


@dataclass
class Constraints:
    source: str         # URL or file path, for messages
    text: str
    # how a lock names it: as the manifest gave it, or the series' file in the constraints folder, never this
    # machine's path (two machines locking the same inputs write the same lock; the digest is what is checked)
    recorded: str = ""

    @property
    def named(self) -> str:
        return self.recorded or self.source

    @property
    def digest(self) -> str:
        return sha256_bytes(self.text.encode())

    def lines(self) -> list[ConstraintLine]:
        return parse_requirement_lines(self.text, self.source)


def parse_requirement_lines(text: str, source: str, *, strict: bool = True) -> list[ConstraintLine]:
    out = []
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("-") else ""
        if not line:
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            if strict:
                raise StackcrateError(f"cannot parse requirement {line!r}: {exc}", where=f"{source}:{i}",
                                      hint="fix or remove that line") from None
            continue
        out.append(ConstraintLine(canonicalize_name(req.name), line, i, req))
    return out


def fetch_cached(url: str, cache: Cache, refresh: bool = True, what: str = "constraints") -> str:
    """The text at url, kept in the cache. refresh=False takes the cached copy when there is one (a --locked
    build needs no network); when a fetch fails, the cached copy is used with a warning."""
    cached = cache.dir("constraints") / (sha256_bytes(url.encode())[:32] + ".txt")
    if not refresh and cached.exists():
        return cached.read_text()
    try:
        data = tools.http(url).text()
    except tools.FetchFailed as exc:
        if cached.exists():
            log.warning("cannot fetch %s (%s); using the copy cached on %s", url, exc.reason, cached)
            return cached.read_text()
        raise StackcrateError(f"cannot fetch {what} from {url}: {exc.reason}",
                              hint=f"check the URL and the network, or work offline with {CONSTRAINTS_DIR_ENV}=DIR "
                              "(DIR/<series>/upper-constraints.txt)") from None
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(data)
    tmp.replace(cached)
    return data


def load_constraints(series: str, cache: Cache, *, source: str | None = None, base_dir: Path | None = None,
                     constraints_dir: str | None = None, refresh: bool = True) -> Constraints:
    """Load upper-constraints; ``refresh=False`` prefers an on-disk copy of a URL (for --locked builds)."""
    if source:
        if "://" in source and not source.startswith("file://"):
            return Constraints(source, fetch_cached(source, cache, refresh))
        p = Path(source.removeprefix("file://")).expanduser()
        p = p if p.is_absolute() else (base_dir or Path.cwd()) / p
        text = read_text(p.resolve(), "constraints file",
                         hint="check the path (relative paths are relative to the manifest)")
        return Constraints(str(p.resolve()), text, recorded=source)
    cdir = constraints_dir or os.environ.get(CONSTRAINTS_DIR_ENV)
    if cdir:
        p = Path(cdir).expanduser().resolve() / series / "upper-constraints.txt"
        if not p.exists():
            raise StackcrateError(
                f"no upper-constraints for series {series} in the constraints folder: {p} does not exist",
                hint=f"lay the folder out as <series>/upper-constraints.txt, or unset {CONSTRAINTS_DIR_ENV}")
        return Constraints(str(p), read_text(p, "upper-constraints file"),
                           recorded=f"<constraints folder>/{series}/upper-constraints.txt")
    url = OFFICIAL.format(series=series)
    return Constraints(url, fetch_cached(url, cache, refresh))
