"""A nova compute driver whose instances are podman containers, driven through podman's Docker-compatible API
(`podman system service`) with docker-py, the client upper-constraints pins.

Each instance is one container named nova-<uuid>, labelled with the instance's uuid and name, its compute host
and its owner ([podman] owner: this nova-compute); podman keeps the state, so a restarted nova-compute finds its
instances again by label. A Glance image
(container_format docker, disk_format raw: a `docker save` or OCI archive) is loaded into podman once and tagged
[podman] image_repository/<image id>:latest; later boots reuse it.

Supported: spawn (the flavor's vCPUs and RAM become CPU and memory limits where the engine can enforce them),
destroy, reboot (restart), power off/on, pause/unpause, power state, console output (what the container wrote),
listing, resources to placement (the host's CPUs, memory and the engine's storage). Not supported: networks
(instances run without a network: boot with --nic none; a Neutron port fails the build with a fault that says
so), volumes, snapshots, resize, migration, rescue, consoles other than the log.
"""

from __future__ import annotations

import os
import platform
import tempfile

import docker
import os_resource_classes as orc
from docker import errors as docker_errors
from docker.types import Ulimit
from nova import exception
from nova.compute import power_state
from nova.image import glance
from nova.objects import fields as obj_fields
from nova.virt import driver, hardware
from oslo_concurrency import lockutils
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import units, versionutils

from . import conf

CONF = cfg.CONF
conf.register(CONF)
LOG = logging.getLogger(__name__)

LABEL = "org.openstack.nova"
LABEL_UUID, LABEL_NAME, LABEL_OWNER = f"{LABEL}.instance-uuid", f"{LABEL}.instance-name", f"{LABEL}.owner"
CONSOLE_BYTES = 100 * units.Ki   # as much of the output as libvirt's driver returns
# podman's container states (`podman inspect` State.Status) as nova's power states
POWER_STATES = {
    "running": power_state.RUNNING, "restarting": power_state.RUNNING, "paused": power_state.PAUSED,
    "created": power_state.SHUTDOWN, "configured": power_state.SHUTDOWN, "initialized": power_state.SHUTDOWN,
    "exited": power_state.SHUTDOWN, "stopped": power_state.SHUTDOWN, "stopping": power_state.SHUTDOWN,
    "removing": power_state.SHUTDOWN, "dead": power_state.CRASHED,
}


def owner() -> str:
    return CONF.podman.owner or CONF.host


def container_name(instance) -> str:
    return f"nova-{instance.uuid}"


def ulimits() -> list[Ulimit]:
    """[podman] ulimits as the engine takes them."""
    out = []
    for name, value in sorted(CONF.podman.ulimits.items()):
        try:
            n = int(value)
        except ValueError:
            raise exception.InvalidInput(reason=f"[podman] ulimits: {name}:{value} is not a number") from None
        out.append(Ulimit(name=name, soft=n, hard=n))
    return out


class PodmanDriver(driver.ComputeDriver):
    capabilities = dict(driver.ComputeDriver.capabilities, supports_image_type_raw=True)

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi)
        self._client = None
        self._image_api = glance.API()

    # -- the engine ------------------------------------------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker.DockerClient(base_url=CONF.podman.api_uri, timeout=CONF.podman.api_timeout,
                                               version="1.41")
        return self._client

    def _engine_info(self) -> dict:
        try:
            return self.client.info()
        except (docker_errors.DockerException, OSError) as exc:
            raise exception.HypervisorUnavailable(host=f"podman at {CONF.podman.api_uri}: {exc}") from exc

    def _container(self, instance):
        try:
            return self.client.containers.get(container_name(instance))
        except docker_errors.NotFound:
            raise exception.InstanceNotFound(instance_id=instance.uuid) from None

    def _ours(self) -> list:
        """This nova-compute's instance containers (running or not)."""
        return self.client.containers.list(all=True, filters={"label": [f"{LABEL_OWNER}={owner()}"]})

    def init_host(self, host):
        info = self._engine_info()
        found = self._ours()
        LOG.info("podman %s at %s (%s CPUs, %d MiB, storage %s): %d instance container(s) of %s",
                 info.get("ServerVersion"), CONF.podman.api_uri, info.get("NCPU"),
                 int(info.get("MemTotal", 0)) // units.Mi, info.get("DockerRootDir"), len(found), owner())

    # -- what runs -------------------------------------------------------------------------------------------

    def list_instances(self):
        return [c.labels.get(LABEL_NAME, c.name) for c in self._ours()]

    def list_instance_uuids(self):
        return [c.labels[LABEL_UUID] for c in self._ours() if LABEL_UUID in c.labels]

    def instance_exists(self, instance):
        try:
            self._container(instance)
            return True
        except exception.InstanceNotFound:
            return False

    def get_info(self, instance, use_cache=True):
        status = self._container(instance).status
        return hardware.InstanceInfo(state=POWER_STATES.get(status, power_state.NOSTATE))

    def get_console_output(self, context, instance):
        return self._container(instance).logs(stdout=True, stderr=True)[-CONSOLE_BYTES:]

    # -- images ----------------------------------------------------------------------------------------------

    def _image(self, context, instance, image_meta) -> str:
        """The podman image of the instance's Glance image, loaded from Glance the first time."""
        if image_meta.obj_attr_is_set("container_format") and image_meta.container_format != "docker":
            raise exception.ImageUnacceptable(
                image_id=image_meta.id,
                reason=f"container_format is {image_meta.container_format}: the podman driver boots container "
                       "images (container_format docker, disk_format raw: a `docker save` or OCI archive)")
        ref = f"{CONF.podman.image_repository}/{image_meta.id}:latest"
        with lockutils.lock(f"podman-image-{image_meta.id}"):
            try:
                self.client.images.get(ref)
                return ref
            except docker_errors.ImageNotFound:
                pass
            with tempfile.TemporaryDirectory(prefix="nova-podman-") as tmp:
                archive = os.path.join(tmp, "image.tar")
                self._image_api.download(context, image_meta.id, dest_path=archive)
                try:
                    with open(archive, "rb") as fh:
                        loaded = self.client.images.load(fh)
                except docker_errors.APIError as exc:
                    raise exception.ImageUnacceptable(
                        image_id=image_meta.id, reason=f"podman cannot load it as an image archive: {exc}") from exc
            if not loaded:
                raise exception.ImageUnacceptable(image_id=image_meta.id, reason="the archive holds no image")
            repository, tag = ref.rsplit(":", 1)
            loaded[0].tag(repository, tag)
            LOG.info("loaded image %s into podman as %s", image_meta.id, ref, instance=instance)
        return ref

    # -- lifecycle -------------------------------------------------------------------------------------------

    def _limits(self, instance) -> dict:
        """The flavor's vCPUs and RAM as CPU and memory limits, where the engine enforces them."""
        info, out = self._engine_info(), {}
        flavor = instance.flavor
        if info.get("MemoryLimit", True):
            out["mem_limit"] = flavor.memory_mb * units.Mi
        else:
            LOG.warning("podman cannot limit memory on this host: %s runs without a memory limit",
                        instance.uuid, instance=instance)
        if info.get("CpuCfsQuota", True):
            out["nano_cpus"] = flavor.vcpus * 10**9
        else:
            LOG.warning("podman cannot limit CPU time on this host: %s runs without a CPU limit",
                        instance.uuid, instance=instance)
        return out

    def spawn(self, context, instance, image_meta, injected_files, admin_password, allocations,
              network_info=None, block_device_info=None, power_on=True, accel_info=None):
        if network_info:
            raise exception.BuildAbortException(
                instance_uuid=instance.uuid,
                reason="the podman driver runs instances without a network: boot with --nic none "
                       f"({len(network_info)} port(s) requested)")
        if block_device_info and block_device_info.get("block_device_mapping"):
            raise exception.BuildAbortException(instance_uuid=instance.uuid,
                                                reason="the podman driver does not attach volumes")
        ref = self._image(context, instance, image_meta)
        labels = {LABEL_UUID: instance.uuid, LABEL_NAME: instance.name, LABEL_OWNER: owner(),
                  f"{LABEL}.host": CONF.host, f"{LABEL}.image-id": image_meta.id,
                  f"{LABEL}.flavor": instance.flavor.name}
        options = dict(name=container_name(instance), hostname=instance.hostname or instance.name, labels=labels,
                       network_mode="none", init=True, ulimits=ulimits(), **self._limits(instance))
        try:
            container = self.client.containers.create(ref, **options)
        except docker_errors.APIError as exc:
            raise exception.InstanceDeployFailure(reason=f"podman cannot create the container: {exc}",
                                                  instance_id=instance.uuid) from exc
        LOG.info("created container %s", container.name, instance=instance)
        if power_on:
            self._start(instance, container)

    def _start(self, instance, container=None):
        container = container or self._container(instance)
        try:
            container.start()
        except docker_errors.APIError as exc:
            raise exception.InstanceDeployFailure(reason=f"podman cannot start {container.name}: {exc}",
                                                  instance_id=instance.uuid) from exc

    def destroy(self, context, instance, network_info, block_device_info=None, destroy_disks=True,
                destroy_secrets=True):
        try:
            self._container(instance).remove(force=True, v=True)
            LOG.info("removed container %s", container_name(instance), instance=instance)
        except exception.InstanceNotFound:
            pass

    def cleanup(self, context, instance, network_info, block_device_info=None, destroy_disks=True,
                migrate_data=None, destroy_vifs=True, destroy_secrets=True):
        self.destroy(context, instance, network_info, block_device_info, destroy_disks, destroy_secrets)

    def reboot(self, context, instance, network_info, reboot_type, block_device_info=None,
               bad_volumes_callback=None, accel_info=None, share_info=None):
        container = self._container(instance)
        # soft: the main process gets SIGTERM and its stop timeout; hard: killed at once
        container.restart(timeout=CONF.podman.stop_timeout if reboot_type == "SOFT" else 0)

    def power_off(self, instance, timeout=0, retry_interval=0):
        self._container(instance).stop(timeout=timeout or CONF.podman.stop_timeout)

    def power_on(self, context, instance, network_info, block_device_info=None, accel_info=None,
                 share_info=None):
        self._start(instance)

    def pause(self, instance):
        self._container(instance).pause()

    def unpause(self, instance):
        self._container(instance).unpause()

    def plug_vifs(self, instance, network_info):
        if network_info:
            raise exception.VirtualInterfacePlugException("the podman driver runs instances without a network")

    def unplug_vifs(self, instance, network_info):
        pass

    # -- the host --------------------------------------------------------------------------------------------

    def get_available_nodes(self, refresh=False):
        return [CONF.host]

    def get_host_ip_addr(self):
        return CONF.my_ip

    def _host_resources(self) -> dict:
        info = self._engine_info()
        storage = info.get("DockerRootDir") or CONF.instances_path
        if not os.path.isdir(storage):  # nova-compute in a container of its own may not see the engine's storage
            storage = CONF.instances_path
        st = os.statvfs(storage)
        return {"vcpus": int(info.get("NCPU") or os.cpu_count() or 1),
                "memory_mb": int(info.get("MemTotal", 0)) // units.Mi,
                "local_gb": st.f_blocks * st.f_frsize // units.Gi,
                "free_gb": st.f_bavail * st.f_frsize // units.Gi,
                "version": info.get("ServerVersion", "0")}

    def get_available_resource(self, nodename):
        r = self._host_resources()
        running = [c for c in self._ours() if c.status in ("running", "paused")]
        used_mb = sum(int(c.attrs.get("HostConfig", {}).get("Memory") or 0) for c in running) // units.Mi
        used_cpus = sum(int(c.attrs.get("HostConfig", {}).get("NanoCpus") or 0) for c in running) // 10**9
        try:
            version = versionutils.convert_version_to_int(r["version"].split("-")[0])
        except Exception:  # noqa: BLE001 - a version we cannot parse is reported as 0, not a failure
            version = 0
        return {
            "vcpus": r["vcpus"], "memory_mb": r["memory_mb"], "local_gb": r["local_gb"],
            "vcpus_used": used_cpus, "memory_mb_used": used_mb, "local_gb_used": r["local_gb"] - r["free_gb"],
            "hypervisor_type": "podman", "hypervisor_version": version, "hypervisor_hostname": nodename,
            "cpu_info": "{}", "disk_available_least": r["free_gb"], "numa_topology": None,
            "supported_instances": [(obj_fields.Architecture.canonicalize(platform.machine()),
                                     obj_fields.HVType.DOCKER, obj_fields.VMMode.EXE)],
        }

    def update_provider_tree(self, provider_tree, nodename, allocations=None):
        r = self._host_resources()
        ratios = self._get_allocation_ratios(provider_tree.data(nodename).inventory)

        def one(total, rc, reserved):
            return {"total": total, "min_unit": 1, "max_unit": total, "step_size": 1,
                    "allocation_ratio": ratios[rc], "reserved": reserved}

        provider_tree.update_inventory(nodename, {
            orc.VCPU: one(r["vcpus"], orc.VCPU, CONF.reserved_host_cpus),
            orc.MEMORY_MB: one(r["memory_mb"], orc.MEMORY_MB, CONF.reserved_host_memory_mb),
            orc.DISK_GB: one(r["local_gb"], orc.DISK_GB, self._get_reserved_host_disk_gb_from_config()),
        })
