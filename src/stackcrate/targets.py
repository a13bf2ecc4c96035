"""Target platforms: the distribution a build runs on, and its own Python interpreter."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from packaging import tags

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

    @cached_property
    def wheel_ranks(self) -> dict[tags.Tag, int]:
        """Every wheel tag the target's interpreter installs, ranked most specific first (rank 0)."""
        arch, _, plat = self.uv_platform.partition("-")
        major, minor = (int(x) for x in plat.removeprefix("manylinux_").split("_"))
        platforms = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 16, -1)]
        platforms += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}", f"linux_{arch}"]
        py = tuple(int(x) for x in self.python_minor.split("."))
        interp = f"cp{py[0]}{py[1]}"
        ordered = list(tags.cpython_tags(py, [interp], platforms)) + list(tags.compatible_tags(py, interp, platforms))
        return {t: i for i, t in reversed(list(enumerate(ordered)))}


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
