"""`stackcrate reqs check`: a project's requirements against a series' global-requirements and constraints.

The rules are the ones OpenStack's requirements job enforces on every project (openstack/requirements'
check-requirements): a project may only use what global-requirements lists (denylisted packages are left to
the project), spelled as there (name and marker text alike: the gate compares the text as written, not its
meaning), on as many lines as there (one per marker), with no exclusions or caps the global list does not
have, a lower bound, no duplicates; and the series' upper-constraints must satisfy both the project and the
global list, since the gate installs exactly those pins. The last two (BEYOND_GATE) are stackcrate's own:
each such finding says so, and ``gate=True`` leaves them out so the verdict is exactly the gate's.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from packaging.version import InvalidVersion, Version

from ..constraints import ConstraintLine
from .data import SeriesData
from .projectfiles import ProjectReq, written_marker

RULES = {
    "not-in-global": "every requirement must be listed in global-requirements (unless denylisted)",
    "name-spelling": "a package name is spelled as in global-requirements",
    "marker-mismatch": "environment markers must be written as in global-requirements",
    "line-count": "a package global-requirements lists on several lines (one per marker) needs as many lines",
    "extra-exclusion": "no exclusions (!=) beyond those in global-requirements",
    "extra-cap": "no caps or pins (<, <=, ~=, ==) beyond those in global-requirements",
    "no-lower-bound": "every requirement needs a lower bound (>=)",
    "duplicate": "a package is listed once per file (and extra)",
    "constraint-mismatch": "the series' upper-constraints pin must satisfy the requirement",
    "constraint-vs-global": "the series' upper-constraints pin must satisfy global-requirements",
}
# Rules the gate does not have: its job checks a project's files against global-requirements only.
BEYOND_GATE = ("constraint-mismatch", "constraint-vs-global")
BEYOND_GATE_NOTE = " (stackcrate's rule, not the gate's)"
# The gate lets a marker that only says "Python 3" stand for no marker, both ways (py2 is gone, so such a
# marker is always true). Its test is a match at the start of the marker text as written, so spacing counts
# and anything after the python_version clause is ignored; the global side may only narrow to ==, >=, >.
PY3_ONLY_GLOBAL = re.compile(r"""python_version(?:==|>=|>)['"]3\.\d+['"]""")
PY3_ONLY_LOCAL = re.compile(r"""python_version(?:==|>=|>|<=|<)['"]3\.\d+['"]""")
CAP_OPS = ("<", "<=", "~=", "==", "===")
LOWER_OPS = (">=", ">", "~=", "==", "===")


@dataclass
class Finding:
    rule: str
    file: str
    line: int
    name: str
    message: str

    def render(self) -> str:
        return f"{self.file}:{self.line}: [{self.rule}] {self.message}"

    def to_dict(self) -> dict:
        return asdict(self)


def marker_accepted(local: str, global_: str) -> bool:
    """Whether the gate takes the project's marker text for global-requirements' one."""
    if local == global_:
        return True
    if not local:
        return bool(PY3_ONLY_GLOBAL.match(global_))
    return not global_ and bool(PY3_ONLY_LOCAL.match(local))


def global_line(sd: SeriesData, r: ProjectReq) -> ConstraintLine | None:
    """The global-requirements line for this requirement: the one with the same marker text, else the one whose
    marker means the same (so sync respells it, not picks another line's marker), else the first."""
    lines = sd.global_reqs.get(r.name)
    if not lines:
        return None
    return next((g for g in lines if written_marker(g.text) == r.marker), None) or next(
        (g for g in lines if g.requirement.marker == r.requirement.marker), lines[0])


def gate_line(sd: SeriesData, r: ProjectReq) -> ConstraintLine | None:
    """The line the gate compares the requirement with: one whose marker it accepts (a py3-only one stands for
    none), else global_line's choice."""
    lines = sd.global_reqs.get(r.name) or []
    return next((g for g in lines if written_marker(g.text) == r.marker), None) or next(
        (g for g in lines if marker_accepted(r.marker, written_marker(g.text))), None) or global_line(sd, r)


def _accepts(spec, version: str) -> bool:
    try:
        return spec.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return True  # a legacy version string: nothing to say about it


def check(reqs: list[ProjectReq], sd: SeriesData, gate: bool = False) -> list[Finding]:
    """The findings on reqs; with gate, only the gate's rules (none of BEYOND_GATE)."""
    findings: list[Finding] = []
    seen: dict[tuple, ProjectReq] = {}
    global_checked: set[str] = set()
    for r in reqs:
        req, name = r.requirement, r.requirement.name

        def add(rule: str, msg: str, _r: ProjectReq = r) -> None:
            findings.append(Finding(rule, _r.rel, _r.lineno, _r.requirement.name, msg))

        key = (r.rel, r.section, r.name, r.marker)
        if key in seen:
            add("duplicate", f"{name} is already listed at line {seen[key].lineno}"
                + (f" ({r.section})" if r.section else ""))
            continue
        seen[key] = r
        if r.name in sd.denylist:
            continue  # denylisted packages are managed by each project as it sees fit
        gl = gate_line(sd, r)
        if gl is None:
            add("not-in-global", f"{name} is not in {sd.series} global-requirements")
            continue
        g = gl.requirement
        if name != g.name:
            add("name-spelling", f"{name} is spelled {g.name} in global-requirements; write it so")
        markers = {written_marker(x.text) for x in sd.global_reqs[r.name]}
        if not any(marker_accepted(r.marker, m) for m in markers):
            want = " or ".join(repr(m) if m else "no marker" for m in sorted(markers))
            add("marker-mismatch", f"{name} has marker {r.marker or 'none'!r}; global-requirements has {want} "
                "(the text must be the same)")
        g_excl = {s.version for s in g.specifier if s.operator == "!="}
        g_caps = {str(s) for s in g.specifier if s.operator in CAP_OPS}
        extra_excl = sorted(s.version for s in req.specifier if s.operator == "!=" and s.version not in g_excl)
        if extra_excl:
            add("extra-exclusion", f"{name} excludes {', '.join(extra_excl)}, which global-requirements "
                f"({g}) does not")
        extra_caps = sorted(str(s) for s in req.specifier if s.operator in CAP_OPS and str(s) not in g_caps)
        if extra_caps:
            add("extra-cap", f"{name} is capped/pinned by {', '.join(extra_caps)}, which global-requirements "
                f"({g}) does not")
        if not any(s.operator in LOWER_OPS for s in req.specifier):
            add("no-lower-bound", f"{name} has no lower bound; add >=VERSION")
        if gate:
            continue
        pins = sd.constraints.get(r.name, [])
        versions = sd.constraint_versions(r.name)
        if versions and not any(_accepts(req.specifier, v) for v in versions):
            add("constraint-mismatch", f"{name}{req.specifier} rejects the {sd.series} upper-constraints pin "
                f"{', '.join(versions)}{BEYOND_GATE_NOTE}")
        if versions and r.name not in global_checked:
            global_checked.add(r.name)
            if not any(_accepts(g.specifier, v) for v in versions):
                findings.append(Finding("constraint-vs-global", sd.constraints_source, pins[0].lineno, name,
                                        f"the upper-constraints pin {pins[0].text} does not satisfy the global "
                                        f"requirement {g} (used at {r.where}){BEYOND_GATE_NOTE}"))
    return findings + line_counts(list(seen.values()), sd)  # a duplicate is reported once, as such


def line_counts(reqs: list[ProjectReq], sd: SeriesData) -> list[Finding]:
    """A package global-requirements lists on n lines (one per marker) takes n lines in each file section
    that lists it, counted per extra as the gate does (``oslo.db[mysql]`` apart from ``oslo.db``)."""
    groups: dict[tuple, list[ProjectReq]] = {}
    for r in reqs:
        if r.name in sd.global_reqs and r.name not in sd.denylist:
            for extra in sorted(r.requirement.extras) or [""]:
                groups.setdefault((r.rel, r.section, r.name, extra), []).append(r)
    out = []
    for (_, _, name, extra), group in groups.items():
        want = sd.global_reqs[name]
        if len(group) != len(want):
            first = group[0]
            out.append(Finding("line-count", first.rel, first.lineno, first.requirement.name,
                               f"{first.requirement.name}{f'[{extra}]' if extra else ''} is on {len(group)} "
                               f"line(s) here, global-requirements has {len(want)}: "
                               + "; ".join(g.text for g in want)))
    return out
