"""An image made of the target's own packages, with no venv: the backing services (MariaDB, RabbitMQ, ...) that a
container backend runs beside the OpenStack services. Deploy names them; the package stage writes them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SystemImage:
    name: str                      # the image's (and artifact's) component name, e.g. mariadb
    packages: tuple[str, ...]      # the target's packages it holds; the first one's version is the image's
    entrypoint: str                # the program run when a container names none
