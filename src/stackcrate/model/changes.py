"""What moved between two sets of package versions: shared by `reqs diff` (series, constraints, locks) and by
every re-lock, which tells what it changed against the lock it wrote over."""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

KINDS = ("added", "removed", "major", "minor", "patch", "downgraded", "changed")


def kind_of_change(old: str, new: str) -> str | None:
    """major / minor / patch / downgraded, "changed" between versions that are not PEP 440, None when equal."""
    try:
        a, b = Version(old), Version(new)
    except InvalidVersion:
        return None if old == new else "changed"
    if a == b:
        return None
    if b < a:
        return "downgraded"
    ra, rb = a.release + (0,) * 3, b.release + (0,) * 3
    if ra[0] != rb[0]:
        return "major"
    if ra[1] != rb[1]:
        return "minor"
    return "patch"  # third release part, or a post/pre/dev release


def version_changes(old: dict[str, str], new: dict[str, str]) -> list[dict]:
    """One row per package whose version moved, came or went, by name: {name, kind, old, new}."""
    rows = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        kind = "added" if a is None else "removed" if b is None else kind_of_change(a, b)
        if kind:
            rows.append({"name": key, "kind": kind, "old": a, "new": b})
    return rows


def change_lines(rows: list[dict]) -> list[str]:
    """The rows as a re-lock prints them: `  certifi: 2026.10.18 → 2026.10.19.post1 (patch)`."""
    return [f"  {r['name']}: {r['old'] or '-'} → {r['new'] or '-'} ({r['kind']})" for r in rows] \
        or ["  no version changed"]
