"""Which ref and file name `reqs` fetches a series' openstack/requirements data from (no network: the fetch is
replaced by a table of URLs that answer)."""

from __future__ import annotations

import pytest

from stackcrate.cache import Cache
from stackcrate.constraints import CONSTRAINTS_DIR_ENV
from stackcrate.errors import StackcrateError
from stackcrate.reqs import data
from stackcrate.reqs.upstream import candidate_urls

OPENDEV = "https://opendev.org/openstack/requirements/raw/"
GITHUB = "https://raw.githubusercontent.com/openstack/requirements/"


@pytest.mark.parametrize(("series", "first"), [
    ("master", "branch/master"),
    ("2026.1", "branch/stable/2026.1"),
    ("2024.2", "tag/2024.2-eol"),
    ("2024.1", "branch/unmaintained/2024.1"),
    ("caracal", "branch/unmaintained/2024.1"),
    ("kilo", "tag/kilo-eol"),
])
def test_first_url_is_the_ref_the_series_lives_on(series, first):
    urls = candidate_urls(series, "global-requirements.txt")
    assert urls[0] == f"{OPENDEV}{first}/global-requirements.txt"
    assert urls[1] == f"{GITHUB}{first.split('/', 1)[1]}/global-requirements.txt"


@pytest.mark.parametrize("series", ["2024.1", "2024.2", "kilo"])
def test_no_url_of_a_series_past_maintenance_is_a_stable_branch(series):
    assert not [u for u in candidate_urls(series, "upper-constraints.txt") if "stable/" in u]


def test_unmaintained_series_falls_back_to_its_end_of_maintenance_tag():
    assert f"{OPENDEV}tag/2024.1-eom/upper-constraints.txt" in candidate_urls("2024.1", "upper-constraints.txt")


def test_denylist_falls_back_to_blacklist_on_the_same_ref():
    assert candidate_urls("kilo", "denylist.txt") == [
        f"{OPENDEV}tag/kilo-eol/denylist.txt", f"{GITHUB}kilo-eol/denylist.txt",
        f"{OPENDEV}tag/kilo-eol/blacklist.txt", f"{GITHUB}kilo-eol/blacklist.txt"]


@pytest.fixture
def served(monkeypatch, tmp_path):
    """fetch_cached answers only the URLs in the returned dict (the others fail as a 404 would)."""
    pages: dict[str, str] = {}
    asked: list[str] = []

    def fake(url, cache, refresh=True, what="constraints"):
        asked.append(url)
        if url not in pages:
            raise StackcrateError(f"cannot fetch {what} from {url}: HTTP 404")
        return pages[url]

    monkeypatch.delenv(CONSTRAINTS_DIR_ENV, raising=False)
    monkeypatch.setattr(data, "fetch_cached", fake)
    return pages, asked, Cache(tmp_path / "cache")


def test_kilo_data_is_read_from_its_eol_tag_with_blacklist_txt(served):
    pages, asked, cache = served
    pages[f"{OPENDEV}tag/kilo-eol/global-requirements.txt"] = "six>=1.9.0\nhacking>=0.10\n"
    pages[f"{GITHUB}kilo-eol/upper-constraints.txt"] = "six===1.9.0\n"  # opendev down for this one
    pages[f"{OPENDEV}tag/kilo-eol/blacklist.txt"] = "hacking\n"
    sd = data.load_series_data("kilo", cache)
    assert sd.denylist == {"hacking"} and set(sd.global_reqs) == {"six", "hacking"}
    assert sd.constraints_source == f"{GITHUB}kilo-eol/upper-constraints.txt"
    assert not [u for u in asked if "stable/" in u]


def test_nothing_answering_is_an_error_naming_every_url_tried(served):
    _, asked, cache = served
    with pytest.raises(StackcrateError) as exc:
        data.series_file("2024.2", "global-requirements.txt", cache)
    assert asked == candidate_urls("2024.2", "global-requirements.txt")
    assert all(u in exc.value.message for u in asked)
    assert CONSTRAINTS_DIR_ENV in exc.value.hint


def test_data_folder_with_blacklist_txt_only_is_read(tmp_path):
    folder = tmp_path / "data" / "kilo"
    folder.mkdir(parents=True)
    (folder / "blacklist.txt").write_text("hacking\n")
    src, text = data.series_file("kilo", "denylist.txt", Cache(tmp_path / "c"), str(tmp_path / "data"))
    assert src == str(folder / "blacklist.txt") and text == "hacking\n"
