"""Render an inventory (see inventory.py) as Markdown, or as one self-contained HTML page with an SVG graph
(graph.py)."""

from __future__ import annotations

import html

from packaging.utils import canonicalize_name

from .graph import graph_section

NO_LOCK = ("Direct requirements only, read from the components' requirement files without a lock (e.g. for a "
           "series that cannot be built on today's Python). Each version is the series' upper-constraints pin "
           "where every component accepts it; otherwise one inside every component's range, marked ⚠ (see "
           "\"Upper-constraints conflicts\").")


def _version(p: dict) -> str:
    return (p["version"] or "not pinned") + (" ⚠" if p.get("conflicts") or p.get("version_from") == "unknown"
                                             else "")


def _conflicts(inv: dict) -> list[dict]:
    return [p for p in inv["packages"].values() if p.get("conflicts") or p.get("version_from") == "unknown"]


def _no_bindep(c: dict) -> str:
    found = c["system"].get("services") or []
    needs = "; ".join(f"{s['what']} (from {s['from']})" for s in found)
    return ("No bindep.txt available for this component" +
            (f"; its configuration needs {needs}." if needs else "."))


def _title(inv: dict) -> str:
    where = f"{inv['target']}, Python {inv['python']}" if inv["target"] else \
        f"from requirement files and upper-constraints (Python {inv['python']})"
    return f"Dependency inventory: OpenStack {inv['series']} ({where})"


def _parents_in(inv: dict, name: str, comp: dict) -> list[str]:
    inside = set(comp["openstack"]) | set(comp["third_party"]) | {canonicalize_name(comp["name"])}
    return [p for p in inv["packages"][name]["required_by"] if p in inside]


def markdown(inv: dict) -> str:
    pk = inv["packages"]
    out = [f"# {_title(inv)}", ""]
    n_os = sum(1 for p in pk.values() if p["kind"] == "openstack")
    n_tp = sum(1 for p in pk.values() if p["kind"] == "third-party")
    out += [f"{len(inv['components'])} components, {n_os} OpenStack libraries, {n_tp} third-party packages"
            + (f"; overrides: {', '.join(inv['overrides'])}" if inv["overrides"] else "") + ".", ""]
    if inv["mode"] == "requirements":
        out += [NO_LOCK, ""]
    for c in inv["components"]:
        out += [f"## {c['name']} {c['version'] or ''}".rstrip(), "",
                (f"{len(c['direct'])} direct requirements; {len(c['openstack'])} OpenStack libraries and "
                f"{len(c['third_party'])} third-party packages."), ""]
        for title, names in (("OpenStack libraries", c["openstack"]), ("Third-party packages", c["third_party"])):
            out += [f"### {title}", "", "| package | version | pulled in by |", "|---|---|---|"]
            for n in names:
                out.append(f"| {pk[n]['name']} | {_version(pk[n])} | {', '.join(_parents_in(inv, n, c))} |")
            out.append("")
        if c.get("test"):
            out += ["### Test requirements", "", ", ".join(f"{pk[n]['name']} {_version(pk[n])}" for n in c["test"]),
                    ""]
        out += ["### System packages (bindep)", ""]
        if c["system"]["source"] is None:
            out += [_no_bindep(c), ""]
        else:
            out += ["| platform | packages |", "|---|---|"]
            out += [f"| {fam} | {' '.join(names) or '-'} |" for fam, names in c["system"]["packages"].items()]
            out.append("")
    if conflicts := _conflicts(inv):
        out += ["## Upper-constraints conflicts", "",
                f"{len(conflicts)} package(s) whose upper-constraints pin a component rejects (or that have none).",
                "", "| package | upper-constraints | reported | why |", "|---|---|---|---|"]
        out += [f"| {p['name']} | {p['upper_constraints'] or '-'} | {p['version'] or '-'} | {p['why']} |"
                for p in conflicts]
        out.append("")
    out += ["## All packages and who pulls them in", "",
            "| package | version | kind | required by | components |", "|---|---|---|---|---|"]
    for p in pk.values():
        out.append(f"| {p['name']} | {_version(p)} | {p['kind']} | {', '.join(p['required_by'])} "
                   f"| {', '.join(p['components'])} |")
    return "\n".join(out) + "\n"


CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#1f2328;max-width:none}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
h3{font-size:14px;margin-bottom:4px}
table{border-collapse:collapse;font-size:12px;margin-bottom:12px}
td,th{border:1px solid #d0d7de;padding:2px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
.k-component{color:#1f5fbf}.k-openstack{color:#c0392b}.k-third-party{color:#6b7280}
.cols{display:flex;gap:24px;flex-wrap:wrap}.summary{font-size:14px}
"""


def html_page(inv: dict) -> str:
    e = html.escape
    pk = inv["packages"]
    n_os = sum(1 for p in pk.values() if p["kind"] == "openstack")
    n_tp = sum(1 for p in pk.values() if p["kind"] == "third-party")
    body = [f"<h1>{e(_title(inv))}</h1>",
            f'<p class="summary">{len(inv["components"])} components, {n_os} OpenStack libraries, {n_tp} '
            f"third-party packages ({len(pk)} in all)"
            + (f"; overrides: {e(', '.join(inv['overrides']))}" if inv["overrides"] else "") + ".</p>"]
    if inv["mode"] == "requirements":
        body.append(f"<p>{html.escape(NO_LOCK)}</p>")
    graph_css, graph_html = graph_section(inv)
    body += ['<h2 id="graph">Dependency graph</h2>', graph_html]
    for c in inv["components"]:
        body.append(f"<h2>{e(c['name'])} {e(c['version'] or '')}</h2>")
        body.append(f"<p>{len(c['direct'])} direct requirements; {len(c['openstack'])} OpenStack libraries and "
                    f"{len(c['third_party'])} third-party packages.</p><div class='cols'>")
        for title, names in (("OpenStack libraries", c["openstack"]), ("Third-party packages", c["third_party"])):
            rows = "".join(f"<tr><td>{e(pk[n]['name'])}</td><td>{e(_version(pk[n]))}</td>"
                           f"<td>{e(', '.join(_parents_in(inv, n, c)))}</td></tr>" for n in names)
            body.append(f"<div><h3>{title}</h3><table><tr><th>package</th><th>version</th><th>pulled in by</th>"
                        f"</tr>{rows}</table></div>")
        sysp = c["system"]
        if sysp["source"] is None:
            body.append(f"<div><h3>System packages (bindep)</h3><p>{e(_no_bindep(c))}</p></div>")
        else:
            rows = "".join(f"<tr><td>{e(f)}</td><td>{e(' '.join(n) or '-')}</td></tr>"
                           for f, n in sysp["packages"].items())
            body.append(f"<div><h3>System packages (bindep)</h3><table><tr><th>platform</th><th>packages</th>"
                        f"</tr>{rows}</table></div>")
        body.append("</div>")
    if conflicts := _conflicts(inv):
        rows = "".join(f"<tr><td>{e(p['name'])}</td><td>{e(p['upper_constraints'] or '-')}</td>"
                       f"<td>{e(p['version'] or '-')}</td><td>{e(p['why'])}</td></tr>" for p in conflicts)
        body.append("<h2>Upper-constraints conflicts</h2><table><tr><th>package</th><th>upper-constraints</th>"
                    f"<th>reported</th><th>why</th></tr>{rows}</table>")
    rows = "".join(f"<tr><td class='k-{p['kind']}'>{e(p['name'])}</td><td>{e(_version(p))}</td>"
                   f"<td>{p['kind']}</td><td>{e(', '.join(p['required_by']))}</td>"
                   f"<td>{e(', '.join(p['components']))}</td></tr>" for p in pk.values())
    body.append("<h2>All packages and who pulls them in</h2><table><tr><th>package</th><th>version</th>"
                f"<th>kind</th><th>required by</th><th>components</th></tr>{rows}</table>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(_title(inv))}</title>'
            f"<style>{CSS}{graph_css}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
