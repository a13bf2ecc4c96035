"""A tiny series folder for the reqs tests: global-requirements, upper-constraints and denylist as given."""

from __future__ import annotations

from pathlib import Path

from stackcrate.cache import Cache
from stackcrate.reqs.check import check
from stackcrate.reqs.data import SeriesData, load_series_data
from stackcrate.reqs.projectfiles import read_project


def write_series(base: Path, global_reqs: str, constraints: str, denylist: str = "hacking\n") -> Path:
    d = base / "data" / "2026.1"
    d.mkdir(parents=True)
    (d / "global-requirements.txt").write_text(global_reqs)
    (d / "upper-constraints.txt").write_text(constraints)
    (d / "denylist.txt").write_text(denylist)
    return base / "data"


def check_project(project: Path, series: Path) -> tuple[SeriesData, list]:
    """The series data and the findings of `reqs check` on project."""
    sd = load_series_data("2026.1", Cache(project / ".cache"), str(series))
    return sd, check(read_project(project), sd)
