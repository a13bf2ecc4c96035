"""OpenStack release series: which exist, and which Python versions each was tested with.

The Python ranges follow OpenStack's "Python runtimes" per release (governance PTI). A series whose tested
range ends below the target's interpreter cannot be built for that target: its pinned dependencies predate it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import StackcrateError


@dataclass(frozen=True)
class Series:
    name: str
    python_min: tuple[int, int]
    python_max: tuple[int, int]

    @property
    def python_range(self) -> str:
        return f"{self.python_min[0]}.{self.python_min[1]}–{self.python_max[0]}.{self.python_max[1]}"


def _s(name: str, lo: str, hi: str) -> Series:
    a, b = (tuple(int(x) for x in v.split(".")) for v in (lo, hi))
    return Series(name, a, b)  # type: ignore[arg-type]


_ALL = [
    _s("austin", "2.6", "2.7"), _s("bexar", "2.6", "2.7"), _s("cactus", "2.6", "2.7"),
    _s("diablo", "2.6", "2.7"), _s("essex", "2.6", "2.7"), _s("folsom", "2.6", "2.7"),
    _s("grizzly", "2.6", "2.7"), _s("havana", "2.6", "2.7"), _s("icehouse", "2.6", "2.7"),
    _s("juno", "2.6", "2.7"), _s("kilo", "2.7", "2.7"), _s("liberty", "2.7", "3.4"),
    _s("mitaka", "2.7", "3.4"), _s("newton", "2.7", "3.5"), _s("ocata", "2.7", "3.5"),
    _s("pike", "2.7", "3.5"), _s("queens", "2.7", "3.5"), _s("rocky", "2.7", "3.6"),
    _s("stein", "2.7", "3.7"), _s("train", "2.7", "3.7"), _s("ussuri", "3.6", "3.8"),
    _s("victoria", "3.6", "3.8"), _s("wallaby", "3.6", "3.9"), _s("xena", "3.6", "3.9"),
    _s("yoga", "3.8", "3.9"), _s("zed", "3.8", "3.10"), _s("2023.1", "3.8", "3.10"),
    _s("2023.2", "3.8", "3.11"), _s("2024.1", "3.8", "3.11"), _s("2024.2", "3.9", "3.12"),
    _s("2025.1", "3.9", "3.12"), _s("2025.2", "3.10", "3.13"), _s("2026.1", "3.10", "3.13"),
    _s("2026.2", "3.10", "3.13"), _s("master", "3.10", "3.13"),
]
SERIES: dict[str, Series] = {s.name: s for s in _ALL}
# Names people also use for the numbered series.
ALIASES = {"antelope": "2023.1", "bobcat": "2023.2", "caracal": "2024.1", "dalmatian": "2024.2",
           "epoxy": "2025.1", "flamingo": "2025.2", "gazpacho": "2026.1", "hibiscus": "2026.2"}


def get_series(name: str) -> Series:
    key = ALIASES.get(str(name).lower(), str(name).lower())
    if key not in SERIES:
        recent = [s.name for s in _ALL[-8:]]
        raise StackcrateError(
            f"unknown OpenStack series {name!r}",
            hint=f"use a release series name such as {', '.join(recent)} (or kilo, train, ...)",
        )
    return SERIES[key]


def require_buildable(series: Series, python_minor: str, target_name: str) -> None:
    """Refuse early, in words, when a series cannot run on the target's interpreter."""
    want = tuple(int(x) for x in python_minor.split("."))
    if want > series.python_max or want < series.python_min:
        era = "a Python 2 era series" if series.python_min[0] == 2 else "an older series"
        raise StackcrateError(
            f"series {series.name} cannot be built for {target_name}: it is {era}, tested on Python "
            f"{series.python_range}, and {target_name} has Python {python_minor}",
            hint="choose a series tested on the target's Python, or use `stackcrate reqs` to inspect "
            "this series from its requirement files alone",
        )
