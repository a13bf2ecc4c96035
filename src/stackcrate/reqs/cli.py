"""`stackcrate reqs ...`: inventory, check, sync and diff (thin wiring; the work is in the modules)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

series_option = click.option("-s", "--series", required=True, help="OpenStack series, e.g. 2026.1.")
cdir_option = click.option("--constraints-dir", type=click.Path(file_okay=False),
                           help="Folder of openstack/requirements data (<series>/upper-constraints.txt, "
                           "global-requirements.txt, denylist.txt or blacklist.txt); "
                           "default $STACKCRATE_CONSTRAINTS_DIR.")


def _emit(obj, fmt: str, data, text: str) -> None:
    if fmt == "json" or obj.ui.as_json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    else:
        click.echo(text)


@click.group()
def reqs() -> None:
    """Requirements tools: inventory, global-requirements check and sync, series diff."""


@reqs.command()
@click.argument("project", type=click.Path())
@series_option
@cdir_option
@click.option("--gate", is_flag=True,
              help="Only the rules of OpenStack's requirements gate (check-requirements): leave out stackcrate's "
              "own upper-constraints rules (constraint-mismatch, constraint-vs-global), so the verdict is the gate's.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def check(obj, project, series, constraints_dir, gate, fmt) -> None:
    """Check PROJECT's requirement files against the series' global-requirements and upper-constraints.

    Exit status 1 when there are findings.  Example: stackcrate reqs check ./keystone-29.1.0 -s 2026.1 --gate
    """
    from .check import BEYOND_GATE, RULES
    from .check import check as do_check
    from .data import load_series_data
    from .projectfiles import read_project

    root = Path(project)
    reqs_ = read_project(root)
    sd = load_series_data(series, obj.cache, constraints_dir)
    findings = do_check(reqs_, sd, gate=gate)
    rules = {k: v for k, v in RULES.items() if not (gate and k in BEYOND_GATE)}
    data = {"project": str(root), "series": sd.series, "requirements": len(reqs_), "gate": gate,
            "findings": [f.to_dict() for f in findings], "rules": rules, "beyond_gate": list(BEYOND_GATE)}
    files = sorted({r.rel for r in reqs_})
    text = "\n".join(f.render() for f in findings)
    text += ("\n" if findings else "") + (
        f"{len(findings)} finding(s) in {len(reqs_)} requirements ({', '.join(files)}) against {sd.series}"
        + (" (the gate's rules only)" if gate else ""))
    _emit(obj, fmt, data, text)
    if findings:
        raise SystemExit(1)


@reqs.command()
@click.argument("project", type=click.Path())
@series_option
@cdir_option
@click.option("--check", "dry", is_flag=True, help="Show the diff without writing; exit 1 when files would change.")
@click.pass_obj
def sync(obj, project, series, constraints_dir, dry) -> None:
    """Rewrite PROJECT's requirement files to match the series' global-requirements.

    Example: stackcrate reqs sync ./keystone-29.1.0 -s 2026.1 --check
    """
    from .data import load_series_data
    from .projectfiles import read_project
    from .sync import sync as do_sync
    from .sync import write

    root = Path(project)
    sd = load_series_data(series, obj.cache, constraints_dir)
    result = do_sync(read_project(root), sd)
    diff_text = result.diff(root)
    if not dry:
        write(result)
    notes = [f"{r.where}: {r.requirement.name} is not in {sd.series} global-requirements; left as it is "
             "(propose it to openstack/requirements or drop it)" for r in result.unsynced]
    verb = "would change" if dry else "changed"
    summary = f"{len(result.changed)} file(s) {verb}" + (f"; {len(notes)} requirement(s) not in global-requirements"
                                                         if notes else "")
    data = {"project": str(root), "series": sd.series, "written": not dry, "diff": diff_text,
            "changed": sorted(str(p.relative_to(root)) for p in result.changed),
            "unsynced": [{"file": r.rel, "line": r.lineno, "name": r.requirement.name} for r in result.unsynced]}
    _emit(obj, "text", data, "\n".join(x for x in [diff_text.rstrip("\n"), *notes, summary] if x))
    if dry and result.changed:
        raise SystemExit(1)


@reqs.command()
@click.argument("old")
@click.argument("new")
@cdir_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--python", default="3.11", show_default=True,
              help="Python version for pins that depend on it (;python_version==...).")
@click.pass_obj
def diff(obj, old, new, constraints_dir, fmt, python) -> None:
    """Compare two series' upper-constraints (or two constraints files, or two locks).

    Example: stackcrate reqs diff 2025.1 2026.1
    """
    from .diff import diff as do_diff
    from .diff import load_side, render_table

    d = do_diff(load_side(old, obj.cache, constraints_dir, python), load_side(new, obj.cache, constraints_dir, python),
                python)
    _emit(obj, fmt, d.to_dict(), render_table(d))


@reqs.command()
@click.option("-m", "--manifest", "manifest_path", type=click.Path(dir_okay=False),
              help="Report on this manifest's lock (stackcrate.lock beside it, or --lock).")
@click.option("--lock", "lock_path", type=click.Path(dir_okay=False), help="The lock file to report on.")
@click.option("-s", "--series", help="Without a lock: the series whose upper-constraints give the versions.")
@click.option("-c", "--component", "components", multiple=True, metavar="NAME==VERSION|[NAME=]FOLDER",
              help="Without a lock: a component, as its sdist on PyPI or a source folder (repeatable).")
@cdir_option
@click.option("--format", "fmt", type=click.Choice(["markdown", "json", "html"]), default="markdown",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the report here (default: stdout).")
@click.option("--tests", is_flag=True, help="Without a lock: also the components' test requirements.")
@click.pass_obj
def inventory(obj, manifest_path, lock_path, series, components, constraints_dir, fmt, output, tests) -> None:
    """Inventory: per component, OpenStack libraries, third-party and system packages, and who pulls in what.

    \b
    From a lock:  stackcrate reqs inventory -m examples/five-services.yaml --format html -o inventory.html
    Without one:  stackcrate reqs inventory -s kilo -c keystone=./keystone-kilo -c nova=./nova-kilo
    """
    from ..errors import StackcrateError
    from ..model.lock import Lock
    from .inventory import from_lock, from_requirements
    from .report import html_page, markdown

    if manifest_path or lock_path:
        if series or components or tests:
            raise StackcrateError("give either a manifest/lock, or --series with --component (and --tests), "
                                  "not both")
        if lock_path:
            path = Path(lock_path)
        else:
            from ..manifest import load

            path = load(manifest_path).lock_path()
        with obj.ui.step(f"Reading {path.name} and package metadata"):
            inv = from_lock(Lock.load(path), obj.cache, path.parent)
    elif series:
        with obj.ui.step(f"Reading requirement files against {series} upper-constraints"):
            inv = from_requirements(series, list(components), obj.cache, constraints_dir, tests=tests)
    else:
        raise StackcrateError("nothing to report on",
                              hint="give -m MANIFEST (or --lock FILE), or --series with -c COMPONENT")
    if fmt == "json" or obj.ui.as_json:
        text = json.dumps(inv, indent=2, sort_keys=True, default=str) + "\n"
    else:
        text = html_page(inv) if fmt == "html" else markdown(inv)
    if output:
        Path(output).write_text(text)
        obj.ui.info(f"wrote {output} ({len(inv['components'])} components, {len(inv['packages'])} packages)")
    else:
        sys.stdout.write(text)
