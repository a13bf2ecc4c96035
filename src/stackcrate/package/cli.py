"""`stackcrate sysdeps`: the system packages each component needs, and why."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("-m", "--manifest", "manifest_path", default="stackcrate.yaml", show_default=True,
              type=click.Path(dir_okay=False), help="The manifest file.")
@click.option("--set", "set_values", multiple=True, metavar="KEY=VALUE", help="Template value (repeatable).")
@click.option("--vars", "vars_files", multiple=True, type=click.Path(dir_okay=False), help="YAML values file.")
@click.option("--constraints-dir", type=click.Path(file_okay=False), help="Air-gapped constraints folder.")
@click.option("--lock", "lock_path", type=click.Path(dir_okay=False), help="Lock file.")
@click.option("--kind", type=click.Choice(["deb", "rpm"]), default="deb", show_default=True,
              help="Package names for the Debian target or the rpm platform.")
@click.option("-c", "--component", "only", multiple=True, help="Only these components.")
@click.pass_obj
def sysdeps(obj, manifest_path, set_values, vars_files, constraints_dir, lock_path, kind, only) -> None:
    """Print each component's system dependencies with where each came from (bindep.txt or the ELF scan)."""
    from ..build import _key, build_component
    from ..buildroot import base_rootfs
    from ..cli import default_lock_path, load_manifest
    from ..resolve import ensure_lock
    from ..targets import get_target
    from .sysdeps import resolve

    manifest = load_manifest(manifest_path, set_values, vars_files)
    target = get_target(manifest.model.target)
    lock = ensure_lock(manifest, default_lock_path(manifest, lock_path), obj.cache, obj.ui,
                       locked=False, constraints_dir=constraints_dir)
    base_rootfs(target, obj.cache)
    report, lines = {}, []
    for comp in lock.components:
        if only and _key(comp.name) not in {_key(o) for o in only}:
            continue
        built = build_component(comp, lock, manifest, obj.cache, obj.ui, target)
        deps = resolve(built, obj.cache, kind)
        report[comp.name] = deps.to_json()
        lines.append(f"{comp.name} {comp.version} ({kind}):")
        for pkg, why in deps.packages.items():
            lines.append(f"  {pkg}")
            lines += [f"      ← {w}" for w in why]
        for pkg, why in deps.dropped.items():
            lines.append(f"  (not {pkg}: {why})")
    obj.ui.result(report, "\n".join(lines))


__all__ = ["sysdeps", "Path"]
