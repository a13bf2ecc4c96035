#!/usr/bin/env python3
"""Benchmark: the five 2026.1 services built with stackcrate vs. the classic per-service venv + pip method.

    python bench/build_five_services.py [--workdir DIR] [--skip-classic]

stackcrate: cold cache (nothing downloaded, no rootfs), then warm with no change, then after changing one
component. Classic, per service: `python3 -m venv`, `pip install -c upper-constraints SERVICE==VERSION`,
`tar czf`; cold (empty pip cache) then warm (pip cache filled; it has no notion of "nothing changed").
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

SERVICES = {"keystone": "29.1.0", "glance": "32.0.0", "openstack-placement": "15.0.0", "nova": "33.0.2",
            "neutron": "28.0.2"}
SERIES = "2026.1"
REPO = Path(__file__).resolve().parents[1]


def constraints_dir() -> Path | None:
    env = os.environ.get("STACKCRATE_CONSTRAINTS_DIR")
    if env:
        return Path(env)
    shared = REPO.parent / "shared" / "data" / "openstack-requirements"
    return shared if shared.is_dir() else None


def manifest_text(changed: bool) -> str:
    lines = [f'series: "{SERIES}"', "components:"]
    for name, version in SERVICES.items():
        lines += [f"  - name: {name}", f'    pypi: {{version: "{version}"}}']
        if changed and name == "openstack-placement":
            lines.append('    extra_requirements: ["python-memcached"]')   # the one changed component
    return "\n".join(lines) + "\n"


def timed(argv: list[str], env: dict, cwd: Path | None = None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    took = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(argv)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return took, proc


# The build's steps by kind, from the start of each step's text (`--json` lists every step with its seconds).
KINDS = {"Preparing the": "build root", "Downloading": "downloads", "Byte-compiling": "bytecode",
         "Installing": "installs", "Packing": "packing"}


def breakdown(steps: list[dict]) -> dict[str, float]:
    out = dict.fromkeys(KINDS.values(), 0.0)
    for step in steps:
        kind = next((k for start, k in KINDS.items() if step["step"].startswith(start)), "other")
        out[kind] = out.get(kind, 0.0) + step["seconds"]
    return out


# what a run makes in its work folder (the caches of both methods among them)
MADE = ("cache", "pip-cache", "dist", "classic", "five.yaml", "five.lock", "upper-constraints.txt")


def run_stackcrate(work: Path, env: dict) -> dict[str, float]:
    manifest = work / "five.yaml"
    sc = [sys.executable, "-m", "stackcrate", "--json"]
    results = {}
    for label, changed in (("cold", False), ("warm, no change", False), ("one component changed", True)):
        manifest.write_text(manifest_text(changed))
        t_lock, _ = timed([*sc, "lock", "-m", str(manifest)], env)
        t_build, proc = timed([*sc, "build", "--locked", "-m", str(manifest), "--out", str(work / "dist")], env)
        report = json.loads(proc.stdout)
        rebuilt = [a["component"] for a in report["artifacts"] if a["rebuilt"]]
        results[label] = t_lock + t_build
        if label == "cold" and len(rebuilt) < len(SERVICES):
            sys.exit(f"the cold build rebuilt only {rebuilt}: something was cached before it ({work})")
        print(f"  stackcrate {label:<22} lock {t_lock:6.1f}s  build {t_build:6.1f}s  "
              f"rebuilt: {', '.join(rebuilt) or 'nothing'}", flush=True)
        if label == "cold":
            parts = breakdown(report["steps"])
            print("    where the cold build's time went (seconds in each kind of step; the build root is made "
                  "while the\n    wheels download, and two components build side by side, so these add up to "
                  "more than the build):\n    "
                  + "  ".join(f"{k} {v:.1f}" for k, v in parts.items()), flush=True)
    return results


def run_classic(work: Path, env: dict, uc: Path) -> dict[str, float]:
    results = {}
    for label in ("cold", "warm"):
        total = 0.0
        for name, version in SERVICES.items():
            venv = work / "classic" / f"{name}-{version}"
            shutil.rmtree(venv, ignore_errors=True)
            t1, _ = timed([sys.executable, "-m", "venv", str(venv)], env)
            t2, _ = timed([str(venv / "bin" / "pip"), "install", "--quiet", "-c", str(uc), f"{name}=={version}"],
                          env)
            t3, _ = timed(["tar", "-C", str(venv.parent), "-czf", str(venv) + ".tar.gz", venv.name], env)
            total += t1 + t2 + t3
            print(f"  classic {label:<4} {name:<20} venv {t1:5.1f}s  pip {t2:6.1f}s  tar {t3:5.1f}s", flush=True)
        results[label] = total
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, help="keep the work here (default: a temp folder, removed)")
    ap.add_argument("--skip-classic", action="store_true")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="stackcrate-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    # cold means cold in a work folder kept from an earlier run too: what that run made goes first
    for made in MADE:
        target = work / made
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    cdir = constraints_dir()
    env = dict(os.environ, STACKCRATE_CACHE_DIR=str(work / "cache"), PIP_CONFIG_FILE="/dev/null",
               PIP_CACHE_DIR=str(work / "pip-cache"), PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("SOURCE_DATE_EPOCH", None)
    if cdir:
        env["STACKCRATE_CONSTRAINTS_DIR"] = str(cdir)
    print(f"five {SERIES} services: {', '.join(f'{k} {v}' for k, v in SERVICES.items())}")
    print(f"work folder {work}; {os.cpu_count()} cores", flush=True)
    sc = run_stackcrate(work, env)
    if not args.skip_classic:
        uc = work / "upper-constraints.txt"
        if cdir:
            text = (cdir / SERIES / "upper-constraints.txt").read_text()
        else:
            import urllib.request

            text = urllib.request.urlopen(f"https://releases.openstack.org/constraints/upper/{SERIES}").read().decode()
        uc.write_text(text)
        classic = run_classic(work, env, uc)
        print("\nresults (seconds; ratio = classic / stackcrate)")
        print(f"  cold:                  stackcrate {sc['cold']:7.1f}   classic {classic['cold']:7.1f}   "
              f"ratio {classic['cold'] / sc['cold']:5.1f}x")
        print(f"  warm, no change:       stackcrate {sc['warm, no change']:7.1f}   classic {classic['warm']:7.1f}   "
              f"ratio {classic['warm'] / sc['warm, no change']:5.1f}x")
        print(f"  one component changed: stackcrate {sc['one component changed']:7.1f}   classic "
              f"{classic['warm']:7.1f}   ratio {classic['warm'] / sc['one component changed']:5.1f}x")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
