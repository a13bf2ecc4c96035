"""A legacy inventory's versions and services (legacy.py): the pin where every component accepts it, otherwise a
release inside every range, said which and why; the services a component without bindep.txt needs."""

from __future__ import annotations

from stackcrate.errors import StackcrateError
from stackcrate.reqs.legacy import services, settle

# oslo.config's releases around kilo (as PyPI lists them)
OSLO_CONFIG = ["1.9.0", "1.9.1", "1.9.2", "1.9.3", "1.10.0", "1.11.0", "1.12.0", "1.13.0", "2.0.0a1"]


def index(releases: dict[str, list[str]]):
    return lambda name: releases[name]


def test_a_pin_every_component_accepts_stands():
    got = settle("WebOb", "1.4.1", {"keystone": ">=1.2.3", "nova": ">=1.2.3"}, index({}))
    assert got == {"version": "1.4.1", "version_from": "upper-constraints", "why": "", "upper_constraints": "1.4.1",
                   "conflicts": {}}


def test_a_rejected_pin_gives_way_to_the_newest_release_inside_a_capped_range():
    got = settle("oslo.config", "1.13.0", {"keystone": ">=1.9.3,<1.10.0", "glance": ">=1.9.0"},
                 index({"oslo.config": OSLO_CONFIG}))
    assert got["version"] == "1.9.3" and got["version_from"] == "newest inside the range"
    assert got["conflicts"] == {"keystone": "<1.10.0,>=1.9.3"} and got["upper_constraints"] == "1.13.0"
    assert got["why"].startswith("upper-constraints pin 1.13.0, which keystone (<1.10.0,>=1.9.3) rejects")


def test_an_uncapped_range_gets_the_lowest_release_it_accepts():
    got = settle("oslo.config", "1.9.2", {"nova": ">=1.11.0"}, index({"oslo.config": OSLO_CONFIG}))
    assert got["version"] == "1.11.0" and got["version_from"] == "lowest the range accepts"
    assert "has no upper bound" in got["why"]


def test_no_release_inside_the_range_and_no_index_are_said_as_such():
    got = settle("oslo.config", "1.13.0", {"a": "<1.9.0"}, index({"oslo.config": OSLO_CONFIG}))
    assert got["version"] is None and "no release on the index satisfies <1.9.0" in got["why"]

    def offline(name):
        raise StackcrateError("no network")

    got = settle("oslo.config", None, {"a": ">=1.9"}, offline)
    assert got["version"] is None and got["why"].startswith("not in upper-constraints; the package index could")


def test_services_come_from_the_sample_configs_options_else_from_requirements():
    conf = "[DEFAULT]\n#rpc_backend = rabbit\n\n[database]\n#connection = <None>\n"
    found = services({"etc/glance-api.conf.sample": conf}, ["python-memcached", "oslo.db"])
    assert [(s["service"], s["from"]) for s in found] == [
        ("database", "[database] connection in etc/glance-api.conf.sample"),
        ("message queue", "[DEFAULT] rpc_backend in etc/glance-api.conf.sample"),
        ("cache", "requirement python-memcached")]
    assert services({}, ["six"]) == []
