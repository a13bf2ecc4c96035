"""Target platforms: the distribution a build runs on, and its own Python interpreter."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import StackcrateError


@dataclass(frozen=True)
class Target:
    name: str
    distro: str                 # debian
    suite: str                  # bookworm
    python: str                 # the target's interpreter, at its path on the target
    python_version: str         # full version, for marker evaluation
    python_package: str         # the distribution package providing it
    uv_platform: str            # uv --python-platform value (glibc of the target)
    mirror: str = "http://deb.debian.org/debian"

    @property
    def python_minor(self) -> str:
        return ".".join(self.python_version.split(".")[:2])


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("debian-bookworm", "debian", "bookworm", "/usr/bin/python3.11", "3.11.2", "python3.11",
               "x86_64-manylinux_2_36"),
        Target("debian-trixie", "debian", "trixie", "/usr/bin/python3.13", "3.13.5", "python3.13",
               "x86_64-manylinux_2_40"),
    )
}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise StackcrateError(
            f"unknown target {name!r}", hint=f"use one of: {', '.join(sorted(TARGETS))}"
        ) from None
