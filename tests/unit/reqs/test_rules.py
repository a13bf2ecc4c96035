"""check and sync on small projects written by the tests, against a tiny series folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackcrate.reqs.projectfiles import read_project
from stackcrate.reqs.sync import sync, write

from .seriesdata import check_project, write_series

GLOBAL = """\
## section:general
oslo.config!=4.3.0  # Apache-2.0
requests!=2.20.0  # Apache-2.0
xattr;sys_platform!='win32'  # MIT
boto3<1.36  # Apache-2.0
ovs  # Apache-2.0
"""
UC = "oslo.config===10.0.0\nrequests===2.32.3\nxattr===1.1.4\nboto3===1.35.0\nhacking===6.1.0\novs===3.5.0\n"


@pytest.fixture
def series(tmp_path) -> Path:
    return write_series(tmp_path, GLOBAL, UC)


def run_check(project: Path, series: Path):
    sd, findings = check_project(project, series)
    return sd, [(f.rule, f.file, f.line) for f in findings]


def test_each_rule_on_its_line(tmp_path, series):
    p = tmp_path / "proj"
    p.mkdir()
    (p / "requirements.txt").write_text(
        "# comment\n"
        "oslo.config>=9.0.0,!=9.1.0  # extra exclusion\n"     # 2
        "requests<3,>=2.14  # cap\n"                          # 3
        "xattr>=1.0  # marker missing\n"                      # 4
        "boto3  # no lower bound\n"                           # 5
        "unknown-lib>=1\n"                                    # 6
        "hacking>=99  # denylisted: anything goes\n"          # 7
        "requests>=2.0\n")                                    # 8 duplicate
    (p / "setup.cfg").write_text("[metadata]\nname = proj\n\n[extras]\nfast =\n  oslo.config>=11.0.0 # too new\n")
    _, got = run_check(p, series)
    assert sorted(got) == sorted([
        ("extra-exclusion", "requirements.txt", 2), ("extra-cap", "requirements.txt", 3),
        ("marker-mismatch", "requirements.txt", 4), ("no-lower-bound", "requirements.txt", 5),
        ("not-in-global", "requirements.txt", 6), ("duplicate", "requirements.txt", 8),
        ("constraint-mismatch", "setup.cfg", 6)])


def test_sync_rewrites_only_the_requirement_span(tmp_path, series):
    p = tmp_path / "proj"
    p.mkdir()
    (p / "requirements.txt").write_text(
        "# keep me\noslo.config>=9.0.0,!=9.1.0  # Apache\nrequests<3,>=2.14 # Apache\nxattr>=1.0  # MIT\n"
        "boto3  # Apache\nrequests>=2.0\novs>3.3.0 # a strict bound stays strict\n")
    (p / "setup.cfg").write_text("[extras]\nfast =\n  oslo.config>=11.0.0 # too new\n")
    sd, _ = run_check(p, series)
    write(sync(read_project(p), sd))
    assert (p / "requirements.txt").read_text() == (
        "# keep me\noslo.config>=9.0.0  # Apache\nrequests>=2.14 # Apache\n"
        "xattr>=1.0;sys_platform!='win32'  # MIT\nboto3>=1.35.0,<1.36  # Apache\n"
        "ovs>3.3.0 # a strict bound stays strict\n")
    assert (p / "setup.cfg").read_text() == "[extras]\nfast =\n  oslo.config>=10.0.0 # too new\n"
    assert run_check(p, series)[1] == []
