"""The dashboard (horizon) as its users meet it, at the HTTP level: the login form (with its CSRF token), a
login, project pages, a logout; through HAProxy, as a browser would. `deploy verify` and `deploy status` use it."""

from __future__ import annotations

import ssl
import threading
from html.parser import HTMLParser
from urllib.parse import urlsplit

from .. import tools
from ..errors import StackcrateError
from .config import Deployment
from .layout import Layout

LOGIN = "auth/login/"
LOGOUT = "auth/logout/"
SERVER_MADE_TIMEOUT = 600.0  # verify's steps before its server exists (uploads, networks) take ~5 s


def enabled(d: Deployment) -> bool:
    return "horizon" in d.services.enabled() and d.has("control")


def url(d: Deployment) -> str:
    """The dashboard's address (HAProxy's frontend), ending in /."""
    return Layout(d, {}, {}).public_url("horizon") + "/"


class _Form(HTMLParser):
    """The fields of the first form whose action ends with `action` (hidden ones with their values)."""

    def __init__(self, action: str):
        super().__init__()
        self.action, self.inside, self.found, self.fields = action, False, False, {}

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "form" and not self.found and (a.get("action") or "").endswith(self.action):
            self.inside = self.found = True
        elif tag in ("input", "select") and self.inside and a.get("name"):
            self.fields[a["name"]] = a.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False


def on_login_page(where: str) -> bool:
    return urlsplit(where).path.endswith("/" + LOGIN)


def form_fields(html: str, action: str) -> dict[str, str]:
    parser = _Form(action)
    parser.feed(html)
    if not parser.found:
        raise StackcrateError(f"the dashboard's page has no form posting to {action}",
                              hint="see `stackcrate deploy logs horizon`")
    return parser.fields


class Browser:
    """One user's session with the dashboard."""

    def __init__(self, d: Deployment, timeout: float = 60):
        self.base = url(d)
        ca = Layout(d, {}, {}).ca_file()
        self.web = tools.WebSession(timeout=timeout, context=ssl.create_default_context(cafile=str(ca)) if ca
                                    else None)

    def get(self, path: str) -> tuple[str, str]:
        where, r = self.web.request(self.base + path)
        return where, r.text()

    def login(self, user: str, password: str) -> tuple[str, str]:
        """Post the login form as a browser does; returns where the dashboard sent the user and that page."""
        _, page = self.get(LOGIN)
        fields = form_fields(page, LOGIN)
        fields.update(username=user, password=password)
        where, r = self.web.request(self.base + LOGIN, form=fields, headers={"Referer": self.base + LOGIN,
                                                                             "Origin": self.base.rstrip("/")})
        return where, r.text()

    def logout(self, page: str) -> str:
        """Sign out as the user menu on `page` does: its Sign Out form (a POST with its CSRF token; horizon 25.7),
        else its link (a GET; horizon 25.5 and older). Returns where the dashboard sent the user."""
        if f'action="/{LOGOUT}"' not in page:
            return self.get(LOGOUT)[0]
        where, _ = self.web.request(self.base + LOGOUT, form=form_fields(page, LOGOUT),
                                    headers={"Referer": self.base, "Origin": self.base.rstrip("/")})
        return where


def check(d: Deployment, password: str, server_name: str | None = None,
          server_made: threading.Event | None = None) -> dict:
    """Log in as the admin, open the project's overview (and its Instances page, which must list
    `server_name`, once `server_made` is set), log out; each must land where a browser would. What it saw, for
    the verify report."""
    b = Browser(d)
    where, page = b.login("admin", password)
    if on_login_page(where):
        raise StackcrateError(f"the dashboard refused the admin's login at {b.base}{LOGIN}",
                              hint="see `stackcrate deploy logs horizon` and `stackcrate deploy logs keystone`")
    where, page = b.get("project/")
    if "Overview" not in page:
        raise StackcrateError(f"the dashboard's project overview ({where}) shows no overview",
                              hint="see `stackcrate deploy logs horizon`")
    out = {"url": b.base, "login": "ok", "overview": "ok"}
    if server_name:
        if server_made is not None and not server_made.wait(SERVER_MADE_TIMEOUT):
            raise StackcrateError(f"no server {server_name} to look for on the dashboard's Instances page within "
                                  f"{SERVER_MADE_TIMEOUT:.0f}s")
        _, page = b.get("project/instances/")
        if server_name not in page:
            raise StackcrateError(f"the dashboard's Instances page does not list the server {server_name}",
                                  hint="see `stackcrate deploy logs horizon` and `stackcrate deploy logs nova-api`")
        out["instances"] = "lists the server"
    where = b.logout(page)
    if not on_login_page(where) or b.web.cookie("sessionid"):
        raise StackcrateError(f"logging out of the dashboard ended at {where}, not at the login page")
    out["logout"] = "ok"
    return out

