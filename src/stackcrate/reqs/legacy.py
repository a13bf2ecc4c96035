"""What an inventory without a lock (a series that cannot be built today, e.g. kilo) can still say truly.

Versions: a series' last upper-constraints often pin releases its components' own requirements reject (at kilo's
end of life, oslo.config 1.13.0 against keystone's `>=1.9.3,<1.10.0`): the pin stands only where every component
accepts it; otherwise the version is chosen inside every component's range from the releases on the index, and
the conflict is kept beside it. Which release, and why: a range with an upper bound gets the newest release inside
it (what pip installed while the series was maintained); a range without one the lowest it accepts (the one the
component declared it needs), since the newest would be a release of years later.

Services: a component without a bindep.txt does not say which system packages it needs, but its sample
configuration (etc/*.conf*, read as oslo.config writes them) and its requirements show which services it uses:
a database, a message queue, a cache.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..errors import StackcrateError

Index = Callable[[str], list[str]]   # a project's released versions (the package index's)

# (service, what it is, config options that point at it as (section, option), requirements that imply it)
SERVICES = (
    ("database", "an SQL database (MySQL/MariaDB or PostgreSQL, through SQLAlchemy)",
     (("database", "connection"), ("DEFAULT", "sql_connection"), ("sql", "connection")),
     ("oslo-db", "sqlalchemy", "sqlalchemy-migrate")),
    ("message queue", "a message queue (RabbitMQ, through oslo.messaging)",
     (("DEFAULT", "transport_url"), ("DEFAULT", "rpc_backend"), ("DEFAULT", "rabbit_host"),
      ("oslo_messaging_rabbit", "rabbit_host"), ("oslo_messaging_rabbit", "rabbit_hosts")),
     ("oslo-messaging", "kombu")),
    ("cache", "a cache (memcached)",
     (("DEFAULT", "memcached_servers"), ("cache", "memcache_servers"), ("keystone_authtoken", "memcached_servers"),
      ("keystone_authtoken", "memcache_servers"), ("memcache", "servers")),
     ("python-memcached", "pymemcache", "oslo-cache", "dogpile-cache")),
)
_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
_OPTION = re.compile(r"^\s*#?\s*([A-Za-z0-9_]+)\s*=")


def _capped(spec: SpecifierSet) -> bool:
    return any(s.operator in ("<", "<=", "==", "===", "~=") for s in spec)


def _releases(name: str, index: Index) -> list[Version] | None:
    try:
        out = []
        for v in index(name):
            try:
                out.append(Version(v))
            except InvalidVersion:
                continue
        return sorted(out)
    except StackcrateError:
        return None


def settle(name: str, pin: str | None, ranges: Mapping[str, str], index: Index | None) -> dict:
    """The version to report for one package: {version, version_from, why, upper_constraints, conflicts}."""
    specs = {}
    for comp, text in ranges.items():
        try:
            specs[comp] = SpecifierSet(text)
        except InvalidSpecifier:
            specs[comp] = SpecifierSet()
    rejected = {c: str(s) for c, s in specs.items() if pin and not s.contains(pin, prereleases=True)}
    out: dict = {"upper_constraints": pin, "conflicts": rejected}
    if pin and not rejected:
        return out | {"version": pin, "version_from": "upper-constraints", "why": ""}
    whole = SpecifierSet(",".join(str(s) for s in specs.values() if str(s)))
    lead = (f"upper-constraints pin {pin}, which {', '.join(f'{c} ({s})' for c, s in rejected.items())} "
            "reject" + ("s" if len(rejected) == 1 else "") if pin else "not in upper-constraints")
    releases = _releases(name, index) if index else None
    if releases is None:
        return out | {"version": None, "version_from": "unknown",
                      "why": f"{lead}; the package index could not be read to find a release inside the range"}
    inside = [v for v in releases if not v.is_prerelease and whole.contains(v)]
    if not inside:
        return out | {"version": None, "version_from": "unknown",
                      "why": f"{lead}; no release on the index satisfies {whole or 'the range'}"}
    if _capped(whole):
        return out | {"version": str(inside[-1]), "version_from": "newest inside the range",
                      "why": f"{lead}; the newest release inside {whole}"}
    return out | {"version": str(inside[0]), "version_from": "lowest the range accepts",
                  "why": f"{lead}; {whole or 'the range'} has no upper bound: the lowest release it accepts"}


def services(config_texts: Mapping[str, str], requirements: list[str]) -> list[dict]:
    """The services a component's configuration needs, each with where that was seen: a sample config's option
    (commented out or not), else a requirement."""
    seen: dict[tuple[str, str], str] = {}
    for where, text in sorted(config_texts.items()):
        section = "DEFAULT"
        for line in text.splitlines():
            if m := _SECTION.match(line):
                section = m.group(1).strip()
            elif (m := _OPTION.match(line)) and (section, m.group(1)) not in seen:
                seen[(section, m.group(1))] = where
    reqs = {canonicalize_name(r) for r in requirements}
    out = []
    for service, what, options, implied in SERVICES:
        hit = next(((s, o) for s, o in options if (s, o) in seen), None)
        if hit:
            out.append({"service": service, "what": what, "from": f"[{hit[0]}] {hit[1]} in {seen[hit]}"})
        elif by := sorted(reqs & set(implied)):
            out.append({"service": service, "what": what, "from": f"requirement {', '.join(by)}"})
    return out
