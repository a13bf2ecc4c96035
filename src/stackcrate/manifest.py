"""The manifest: a YAML file, rendered with Jinja2 (values only), then validated against a typed schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal, Optional

import jinja2
import jinja2.sandbox
import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import yamlfile
from .errors import StackcrateError
from .textfile import read_text

DEFAULT_MANIFEST = "stackcrate.yaml"
DEFAULT_PREFIX = "/opt/openstack/{name}-{version}"
FORMATS = ("tar", "deb", "rpm", "oci")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PypiSource(_Strict):
    version: str = Field(description="Exact release on the package index, e.g. 29.1.0")

    @field_validator("version", mode="before")
    @classmethod
    def _as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) else v

    @field_validator("version")
    @classmethod
    def _a_release(cls, v: str) -> str:
        try:
            Version(v)
        except InvalidVersion:
            raise ValueError(f"{v!r} is not a version number (PEP 440), e.g. 29.1.0") from None
        return v


class GitSource(_Strict):
    url: str = Field(description="Clone URL: https://, ssh, file:// or a local path")
    ref: str = Field(description="Branch, tag, commit SHA or a Gerrit refs/changes/... ref")

    @field_validator("ref", mode="before")
    @classmethod
    def _as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) else v


class Component(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Python distribution name")
    pypi: Optional[PypiSource] = None
    git: Optional[GitSource] = None
    path: Optional[str] = Field(None, description="Local source tree (relative to the manifest)")
    patches: list[str] = Field(default_factory=list, description="Patch files applied in order")
    extras: list[str] = Field(default_factory=list, description="Extras of the component to install")
    extra_requirements: list[str] = Field(default_factory=list,
                                          description="More requirements installed in this venv")
    sysdeps_exclude: list[str] = Field(
        default_factory=list, description="bindep.txt entries not needed at run time (e.g. the database servers "
        "a component's unit tests use); they are left out of Depends/Requires and images, and `stackcrate sysdeps` "
        "says so")
    bindep: list[str] = Field(
        default_factory=list, description="More bindep.txt lines for this component, evaluated with its own "
        "(programs it runs that its bindep.txt does not name, e.g. neutron's ovsdb-client: "
        "\"openvswitch-common [platform:dpkg]\")")
    library: bool = Field(
        False, description="A library for other components' venvs (e.g. a nova compute driver): its wheel is "
        "built and installed into every venv that names it in extra_requirements; it gets no venv or artifact "
        "of its own")

    @model_validator(mode="after")
    def _one_source(self) -> "Component":
        given = [k for k in ("pypi", "git", "path") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one source (pypi, git or path); got {given or 'none'}")
        return self

    @field_validator("extra_requirements")
    @classmethod
    def _valid_reqs(cls, v: list[str]) -> list[str]:
        for line in v:
            try:
                Requirement(line)
            except InvalidRequirement as exc:
                raise ValueError(f"not a valid requirement {line!r}: {exc}") from None
        return v

    @property
    def kind(self) -> str:
        return "pypi" if self.pypi else "git" if self.git else "path"

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)


class Manifest(_Strict):
    series: str = Field(description="OpenStack release series, e.g. 2026.1")
    target: str = Field("debian-bookworm", description="Target platform (its distribution and interpreter)")
    constraints: Optional[str] = Field(
        None, description="Constraints source: URL or file; default: the series' official upper-constraints")
    overrides: list[str] = Field(default_factory=list,
                                 description="Pins that replace a constraint, e.g. 'urllib3==2.5.0'")
    install_prefix: str = Field(DEFAULT_PREFIX, description="Install path template: {name} and {version}")
    formats: list[Literal["tar", "deb", "rpm", "oci"]] = Field(default_factory=lambda: ["tar"])
    components: list[Component] = Field(min_length=1)

    @field_validator("series", mode="before")
    @classmethod
    def _series_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) else v

    @field_validator("overrides")
    @classmethod
    def _pins(cls, v: list[str]) -> list[str]:
        for line in v:
            parse_pin(line)
        return v

    @field_validator("install_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not v.startswith("/") or "{name}" not in v or "{version}" not in v:
            raise ValueError("must be an absolute path containing {name} and {version}")
        return v

    @model_validator(mode="after")
    def _unique(self) -> "Manifest":
        seen: set[str] = set()
        for c in self.components:
            if c.key in seen:
                raise ValueError(f"component {c.name!r} is listed twice")
            seen.add(c.key)
        wanted = {canonicalize_name(Requirement(r).name) for c in self.components if not c.library
                  for r in c.extra_requirements}
        for c in self.components:
            if c.library and c.key not in wanted:
                raise ValueError(f"component {c.name!r} is a library (library: true) but no component names it in "
                                 "extra_requirements: add it to the extra_requirements of the components that use "
                                 "it, or drop `library: true`")
        return self


def parse_pin(line: str) -> tuple[str, str]:
    """'name==version' -> (canonical name, version); anything else is an error."""
    try:
        req = Requirement(line)
    except InvalidRequirement as exc:
        raise ValueError(f"not a valid pin {line!r}: {exc}") from None
    specs = list(req.specifier)
    if len(specs) != 1 or specs[0].operator not in ("==", "==="):
        raise ValueError(f"override {line!r} must pin one exact version, like 'name==1.2.3'")
    return canonicalize_name(req.name), specs[0].version


class LoadedManifest:
    """A validated manifest plus where it came from (for relative paths and error messages)."""

    def __init__(self, model: Manifest, path: Path, text: str):
        self.model = model
        self.path = path
        self.base_dir = path.parent
        self.rendered = text

    def path_of(self, p: str) -> Path:
        """A path written in the manifest, which is relative to the manifest's folder."""
        return (self.base_dir / Path(p).expanduser()).resolve()

    def install_path(self, name: str, version: str) -> str:
        return self.model.install_prefix.format(name=name, version=version)

    def lock_path(self, given: str | Path | None = None) -> Path:
        """The lock beside the manifest: stackcrate.yaml -> stackcrate.lock, examples/keystone.yaml ->
        examples/keystone.lock (or the one given)."""
        return Path(given) if given else self.path.with_suffix(".lock")

    def component(self, name: str) -> tuple[int, Component]:
        """A component by (canonical) name, with its position (error messages name components[i])."""
        key = canonicalize_name(name)
        for i, c in enumerate(self.model.components):
            if c.key == key:
                return i, c
        raise StackcrateError(f"component {name} is in the lock but not in the manifest {self.path}",
                              hint="run `stackcrate lock` again")


def json_schema() -> str:
    schema = Manifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "stackcrate manifest"
    return json.dumps(schema, indent=2)


def parse_set(pairs: list[str]) -> dict[str, Any]:
    """--set a.b=c  ->  {'a': {'b': 'c'}}; values are read as YAML scalars (so 1 stays a number)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise StackcrateError(f"--set {pair!r} is not KEY=VALUE", hint="write e.g. --set series=2026.1")
        key, value = pair.split("=", 1)
        parts = key.strip().split(".")
        if not all(p.strip() for p in parts):
            problem = f"{key.strip()!r} is not a name (a, or a.b for a nested value)" if key.strip() \
                else "no name before '='"
            raise StackcrateError(f"--set {pair!r}: {problem}", hint="write e.g. --set keystone_version=29.1.0")
        node = out
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise StackcrateError(f"--set {pair!r}: {'.'.join(parts[:i + 1])} was given a value of its own "
                                      "by an earlier --set", hint="set either the name or the names under it")
        try:
            node[parts[-1]] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            node[parts[-1]] = value
    return out


def load_vars(files: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for f in files:
        p = Path(f)
        text = read_text(p, "vars file", hint="check the path given with --vars", shown=f)
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise StackcrateError(f"vars file {f} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise StackcrateError(f"vars file {f} must hold a mapping of names to values")
        values.update(data)
    return values


def render(text: str, path: Path, values: dict[str, Any]) -> str:
    env = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                              autoescape=False)
    try:
        return env.from_string(text).render(**values)
    except jinja2.TemplateSyntaxError as exc:
        raise StackcrateError(f"template syntax error: {exc.message}", where=f"{path}:{exc.lineno}") from None
    except jinja2.UndefinedError as exc:
        m = re.search(r"'([^']+)' is undefined", str(exc))
        name = m.group(1) if m else "?"
        line = next((i for i, ln in enumerate(text.splitlines(), 1) if re.search(r"\b" + re.escape(name) + r"\b", ln)
                     and "{" in ln), None)
        raise StackcrateError(f"template variable {name!r} is not defined",
                              hint=f"pass it with --set {name}=VALUE or in a --vars file",
                              where=f"{path}:{line}" if line else str(path)) from None


def load(path: str | Path, values: dict[str, Any] | None = None) -> LoadedManifest:
    path = Path(path)
    raw = read_text(path, "manifest", hint=f"pass the manifest with -m FILE, or create {DEFAULT_MANIFEST} "
                    "(see examples/keystone.yaml)")
    text = render(raw, path, values or {})
    model = yamlfile.validate(text, path, Manifest, "manifest",
                              hint="fix the manifest; `stackcrate schema` prints every field")
    return LoadedManifest(model, path.resolve(), text)


def load_with_values(path: str | Path, set_values: list[str] | tuple[str, ...] = (),
                     vars_files: list[str] | tuple[str, ...] = ()) -> LoadedManifest:
    """The manifest rendered with --vars files, then --set values (later ones win)."""
    values = load_vars(list(vars_files))
    values.update(parse_set(list(set_values)))
    return load(path, values)
