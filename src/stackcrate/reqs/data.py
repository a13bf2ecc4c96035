"""A series' requirement data from openstack/requirements: global-requirements.txt and denylist.txt.

Same folder layout as the upper-constraints (``$STACKCRATE_CONSTRAINTS_DIR/<series>/<file>``), else fetched
from opendev.org or GitHub (the ref per series: upstream.py) and cached like the constraints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement

from ..cache import Cache
from ..constraints import CONSTRAINTS_DIR_ENV, ConstraintLine, fetch_cached, parse_requirement_lines
from ..errors import StackcrateError
from ..series import get_series
from ..textfile import read_text
from .upstream import candidate_urls, file_names


def series_file(series: str, file: str, cache: Cache, constraints_dir: str | None = None) -> tuple[str, str]:
    """(source, text) of one file of a series' openstack/requirements data."""
    name = get_series(series).name
    cdir = constraints_dir or os.environ.get(CONSTRAINTS_DIR_ENV)
    if cdir:
        folder = Path(cdir).expanduser().resolve() / name
        p = next((folder / n for n in file_names(file) if (folder / n).is_file()), folder / file)
        if not p.is_file():
            # Name what set the folder: the flag wins over the environment, and unsetting the latter won't help.
            given = "pass another --constraints-dir" if constraints_dir else f"unset {CONSTRAINTS_DIR_ENV}"
            raise StackcrateError(f"no {file} for series {name} in the requirements folder: {p} does not exist",
                                  hint=f"lay the folder out as <series>/{' or '.join(file_names(file))}, "
                                  f"or {given}")
        return str(p), read_text(p, f"{file} of series {name}")
    return fetch_first(candidate_urls(name, file), cache, file, name)


def fetch_first(urls: list[str], cache: Cache, file: str, series: str) -> tuple[str, str]:
    """(url, text) of the first URL that answers: a series' files moved between refs (and names) over time."""
    failures, what = [], f"{file} of series {series}"
    for url in urls:
        try:
            return url, fetch_cached(url, cache, True, what=what)
        except StackcrateError as exc:
            failures.append(exc.message)
    raise StackcrateError(f"cannot fetch {what} from any of {len(urls)} places: " + "; ".join(failures),
                          hint=f"check the network, or work offline with {CONSTRAINTS_DIR_ENV}=DIR "
                          f"(DIR/{series}/{file})")


@dataclass
class SeriesData:
    """What a series allows: global requirements (a name can have several lines, one per marker), the
    denylist, and the upper-constraints pins."""

    series: str
    global_source: str
    constraints_source: str
    global_reqs: dict[str, list[ConstraintLine]] = field(default_factory=dict)
    denylist: set[str] = field(default_factory=set)
    constraints: dict[str, list[ConstraintLine]] = field(default_factory=dict)

    def constraint_versions(self, name: str) -> list[str]:
        return [pinned_version(c.requirement) for c in self.constraints.get(name, []) if pinned_version(c.requirement)]


def pinned_version(req: Requirement) -> str | None:
    for s in req.specifier:
        if s.operator in ("==", "==="):
            return s.version
    return None


def _group(lines: list[ConstraintLine]) -> dict[str, list[ConstraintLine]]:
    out: dict[str, list[ConstraintLine]] = {}
    for cl in lines:
        out.setdefault(cl.name, []).append(cl)
    return out


def load_series_data(series: str, cache: Cache, constraints_dir: str | None = None) -> SeriesData:
    name = get_series(series).name
    gsrc, gtext = series_file(name, "global-requirements.txt", cache, constraints_dir)
    _, dtext = series_file(name, "denylist.txt", cache, constraints_dir)
    csrc, ctext = series_file(name, "upper-constraints.txt", cache, constraints_dir)
    return SeriesData(
        series=name, global_source=gsrc, constraints_source=csrc,
        global_reqs=_group(parse_requirement_lines(gtext, gsrc)),
        denylist={c.name for c in parse_requirement_lines(dtext, "denylist.txt", strict=False)},
        constraints=_group(parse_requirement_lines(ctext, csrc)),
    )
