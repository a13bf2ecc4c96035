#!/usr/bin/env python3
"""Benchmark: the images of examples/deploy for a container backend (`stackcrate deploy build --backend podman`).

    python bench/images.py [--workdir DIR] [--cache DIR]

Builds every image the example runs (the OpenStack services, the client, MariaDB, RabbitMQ, Memcached, HAProxy)
twice: cold (an empty cache unless --cache names a filled one) and warm (nothing changed), then a third time with
the image caches emptied (the images alone, on the venvs and root filesystems built). Prints each image's
size, the sum of all image sizes and the unique bytes (layers shared between images stored once), and writes the
figures to DIR/images.json. Needs root (mmdebstrap). Target: unique bytes at most 40 % of the sum.
Reads constraints from $STACKCRATE_CONSTRAINTS_DIR (or ../shared/data/openstack-requirements) when present.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from example import arguments, prepared

IMAGE_CACHES = ("oci", "oci-blobs", "oci-system")  # under the cache's packages/: images, their layers, system images


def build(work: Path, env: dict) -> tuple[float, dict]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "stackcrate", "--json", "deploy", "build", "--backend", "podman",
                           "-s", work / "services.yaml", "-c", work / "configuration.yaml"],
                          env=env, capture_output=True, text=True, timeout=7200, check=False)
    if proc.returncode != 0:
        sys.exit(f"deploy build failed:\n{proc.stderr[-3000:]}")
    return time.monotonic() - t0, json.loads(proc.stdout)


def main() -> None:
    args = arguments(__doc__)
    work, cache, env = prepared(args, "images")
    cold, data = build(work, env)
    warm, again = build(work, env)
    sizes = data["images"]
    assert again["images"] == sizes, "a warm build made other images"
    # the images alone, on the venvs and root filesystems already built: every image cache emptied
    for kind in IMAGE_CACHES:
        shutil.rmtree(cache / "packages" / kind, ignore_errors=True)
    on_venvs, third = build(work, env)
    assert third["images"] == sizes, "images rebuilt on the same venvs differ"
    print(f"\n{'image':<24}{'MB':>10}")
    for name, size in sorted(sizes["images"].items()):
        print(f"{name:<24}{size / 1e6:10.1f}")
    print(f"\nsummed {sizes['summed_bytes'] / 1e6:.1f} MB, unique {sizes['unique_bytes'] / 1e6:.1f} MB "
          f"({sizes['unique_percent']} %, target <= 40 %)")
    first = "first (the given cache)" if args.cache else "cold"
    print(f"build: {first} {cold:.1f} s ({data['rebuilt']} artifacts made), warm {warm:.1f} s "
          f"({again['rebuilt']} made)")
    print(f"images on the built venvs and root filesystems: {on_venvs:.1f} s ({third['rebuilt']} made; "
          f"target <= 60 s: {'met' if on_venvs <= 60 else 'NOT met'})")
    result = {"cold_seconds": round(cold, 1), "warm_seconds": round(warm, 1),
              "on_venvs_seconds": round(on_venvs, 1), **sizes}
    (work / "images.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
