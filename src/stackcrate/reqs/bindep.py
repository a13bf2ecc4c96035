"""System packages from a component's bindep.txt, per package family, as the inventory reports them.

Evaluated with the bindep library for the default profile (what `bindep` lists on a host with no profile
given), so build headers stay in: the inventory says what a source installation of the service needs. The
runtime subset a built package declares is package/sysdeps.py's business.
"""

from __future__ import annotations

from ..package.sysdeps import PLATFORMS, parse_bindep


def families(target: str | None) -> dict[str, list[str]]:
    """family -> the bindep platform profiles of the target's distribution (dpkg) and of RHEL-like hosts (rpm)."""
    return {"dpkg": PLATFORMS.get(target or "", PLATFORMS["debian-bookworm"]), "rpm": PLATFORMS["rpm"]}


def system_packages(text: str, where: str, target: str | None = None) -> dict[str, list[str]]:
    """family -> sorted package names a source installation needs on it."""
    deps = parse_bindep(text, where)
    return {family: sorted({name for name, _sel, _ver in deps.active_rules([*labels, "default"])})
            for family, labels in families(target).items()}
