"""Bad input to `stackcrate reqs`: one clear message naming what is wrong, exit 2, no traceback."""

from __future__ import annotations

import pytest


def _assert_clean_error(res, *needles: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    for n in needles:
        assert n in res.stderr, res.stderr


def test_missing_project_folder(stackcrate, tmp_path):
    _assert_clean_error(stackcrate("reqs", "check", tmp_path / "nope", "-s", "2026.1"),
                        "does not exist", str(tmp_path / "nope"))


def test_folder_without_requirement_files(stackcrate, tmp_path):
    _assert_clean_error(stackcrate("reqs", "check", tmp_path, "-s", "2026.1"), "holds no requirement files")


@pytest.mark.parametrize("command", ["check", "sync"])
def test_unparsable_requirement_line_names_file_and_line(stackcrate, tmp_path, command):
    (tmp_path / "requirements.txt").write_text("pbr>=2.0.0 # ok\n\noslo.config>=>1.0 # broken\n")
    _assert_clean_error(stackcrate("reqs", command, tmp_path, "-s", "2026.1"),
                        "requirements.txt:3", "cannot parse requirement 'oslo.config>=>1.0'")


def test_unparsable_line_in_pyproject_extras(stackcrate, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[project.optional-dependencies]\n'
                                             'ldap = [\n    "python-ldap>=3.0.0",\n    "ldappool>>2",\n]\n')
    _assert_clean_error(stackcrate("reqs", "check", tmp_path, "-s", "2026.1"), "pyproject.toml:7")


def test_unknown_series(stackcrate, tmp_path):
    (tmp_path / "requirements.txt").write_text("pbr>=2.0.0\n")
    _assert_clean_error(stackcrate("reqs", "check", tmp_path, "-s", "2042.7"), "unknown OpenStack series '2042.7'")
    _assert_clean_error(stackcrate("reqs", "diff", "2026.1", "zzz"), "unknown OpenStack series 'zzz'")


def test_diff_missing_file(stackcrate, tmp_path):
    _assert_clean_error(stackcrate("reqs", "diff", tmp_path / "a.lock", "2026.1"), "a.lock does not exist")


def test_series_folder_without_global_requirements(stackcrate, tmp_path):
    (tmp_path / "data" / "2026.1").mkdir(parents=True)
    (tmp_path / "data" / "2026.1" / "upper-constraints.txt").write_text("pbr===6.1.1\n")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "requirements.txt").write_text("pbr>=2.0.0\n")
    _assert_clean_error(stackcrate("reqs", "check", tmp_path / "p", "-s", "2026.1", "--constraints-dir",
                                   tmp_path / "data"), "no global-requirements.txt for series 2026.1")


def test_unparsable_bindep_names_the_file(stackcrate, tmp_path):
    (tmp_path / "requirements.txt").write_text("pbr>=2.0.0\n")
    (tmp_path / "bindep.txt").write_text("# system packages\nlibxml2-dev [platform:dpkg\n")
    _assert_clean_error(stackcrate("reqs", "inventory", "-s", "2026.1", "-c", f"svc={tmp_path}"),
                        f"{tmp_path / 'bindep.txt'}: cannot parse bindep.txt line 2")


@pytest.mark.parametrize("command", ["check", "sync"])
def test_truncated_pyproject_is_an_error_naming_the_file(stackcrate, tmp_path, command):
    text = '[project]\nname = "x"\ndependencies = [\n    "pbr>=2.0.0",\n'  # cut off before the closing ]
    (tmp_path / "pyproject.toml").write_text(text)
    _assert_clean_error(stackcrate("reqs", command, tmp_path, "-s", "2026.1"), "pyproject.toml: not valid TOML")
    assert (tmp_path / "pyproject.toml").read_text() == text  # sync wrote nothing


def test_non_utf8_requirements_file_is_an_error_naming_file_and_line(stackcrate, tmp_path):
    (tmp_path / "requirements.txt").write_bytes(b"pbr>=2.0.0\n# caf\xe9\noslo.config>=9.0.0\n")
    _assert_clean_error(stackcrate("reqs", "check", tmp_path, "-s", "2026.1"), "requirements.txt:2: not UTF-8 text")


def test_project_path_that_is_a_file_says_so(stackcrate, tmp_path):
    (tmp_path / "requirements.txt").write_text("pbr>=2.0.0\n")
    res = stackcrate("reqs", "check", tmp_path / "requirements.txt", "-s", "2026.1")
    _assert_clean_error(res, "is a file, not a project folder")
    assert "does not exist" not in res.stderr


def test_missing_series_file_hint_names_the_flag_when_the_flag_set_the_folder(stackcrate, tmp_path):
    (tmp_path / "data" / "2026.1").mkdir(parents=True)
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "requirements.txt").write_text("pbr>=2.0.0\n")
    res = stackcrate("reqs", "check", tmp_path / "p", "-s", "2026.1", "--constraints-dir", tmp_path / "data")
    _assert_clean_error(res, "--constraints-dir")
    assert "unset STACKCRATE_CONSTRAINTS_DIR" not in res.stderr
    (tmp_path / "data" / "2026.1").rmdir()
    res = stackcrate("reqs", "check", tmp_path / "p", "-s", "2026.1",
                     env={"STACKCRATE_CONSTRAINTS_DIR": str(tmp_path / "data")})
    _assert_clean_error(res, "unset STACKCRATE_CONSTRAINTS_DIR")
