"""Render an inventory (see inventory.py) as Markdown, or as one self-contained HTML page with an SVG graph.

The graph is drawn here, without a layout library: packages are put in layers by their distance from the
components (components left, their direct dependencies next, ...), a layer taller than ROWS wraps into more
columns, and each column is ordered by the mean position of the node's parents, which keeps most edges short.
"""

from __future__ import annotations

import html
from collections import deque

NO_LOCK = ("Direct requirements only, read from the components' requirement files without a lock (e.g. for a "
           "series that cannot be built on today's Python); versions are the series' upper-constraints pins.")
KIND_COLOURS = {"component": "#1f5fbf", "openstack": "#c0392b", "third-party": "#6b7280"}
ROWS, NODE_W, NODE_H, ROW_GAP, COL_GAP, PAD = 40, 190, 16, 4, 50, 20


def _title(inv: dict) -> str:
    where = f"{inv['target']}, Python {inv['python']}" if inv["target"] else \
        f"from requirement files and upper-constraints (Python {inv['python']})"
    return f"Dependency inventory: OpenStack {inv['series']} ({where})"


def _parents_in(inv: dict, name: str, comp: dict) -> list[str]:
    inside = set(comp["openstack"]) | set(comp["third_party"]) | {_key(comp["name"])}
    return [p for p in inv["packages"][name]["required_by"] if p in inside]


def _key(name: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


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
                out.append(f"| {pk[n]['name']} | {pk[n]['version'] or 'not pinned'} | "
                           f"{', '.join(_parents_in(inv, n, c))} |")
            out.append("")
        out += ["### System packages (bindep)", ""]
        if c["system"]["source"] is None:
            out += ["No bindep.txt available for this component.", ""]
        else:
            out += ["| platform | packages |", "|---|---|"]
            out += [f"| {fam} | {' '.join(names) or '-'} |" for fam, names in c["system"]["packages"].items()]
            out.append("")
    out += ["## All packages and who pulls them in", "",
            "| package | version | kind | required by | components |", "|---|---|---|---|---|"]
    for p in pk.values():
        out.append(f"| {p['name']} | {p['version'] or 'not pinned'} | {p['kind']} | {', '.join(p['required_by'])} "
                   f"| {', '.join(p['components'])} |")
    return "\n".join(out) + "\n"


def layers(inv: dict) -> list[list[str]]:
    """Packages by their distance from the nearest component (breadth-first over the dependency edges)."""
    pk = inv["packages"]
    depth = {k: 0 for k, p in pk.items() if p["kind"] == "component"}
    todo = deque(depth)
    while todo:
        n = todo.popleft()
        for d in pk[n]["requires"]:
            if d in pk and d not in depth:
                depth[d] = depth[n] + 1
                todo.append(d)
    for k in pk:  # not reachable (should not happen in a lock): last layer
        depth.setdefault(k, max(depth.values(), default=0) + 1)
    out: list[list[str]] = [[] for _ in range(max(depth.values(), default=0) + 1)]
    for k in sorted(pk):
        out[depth[k]].append(k)
    return out


def svg_graph(inv: dict) -> str:
    pk = inv["packages"]
    pos: dict[str, tuple[float, float]] = {}
    col = 0
    height = 0
    for layer in layers(inv):
        # order by the mean row of the parents already placed (barycentre), then by name
        def bary(n: str) -> float:
            ys = [pos[p][1] for p in pk[n]["required_by"] if p in pos]
            return sum(ys) / len(ys) if ys else 0.0
        ordered = sorted(layer, key=lambda n: (bary(n), n))
        for i, n in enumerate(ordered):
            c, r = col + i // ROWS, i % ROWS
            pos[n] = (PAD + c * (NODE_W + COL_GAP), PAD + r * (NODE_H + ROW_GAP))
            height = max(height, pos[n][1] + NODE_H + PAD)
        col += max(1, -(-len(layer) // ROWS))
    width = PAD * 2 + col * (NODE_W + COL_GAP) - COL_GAP
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 30}" '
             f'viewBox="0 0 {width} {height + 30}" font-family="sans-serif" font-size="10" role="img">'),
             "<title>Dependency graph: components on the left, their dependencies to the right</title>",
             '<g fill="none" stroke-width="0.8">']
    for n, p in pk.items():
        x1, y1 = pos[n]
        for d in p["requires"]:
            if d not in pos:
                continue
            x2, y2 = pos[d]
            sx, sy, ex, ey = x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2
            if ex <= sx:  # same column or backwards: route around the right of the source
                ex, ey = x2 + NODE_W, y2 + NODE_H / 2
                path = f"M{sx},{sy} C{sx + 30},{sy} {ex + 30},{ey} {ex},{ey}"
            else:
                mx = (sx + ex) / 2
                path = f"M{sx},{sy} C{mx},{sy} {mx},{ey} {ex},{ey}"
            colour = KIND_COLOURS[p["kind"]]
            parts.append(f'<path d="{path}" stroke="{colour}" stroke-opacity="0.18"/>')
    parts.append("</g>")
    for n, p in pk.items():
        x, y = pos[n]
        tip = (f"{p['name']} {p['version'] or ''} ({p['kind']})\nrequired by: {', '.join(p['required_by']) or '-'}"
               f"\ncomponents: {', '.join(p['components'])}")
        label = f"{p['name']} {p['version'] or ''}".strip()
        if len(label) > 34:
            label = label[:33] + "…"
        parts.append(f'<g><title>{html.escape(tip)}</title><rect x="{x}" y="{y}" width="{NODE_W}" '
                     f'height="{NODE_H}" rx="3" fill="{KIND_COLOURS[p["kind"]]}"/>'
                     f'<text x="{x + 4}" y="{y + 11.5}" fill="#fff">{html.escape(label)}</text></g>')
    lx = PAD
    for kind, colour in KIND_COLOURS.items():
        parts.append(f'<rect x="{lx}" y="{height + 8}" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{lx + 16}" y="{height + 18}" font-size="12">{kind}</text>')
        lx += 120
    parts.append("</svg>")
    return "\n".join(parts)


CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#1f2328;max-width:none}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
h3{font-size:14px;margin-bottom:4px}
table{border-collapse:collapse;font-size:12px;margin-bottom:12px}
td,th{border:1px solid #d0d7de;padding:2px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}.graph{overflow:auto;border:1px solid #d0d7de;background:#fcfcfc}
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
    body += ["<h2>Dependency graph</h2>", f'<div class="graph">{svg_graph(inv)}</div>']
    for c in inv["components"]:
        body.append(f"<h2>{e(c['name'])} {e(c['version'] or '')}</h2>")
        body.append(f"<p>{len(c['direct'])} direct requirements; {len(c['openstack'])} OpenStack libraries and "
                    f"{len(c['third_party'])} third-party packages.</p><div class='cols'>")
        for title, names in (("OpenStack libraries", c["openstack"]), ("Third-party packages", c["third_party"])):
            rows = "".join(f"<tr><td>{e(pk[n]['name'])}</td><td>{e(pk[n]['version'] or 'not pinned')}</td>"
                           f"<td>{e(', '.join(_parents_in(inv, n, c)))}</td></tr>" for n in names)
            body.append(f"<div><h3>{title}</h3><table><tr><th>package</th><th>version</th><th>pulled in by</th>"
                        f"</tr>{rows}</table></div>")
        sysp = c["system"]
        if sysp["source"] is None:
            body.append("<div><h3>System packages (bindep)</h3><p>No bindep.txt available.</p></div>")
        else:
            rows = "".join(f"<tr><td>{e(f)}</td><td>{e(' '.join(n) or '-')}</td></tr>"
                           for f, n in sysp["packages"].items())
            body.append(f"<div><h3>System packages (bindep)</h3><table><tr><th>platform</th><th>packages</th>"
                        f"</tr>{rows}</table></div>")
        body.append("</div>")
    rows = "".join(f"<tr><td class='k-{p['kind']}'>{e(p['name'])}</td><td>{e(p['version'] or 'not pinned')}</td>"
                   f"<td>{p['kind']}</td><td>{e(', '.join(p['required_by']))}</td>"
                   f"<td>{e(', '.join(p['components']))}</td></tr>" for p in pk.values())
    body.append("<h2>All packages and who pulls them in</h2><table><tr><th>package</th><th>version</th>"
                f"<th>kind</th><th>required by</th><th>components</th></tr>{rows}</table>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(_title(inv))}</title>'
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
