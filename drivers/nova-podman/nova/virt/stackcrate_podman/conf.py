"""The driver's options: [podman] in nova.conf (listed by oslo-config-generator through the entry point)."""

from oslo_config import cfg

GROUP = cfg.OptGroup("podman", title="Podman containers as instances (nova.virt.stackcrate_podman)")

OPTS = [
    cfg.StrOpt("api_uri", default="unix:///run/podman/podman.sock",
               help="podman's API (`podman system service`; podman.socket under systemd), "
                    "as unix:///PATH or tcp://HOST:PORT"),
    cfg.IntOpt("api_timeout", default=120, min=1,
               help="Seconds one API call may take (a large image load is one call)"),
    cfg.StrOpt("owner",
               help="The value of the label org.openstack.nova.owner on this nova-compute's containers; it lists "
                    "and manages only those. Default: its host name ([DEFAULT] host). Give each nova-compute that "
                    "shares one podman a value of its own"),
    cfg.DictOpt("ulimits", default={},
                help="rlimits of the instances' containers, NAME:VALUE (soft and hard), e.g. "
                     "nofile:20000,nproc:32768; set them where the engine's defaults exceed the host's hard limits "
                     "(then no container starts: \"error setting rlimit ... operation not permitted\")"),
    cfg.IntOpt("stop_timeout", default=10, min=0,
               help="Seconds an instance's main process has to exit after SIGTERM on stop and reboot, "
                    "before SIGKILL"),
    cfg.StrOpt("image_repository", default="localhost/nova-glance",
               help="Where a Glance image loaded into podman is tagged: REPOSITORY/<image id>:latest"),
]


def register(conf=cfg.CONF):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]
