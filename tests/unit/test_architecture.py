"""The import graph of src/stackcrate keeps one direction: manifest → sources → lock → build → package →
publish, with the orchestration above them, `reqs` and `deploy` on top, and the command line over all.
Only `tools` talks to external programs and HTTP servers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "stackcrate"

# Each top-level module or package of stackcrate, by stage, bottom first. A module may import modules of its
# own stage or of an earlier one; `reqs` and `deploy` (the tools on top) may not import each other.
STAGES = [
    ("foundation", {"__init__", "errors", "ui", "tools", "cache", "archive", "series", "targets", "yamlfile",
                    "textfile", "model"}),
    ("manifest", {"manifest"}),
    ("sources", {"sources"}),
    ("lock", {"constraints", "resolve", "overrides", "distmeta"}),
    ("build", {"buildroot", "bytecode", "build"}),
    ("package", {"package"}),
    ("publish", {"publish"}),
    ("orchestration", {"pipeline"}),
    ("on top", {"reqs", "deploy", "lab", "cache_admin"}),
    ("command line", {"cli", "__main__"}),
]
RANK = {top: i for i, (_, tops) in enumerate(STAGES) for top in tops}
ON_TOP = RANK["reqs"]
# What only tools.py may import: running programs and speaking HTTP go through it.
TOOLS_ONLY = {"subprocess", "urllib.request", "http.client"}


def modules() -> dict[str, Path]:
    return {".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__"): p
            for p in SRC.rglob("*.py")}


def imports(name: str, path: Path) -> set[str]:
    """Every module `name` imports, at module level or inside a function, as absolute names."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            # `from . import x` / `from .package import oci` may name submodules
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


def top_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "stackcrate":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def stage_edges() -> list[tuple[str, str]]:
    known = modules()
    edges = []
    for name, path in known.items():
        for target in imports(name, path):
            if target in known or target.rsplit(".", 1)[0] in known:
                edges.append((name, target if target in known else target.rsplit(".", 1)[0]))
    return edges


def test_every_module_belongs_to_a_stage():
    unplaced = sorted({top_of(m) for m in modules()} - set(RANK))
    assert not unplaced, f"add these to a stage in STAGES: {unplaced}"


def back_edges(edges: list[tuple[str, str]]) -> list[str]:
    bad = []
    for src, dst in edges:
        a, b = top_of(src), top_of(dst)
        if a is None or b is None or a == b:
            continue
        ra, rb = RANK[a], RANK[b]
        if rb > ra or (ra == rb == ON_TOP):
            bad.append(f"{src} imports {dst} ({STAGES[ra][0]} -> {STAGES[rb][0]})")
    return bad


def test_no_module_imports_a_later_stage():
    assert back_edges(stage_edges()) == []


def test_the_check_finds_a_back_edge():
    # the check itself: a build module importing the package stage, or reqs importing deploy, is caught
    assert back_edges([("stackcrate.build", "stackcrate.package.oci"),
                       ("stackcrate.reqs.cli", "stackcrate.deploy.config"),
                       ("stackcrate.package.deb", "stackcrate.build")]) == [
        "stackcrate.build imports stackcrate.package.oci (build -> package)",
        "stackcrate.reqs.cli imports stackcrate.deploy.config (on top -> on top)"]


@pytest.mark.parametrize("forbidden", sorted(TOOLS_ONLY))
def test_only_tools_runs_programs_and_speaks_http(forbidden):
    users = sorted(name for name, path in modules().items()
                   if name != "stackcrate.tools" and forbidden in imports(name, path))
    assert users == []


def test_no_private_name_crosses_a_module():
    crossing = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("stackcrate")):
                crossing += [f"{name}: {a.name}" for a in node.names if a.name.startswith("_")
                             and a.name != "__version__"]
    assert crossing == []


def test_the_command_line_runs_as_its_own_process_and_loads_every_command(stackcrate_process):
    """The entry point itself (in-process tests call stackcrate.cli.run): a new interpreter, every command."""
    res = stackcrate_process("--help")
    assert res.returncode == 0, res.stderr
    for command in ("build", "deploy", "lock", "publish", "reqs", "schema", "sysdeps"):
        assert f"\n  {command} " in res.stdout, command
    assert stackcrate_process("deploy", "--help").returncode == 0
