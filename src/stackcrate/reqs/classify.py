"""Telling OpenStack's own libraries from third-party ones, by their core metadata (../distmeta.py)."""

from __future__ import annotations

from email.message import Message

# Where OpenStack deliverables say they come from (Home-page, Project-URL, Author-email).
OPENSTACK_MARKS = ("openstack.org", "opendev.org/openstack", "openstack-discuss@", "openstack-dev@",
                   "launchpad.net/oslo", "launchpad.net/python-")
# For packages without metadata (sdist-only, or series that cannot be locked): OpenStack's naming habits.
OPENSTACK_NAMES = {"pbr", "stevedore", "keystoneauth1", "keystonemiddleware", "osc-lib", "openstacksdk",
                   "cliff", "debtcollector", "futurist", "taskflow", "tooz", "automaton", "castellan", "cursive",
                   "pycadf", "osprofiler", "microversion-parse", "glance-store", "neutron-lib", "ovsdbapp",
                   "oslotest", "reno", "bashate", "hacking", "sqlalchemy-migrate", "ryu", "os-ken"}


def is_openstack(name: str, meta: Message | None) -> bool:
    if meta is not None:
        where = " ".join([meta.get("Home-page", ""), meta.get("Author-email", ""), meta.get("Author", ""),
                          meta.get("Maintainer-email", ""), *meta.get_all("Project-URL", [])]).lower()
        if any(m in where for m in OPENSTACK_MARKS):
            return True
    return name in OPENSTACK_NAMES or name.startswith(("oslo-", "os-")) or (
        name.startswith("python-") and name.endswith("client"))
