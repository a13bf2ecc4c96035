"""What OpenStack's requirements gate rejects and `reqs check` must report too: names and markers are
compared as written, a package on several global lines needs as many lines, and every file the gate reads
(doc/requirements.txt, pyproject's dependency-groups, included files) is checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackcrate.errors import StackcrateError
from stackcrate.reqs.projectfiles import read_project

from .seriesdata import check_project, write_series

GLOBAL = """\
oslo.config!=4.3.0  # Apache-2.0
SQLAlchemy  # MIT
xattr;sys_platform!='win32'  # MIT
zVMCloudConnector;sys_platform!='win32'  # Apache 2.0
twolines;python_version<'3.12'  # MIT
twolines>=2;python_version>='3.12'  # MIT
"""
UC = ("oslo.config===10.0.0\nSQLAlchemy===2.0.40\nxattr===1.1.4\nzVMCloudConnector===1.6.3\n"
      "twolines===2.1\n")


@pytest.fixture
def series(tmp_path) -> Path:
    return write_series(tmp_path, GLOBAL, UC)


def findings(project: Path, series: Path) -> list[tuple[str, str, int, str]]:
    return sorted((f.rule, f.file, f.line, f.message) for f in check_project(project, series)[1])


def test_same_marker_spelled_differently_is_a_marker_mismatch_naming_global_spelling(proj, series):
    (proj / "requirements.txt").write_text("xattr>=1.0; sys_platform != \"win32\"\nSQLAlchemy>=2.0\n")
    got = findings(proj, series)
    assert [(r, f, n) for r, f, n, _ in got] == [("marker-mismatch", "requirements.txt", 1)]
    assert "sys_platform!='win32'" in got[0][3]


def test_marker_spelled_as_in_global_is_accepted(proj, series):
    (proj / "requirements.txt").write_text("xattr>=1.0;sys_platform!='win32' # MIT\n")
    assert findings(proj, series) == []


def test_name_not_spelled_as_in_global_is_reported_with_global_spelling(proj, series):
    (proj / "requirements.txt").write_text("oslo_config>=9.0.0\nsqlalchemy>=2.0\n")
    got = findings(proj, series)
    assert [(r, f, n) for r, f, n, _ in got] == [("name-spelling", "requirements.txt", 1),
                                                 ("name-spelling", "requirements.txt", 2)]
    assert "spelled oslo.config" in got[0][3] and "spelled SQLAlchemy" in got[1][3]


def test_doc_requirements_txt_is_checked(proj, series):
    (proj / "requirements.txt").write_text("SQLAlchemy>=2.0\n")
    (proj / "doc").mkdir()
    (proj / "doc" / "requirements.txt").write_text("sphinx>=2.0\nxattr>=1.0\n")
    got = [(r, f, n) for r, f, n, _ in findings(proj, series)]
    assert got == [("marker-mismatch", "doc/requirements.txt", 2), ("not-in-global", "doc/requirements.txt", 1)]


def test_pyproject_dependency_groups_are_checked_and_include_group_is_no_requirement(proj, series):
    (proj / "pyproject.toml").write_text(
        '[project]\nname = "proj"\ndependencies = ["SQLAlchemy>=2.0"]\n\n'
        '[dependency-groups]\n'
        'test = [\n    "oslo_config>=9.0.0",  # a comment\n    {include-group = "docs"},\n]\n'
        'docs = [{ include-group = "test" }, "sphinx>=2.0"]\n')
    reqs = read_project(proj)
    assert [(r.section, r.text) for r in reqs] == [
        ("dependencies", "SQLAlchemy>=2.0"), ("dependency-group: test", "oslo_config>=9.0.0"),
        ("dependency-group: docs", "sphinx>=2.0")]
    got = [(r, f, n) for r, f, n, _ in findings(proj, series)]
    assert got == [("name-spelling", "pyproject.toml", 7), ("not-in-global", "pyproject.toml", 10)]


def test_package_on_two_global_lines_needs_two_lines(proj, series):
    (proj / "requirements.txt").write_text("twolines>=2;python_version>='3.12'\n")
    got = findings(proj, series)
    assert [(r, f, n) for r, f, n, _ in got] == [("line-count", "requirements.txt", 1)]
    assert "1 line(s) here, global-requirements has 2" in got[0][3]
    (proj / "requirements.txt").write_text("twolines>=2.0;python_version<'3.12'\ntwolines>=2;python_version>='3.12'\n")
    assert findings(proj, series) == []


def test_included_file_is_checked_relative_to_the_including_file(proj, series):
    (proj / "requirements.txt").write_text("SQLAlchemy>=2.0\n")
    (proj / "test-requirements.txt").write_text("-r requirements.txt\n-r extra/more.txt  # more\n")
    (proj / "extra").mkdir()
    (proj / "extra" / "more.txt").write_text("-c pins.txt\nunknown-lib>=1\n")
    (proj / "extra" / "pins.txt").write_text("sqlalchemy>=2.0\n")
    got = [(r, f, n) for r, f, n, _ in findings(proj, series)]
    # requirements.txt, included by test-requirements.txt, is read once: no duplicate findings
    assert got == [("name-spelling", "extra/pins.txt", 1), ("not-in-global", "extra/more.txt", 2)]


def test_missing_included_file_is_an_error_naming_the_line(proj, series):
    (proj / "requirements.txt").write_text("SQLAlchemy>=2.0\n\n--requirement=nothere.txt\n")
    with pytest.raises(StackcrateError) as err:
        read_project(proj)
    assert err.value.where == "requirements.txt:3"
    assert "nothere.txt" in err.value.message
