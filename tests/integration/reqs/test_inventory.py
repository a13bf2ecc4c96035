"""The inventory of the five 2026.1 services matches their lock exactly, and its HTML page renders."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from stackcrate.reqs.report import markdown

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[3]
SERVICES = {"keystone": "29.1.0", "glance": "32.0.0", "openstack-placement": "15.0.0", "nova": "33.0.2"}


@pytest.fixture(scope="module")
def five(stackcrate, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("five")
    manifest = work / "five-services.yaml"
    shutil.copy(REPO / "examples" / "five-services.yaml", manifest)
    res = stackcrate("lock", "-m", manifest)
    assert res.returncode == 0, res.stderr
    lock = tomllib.loads(manifest.with_suffix(".lock").read_text())
    versions = {re.sub(r"[-_.]+", "-", p["name"]).lower(): p["version"] for p in lock["packages"]}
    res = stackcrate("reqs", "inventory", "-m", manifest, "--format", "html", "-o", work / "inv.html")
    assert res.returncode == 0, res.stderr
    res = stackcrate("reqs", "inventory", "-m", manifest, "--format", "json")
    assert res.returncode == 0, res.stderr
    # Markdown from the same inventory in-process (the CLI's Markdown path is covered by test_kilo)
    md = markdown(json.loads(res.stdout))
    return {"work": work, "lock": lock, "versions": versions, "json": res.stdout, "markdown": md,
            "html": (work / "inv.html").read_text()}


def test_json_lists_every_locked_package_at_its_locked_version(five):
    inv = json.loads(five["json"])
    assert {k: p["version"] for k, p in inv["packages"].items()} == five["versions"]
    comps = {c["name"]: c for c in inv["components"]}
    for name, version in SERVICES.items():
        assert comps[name]["version"] == version
    assert comps["neutron"]["version"].startswith("28.")  # neutron's 2026.1 release
    # each component's lists are exactly its venv (the lock's closure), split in two
    for c in five["lock"]["tool"]["stackcrate"]["components"]:
        listed = set(comps[c["name"]]["openstack"]) | set(comps[c["name"]]["third_party"])
        assert listed == set(c["closure"]) - {re.sub(r"[-_.]+", "-", c["name"]).lower()}
        assert not set(comps[c["name"]]["openstack"]) & set(comps[c["name"]]["third_party"])
    kinds = {k: p["kind"] for k, p in inv["packages"].items()}
    for lib in ("oslo-config", "oslo-db", "keystoneauth1", "python-novaclient", "stevedore", "pbr"):
        assert kinds[lib] == "openstack", lib
    for lib in ("sqlalchemy", "requests", "cryptography", "eventlet", "webob"):
        assert kinds[lib] == "third-party", lib
    # reverse dependencies are the lock's edges inverted
    edges = {(re.sub(r"[-_.]+", "-", p["name"]).lower(), d["name"]) for p in five["lock"]["packages"]
             for d in p.get("dependencies", [])}
    assert {(parent, k) for k, p in inv["packages"].items() for parent in p["required_by"]} == edges
    # system packages come from each service's real bindep.txt
    ks = comps["keystone"]["system"]["packages"]
    assert "libldap2-dev" in ks["dpkg"] and "openldap-devel" in ks["rpm"] and "libldap2-dev" not in ks["rpm"]


def test_markdown_and_html_versions_match_the_lock(five):
    rows = re.findall(r"^\| ([A-Za-z0-9._-]+) \| ([^ |]+) \|", five["markdown"], re.MULTILINE)
    rows = [(n, v) for n, v in rows if n not in ("package", "platform", "dpkg", "rpm")]
    assert len(rows) > 500  # per-component tables plus the full table
    for name, version in rows:
        assert five["versions"][re.sub(r"[-_.]+", "-", name).lower()] == version, name
    listed = {re.sub(r"[-_.]+", "-", n).lower() for n, _ in rows}
    assert listed == set(five["versions"])
    cells = [(n, v) for n, v in re.findall(r"<tr><td[^>]*>([^<]+)</td><td>([^<]+)</td>", five["html"])
             if n not in ("dpkg", "rpm")]  # the system-packages tables
    assert len(cells) > 500
    for name, version in cells:
        assert five["versions"][re.sub(r"[-_.]+", "-", name).lower()] == version, name
    # one SVG node per package, labelled with its locked version
    labels = re.findall(r'fill="#fff">([^<]+)</text>', five["html"])
    assert len(labels) == len(five["versions"])
    assert "http://" not in five["html"].replace("http://www.w3.org/2000/svg", "")  # self-contained
    assert "<script" not in five["html"] and "https://" not in five["html"]


def test_html_renders_in_headless_chromium(five):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    page = five["work"] / "inv.html"
    png = five["work"] / "inv.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"]
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run([chromium, *flags, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                             capture_output=True, text=True, timeout=120, check=False)
        shot = subprocess.run([chromium, *flags, f"--user-data-dir={profile}", f"--screenshot={png}",
                               "--window-size=1400,1000", page.as_uri()],
                              capture_output=True, timeout=120, check=False)
    assert dom.returncode == 0 and shot.returncode == 0, dom.stderr
    # the browser parsed the SVG into one <rect> per package (plus 3 legend swatches)
    assert dom.stdout.count("<rect ") == len(five["versions"]) + 3
    assert png.stat().st_size > 50_000  # a blank 1400x1000 page compresses to a few kB
