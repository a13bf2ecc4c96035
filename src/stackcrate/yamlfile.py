"""YAML files validated against a pydantic model, with errors that name the file, the line and the field.

The manifest and the deployment files (services.yaml, configuration.yaml) are all read this way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .errors import StackcrateError
from .textfile import read_text

M = TypeVar("M", bound=BaseModel)


def parse(text: str, path: Path, what: str) -> tuple[dict[str, Any], yaml.Node | None]:
    """The mapping a YAML text holds, and its node tree (for line numbers); a clear error otherwise."""
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise StackcrateError(f"not valid YAML: {problem}", where=location(exc, path),
                              hint="check indentation and quoting on that line") from None
    if not isinstance(data, dict):
        raise StackcrateError(f"the {what} must be a YAML mapping", where=str(path))
    return data, root


def location(exc: yaml.YAMLError, path: Path) -> str:
    """"file:line" of a YAML error (just the file when YAML names no line)."""
    mark = getattr(exc, "problem_mark", None)
    return f"{path}:{mark.line + 1}" if mark else str(path)


def validate(text: str, path: Path, model: type[M], what: str, hint: str) -> M:
    """Parse text (the content of path) and validate it against model."""
    data, root = parse(text, path, what)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise explain(exc, path, root, model, hint) from None


def load(path: Path, model: type[M], what: str, hint: str, missing_hint: str) -> M:
    return validate(read_text(path, what, hint=missing_hint), path, model, what, hint)


def explain(exc: ValidationError, path: Path, root: yaml.Node | None, model: type[BaseModel],
            hint: str) -> StackcrateError:
    """One line per validation error: file:line, the field, and what is wrong (unknown fields list the allowed)."""
    lines = []
    for err in exc.errors():
        loc = _clean_loc(tuple(err["loc"]))
        line = node_line(root, loc)
        where = f"{path}:{line}" if line else str(path)
        field = _loc_text(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            parent = _model_at(loc[:-1], model)
            allowed = ", ".join(parent.model_fields) if parent else ""
            msg = f"unknown field {field!r}" + (f" (allowed here: {allowed})" if allowed else "")
        elif err["type"] == "missing":
            msg = f"missing required field {field!r}"
        else:
            msg = f"field {field!r}: {err['msg'].removeprefix('Value error, ')}"
        lines.append(f"{where}: {msg}")
    return StackcrateError("\n".join(lines), hint=hint)


def node_line(root: yaml.Node | None, loc: tuple) -> int | None:
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
