"""The `stackcrate` command line: thin wiring of the pipeline stages."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import click
from rich.text import Text

from . import __version__
from .cache import Cache
from .errors import StackcrateError
from .ui import UI, err


class Ctx:
    def __init__(self, verbose: int, as_json: bool, cache_dir: str | None):
        self.ui = UI(verbose, as_json)
        self.cache = Cache(Path(cache_dir) if cache_dir else None)


manifest_option = click.option("-m", "--manifest", "manifest_path", default="stackcrate.yaml", show_default=True,
                               type=click.Path(dir_okay=False), help="The manifest file.")
set_option = click.option("--set", "set_values", multiple=True, metavar="KEY=VALUE",
                          help="Template value for the manifest (repeatable).")
vars_option = click.option("--vars", "vars_files", multiple=True, type=click.Path(dir_okay=False),
                           help="YAML file of template values (repeatable).")
cdir_option = click.option("--constraints-dir", type=click.Path(file_okay=False),
                           help="Air-gapped constraints folder (<series>/upper-constraints.txt); "
                           "default $STACKCRATE_CONSTRAINTS_DIR.")
lock_option = click.option("--lock", "lock_path", type=click.Path(dir_okay=False),
                           help="Lock file (default: stackcrate.lock beside the manifest).")


def load_manifest(manifest_path: str, set_values, vars_files):
    from . import manifest as m

    values = m.load_vars(list(vars_files))
    values.update(m.parse_set(list(set_values)))
    return m.load(manifest_path, values)


def default_lock_path(manifest, lock_path: str | None) -> Path:
    # stackcrate.yaml -> stackcrate.lock; examples/keystone.yaml -> examples/keystone.lock
    return Path(lock_path) if lock_path else manifest.path.with_suffix(".lock")


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


@main.command()
def schema() -> None:
    """Print the manifest's JSON Schema."""
    from .manifest import json_schema

    click.echo(json_schema())


@main.command()
@manifest_option
@set_option
@vars_option
@cdir_option
@lock_option
@click.option("--override", "overrides", multiple=True, metavar="NAME==VERSION",
              help="Pin replacing a constraint, e.g. a security fix (adds to the manifest's overrides).")
@click.option("--refresh", is_flag=True,
              help="Resolve again even when the lock is up to date (e.g. to pick up a moved git branch).")
@click.pass_obj
def lock(obj: Ctx, manifest_path, set_values, vars_files, constraints_dir, lock_path, overrides, refresh) -> None:
    """Resolve all components together and write the lock (X.yaml -> X.lock)."""
    from .lockfile import Lock
    from .resolve import check_fresh
    from .resolve import lock as do_lock

    manifest = load_manifest(manifest_path, set_values, vars_files)
    path = default_lock_path(manifest, lock_path)
    if path.exists() and not refresh:
        current = Lock.load(path)
        if not check_fresh(current, manifest, obj.cache, constraints_dir, path, list(overrides)):
            obj.ui.result({"lock": str(path), "packages": len(current.packages), "up_to_date": True,
                           "components": {c.name: c.version for c in current.components}},
                          f"{path} is up to date ({len(current.packages)} packages); --refresh resolves again")
            return
    result = do_lock(manifest, obj.cache, obj.ui, constraints_dir=constraints_dir, extra_overrides=list(overrides))
    result.write(path)
    summary = {"lock": str(path), "packages": len(result.packages), "up_to_date": False,
               "components": {c.name: c.version for c in result.components}}
    comps = ", ".join(f"{c.name} {c.version}" for c in result.components)
    obj.ui.result(summary, f"locked {len(result.packages)} packages for {comps} → {path}")


@main.command()
@manifest_option
@set_option
@vars_option
@cdir_option
@lock_option
@click.option("--out", "out_dir", default="dist", show_default=True, type=click.Path(file_okay=False),
              help="Output folder for the artifacts and artifacts.json.")
@click.option("--locked", is_flag=True, help="Refuse to build when the lock is missing or stale.")
@click.option("--format", "formats", multiple=True, help="Artifact format (repeatable): tar, deb, rpm, oci.")
@click.option("-c", "--component", "only", multiple=True, help="Build only these components.")
@click.pass_obj
def build(obj: Ctx, manifest_path, set_values, vars_files, constraints_dir, lock_path, out_dir, locked, formats,
          only) -> None:
    """Build one venv per component from the lock and package it."""
    from .build import build as do_build

    manifest = load_manifest(manifest_path, set_values, vars_files)
    path = default_lock_path(manifest, lock_path)
    report = do_build(manifest, path, Path(out_dir), obj.cache, obj.ui, locked=locked,
                      constraints_dir=constraints_dir, formats=list(formats) or None, only=list(only))
    lines = []
    for a in report["artifacts"]:
        state = "rebuilt" if a["rebuilt"] else "up to date (cached)"
        lines.append(f"{a['file']}  {a['size']:>11,} bytes  sha256:{a['sha256'][:16]}…  {state}")
    n = sum(1 for a in report["artifacts"] if a["rebuilt"])
    lines.append(f"{n} rebuilt, {len(report['artifacts']) - n} up to date → {report['out']}/artifacts.json")
    obj.ui.result(report, "\n".join(lines))


# Sub-command groups living beside the pipeline (requirements tools, packaging, deployment).
_PLUGINS = [
    "stackcrate.reqs.cli:reqs",
    "stackcrate.package.cli:sysdeps",
    "stackcrate.publish:publish",
    "stackcrate.deploy.cli:deploy",
]
for _spec in _PLUGINS:
    _mod, _attr = _spec.split(":")
    try:
        main.add_command(getattr(importlib.import_module(_mod), _attr))
    except ModuleNotFoundError as _exc:  # that part is not built yet
        if _exc.name and not _mod.startswith(_exc.name):
            raise


def run() -> int:
    try:
        main.main(standalone_mode=False)
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
    return 0


def main_entry() -> None:
    sys.exit(run())


if os.environ.get("_STACKCRATE_NO_MAIN") is None and __name__ == "__main__":  # pragma: no cover
    main_entry()
