#!/usr/bin/env python3
"""Benchmark: the images of examples/deploy for a container backend (`stackcrate deploy build --backend podman`).

    python bench/images.py [--workdir DIR] [--cache DIR]

Builds every image the example runs (the OpenStack services, the client, MariaDB, RabbitMQ, Memcached, HAProxy)
twice: cold (an empty cache unless --cache names a filled one) and warm (nothing changed). Prints each image's
size, the sum of all image sizes and the unique bytes (layers shared between images stored once), and writes the
figures to DIR/images.json. Needs root (mmdebstrap). Target: unique bytes at most 40 % of the sum.
Reads constraints from $STACKCRATE_CONSTRAINTS_DIR (or ../shared/data/openstack-requirements) when present.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "deploy"


def env_for(cache: Path) -> dict[str, str]:
    env = dict(os.environ, STACKCRATE_CACHE_DIR=str(cache), PIP_CONFIG_FILE="/dev/null")
    shared = REPO.parent / "shared" / "data" / "openstack-requirements"
    if "STACKCRATE_CONSTRAINTS_DIR" not in env and shared.is_dir():
        env["STACKCRATE_CONSTRAINTS_DIR"] = str(shared)
    return env


def build(work: Path, env: dict) -> tuple[float, dict]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "stackcrate", "--json", "deploy", "build", "--backend", "podman",
                           "-s", work / "services.yaml", "-c", work / "configuration.yaml"],
                          env=env, capture_output=True, text=True, timeout=7200, check=False)
    if proc.returncode != 0:
        sys.exit(f"deploy build failed:\n{proc.stderr[-3000:]}")
    return time.monotonic() - t0, json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--cache", type=Path, help="a cache folder to use (default: a new, empty one)")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="sc-bench-images-"))
    work.mkdir(parents=True, exist_ok=True)
    for f in ("services.yaml", "configuration.yaml"):
        shutil.copy(EXAMPLE / f, work / f)
    manifest = yaml.safe_load((EXAMPLE / "stackcrate.yaml").read_text())
    for comp in manifest["components"]:  # its local sources and patches, where the example names them
        if "path" in comp:
            comp["path"] = str((EXAMPLE / comp["path"]).resolve())
        if comp.get("patches"):
            comp["patches"] = [str((EXAMPLE / patch).resolve()) for patch in comp["patches"]]
    (work / "stackcrate.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    conf = (work / "configuration.yaml").read_text().replace("artifacts: ../../dist", "artifacts: dist")
    (work / "configuration.yaml").write_text(conf)
    env = env_for(args.cache or work / "cache")
    print(f"work folder {work}; {os.cpu_count()} cores", flush=True)
    cold, data = build(work, env)
    warm, again = build(work, env)
    sizes = data["images"]
    assert again["images"] == sizes, "a warm build made other images"
    print(f"\n{'image':<24}{'MB':>10}")
    for name, size in sorted(sizes["images"].items()):
        print(f"{name:<24}{size / 1e6:10.1f}")
    print(f"\nsummed {sizes['summed_bytes'] / 1e6:.1f} MB, unique {sizes['unique_bytes'] / 1e6:.1f} MB "
          f"({sizes['unique_percent']} %, target <= 40 %)")
    first = "first (the given cache)" if args.cache else "cold"
    print(f"build: {first} {cold:.1f} s ({data['rebuilt']} artifacts made), warm {warm:.1f} s "
          f"({again['rebuilt']} made)")
    result = {"cold_seconds": round(cold, 1), "warm_seconds": round(warm, 1), **sizes}
    (work / "images.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
