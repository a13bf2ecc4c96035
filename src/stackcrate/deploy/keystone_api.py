"""Service users, services and endpoints, created idempotently through keystone's REST API.

Plain HTTP from Python rather than `openstack user create --password ...`: no password on a command line, and
no 2 s client start-up per call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from .. import tools
from ..errors import StackcrateError
from .layout import Layout
from .openstack import SERVICES

# keystone revokes the admin's tokens when its bootstrap sets a changed password, and counts a token issued within
# the same second as revoked too (a Fernet token's time has whole seconds): the next one, from a later second
REISSUE_AFTER = 1.0


class TokenRefused(StackcrateError):
    """keystone answered 401 to the token."""


class Keystone:
    def __init__(self, url: str, token: str):
        """token: the admin's (init's shared one: health.Tokens, issued by health.Checker.issue_token)."""
        self.url = url.rstrip("/")
        self.token = token

    def _call(self, method: str, path: str, body: dict | None = None) -> tuple[dict, Mapping[str, str]]:
        headers = {"Content-Type": "application/json", "X-Auth-Token": self.token}
        try:
            r = tools.http(self.url + path, method=method, headers=headers, timeout=60,
                           body=json.dumps(body).encode() if body is not None else None)
        except tools.FetchFailed as e:
            # never the body: it may hold a password
            raise (TokenRefused if e.status == 401 else StackcrateError)(
                f"keystone: {method} {path} failed: {f'HTTP {e.status}' if e.status else e.reason}",
                hint="see `stackcrate deploy logs keystone`") from None
        return r.json(), r.headers

    def find(self, kind: str, **filters: str) -> dict | None:
        q = "&".join(f"{k}={v}" for k, v in filters.items())
        items = self._call("GET", f"/{kind}?{q}")[0][kind]
        return items[0] if items else None

    def ensure(self, kind: str, one: str, body: dict, **filters: str) -> tuple[dict, bool]:
        found = self.find(kind, **filters)
        if found:
            return found, False
        return self._call("POST", f"/{kind}", {one: body})[0][one], True


def register_with(lay: Layout, tokens, issue: Callable[[], tuple[str, float]]) -> int:
    """register() with the admin token `tokens` (health.Tokens) holds or issues; should keystone refuse it (see
    REISSUE_AFTER), once more with another, issued a second later. Each step of register is idempotent."""
    token = tokens.get(issue)
    try:
        return register(lay, token)
    except TokenRefused:
        tokens.forget(token)
        time.sleep(REISSUE_AFTER)
        return register(lay, tokens.get(issue))


def register(lay: Layout, token: str) -> int:
    """Service project, users (role admin in project service), services, endpoints (keystone's own too: their
    URLs follow the deployment, e.g. https with TLS); returns how many it made. Talks to keystone itself, not
    through HAProxy, with the admin's token."""
    ks = Keystone(lay.backend_url("keystone"), token)
    identity = ks.find("services", type="identity")
    if identity:
        made_ep = _endpoints(ks, identity, lay.public_url("keystone"), lay.d.config.region)
    else:
        made_ep = 0
    made = 0
    project, new = ks.ensure("projects", "project", {"name": "service", "domain_id": "default"},
                             name="service", domain_id="default")
    made += new
    roles = {}
    for role in ("admin", "service"):
        roles[role], new = ks.ensure("roles", "role", {"name": role}, name=role)
        made += new
    region = lay.d.config.region

    def one(name: str) -> int:
        catalog = SERVICES[name].catalog
        if catalog is None:  # keystone registers itself at bootstrap
            return 0
        user, new_user = ks.ensure("users", "user", {"name": name, "domain_id": "default",
                                                     "password": lay.secrets["service_password"]},
                                   name=name, domain_id="default")
        if not new_user:  # keep the password in step with the secrets file
            ks._call("PATCH", f"/users/{user['id']}", {"user": {"password": lay.secrets["service_password"]}})
        for role in roles.values():
            ks._call("PUT", f"/projects/{project['id']}/users/{user['id']}/roles/{role['id']}")
        stype, sname = catalog
        svc, new = ks.ensure("services", "service", {"name": sname, "type": stype}, type=stype)
        return new_user + new + _endpoints(ks, svc, lay.public_url(name), region)

    # the services side by side: keystone hashes each new password (bcrypt, ~0.5 s of one core), in threads of
    # its own that run at once
    with ThreadPoolExecutor(max_workers=4) as pool:
        made += sum(pool.map(one, lay.d.services.enabled()))
    return made + made_ep


def _endpoints(ks: Keystone, svc: dict, url: str, region: str) -> int:
    """The service's public, internal and admin endpoints at url (created, or moved there); how many made."""
    made = 0
    for iface in ("public", "internal", "admin"):
        ep = ks.find("endpoints", service_id=svc["id"], interface=iface)
        if ep and ep["url"] != url:
            ks._call("PATCH", f"/endpoints/{ep['id']}", {"endpoint": {"url": url}})
        elif not ep:
            ks._call("POST", "/endpoints", {"endpoint": {"service_id": svc["id"], "interface": iface,
                                                         "url": url, "region_id": region}})
            made += 1
    return made
