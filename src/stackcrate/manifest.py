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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import StackcrateError

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

    def resolve_path(self, p: str) -> Path:
        return (self.base_dir / Path(p).expanduser()).resolve()

    def install_path(self, name: str, version: str) -> str:
        return self.model.install_prefix.format(name=name, version=version)


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
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        try:
            node[parts[-1]] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            node[parts[-1]] = value
    return out


def load_vars(files: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for f in files:
        p = Path(f)
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except FileNotFoundError:
            raise StackcrateError(f"vars file {f} does not exist") from None
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


def _node_line(root: yaml.Node | None, loc: tuple) -> int | None:
    """The 1-based line of the YAML node at a pydantic error location (or of its closest parent)."""
    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if k.value == part:
                    nxt, line = v, k.start_mark.line + 1
                    break
            if nxt is None:
                return line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _loc_text(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _clean_loc(loc: tuple) -> tuple:
    # pydantic adds union/literal tags (e.g. 'literal[...]', 'function-after[...]') to locations; drop them.
    return tuple(p for p in loc if isinstance(p, int) or ("[" not in p and p not in ("function-after",)))


def load(path: str | Path, values: dict[str, Any] | None = None) -> LoadedManifest:
    path = Path(path)
    try:
        raw = path.read_text()
    except FileNotFoundError:
        raise StackcrateError(f"manifest {path} does not exist",
                              hint="pass another one with -m FILE, or create stackcrate.yaml "
                              "(see examples/keystone.yaml)") from None
    except IsADirectoryError:
        raise StackcrateError(f"manifest {path} is a directory", hint="pass the YAML file with -m FILE") from None
    text = render(raw, path, values or {})
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise StackcrateError(f"not valid YAML: {problem}", where=where,
                              hint="check indentation and quoting on that line") from None
    if not isinstance(data, dict):
        raise StackcrateError("the manifest must be a YAML mapping (series:, components:, ...)", where=str(path))
    try:
        model = Manifest.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, path, root) from None
    return LoadedManifest(model, path.resolve(), text)


def _explain(exc: ValidationError, path: Path, root: yaml.Node | None, model: type[BaseModel] | None = None,
             hint: str = "fix the manifest; `stackcrate schema` prints every field") -> StackcrateError:
    lines = []
    first_where = None
    for err in exc.errors():
        loc = _clean_loc(tuple(err["loc"]))
        line = _node_line(root, loc)
        where = f"{path}:{line}" if line else str(path)
        first_where = first_where or where
        field = _loc_text(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            parent = _model_at(loc[:-1], model or Manifest)
            allowed = ", ".join(parent.model_fields) if parent else ""
            msg = f"unknown field {field!r}" + (f" (allowed here: {allowed})" if allowed else "")
        elif err["type"] == "missing":
            msg = f"missing required field {field!r}"
        else:
            msg = f"field {field!r}: {err['msg'].removeprefix('Value error, ')}"
        lines.append(f"{where}: {msg}")
    return StackcrateError("\n".join(lines), hint=hint)


def _model_at(loc: tuple, model: type[BaseModel]) -> type[BaseModel] | None:
    for part in loc:
        if isinstance(part, int):
            continue
        f = model.model_fields.get(part)
        if f is None:
            return None
        nxt = _submodel(f.annotation)
        if nxt is None:
            return None
        model = nxt
    return model


def _submodel(ann: Any) -> type[BaseModel] | None:
    """The model class inside an annotation such as Optional[X], list[X] or dict[str, X]."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for a in getattr(ann, "__args__", ()):
        found = _submodel(a)
        if found is not None:
            return found
    return None
