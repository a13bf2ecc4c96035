"""`stackcrate reqs check` and `sync` on the real keystone 29.1.0 sdist against the real 2026.1 data."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path


def check_json(stackcrate, tree: Path, *extra: str) -> tuple[int, dict]:
    res = stackcrate("reqs", "check", tree, "--series", "2026.1", "--format", "json", *extra)
    assert res.returncode in (0, 1), res.stderr
    return res.returncode, json.loads(res.stdout)


def replace_line(path: Path, old: str, new: str) -> int:
    """Replace the line starting with `old` and return its 1-based number."""
    lines = path.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith(old):
            lines[i] = new + "\n"
            path.write_text("".join(lines))
            return i + 1
    raise AssertionError(f"{old!r} not in {path}")


def append_line(path: Path, text: str) -> int:
    content = path.read_text()
    if not content.endswith("\n"):
        content += "\n"
    path.write_text(content + text + "\n")
    return len((content + text).splitlines())


def test_real_keystone_tree_is_clean_and_sync_changes_nothing(stackcrate, keystone_tree):
    rc, data = check_json(stackcrate, keystone_tree)
    # keystone passes OpenStack's own requirements job, so every finding here would be a false positive
    assert rc == 0, data["findings"]
    # requirements.txt + test-requirements.txt + doc/requirements.txt + the ldap extra of pyproject.toml, counted
    # our own way
    expected = 0
    for f in ("requirements.txt", "test-requirements.txt", "doc/requirements.txt"):
        expected += sum(1 for ln in (keystone_tree / f).read_text().splitlines()
                        if ln.split("#")[0].strip())
    py = (keystone_tree / "pyproject.toml").read_text()
    extras = py.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    expected += len(re.findall(r'^\s*"[^"]+"', extras, re.MULTILINE))
    assert data["requirements"] == expected
    res = stackcrate("reqs", "sync", keystone_tree, "--series", "2026.1", "--check")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 file(s) would change" in res.stdout


def test_planted_violations_each_reported_then_sync_fixes(stackcrate, keystone_copy):
    req, test_req, pyproject = (keystone_copy / n for n in ("requirements.txt", "test-requirements.txt",
                                                             "pyproject.toml"))
    planted = {
        ("not-in-global", "requirements.txt", append_line(req, "surely-not-a-global-req>=1.0  # planted")),
        ("marker-mismatch", "requirements.txt",
         # (not a python_version<'3.x' marker: the gate lets a py3 version marker differ from an unmarked line)
         replace_line(req, "oslo.context>=", "oslo.context>=2.22.0;sys_platform=='win32' # Apache-2.0")),
        ("extra-exclusion", "requirements.txt",
         replace_line(req, "oslo.i18n>=", "oslo.i18n!=6.0.0,>=3.15.3 # Apache-2.0")),
        ("extra-cap", "requirements.txt", replace_line(req, "oslo.log>=", "oslo.log>=3.44.0,<999 # Apache-2.0")),
        ("no-lower-bound", "test-requirements.txt", replace_line(test_req, "fixtures>=", "fixtures # Apache")),
        ("constraint-mismatch", "requirements.txt",
         replace_line(req, "oslo.policy>=", "oslo.policy>=999.0 # Apache-2.0")),
        ("duplicate", "pyproject.toml", _duplicate_in_pyproject(pyproject)),
    }
    rc, data = check_json(stackcrate, keystone_copy)
    assert rc == 1
    got = {(f["rule"], f["file"], f["line"]) for f in data["findings"]}
    assert got == planted, f"missing {planted - got}, unexpected {got - planted}"

    # text output names file, line and rule too
    res = stackcrate("reqs", "check", keystone_copy, "--series", "2026.1")
    assert res.returncode == 1
    for rule, file, line in planted:
        assert f"{file}:{line}: [{rule}]" in res.stdout

    before = req.read_text()
    res = stackcrate("reqs", "sync", keystone_copy, "--series", "2026.1", "--check")
    assert res.returncode == 1 and "+oslo.policy>=" in res.stdout
    assert req.read_text() == before  # --check writes nothing

    res = stackcrate("reqs", "sync", keystone_copy, "--series", "2026.1")
    assert res.returncode == 0, res.stderr
    assert "surely-not-a-global-req is not in 2026.1 global-requirements" in res.stdout
    rc, data = check_json(stackcrate, keystone_copy)
    # only what sync must not decide for the project is left: the package global-requirements does not know
    assert [(f["rule"], f["file"]) for f in data["findings"]] == [("not-in-global", "requirements.txt")]
    # comments and order stay; the fixed lines carry their comments
    text = req.read_text()
    assert "oslo.log>=3.44.0 # Apache-2.0" in text and "oslo.i18n>=3.15.3 # Apache-2.0" in text
    assert text.splitlines()[:3] == before.splitlines()[:3]
    assert "fixtures>=" in test_req.read_text() and "# Apache" in test_req.read_text()
    assert pyproject.read_text().count('"ldappool') == 1

    # drop the planted unknown package: now check passes
    req.write_text("".join(ln for ln in text.splitlines(keepends=True) if "surely-not" not in ln))
    rc, data = check_json(stackcrate, keystone_copy)
    assert rc == 0, data["findings"]


def _duplicate_in_pyproject(pyproject: Path) -> int:
    lines = pyproject.read_text().splitlines(keepends=True)
    i = next(i for i, ln in enumerate(lines) if ln.strip().startswith('"ldappool'))
    lines.insert(i + 1, '    "ldappool>=2.3.1", # planted duplicate\n')
    pyproject.write_text("".join(lines))
    return i + 2


def test_constraint_that_global_requirements_rejects(stackcrate, keystone_tree, constraints_dir, tmp_path):
    """Series data where an upper-constraints pin breaks global-requirements (built in a temp folder)."""
    data = tmp_path / "reqs" / "2026.1"
    shutil.copytree(constraints_dir / "2026.1", data)
    # pick a package keystone requires whose global line excludes a version; pin that version
    global_lines = (data / "global-requirements.txt").read_text().splitlines()
    uses = {re.split(r"[<>=!~\[;# ]", ln, maxsplit=1)[0].lower()
            for ln in (keystone_tree / "requirements.txt").read_text().splitlines() if ln and ln[0].isalpha()}
    name = excluded = None
    for ln in global_lines:
        m = re.match(r"^([A-Za-z0-9._-]+)[^#]*!=([0-9][^,;# ]*)", ln)
        if m and m.group(1).lower() in uses:
            name, excluded = m.group(1), m.group(2)
            break
    assert name, "no excluded version found for any keystone requirement"
    uc = (data / "upper-constraints.txt").read_text().splitlines()
    lineno = next(i for i, ln in enumerate(uc, 1) if ln.lower().startswith(name.lower() + "==="))
    uc[lineno - 1] = f"{name}==={excluded}"
    (data / "upper-constraints.txt").write_text("\n".join(uc) + "\n")
    rc, out = check_json(stackcrate, keystone_tree, "--constraints-dir", tmp_path / "reqs")
    assert rc == 1
    hits = [f for f in out["findings"] if f["rule"] == "constraint-vs-global"]
    assert [(f["file"], f["line"], f["name"].lower()) for f in hits] == \
        [(str(data / "upper-constraints.txt"), lineno, name.lower())]


def test_keystone_2026_1_against_the_older_2024_1_pins(stackcrate, keystone_tree, constraints_dir):
    """Lower bounds raised since 2024.1 must show up as constraint-mismatch, exactly those (counted here
    by a plain reading of the files)."""
    from packaging.version import Version

    pins = {}
    for ln in (constraints_dir / "2024.1" / "upper-constraints.txt").read_text().splitlines():
        if "===" in ln and ";" not in ln:
            name, version = ln.split("#")[0].strip().split("===")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = Version(version)
    want = set()
    for f in ("requirements.txt", "test-requirements.txt"):
        for i, ln in enumerate((keystone_tree / f).read_text().splitlines(), 1):
            m = re.match(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?([^#;]*)", ln.split("#")[0].strip())
            if not m or not m.group(1):
                continue
            name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
            low = re.search(r">=([0-9][^,]*)", m.group(2))
            excluded = {Version(v) for v in re.findall(r"!=([0-9][^,]*)", m.group(2))}
            if name in pins and ((low and pins[name] < Version(low.group(1))) or pins[name] in excluded):
                want.add((f, i))
    assert want, "keystone 29.1.0 raised no lower bound since 2024.1?"
    res = stackcrate("reqs", "check", keystone_tree, "--series", "2024.1", "--format", "json")
    assert res.returncode == 1
    got = {(f["file"], f["line"]) for f in json.loads(res.stdout)["findings"] if f["rule"] == "constraint-mismatch"}
    assert got == want
