"""The inventory's HTML graph: each column is one dependency step (a tall one scrolls, never wraps), it fits a
1400 px window, and pointing at or choosing a package shows only what it needs and what pulls it in, up to the
components, with a line naming them; all in the page itself (CSS, no script, nothing loaded)."""

from __future__ import annotations

import re

from stackcrate.reqs.graph import focus_sets, layers, positions
from stackcrate.reqs.report import html_page


def inventory(edges: dict[str, list[str]], components: tuple[str, ...]) -> dict:
    """An inventory as inventory.py makes it, from {package: [what it requires]}."""
    names = set(edges) | {d for ds in edges.values() for d in ds}
    pk = {n: {"name": n, "version": "1.0", "kind": "component" if n in components else "third-party",
              "requires": sorted(edges.get(n, [])), "summary": "",
              "required_by": sorted(p for p, ds in edges.items() if n in ds), "components": []} for n in names}
    for c in components:
        todo = [c]
        while todo:
            for d in pk[todo.pop()]["requires"]:
                if c not in pk[d]["components"]:
                    pk[d]["components"].append(c)
                    todo.append(d)
    comps = [{"name": c, "version": "1.0", "direct": pk[c]["requires"], "openstack": [], "source": "pypi",
              "third_party": sorted(n for n in names if c in pk[n]["components"]),
              "system": {"source": None, "packages": {}}} for c in components]
    return {"components": comps, "mode": "lock", "overrides": [], "packages": dict(sorted(pk.items())),
            "python": "3.11", "series": "2026.1", "target": "debian-bookworm"}


# comp-a needs 60 libraries directly (a tall column) and a chain lib-00 -> deep1 -> ... -> deep5 (7 steps, as
# deep as the five services' lock); comp-b needs only other.
WIDE = {"comp-a": [f"lib-{i:02}" for i in range(60)], "comp-b": ["other"], "lib-00": ["deep1"],
        **{f"deep{i}": [f"deep{i + 1}"] for i in range(1, 5)}}
COMPONENTS = ("comp-a", "comp-b")


def test_a_tall_step_stays_one_column_and_each_column_is_one_step():
    inv = inventory(WIDE, COMPONENTS)
    pos, _, height = positions(inv)
    steps = layers(inv)
    assert len(steps) == 7 and len(steps[1]) == 61
    for step, names in enumerate(steps):
        assert len({pos[n][0] for n in names}) == 1, f"step {step} is drawn in more than one column"
    assert sorted({x for x, _ in pos.values()}) == sorted(pos[names[0]][0] for names in steps)
    assert height > 61 * 16  # the tall step makes the graph taller (it scrolls), not wider


def test_seven_steps_fit_a_1400_px_window():
    _, width, _ = positions(inventory(WIDE, COMPONENTS))
    assert width <= 1400 - 2 * 24 - 2  # the page's margins and the graph's border


def test_focus_of_a_library_is_what_it_needs_and_what_pulls_it_in():
    needs, pulled_by = focus_sets(inventory(WIDE, COMPONENTS))["deep2"]
    assert needs == {"deep2", "deep3", "deep4", "deep5"}
    assert pulled_by == {"deep2", "deep1", "lib-00", "comp-a"}


def node_classes(page: str, name: str) -> set[str]:
    return set(re.search(rf'<g id="n-{name}" class="([^"]+)"', page).group(1).split())


def test_page_marks_each_node_and_edge_with_the_foci_that_show_it():
    page = html_page(inventory(WIDE, COMPONENTS))
    ids = {n: i for i, n in enumerate(sorted(set(WIDE) | {d for ds in WIDE.values() for d in ds}))}
    deep2 = f"c{ids['deep2']}"
    shown = {n for n in ids if deep2 in node_classes(page, n)}
    assert shown == {"deep2", "deep3", "deep4", "deep5", "deep1", "lib-00", "comp-a"}
    edges_shown = re.findall(rf'<path class="e [^"]*\b{deep2}\b[^"]*"', page)
    assert len(edges_shown) == 6  # comp-a->lib-00->deep1->deep2->...->deep5, not comp-a's other 59 edges
    on = ".gwrap:has(#n-deep2:hover,#n-deep2:target)"
    assert f"{on} .node:not(.{deep2}){{opacity:.15}}" in page and f"{on} #f-deep2{{display:block}}" in page


def test_focus_line_names_the_components_that_pull_a_library_in():
    page = html_page(inventory(WIDE, COMPONENTS))
    line = re.search(r'<p id="f-deep3">(.*?)</p>', page).group(1)
    assert "required by deep2" in line and "pulled in by comp-a;" in line and "needs 2 package(s)" in line
    assert '<a href="#n-comp-a">comp-a</a>' in page and '<a href="#n-comp-b">comp-b</a>' in page


def test_page_loads_nothing_and_runs_no_script():
    page = html_page(inventory(WIDE, COMPONENTS))
    assert "<script" not in page and "https://" not in page and " src=" not in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
