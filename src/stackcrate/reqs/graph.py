"""The inventory's dependency graph as SVG, drawn here without a layout library, readable in a 1400 px window.

Each column is one dependency step (components, their direct dependencies, ...): a tall column makes the graph
scroll down, it never wraps into another column. Edges are faint until a package is pointed at or chosen (a
link to ``#n-<name>``, so a focus can be bookmarked): then only what it needs and what pulls it in (up to the
components) stay visible, and a line names them. That is pure CSS (``:has``, ``:hover``, ``:target``) over
classes computed here, one per package whose focus includes the element: no script, nothing loaded.
"""

from __future__ import annotations

import html
from collections import deque

from packaging.utils import canonicalize_name

KIND_COLOURS = {"component": "#1f5fbf", "openstack": "#c0392b", "third-party": "#6b7280"}
NODE_W, NODE_H, ROW_GAP, COL_GAP, PAD, HEAD = 150, 16, 4, 38, 12, 22
LABEL_CHARS = 26  # what fits in NODE_W at 10 px; the full name is in the tooltip and the focus line

CSS = """
.gwrap{border:1px solid #d0d7de;background:#fcfcfc}
.ghead{position:sticky;top:0;z-index:1;background:#fff}
.gwrap .index{padding:6px 8px;font-size:13px;border-bottom:1px solid #d0d7de}
.gwrap .index a{margin-right:10px}
.gwrap .focus{padding:4px 8px;font-size:13px;min-height:1.3em;background:#fffbe6;border-bottom:1px solid #d0d7de}
.gwrap .focus p{display:none;margin:0}.gwrap .focus .hint{display:block;color:#57606a}
.graph{overflow:auto;max-height:78vh}
.graph a{cursor:pointer}.node rect{stroke:#000;stroke-width:0}.node:hover rect,.node:target rect{stroke-width:2}
.node{scroll-margin-top:120px;scroll-margin-left:220px}/* a chosen node scrolls clear of the sticky header */
.e{stroke-opacity:.07}
.gwrap:has(.node:hover,.node:target) .e{stroke-opacity:.02}
.gwrap:has(.node:hover,.node:target) .focus .hint{display:none}
"""


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


def _reach(start: str, step: dict[str, list[str]]) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for m in step.get(todo.pop(), []):
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen


def focus_sets(inv: dict) -> dict[str, tuple[set[str], set[str]]]:
    """Per package: (itself and all it needs, itself and all that pulls it in up to the components)."""
    pk = inv["packages"]
    down = {n: [d for d in p["requires"] if d in pk] for n, p in pk.items()}
    up = {n: [r for r in p["required_by"] if r in pk] for n, p in pk.items()}
    return {n: (_reach(n, down), _reach(n, up)) for n in pk}


def positions(inv: dict) -> tuple[dict[str, tuple[float, float]], int, int]:
    """(x, y) per package, one column per layer, each ordered by the mean row of its parents (barycentre)
    to keep edges short; and the drawing's width and height."""
    pk = inv["packages"]
    pos: dict[str, tuple[float, float]] = {}
    cols = layers(inv)
    for col, layer in enumerate(cols):
        def bary(n: str) -> float:
            ys = [pos[p][1] for p in pk[n]["required_by"] if p in pos]
            return sum(ys) / len(ys) if ys else 0.0
        for row, n in enumerate(sorted(layer, key=lambda n: (bary(n), n))):
            pos[n] = (PAD + col * (NODE_W + COL_GAP), PAD + HEAD + row * (NODE_H + ROW_GAP))
    width = PAD * 2 + len(cols) * (NODE_W + COL_GAP) - COL_GAP
    height = PAD * 2 + HEAD + max((len(x) for x in cols), default=0) * (NODE_H + ROW_GAP)
    return pos, width, height


def _edge_path(a: tuple[float, float], b: tuple[float, float]) -> str:
    sx, sy, ex, ey = a[0] + NODE_W, a[1] + NODE_H / 2, b[0], b[1] + NODE_H / 2
    if ex <= sx:  # same column or backwards: route around the right of the source
        ex = b[0] + NODE_W
        return f"M{sx},{sy} C{sx + 30},{sy} {ex + 30},{ey} {ex},{ey}"
    mx = (sx + ex) / 2
    return f"M{sx},{sy} C{mx},{sy} {mx},{ey} {ex},{ey}"


def svg_graph(inv: dict, ids: dict[str, int], focus: dict[str, tuple[set[str], set[str]]]) -> str:
    pk = inv["packages"]
    pos, width, height = positions(inv)
    # member[x]: the packages whose focus shows x (a package, or an edge as (from, to))
    member: dict[object, list[int]] = {}
    for n, (needs, pulled_by) in focus.items():
        for m in needs | pulled_by:
            member.setdefault(m, []).append(ids[n])
        for part in (needs, pulled_by):
            for a in part:
                for b in pk[a]["requires"]:
                    if b in part:
                        member.setdefault((a, b), []).append(ids[n])

    def cls(x: object) -> str:
        return " ".join(f"c{i}" for i in sorted(set(member.get(x, []))))

    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 30}" '
              f'viewBox="0 0 {width} {height + 30}" font-family="sans-serif" font-size="10" role="img">'),
             "<title>Dependency graph: components on the left, each column one dependency step further</title>"]
    for col in range(len(layers(inv))):
        head = "components" if col == 0 else f"step {col}"
        parts.append(f'<text x="{PAD + col * (NODE_W + COL_GAP)}" y="{PAD + 12}" font-size="12" '
                     f'fill="#57606a">{head}</text>')
    parts.append('<g fill="none" stroke-width="0.8">')
    for n, p in pk.items():
        for d in p["requires"]:
            if d in pos:
                parts.append(f'<path class="e {cls((n, d))}" d="{_edge_path(pos[n], pos[d])}" '
                             f'stroke="{KIND_COLOURS[p["kind"]]}"/>')
    parts.append("</g>")
    for n, p in pk.items():
        x, y = pos[n]
        tip = (f"{p['name']} {p['version'] or ''} ({p['kind']})\nrequired by: {', '.join(p['required_by']) or '-'}"
               f"\ncomponents: {', '.join(p['components'])}")
        label = f"{p['name']} {p['version'] or ''}".strip()
        if len(label) > LABEL_CHARS:
            label = label[:LABEL_CHARS - 1] + "…"
        parts.append(f'<a href="#n-{n}"><g id="n-{n}" class="node {cls(n)}"><title>{html.escape(tip)}</title>'
                     f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="3" '
                     f'fill="{KIND_COLOURS[p["kind"]]}"/>'
                     f'<text x="{x + 4}" y="{y + 11.5}" fill="#fff">{html.escape(label)}</text></g></a>')
    lx = PAD
    for kind, colour in KIND_COLOURS.items():
        parts.append(f'<rect x="{lx}" y="{height + 8}" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{lx + 16}" y="{height + 18}" font-size="12">{kind}</text>')
        lx += 120
    parts.append("</svg>")
    return "\n".join(parts)


def focus_css(inv: dict, ids: dict[str, int]) -> str:
    """Per package: pointed at or chosen, what is outside its focus fades and its focus line shows."""
    rules = []
    for n, i in ids.items():
        on = f".gwrap:has(#n-{n}:hover,#n-{n}:target)"
        rules.append(f"{on} .node:not(.c{i}){{opacity:.15}}{on} .e.c{i}{{stroke-opacity:.9;stroke-width:1.4}}"
                     f"{on} #f-{n}{{display:block}}")
    return "\n".join(rules)


def focus_lines(inv: dict, focus: dict[str, tuple[set[str], set[str]]]) -> str:
    """One line per package, shown while it is in focus: who pulls it in, which components, what it needs."""
    pk, e = inv["packages"], html.escape
    out = [('<p class="hint">Point at a package, or click it (or a component above), to see only what it needs '
            "and what pulls it in; the line here names them.</p>")]
    for n, p in pk.items():
        needs = len(focus[n][0]) - 1
        comps = [c for c in p["components"] if canonicalize_name(c) != n]
        out.append(f'<p id="f-{n}"><b>{e(p["name"])} {e(p["version"] or "")}</b> ({p["kind"]}): '
                   + (f"required by {e(', '.join(p['required_by']))}; " if p["required_by"] else "")
                   + (f"pulled in by {e(', '.join(comps))}; " if comps else "")
                   + f"needs {needs} package(s).</p>")
    return "\n".join(out)


def graph_section(inv: dict) -> tuple[str, str]:
    """(CSS, HTML) of the graph: the component links, the focus line, and the scrolling SVG."""
    pk = inv["packages"]
    ids = {n: i for i, n in enumerate(pk)}
    focus = focus_sets(inv)
    comps = [n for n, p in pk.items() if p["kind"] == "component"]
    index = " ".join(f'<a href="#n-{n}">{html.escape(pk[n]["name"])}</a>' for n in comps)
    # The header stays in sight: choosing a package scrolls the page to it, and the line naming its
    # components must still show.
    body = (f'<div class="gwrap"><div class="ghead"><div class="index">Components: {index} '
            f'<a href="#graph">(clear)</a></div><div class="focus">{focus_lines(inv, focus)}</div></div>'
            f'<div class="graph">{svg_graph(inv, ids, focus)}</div></div>')
    return CSS + focus_css(inv, ids), body
