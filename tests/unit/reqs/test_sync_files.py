"""`reqs sync` writes files the tools can read (valid TOML, PEP 508 lines), in global-requirements' spelling,
with the project's line endings, and leaves nothing `reqs check` would then report."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

from stackcrate.cache import Cache
from stackcrate.reqs.check import check
from stackcrate.reqs.data import load_series_data
from stackcrate.reqs.projectfiles import read_project
from stackcrate.reqs.sync import sync, write
from tests.conftest import requirements_dir

from .seriesdata import check_project, write_series

GLOBAL = """\
oslo.config!=4.3.0  # Apache-2.0
SQLAlchemy  # MIT
xattr;sys_platform!='win32'  # MIT
twolines;python_version<'3.12'  # MIT
twolines;python_version>='3.12'  # MIT
"""
UC = "oslo.config===10.0.0\nSQLAlchemy===2.0.40\nxattr===1.1.4\ntwolines===2.1\n"


@pytest.fixture
def series(tmp_path) -> Path:
    return write_series(tmp_path, GLOBAL, UC)


def sync_and_parse(project: Path, sd) -> list[Path]:
    """Sync project, then read back every file sync wrote as the tools would (fails on a file they reject)."""
    result = sync(read_project(project), sd)
    write(result)
    for path in result.changed:
        if path.suffix == ".toml":
            data = tomllib.loads(path.read_text())
            project_table = data.get("project", {})
            items = [*project_table.get("dependencies", []),
                     *(x for v in project_table.get("optional-dependencies", {}).values() for x in v),
                     *(x for v in data.get("dependency-groups", {}).values() for x in v if isinstance(x, str))]
        elif path.name == "setup.cfg":
            cfg = configparser.ConfigParser()
            cfg.read_string(path.read_text())
            items = [x.strip() for v in cfg["extras"].values() for x in v.splitlines() if x.strip()]
        else:
            items = [b for b in (ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines())
                     if b and not b.startswith("-")]
        for item in items:
            Requirement(item)
    return sorted(result.changed)


def test_sync_adds_a_marker_inside_pyproject_strings_as_valid_toml(tmp_path, proj):
    data = requirements_dir("2026.1")
    sd = load_series_data("2026.1", Cache(tmp_path / "cache"), str(data))
    (proj / "pyproject.toml").write_text(
        '[project]\nname = "proj"\ndependencies = [\n    "zVMCloudConnector>=1.3.0",  # zvm\n]\n'
        "[project.optional-dependencies]\nfs = ['xattr>=1.0']\n"
        '[dependency-groups]\ntest = [{include-group = "x"}, "sqlalchemy>=2.0"]\nx = []\n')
    assert sync_and_parse(proj, sd) == [proj / "pyproject.toml"]
    assert (proj / "pyproject.toml").read_text() == (
        '[project]\nname = "proj"\ndependencies = [\n    "zVMCloudConnector>=1.3.0;sys_platform!=\'win32\'",'
        "  # zvm\n]\n"
        "[project.optional-dependencies]\nfs = [\"xattr>=1.0;sys_platform!='win32'\"]\n"
        '[dependency-groups]\ntest = [{include-group = "x"}, "SQLAlchemy>=2.0"]\nx = []\n')
    assert check(read_project(proj), sd) == []


def test_sync_writes_names_and_markers_in_global_spelling(proj, series):
    (proj / "requirements.txt").write_text(
        "# keep\noslo_config>=9.0.0  # Apache\nsqlalchemy>=2.0\nxattr>=1.0; sys_platform != \"win32\"  # MIT\n")
    sd, _ = check_project(proj, series)
    assert sync_and_parse(proj, sd) == [proj / "requirements.txt"]
    assert (proj / "requirements.txt").read_text() == (
        "# keep\noslo.config>=9.0.0  # Apache\nSQLAlchemy>=2.0\nxattr>=1.0;sys_platform!='win32'  # MIT\n")
    assert check_project(proj, series)[1] == []


def test_sync_keeps_crlf_line_endings(proj, series):
    (proj / "requirements.txt").write_bytes(b"# keep\r\nsqlalchemy>=2.0\r\nxattr>=1.0 # MIT\r\noslo.config>=9.0\r\n")
    sd, _ = check_project(proj, series)
    sync_and_parse(proj, sd)
    assert (proj / "requirements.txt").read_bytes() == (
        b"# keep\r\nSQLAlchemy>=2.0\r\nxattr>=1.0;sys_platform!='win32' # MIT\r\noslo.config>=9.0\r\n")


def test_sync_rewrites_doc_requirements_txt(proj, series):
    (proj / "requirements.txt").write_text("SQLAlchemy>=2.0\n")
    (proj / "doc").mkdir()
    (proj / "doc" / "requirements.txt").write_text("oslo_config>=9.0.0,!=9.1.0 # docs\n")
    sd, _ = check_project(proj, series)
    assert sync_and_parse(proj, sd) == [proj / "doc" / "requirements.txt"]
    assert (proj / "doc" / "requirements.txt").read_text() == "oslo.config>=9.0.0 # docs\n"
    assert check_project(proj, series)[1] == []


def test_sync_adds_a_line_per_global_marker(proj, series):
    (proj / "requirements.txt").write_text("twolines>=2.0;python_version<'3.12'  # MIT\nSQLAlchemy>=2.0")
    (proj / "setup.cfg").write_text("[extras]\nfast =\n  twolines>=1.5\n")
    (proj / "pyproject.toml").write_text('[project]\nname = "p"\ndependencies = ["twolines>=2.0"]\n')
    sd, _ = check_project(proj, series)
    assert len(sync_and_parse(proj, sd)) == 3
    assert (proj / "requirements.txt").read_text() == (
        "twolines>=2.0;python_version<'3.12'  # MIT\ntwolines>=2.0;python_version>='3.12'\nSQLAlchemy>=2.0")
    assert (proj / "setup.cfg").read_text() == (
        "[extras]\nfast =\n  twolines>=1.5;python_version<'3.12'\n  twolines>=1.5;python_version>='3.12'\n")
    assert (proj / "pyproject.toml").read_text() == (
        '[project]\nname = "p"\n'
        "dependencies = [\"twolines>=2.0;python_version<'3.12'\", \"twolines>=2.0;python_version>='3.12'\"]\n")
    assert check_project(proj, series)[1] == []


def test_sync_respells_a_marker_to_the_global_line_meaning_the_same(proj, series):
    (proj / "requirements.txt").write_text("twolines>=2.0; python_version >= \"3.12\"\n")
    sd, _ = check_project(proj, series)
    sync_and_parse(proj, sd)
    assert (proj / "requirements.txt").read_text() == (
        "twolines>=2.0;python_version>='3.12'\ntwolines>=2.0;python_version<'3.12'\n")


def test_sync_removes_a_repeat_inside_an_inline_array_and_keeps_the_rest_of_the_line(proj, series):
    (proj / "pyproject.toml").write_text(
        '[project]\nname = "proj"\ndependencies = ["SQLAlchemy>=2.0", "oslo.config>=9.0", "SQLAlchemy>=2.0"]\n'
        "[project.optional-dependencies]\nfs = ['SQLAlchemy>=2.0', 'SQLAlchemy>=2.0', 'xattr>=1.0']\n"
        'db = [\n    "SQLAlchemy>=2.0",\n    "SQLAlchemy>=2.0",\n]\n')
    sd, _ = check_project(proj, series)
    assert sync_and_parse(proj, sd) == [proj / "pyproject.toml"]
    assert (proj / "pyproject.toml").read_text() == (
        '[project]\nname = "proj"\ndependencies = ["SQLAlchemy>=2.0", "oslo.config>=9.0"]\n'
        "[project.optional-dependencies]\nfs = ['SQLAlchemy>=2.0', \"xattr>=1.0;sys_platform!='win32'\"]\n"
        'db = [\n    "SQLAlchemy>=2.0",\n]\n')
