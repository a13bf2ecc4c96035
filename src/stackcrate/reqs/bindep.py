"""System packages from a component's bindep.txt, per platform family.

bindep's selector rules: ``[platform:dpkg !platform:debian test]`` -- positive platform selectors are ORed,
negative ones must all miss; a line with profile selectors (``test``, ``doc``) only applies to those profiles.
We report what an installation needs (no profile), for the two package families OpenStack targets.
"""

from __future__ import annotations

import re

PLATFORMS = {
    # family -> the platform labels bindep gives a Debian 12 / a RHEL-like host
    "dpkg": {"dpkg", "debian", "debian-bookworm"},
    "rpm": {"rpm", "redhat", "rhel", "centos"},
}
_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9.+_:-]*)\s*(?:\[(?P<sel>[^\]]*)\])?\s*(?P<ver>[<>=!].*)?$")


def applies(selectors: list[str], labels: set[str], profiles: set[str]) -> bool:
    plat = [s for s in selectors if s.lstrip("!").startswith("platform:")]
    prof = [s for s in selectors if s not in plat]
    pos = [s.split(":", 1)[1] for s in plat if not s.startswith("!")]
    neg = [s.split(":", 1)[1] for s in plat if s.startswith("!")]
    if pos and not any(p in labels for p in pos):
        return False
    if any(n in labels for n in neg):
        return False
    ppos = [s for s in prof if not s.startswith("!")]
    pneg = [s[1:] for s in prof if s.startswith("!")]
    if ppos and not any(p in profiles for p in ppos):
        return False
    return not any(n in profiles for n in pneg)


def system_packages(text: str, profiles: set[str] | None = None) -> dict[str, list[str]]:
    """family -> sorted package names needed on it."""
    profiles = profiles or {"default"}
    out: dict[str, set[str]] = {f: set() for f in PLATFORMS}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        m = _LINE.match(line) if line else None
        if not m:
            continue
        sel = (m.group("sel") or "").split()
        for family, labels in PLATFORMS.items():
            if applies(sel, labels, profiles):
                out[family].add(m.group("name"))
    return {f: sorted(v) for f, v in out.items()}
