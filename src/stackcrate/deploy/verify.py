"""`deploy verify`: exercise the APIs with the real `openstack` client from the built artifacts.

The image and the server are created once and found again on later runs: that shows data survives
stop/start and rm/run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .. import tools
from ..errors import StackcrateError
from ..tools import ToolFailed
from .config import Deployment
from .lifecycle import layout
from .timer import Timer

IMAGE, FLAVOR, SERVER = "stackcrate-verify", "stackcrate.verify", "stackcrate-verify"
COMPUTE_MICROVERSION = "2.37"  # the first that accepts `--nic none`


def client_env(d: Deployment) -> dict[str, str]:
    lay = layout(d)
    return {"OS_AUTH_URL": lay.public_url("keystone"), "OS_USERNAME": "admin", "OS_PROJECT_NAME": "admin",
            "OS_PASSWORD": lay.secrets["admin_password"], "OS_USER_DOMAIN_NAME": "Default",
            "OS_PROJECT_DOMAIN_NAME": "Default", "OS_IDENTITY_API_VERSION": "3",
            "OS_REGION_NAME": d.config.region, "OS_INTERFACE": "public",
            "OS_COMPUTE_API_VERSION": COMPUTE_MICROVERSION}


class Client:
    def __init__(self, d: Deployment):
        lay = layout(d)
        self.bin = str(Path(lay.venvs[d.services.client]) / "bin" / "openstack")
        self.env = client_env(d)

    def __call__(self, *args: str, fmt: bool = True) -> object:
        argv = [self.bin, *args] + (["-f", "json"] if fmt else [])
        proc = tools.run(argv, env=self.env, timeout=300)
        return json.loads(proc.stdout) if fmt and proc.stdout.strip() else proc.stdout

    def show(self, kind: str, name: str) -> dict | None:
        try:
            return self(kind, "show", name)  # type: ignore[return-value]
        except ToolFailed as exc:
            if "No " in exc.stderr or "Could not find" in exc.stderr or "not found" in exc.stderr.lower():
                return None
            raise


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify(d: Deployment, t: Timer) -> dict:
    os_ = Client(d)
    res: dict = {}
    with t.step("Token issue"):
        tok = os_("token", "issue")
        if not tok.get("id"):  # type: ignore[union-attr]
            raise StackcrateError("keystone issued no token")
        res["token"] = "ok"
    work = d.state / "data" / "verify"
    work.mkdir(parents=True, exist_ok=True)
    src = work / "image.bin"
    if not src.exists():
        src.write_bytes(os.urandom(1 << 20))
    with t.step("Image upload (once) and download, byte-identical") as info:
        image = os_.show("image", IMAGE)
        res["image"] = "existing" if image else "created"
        if not image:
            os_("image", "create", "--disk-format", "raw", "--container-format", "bare", "--file", str(src), IMAGE)
        back = work / "download.bin"
        back.unlink(missing_ok=True)
        os_("image", "save", "--file", str(back), IMAGE, fmt=False)
        if _sha(back) != _sha(src):
            raise StackcrateError(f"image {IMAGE} downloaded differs from what was uploaded")
        res["image_sha256"] = _sha(back)
        info["note"] = res["image"]
    with t.step("Server on the fake driver: create (once), wait ACTIVE") as info:
        if not os_.show("flavor", FLAVOR):
            os_("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", FLAVOR)
        server = os_.show("server", SERVER)
        res["server"] = "existing" if server else "created"
        if not server:
            server = os_("server", "create", "--flavor", FLAVOR, "--image", IMAGE, "--nic", "none", "--wait",
                         SERVER)
        info["note"] = res["server"]
    with t.step("Server list and show"):
        listed = os_("server", "list")
        if SERVER not in [s["Name"] for s in listed]:  # type: ignore[union-attr]
            raise StackcrateError(f"server {SERVER} missing from `openstack server list`")
        shown = os_("server", "show", SERVER)
        res["server_status"] = shown["status"]  # type: ignore[index]
        res["server_id"] = shown["id"]  # type: ignore[index]
        if shown["status"] != "ACTIVE":  # type: ignore[index]
            raise StackcrateError(f"server {SERVER} is {shown['status']}, not ACTIVE")  # type: ignore[index]
    return res
