"""`stackcrate reqs diff` between two locks (the example keystone lock and an edited copy)."""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_diff_two_locks(stackcrate, tmp_path):
    old = REPO / "examples" / "keystone.lock"
    text = old.read_text()
    webob = re.search(r'^name = "webob"\nversion = "([^"]+)"', text, re.MULTILINE)
    six = re.search(r'^name = "six"\nversion = "([^"]+)"', text, re.MULTILINE)
    assert webob and six
    new_text = text.replace(webob.group(0), 'name = "webob"\nversion = "99.0.0"')
    new_text = new_text.replace(six.group(0), 'name = "six"\nversion = "0.1"')
    new = tmp_path / "new.lock"
    new.write_text(new_text)
    res = stackcrate("reqs", "diff", old, new, "--format", "json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert {(c["name"], c["kind"], c["old"], c["new"]) for c in data["changes"]} == {
        ("webob", "major", webob.group(1), "99.0.0"), ("six", "downgraded", six.group(1), "0.1")}
    assert data["counts"]["unchanged"] == len(re.findall(r"^\[\[packages\]\]", text, re.MULTILINE)) - 2
