"""The `stackcrate` command line: thin wiring of the pipeline (pipeline.py) and of the tools on top of it
(`reqs`, `deploy`). Heavy modules are imported inside the commands, so `stackcrate --help` stays quick."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click
from rich.text import Text

from . import __version__
from .cache import Cache
from .deploy.cli import deploy
from .errors import StackcrateError
from .lab.cli import lab
from .manifest import DEFAULT_MANIFEST
from .reqs.cli import reqs
from .ui import UI, err


class Ctx:
    def __init__(self, verbose: int, as_json: bool, cache_dir: str | None):
        self.ui = UI(verbose, as_json)
        self.cache = Cache(Path(cache_dir) if cache_dir else None)
        self.holding = contextlib.ExitStack()  # the cache, held shared while the command runs

    def done_with_cache(self) -> None:
        """Let `cache clean` and `prune` run while the rest of the command does (e.g. `deploy logs --follow`)."""
        self.holding.close()


manifest_option = click.option("-m", "--manifest", "manifest_path", default=DEFAULT_MANIFEST, show_default=True,
                               type=click.Path(dir_okay=False), help="The manifest file.")
set_option = click.option("--set", "set_values", multiple=True, metavar="KEY=VALUE",
                          help="Template value for the manifest (repeatable).")
vars_option = click.option("--vars", "vars_files", multiple=True, type=click.Path(dir_okay=False),
                           help="YAML file of template values (repeatable).")
cdir_option = click.option("--constraints-dir", type=click.Path(file_okay=False),
                           help="Air-gapped constraints folder (<series>/upper-constraints.txt); "
                           "default $STACKCRATE_CONSTRAINTS_DIR.")
lock_option = click.option("--lock", "lock_path", type=click.Path(dir_okay=False),
                           help="Lock file (default: the manifest's name with .lock, beside it).")
only_option = click.option("-c", "--component", "only", multiple=True, help="Only these components (repeatable).")


def manifest_inputs(f):
    """The options naming a manifest and what goes with it: values, constraints, lock."""
    for option in reversed((manifest_option, set_option, vars_option, cdir_option, lock_option)):
        f = option(f)
    return f


def _manifest(manifest_path: str, set_values, vars_files):
    from .manifest import load_with_values

    return load_with_values(manifest_path, set_values, vars_files)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stackcrate")
@click.option("-v", "--verbose", count=True, help="Show more detail (-vv: the commands run).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
@click.option("--cache-dir", type=click.Path(file_okay=False), envvar="STACKCRATE_CACHE_DIR",
              help="Cache folder (default ~/.cache/stackcrate).")
@click.pass_context
def main(ctx: click.Context, verbose: int, as_json: bool, cache_dir: str | None) -> None:
    """Build and run your own OpenStack distribution."""
    ctx.obj = Ctx(verbose, as_json, cache_dir)
    if ctx.invoked_subcommand not in ("cache", "schema"):
        # held shared while the command runs: `cache clean` and `prune` wait for it (`cache` takes it itself)
        ctx.obj.holding.enter_context(ctx.obj.cache.in_use())
        ctx.call_on_close(ctx.obj.holding.close)


@main.command()
def schema() -> None:
    """Print the manifest's JSON Schema."""
    from .manifest import json_schema

    click.echo(json_schema())


@main.command()
@manifest_inputs
@click.option("--override", "overrides", multiple=True, metavar="NAME==VERSION",
              help="Pin replacing a constraint, e.g. a security fix (adds to the manifest's overrides).")
@click.option("--refresh", is_flag=True,
              help="Resolve again even when the lock is up to date (e.g. to pick up a moved git branch).")
@click.option("--upgrade", is_flag=True,
              help="Resolve from the manifest and constraints alone: packages they do not pin move to their "
                   "newest release (otherwise resolving again keeps the existing lock's versions where it can).")
@click.option("--upgrade-package", "upgrade_packages", multiple=True, metavar="NAME",
              help="Resolve again, moving NAME to the newest release the inputs allow; every other package keeps "
                   "its version where it can.")
@click.pass_obj
def lock(obj: Ctx, manifest_path, set_values, vars_files, constraints_dir, lock_path, overrides, refresh,
         upgrade, upgrade_packages) -> None:
    """Resolve all components together and write the lock (X.yaml -> X.lock)."""
    from .model.changes import change_lines
    from .pipeline import ensure_lock

    manifest = _manifest(manifest_path, set_values, vars_files)
    got = ensure_lock(manifest, manifest.lock_path(lock_path), obj.cache, obj.ui, refresh=refresh, upgrade=upgrade,
                      upgrade_packages=upgrade_packages, constraints_dir=constraints_dir, overrides=list(overrides))
    n = len(got.lock.packages)
    summary = {"lock": str(got.path), "packages": n, "up_to_date": not got.written,
               "components": {c.name: c.version for c in got.lock.components}}
    if got.written:
        comps = ", ".join(f"{c.name} {c.version}" for c in got.lock.components)
        text = f"locked {n} packages for {comps} → {got.path}"
        if (changes := got.changes) is not None:
            summary["changes"] = changes
            text += "\n" + "\n".join(change_lines(changes))
    else:
        text = f"{got.path} is up to date ({n} packages); --refresh resolves again"
    obj.ui.result(summary, text)


def _shown(a) -> str:
    """An artifact as the build's summary names it: its file; an image by name (its file is a manifest blob)."""
    return f"{a.component} {a.version} image in images/" if a.format == "oci" else a.file


@main.command()
@manifest_inputs
@click.option("--out", "out_dir", default="dist", show_default=True, type=click.Path(file_okay=False),
              help="Output folder for the artifacts and artifacts.json.")
@click.option("--locked", is_flag=True, help="Refuse to build when the lock is missing or stale.")
@click.option("--format", "formats", multiple=True, help="Artifact format (repeatable): tar, deb, rpm, oci.")
@only_option
@click.pass_obj
def build(obj: Ctx, manifest_path, set_values, vars_files, constraints_dir, lock_path, out_dir, locked, formats,
          only) -> None:
    """Build one venv per component from the lock and package it."""
    from .package import check_formats
    from .pipeline import build as run_build

    check_formats(list(formats))  # before anything else: a typo must not cost a build
    manifest = _manifest(manifest_path, set_values, vars_files)
    report = run_build(manifest, manifest.lock_path(lock_path), Path(out_dir), obj.cache, obj.ui, locked=locked,
                       constraints_dir=constraints_dir, formats=list(formats) or None, only=list(only))
    lines = [f"{_shown(a)}  {a.size:>11,} bytes  sha256:{a.sha256[:16]}…  "
             f"{'rebuilt' if r else 'up to date (cached)'}" for a, r in zip(report.artifacts, report.rebuilt,
                                                                           strict=True)]
    n = sum(report.rebuilt)
    lines.append(f"{n} rebuilt, {len(report.artifacts) - n} up to date → {report.out}/artifacts.json")
    obj.ui.result(dict(report.to_json(), steps=obj.ui.steps), "\n".join(lines))


@main.command()
@manifest_inputs
@click.option("--kind", type=click.Choice(["deb", "rpm"]), default="deb", show_default=True,
              help="Package names for the Debian target or the rpm platform.")
@only_option
@click.pass_obj
def sysdeps(obj: Ctx, manifest_path, set_values, vars_files, constraints_dir, lock_path, kind, only) -> None:
    """Each component's system dependencies, and where each came from (bindep.txt or the ELF scan)."""
    from .pipeline import system_deps

    manifest = _manifest(manifest_path, set_values, vars_files)
    report = system_deps(manifest, manifest.lock_path(lock_path), obj.cache, obj.ui, kind=kind,
                         constraints_dir=constraints_dir, only=list(only))
    lines = []
    for name, deps in report.items():
        lines.append(f"{name} {deps['version']} ({kind}):")
        for pkg, why in deps["packages"].items():
            lines.append(f"  {pkg}")
            lines += [f"      ← {w}" for w in why]
        for pkg, why in deps["dropped"].items():
            lines.append(f"  (not {pkg}: {why})")
    obj.ui.result(report, "\n".join(lines))


@main.command()
@click.option("--from", "src", default="dist", show_default=True, type=click.Path(file_okay=False),
              help="A build's output folder (with artifacts.json).")
@click.option("--out", "dest", default="repo", show_default=True, type=click.Path(file_okay=False),
              help="Where to write apt/, yum/ and oci/.")
@click.pass_obj
def publish(obj: Ctx, src: str, dest: str) -> None:
    """Publish built artifacts as an apt repo, a yum repo and an OCI layout."""
    from rich.markup import escape

    from .publish import publish as run_publish

    done = run_publish(Path(src), Path(dest))
    lines = [f"{k}: {v['artifacts']} artifact(s) → {v['path']}" for k, v in done.items()]
    if "apt" in done:
        lines.append(escape(f"  apt source: deb [trusted=yes] file:{Path(done['apt']['path']).resolve()} ./"))
    obj.ui.result(done, "\n".join(lines))


@main.group()
def cache() -> None:
    """The cache: what it holds, and removing what is no longer used."""


@cache.command("dir")
@click.pass_obj
def cache_dir_cmd(obj: Ctx) -> None:
    """Print the cache's folder (--cache-dir, $STACKCRATE_CACHE_DIR or ~/.cache/stackcrate)."""
    obj.ui.result({"dir": str(obj.cache.root)}, str(obj.cache.root))


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def _ago(when: float | None) -> str:
    import time

    return "" if when is None else f"{max(0.0, time.time() - when) / 86400:.1f} d"


@cache.command("info")
@click.pass_obj
def cache_info(obj: Ctx) -> None:
    """Each part of the cache: what it holds, its size on disk, its entries and when they were last used."""
    from rich.table import Table

    from .cache_admin import info

    with obj.ui.step(f"Measuring {obj.cache.root}"):
        rows = info(obj.cache)
    if obj.ui.as_json:
        obj.ui.result({"dir": str(obj.cache.root), "parts": [r.to_json() for r in rows]})
        return
    from .ui import out

    cells = [(r.name, _size(r.bytes), "" if r.entries is None else str(r.entries),
              f"{_ago(r.newest_use)} – {_ago(r.oldest_use)}" if r.oldest_use is not None else "", r.holds)
             for r in rows]
    header = ("part", "size", "entries", "unused for", "holds")
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    widths[-1] = max(10, min(widths[-1], out.width - sum(widths[:-1]) - 2 * len(header)))  # cut on a narrow one
    table = Table(title=f"{obj.cache.root}: {_size(sum(r.bytes for r in rows))}", title_justify="left",
                  box=None, header_style="bold")
    for h, w in zip(header, widths, strict=True):
        table.add_column(h, justify="right" if h in ("size", "entries") else "left", no_wrap=True,
                         overflow="ellipsis", width=w)
    for c in cells:
        table.add_row(*c)
    out.print(table)


wait_option = click.option("--wait", default=60.0, show_default=True, type=click.FloatRange(min=0),
                           help="Seconds to wait for other stackcrate commands using the cache to end.")


@cache.command("clean")
@click.argument("parts", nargs=-1)
@wait_option
@click.pass_obj
def cache_clean(obj: Ctx, parts: tuple[str, ...], wait: float) -> None:
    """Remove the named parts of the cache (`cache info` lists them), or the whole cache. Installed venvs keep
    their files (hard links); the next build or deploy makes what it needs again."""
    from .cache_admin import clean

    done = clean(obj.cache, list(parts), wait)
    obj.ui.result({"parts": done.entries, "bytes": done.bytes},
                  f"removed {done.entries} part(s) of {obj.cache.root}: {_size(done.bytes)}")


@cache.command("prune")
@click.option("--unused-for", "days", default=30.0, show_default=True, type=click.FloatRange(min=0),
              metavar="DAYS", help="Remove the entries no command has used for this many days.")
@wait_option
@click.pass_obj
def cache_prune(obj: Ctx, days: float, wait: float) -> None:
    """Remove the entries no build or deploy has used for DAYS days, the work areas stopped commands left, and
    what uv finds unused in its own cache."""
    from .cache_admin import prune

    done = prune(obj.cache, days, wait)
    obj.ui.result({"entries": done.entries, "bytes": done.bytes, "unused_for_days": days},
                  f"removed {done.entries} entries unused for {days:g} days: {_size(done.bytes)}")


main.add_command(reqs)
main.add_command(deploy)
main.add_command(lab)


def run(argv: list[str] | None = None) -> int:
    """The command line with argv (default: sys.argv), returning the exit status instead of exiting."""
    try:
        main.main(args=argv, prog_name="stackcrate", standalone_mode=False)
    except StackcrateError as exc:
        err.print(Text("error: ", style="bold red") + Text(exc.render()), highlight=False, soft_wrap=True)
        return exc.exit_code
    except click.exceptions.Abort:
        err.print("aborted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except SystemExit as exc:  # a command's own exit status (e.g. `reqs check` with findings)
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def main_entry() -> None:
    sys.exit(run())
