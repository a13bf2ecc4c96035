"""Where `reqs check` goes beyond OpenStack's requirements gate (the upper-constraints rules), it says so, and
--gate gives exactly the gate's verdict; and the gate's one marker leniency (py3-only markers) is kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackcrate.cache import Cache
from stackcrate.reqs.check import BEYOND_GATE, check
from stackcrate.reqs.data import load_series_data
from stackcrate.reqs.projectfiles import read_project

from .seriesdata import check_project, write_series

GLOBAL = """\
oslo.config>=9.0.0  # Apache-2.0
SQLAlchemy>=2.0  # MIT
py3only;python_version>='3.8'  # MIT
py3spaced;python_version >= '3.8'  # MIT
py3cap;python_version<'3.12'  # MIT
nomarker>=1  # MIT
"""
UC = "oslo.config===10.0.0\nSQLAlchemy===1.4.0\npy3only===1\npy3spaced===1\npy3cap===1\nnomarker===1\n"


@pytest.fixture
def series(tmp_path) -> Path:
    return write_series(tmp_path, GLOBAL, UC)


def rules(project: Path, series: Path, gate: bool = False) -> list[tuple[str, str, int]]:
    sd = load_series_data("2026.1", Cache(project / ".cache"), str(series))
    return sorted((f.rule, f.file, f.line) for f in check(read_project(project), sd, gate=gate))


def test_upper_constraints_findings_say_they_are_stackcrates_rule(proj, series):
    (proj / "requirements.txt").write_text("oslo.config>=11.0.0\nSQLAlchemy>=2.0\n")
    got = check_project(proj, series)[1]
    assert sorted(f.rule for f in got) == ["constraint-mismatch", "constraint-mismatch", "constraint-vs-global"]
    assert all("(stackcrate's rule, not the gate's)" in f.message for f in got)


def test_gate_mode_drops_only_the_upper_constraints_rules(proj, series):
    (proj / "requirements.txt").write_text("oslo.config>=11.0.0,!=11.1.0\nSQLAlchemy>=2.0\nunknown>=1\n")
    full = rules(proj, series)
    assert {r for r, _, _ in full} >= set(BEYOND_GATE)
    assert rules(proj, series, gate=True) == [r for r in full if r[0] not in BEYOND_GATE] == [
        ("extra-exclusion", "requirements.txt", 1), ("not-in-global", "requirements.txt", 3)]


def test_gate_flag_on_the_command_line_passes_a_project_only_constraints_fault(stackcrate, proj, series):
    (proj / "requirements.txt").write_text("oslo.config>=11.0.0\n")
    beyond = stackcrate("reqs", "check", proj, "-s", "2026.1", "--constraints-dir", series)
    assert beyond.returncode == 1 and "not the gate's" in beyond.stdout
    gated = stackcrate("reqs", "check", proj, "-s", "2026.1", "--constraints-dir", series, "--gate")
    assert gated.returncode == 0, gated.stdout + gated.stderr
    assert "0 finding(s)" in gated.stdout and "gate's rules only" in gated.stdout


def test_gate_flag_is_documented_in_help(stackcrate):
    out = stackcrate("reqs", "check", "--help").stdout
    assert "--gate" in out and "gate's" in out and "constraint-vs-global" in out


@pytest.mark.parametrize("line", ["py3only>=1", "py3cap>=1;python_version<'3.12'"])
def test_unmarked_or_same_marker_accepted(proj, series, line):
    (proj / "requirements.txt").write_text(line + "\n")
    assert rules(proj, series, gate=True) == []


@pytest.mark.parametrize("line", [
    "py3spaced>=1",  # the gate matches the text: a spaced global marker is not py3-only to it
    "py3cap>=1",  # a cap on Python 3 is not a py3-only marker on the global side
    "py3only>=1;python_version>='3.9'",  # a different marker is still a mismatch
    "nomarker>=1;sys_platform=='linux'",
])
def test_marker_the_gate_rejects_is_a_mismatch(proj, series, line):
    (proj / "requirements.txt").write_text(line + "\n")
    assert rules(proj, series, gate=True) == [("marker-mismatch", "requirements.txt", 1)]


@pytest.mark.parametrize("marker", ["python_version<'3.12'", "python_version>='3.10' and sys_platform=='linux'"])
def test_py3_only_project_marker_against_unmarked_global_is_accepted(proj, series, marker):
    (proj / "requirements.txt").write_text(f"nomarker>=1;{marker}\n")
    assert rules(proj, series, gate=True) == []
