"""Config overrides (configuration.yaml `overrides:`) checked against each service's own oslo.config options
before anything of the deployment is written or started: an unknown section, an unknown option or a value the
option's type rejects is an error naming configuration.yaml's line and the field, never a service that
crash-loops on it minutes later. An option the service deprecated (a former name, or one it will drop) is a
warning naming the line and what to write instead: the service still reads it.

Only the service's venv knows its options (they depend on the exact releases in it), so its own Python runs
option_probe.py; the verdict is cached by the venv's artifact and the overrides, so a second `start` costs
nothing, and a service without overrides costs nothing at all.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import tools
from ..cache import Cache, digest_of, sha256_file
from ..errors import StackcrateError
from ..yamlfile import node_line
from .config import Deployment
from .configs import ini_value
from .install import artifacts
from .openstack import SERVICES
from .processes import services_here
from .timer import Timer

PROBE = Path(__file__).with_name("option_probe.py")
PROBE_TIMEOUT = 120.0  # listing every option of neutron's venv takes ~4 s on two cores
SCALARS = (str, int, float, bool)


@dataclass(frozen=True)
class Request:
    """What to check for one service: its overrides as the ini file will hold them, in its own venv."""

    service: str
    python: Path
    artifact: str                                  # sha256 of the artifact installed as that venv
    sections: dict[str, dict[str, str | None]]     # None: not an ini value (reported here, not by the probe)
    aliases: dict[str, str] = field(default_factory=dict)

    def key(self) -> str:
        # The probe's own text is part of the key: a fixed check must not return an old verdict.
        return digest_of({"artifact": self.artifact, "sections": self.sections, "aliases": self.aliases,
                          "probe": sha256_file(PROBE)})


@dataclass(frozen=True)
class Problem:
    service: str
    section: str
    option: str | None        # None: the section itself is unknown
    kind: str                 # "section", "option", "value", "not-scalar", "deprecated" (a warning only);
                              # Django's: "setting", "not-literal"
    value: Any = None
    reason: str = ""
    type: str | None = None
    secret: bool = False      # the option holds a secret: its value is never shown
    known: tuple[str, ...] = ()

    @property
    def field(self) -> str:
        return ".".join(p for p in ("overrides", self.service, self.section, self.option) if p)

    def message(self) -> str:
        if self.kind == "section" and len(self.known) == 1:
            return f"{self.service} has no section [{self.section}]: its only one is [{self.known[0]}]"
        if self.kind == "section":
            return f"{self.service} has no section [{self.section}]{_did_you_mean(self.section, self.known, '[]')}"
        if self.kind == "option":
            return (f"{self.service} has no option {self.option!r} in [{self.section}]"
                    f"{_did_you_mean(self.option or '', self.known)}")
        if self.kind == "deprecated" and self.known:  # reason: "a deprecated name of [group] option"
            return f"{self.service} reads it, but as {self.reason}: write that one instead"
        if self.kind == "deprecated":  # reason: "deprecated for removal: why"
            return f"{self.service} reads it, but it is {self.reason}"
        if self.kind == "setting":
            return f"{self.option!r} is not a Django setting's name (upper case letters, digits and _)"
        if self.kind == "not-literal":
            return (f"a {type(self.value).__name__} is not a value a settings module can hold: use text, numbers, "
                    "true/false, lists and mappings")
        if self.kind == "not-scalar" and self.value is None:
            return "no value: write '' for an empty one, or remove the option"
        if self.kind == "not-scalar":
            return (f"a {type(self.value).__name__} is not an ini value: write the text the config file should "
                    "hold (e.g. 'a,b' for a list)")
        if self.secret:
            return f"the value (not shown: a secret) is not a valid {self.type} for [{self.section}] {self.option}"
        return (f"{self.value!r} is not a valid {self.type} for [{self.section}] {self.option}: {self.reason}"
                f"{_did_you_mean(str(self.value), self.known)}")


def _did_you_mean(name: str, known: tuple[str, ...], brackets: str = "") -> str:
    # Case-insensitive: `[Default]` should point at [DEFAULT].
    by_lower = {k.lower(): k for k in known}
    close = [by_lower[m] for m in difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)]
    if not close:
        return ""
    shown = [f"{brackets[:1]}{c}{brackets[1:]}" for c in close]
    return f"; did you mean {', '.join(shown)}?"


def requests(d: Deployment) -> list[Request]:
    """One request per enabled service that has overrides (the others are not checked: nothing to check)."""
    enabled = d.services.enabled()
    here = services_here(d)  # a compute host has only nova's venv
    wanted = {s: o for s, o in d.config.overrides.items()
              if s in enabled and s in here and o and SERVICES[s].config_format == "ini"}
    if not wanted:
        return []
    on_host = d.backend == "local"
    by_component = artifacts(d)
    out = []
    for service, sections in wanted.items():
        a = by_component[enabled[service].component]
        python = Path(a.install_path, "bin", "python")
        if on_host and not python.exists():  # in an image otherwise: the container backend runs it there
            raise StackcrateError(f"{a.component} is not installed at {a.install_path}",
                                  hint="run `stackcrate deploy init`")
        out.append(Request(service, python, a.sha256,
                           {sec: {opt: ini_value(v) if isinstance(v, SCALARS) else None for opt, v in opts.items()}
                            for sec, opts in sections.items()},
                           dict(SERVICES[service].section_aliases)))
    return out


Runner = Callable[..., Any]  # tools.run's signature; tests pass a fake


def verdict(req: Request, cache: Cache, run: Runner = tools.run) -> tuple[dict, bool]:
    """The probe's answer for req ({"problems", "unloadable"}) and whether it came from the cache."""
    path = cache.dir("options") / f"{req.key()}.json"
    if path.exists():
        try:
            return json.loads(path.read_text()), True
        except ValueError:
            pass  # a torn entry (cannot happen with the rename below, but a disk can fill): check again
    payload = json.dumps({"sections": req.sections, "aliases": req.aliases})
    try:
        # -I: the venv's own packages only (no PYTHONPATH, no user site, not the current folder)
        res = run([str(req.python), "-I", str(PROBE)], input=payload, timeout=PROBE_TIMEOUT)
        answer = json.loads(res.stdout.strip().splitlines()[-1])
    except tools.ToolFailed as exc:
        raise StackcrateError(f"could not read the config options of {req.service} from {req.python.parent.parent}:"
                              f"\n{exc.message}", hint="the venv may be damaged: reinstall its artifact") from None
    except (ValueError, IndexError):
        raise StackcrateError(f"the option check of {req.service} gave no answer ({req.python})",
                              hint="the venv may be damaged: reinstall its artifact") from None
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(answer))
    tmp.replace(path)
    return answer, False


def problems_of(req: Request, answer: dict, overrides: dict[str, dict[str, Any]]) -> list[Problem]:
    """The probe's problems plus the values that are no ini value at all, in the order of the file."""
    found = {(p["section"], p["option"]): p for p in answer["problems"]}
    out = []
    for section, options in overrides.items():
        if (section, None) in found:
            p = found[(section, None)]
            out.append(Problem(req.service, section, None, "section", known=tuple(p["known"])))
            continue
        for option, value in options.items():
            if not isinstance(value, SCALARS):
                out.append(Problem(req.service, section, option, "not-scalar", value))
            if (p := found.get((section, option))) is not None:
                out.append(Problem(req.service, section, option, p["kind"], req.sections[section][option],
                                   p["reason"], p["type"], p["secret"], tuple(p["known"])))
    return out


def located(problems: list[Problem], config_path: Path) -> list[str]:
    """One line per problem: configuration.yaml:LINE: the field: what is wrong."""
    try:
        root = yaml.compose(config_path.read_text())
    except (OSError, yaml.YAMLError):
        root = None  # changed since it was loaded: name the file without a line
    lines = []
    for p in problems:
        line = node_line(root, tuple(p.field.split(".")))
        lines.append(f"{config_path}{f':{line}' if line else ''}: {p.field}: {p.message()}")
    return lines


def error(problems: list[Problem], config_path: Path, unloadable: dict[str, str]) -> StackcrateError:
    lines = located(problems, config_path)
    hint = "fix or remove these overrides in the configuration file; nothing of the deployment was written"
    if unloadable:
        hint += (f" (the option lists of {', '.join(sorted(unloadable))} could not be loaded: their options count "
                 "as unknown)")
    return StackcrateError(f"{len(problems)} config override(s) the services would not accept:\n" + "\n".join(lines),
                           hint=hint)


SETTING = re.compile(r"^[A-Z][A-Z0-9_]*$")


def settings_problems(d: Deployment) -> list[Problem]:
    """Overrides of a service configured by a Django settings module (the dashboard): one section,
    local_settings, of settings named as Django names them; any YAML value (lists and mappings too)."""
    out = []
    for service, sections in d.config.overrides.items():
        if service not in SERVICES or SERVICES[service].config_format != "django":
            continue
        for section, options in sections.items():
            if section != "local_settings":
                out.append(Problem(service, section, None, "section", known=("local_settings",)))
                continue
            out += [Problem(service, section, name, "setting") for name in options if not SETTING.match(name)]
            out += [Problem(service, section, name, "not-literal", value) for name, value in options.items()
                    if SETTING.match(name) and not _literal(value)]
    return out


def _literal(value: Any) -> bool:
    """Whether the settings module can hold value as it is written there (repr, read back as a literal): YAML
    dates or .inf cannot be."""
    import ast

    try:
        return ast.literal_eval(repr(value)) == value
    except (ValueError, SyntaxError):
        return False


def check(d: Deployment, t: Timer, run: Runner = tools.run) -> None:
    """Refuse the deployment's overrides before anything is written if a service would not accept them."""
    early = settings_problems(d)
    if early:
        raise error(early, d.config_path, {})
    reqs = requests(d)
    if not reqs:
        return
    with t.step("Checking config overrides against each service's own options") as info:
        with ThreadPoolExecutor(max_workers=min(len(reqs), os.cpu_count() or 1)) as pool:
            answers = list(pool.map(lambda r: verdict(r, d.cache, run), reqs))
        info["note"] = ", ".join(f"{r.service}{' (cached)' if cached else ''}"
                                 for r, (_, cached) in zip(reqs, answers, strict=True))
    problems: list[Problem] = []
    unloadable: dict[str, str] = {}
    for r, (answer, _) in zip(reqs, answers, strict=True):
        found = problems_of(r, answer, d.config.overrides[r.service])
        problems += found
        if any(p.kind != "deprecated" for p in found):
            unloadable.update({f"{r.service}: {n}": why for n, why in answer.get("unloadable", {}).items()})
    if refused := [p for p in problems if p.kind != "deprecated"]:
        raise error(refused, d.config_path, unloadable)
    for line in located([p for p in problems if p.kind == "deprecated"], d.config_path):
        t.ui.warn(line)
