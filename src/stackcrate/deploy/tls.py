"""HTTPS at HAProxy (`tls: true`): a certificate authority made for the deployment, and a server certificate for
its listen address signed by it, both by `openssl` (through tools).

The CA's key never leaves <state>/data/tls (0700; kept by `rm`, like the data it protects); clients trust
ca.crt (clouds.yaml's `cacert`, the services' `cafile`). The server certificate is made again when the listen
address changed or it expires within 30 days.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from .. import tools
from .config import Deployment
from .secrets import private_file

CA_DAYS = 3650
SERVER_DAYS = 825       # the longest lifetime clients accept for a server certificate
RENEW_SECONDS = 30 * 86400
CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class TLSFiles:
    folder: Path

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.folder / "server.crt"

    @property
    def server_pem(self) -> Path:
        """Certificate then key, the form HAProxy's `crt` takes."""
        return self.folder / "server.pem"


def files(d: Deployment) -> TLSFiles:
    return TLSFiles(d.state / "data" / "tls")


def _openssl(*args: str) -> str:
    return tools.run([tools.which("openssl"), *args], timeout=60).stdout


def _server_cert_fits(f: TLSFiles, address: str) -> bool:
    if not (f.server_pem.exists() and f.server_cert.exists()):
        return False
    if tools.run([tools.which("openssl"), "x509", "-checkend", str(RENEW_SECONDS), "-noout", "-in",
                  str(f.server_cert)], check=False, timeout=60).returncode != 0:
        return False
    text = _openssl("x509", "-noout", "-ext", "subjectAltName", "-in", str(f.server_cert))
    return f"IP Address:{address}" in text


def ensure(d: Deployment) -> TLSFiles:
    """The CA (made once) and a server certificate for the listen address (made when missing or unfit)."""
    f = files(d)
    f.folder.mkdir(parents=True, exist_ok=True)
    f.folder.chmod(0o700)
    if not (f.ca_cert.exists() and f.ca_key.exists()):
        _openssl("req", "-x509", "-new", *CURVE, "-keyout", str(f.ca_key), "-out", str(f.ca_cert),
                 "-days", str(CA_DAYS), "-subj", f"/CN=stackcrate CA {secrets.token_hex(4)}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        f.ca_key.chmod(0o600)
    if not _server_cert_fits(f, d.listen):
        key, csr, ext = f.folder / "server.key", f.folder / "server.csr", f.folder / "server.ext"
        _openssl("req", "-new", *CURVE, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={d.listen}")
        private_file(ext, f"subjectAltName=IP:{d.listen}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(f.ca_cert), "-CAkey", str(f.ca_key),
                 "-set_serial", str(int.from_bytes(secrets.token_bytes(8), "big")), "-days", str(SERVER_DAYS),
                 "-extfile", str(ext), "-out", str(f.server_cert))
        private_file(f.server_pem, f.server_cert.read_text() + key.read_text())
        for tmp in (key, csr, ext):
            tmp.unlink()
    return f
