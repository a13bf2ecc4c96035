"""`stackcrate reqs diff 2025.1 2026.1`: counts checked against our own reading of the two files."""

from __future__ import annotations

import json
import re

from packaging.markers import Marker
from packaging.version import Version


def pins(path, python="3.11") -> dict[str, str]:
    """name -> version, read the plain way: name===version[;marker], comments skipped."""
    out = {}
    for line in path.read_text().splitlines():
        body = line.split("#")[0].strip()
        if not body:
            continue
        spec, _, marker = body.partition(";")
        if marker and not Marker(marker).evaluate({"python_version": python, "python_full_version": python + ".0"}):
            continue
        name, version = spec.split("===")
        out[re.sub(r"[-_.]+", "-", name.strip()).lower()] = version.strip()
    return out


def test_diff_counts_match_the_files(stackcrate, constraints_dir):
    old, new = pins(constraints_dir / "2025.1" / "upper-constraints.txt"), \
        pins(constraints_dir / "2026.1" / "upper-constraints.txt")
    want = {"added": len(new.keys() - old.keys()), "removed": len(old.keys() - new.keys()),
            "major": 0, "minor": 0, "patch": 0, "downgraded": 0, "unchanged": 0}
    for name in old.keys() & new.keys():
        a, b = Version(old[name]), Version(new[name])
        if a == b:
            want["unchanged"] += 1
        elif b < a:
            want["downgraded"] += 1
        else:
            ra, rb = (list(v.release) + [0, 0, 0] for v in (a, b))
            want["major" if ra[0] != rb[0] else "minor" if ra[1] != rb[1] else "patch"] += 1
    assert want["added"] > 10 and want["removed"] > 10 and want["major"] > 10  # the data really differs

    res = stackcrate("reqs", "diff", "2025.1", "2026.1", "--format", "json")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)["counts"]
    assert {k: got[k] for k in want} == want
    assert got["upgraded"] == want["major"] + want["minor"] + want["patch"]

    table = stackcrate("reqs", "diff", "2025.1", "2026.1")
    assert table.returncode == 0
    assert f"{want['added']} added, {want['removed']} removed" in table.stdout
    # one row per change, each naming its kind
    rows = [ln.split() for ln in table.stdout.splitlines()[3:] if ln.strip()]
    changed = sum(v for k, v in want.items() if k != "unchanged")
    assert len(rows) == changed
    assert {r[0] for r in rows if r[1] == "added"} == new.keys() - old.keys()
