"""A series' requirement data from openstack/requirements: global-requirements.txt and denylist.txt.

Same folder layout as the upper-constraints (``$STACKCRATE_CONSTRAINTS_DIR/<series>/<file>``), else fetched
from opendev.org and cached like the constraints.
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

RAW_URL = "https://opendev.org/openstack/requirements/raw/branch/{branch}/{file}"


def series_file(series: str, file: str, cache: Cache, constraints_dir: str | None = None) -> tuple[str, str]:
    """(source, text) of one file of a series' openstack/requirements data."""
    name = get_series(series).name
    cdir = constraints_dir or os.environ.get(CONSTRAINTS_DIR_ENV)
    if cdir:
        p = Path(cdir).expanduser().resolve() / name / file
        if not p.is_file():
            # Name what set the folder: the flag wins over the environment, and unsetting the latter won't help.
            given = "pass another --constraints-dir" if constraints_dir else f"unset {CONSTRAINTS_DIR_ENV}"
            raise StackcrateError(f"no {file} for series {name} in the requirements folder: {p} does not exist",
                                  hint=f"lay the folder out as <series>/{file}, or {given}")
        return str(p), p.read_text()
    branch = "master" if name == "master" else f"stable/{name}"
    url = RAW_URL.format(branch=branch, file=file)
    return url, fetch_cached(url, cache, True, what=file)


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
