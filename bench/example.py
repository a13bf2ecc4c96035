"""What the benches share: examples/deploy copied into a work folder with its local paths made absolute, and the
environment stackcrate runs in (the cache to use, the series' constraints)."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "deploy"


def env_for(cache: Path) -> dict[str, str]:
    """stackcrate's environment: this cache; the constraints from ../shared/data when they are there."""
    env = dict(os.environ, STACKCRATE_CACHE_DIR=str(cache), PIP_CONFIG_FILE="/dev/null")
    shared = REPO.parent / "shared" / "data" / "openstack-requirements"
    if "STACKCRATE_CONSTRAINTS_DIR" not in env and shared.is_dir():
        env["STACKCRATE_CONSTRAINTS_DIR"] = str(shared)
    return env


def copy_example(work: Path) -> None:
    """examples/deploy's services.yaml, configuration.yaml (artifacts in work/dist, state in work/state) and
    manifest (its local sources and patches as absolute paths) written into work."""
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE / "services.yaml", work / "services.yaml")
    manifest = yaml.safe_load((EXAMPLE / "stackcrate.yaml").read_text())
    for comp in manifest["components"]:
        if "path" in comp:
            comp["path"] = str((EXAMPLE / comp["path"]).resolve())
        if comp.get("patches"):
            comp["patches"] = [str((EXAMPLE / patch).resolve()) for patch in comp["patches"]]
    (work / "stackcrate.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    conf = (EXAMPLE / "configuration.yaml").read_text().replace("artifacts: ../../dist", "artifacts: dist")
    (work / "configuration.yaml").write_text(conf)


def arguments(doc: str, *more: tuple[str, dict]) -> argparse.Namespace:
    """The command line every bench takes (--workdir, --cache) and its own options (name, add_argument's)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--cache", type=Path, help="a cache folder to use (default: a new, empty one)")
    for name, kw in more:
        ap.add_argument(name, **kw)
    return ap.parse_args()


def prepared(args: argparse.Namespace, name: str) -> tuple[Path, Path, dict[str, str]]:
    """The work folder (given, or a new one) holding the example, the cache and stackcrate's environment."""
    work = args.workdir or Path(tempfile.mkdtemp(prefix=f"sc-bench-{name}-"))
    copy_example(work)
    cache = args.cache or work / "cache"
    print(f"work folder {work}; {os.cpu_count()} cores", flush=True)
    return work, cache, env_for(cache)
