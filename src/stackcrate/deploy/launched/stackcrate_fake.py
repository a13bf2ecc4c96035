"""nova's fake driver, with the one thing a network needs of a hypervisor: each server's ports plugged into the
integration bridge of the compute host's Open vSwitch, so the OVN chassis claims them and neutron marks them
ACTIVE (what the libvirt driver does through os-vif for a real VM).

Generated into the deployment by stackcrate (not imported by it): nova-compute loads it as
nova.virt.stackcrate_fake (nova loads drivers from nova.virt only), its folder added to that package's path by
the launcher stackcrate writes beside it. Each plugged port is an OVS internal port, named like libvirt's taps,
with the external_ids OVN binds by (iface-id: the neutron port).
"""

from __future__ import annotations

import os_vif
from nova import exception
from nova.virt import fake
from oslo_config import cfg
from oslo_log import log as logging
from ovsdbapp.backend.ovs_idl import connection, idlutils
from ovsdbapp.schema.open_vswitch import impl_idl

LOG = logging.getLogger(__name__)
CONF = cfg.CONF


class FakeOVSDriver(fake.FakeDriverWithoutFakeNodes):
    """FakeDriverWithoutFakeNodes (one node that keeps its identity) whose servers' ports are really plugged."""

    _ovs = None

    def ovs(self):
        """Open vSwitch's database where libvirt's driver would plug the port through os-vif: os-vif's own
        setting ([os_vif_ovs] ovsdb_connection and ovs_vsctl_timeout, registered by os_vif.initialize())."""
        if self._ovs is None:
            os_vif.initialize()
            where, timeout = CONF.os_vif_ovs.ovsdb_connection, CONF.os_vif_ovs.ovs_vsctl_timeout
            idl = connection.OvsdbIdl.from_server(where, "Open_vSwitch")
            self._ovs = impl_idl.OvsdbIdl(connection.Connection(idl, timeout=timeout))
        return self._ovs

    def bridge(self) -> str:
        """The integration bridge ovn-controller manages (its external_ids:ovn-bridge)."""
        ids = self.ovs().db_get("Open_vSwitch", ".", "external_ids").execute(check_error=True)
        return ids.get("ovn-bridge", "br-int")

    @staticmethod
    def devname(vif) -> str:
        return vif.get("devname") or ("tap" + vif["id"])[:14]

    def _plug(self, instance, vif) -> None:
        ovs, bridge, dev = self.ovs(), self.bridge(), self.devname(vif)
        if not ovs.br_exists(bridge).execute(check_error=True):
            raise exception.VirtualInterfacePlugException(
                f"integration bridge {bridge} does not exist (is ovn-controller running?)")
        ids = {"iface-id": vif["id"], "iface-status": "active", "attached-mac": vif["address"],
               "vm-uuid": instance.uuid}
        try:
            with ovs.transaction(check_error=True) as txn:
                txn.add(ovs.add_port(bridge, dev, may_exist=True))
                txn.add(ovs.db_set("Interface", dev, ("type", "internal"), ("external_ids", ids)))
        except Exception as exc:
            raise exception.VirtualInterfacePlugException(f"plugging {dev} into {bridge}: {exc}") from exc
        LOG.info("plugged port %s as %s into %s", vif["id"], dev, bridge, instance=instance)

    def _unplug(self, instance, vif) -> None:
        dev = self.devname(vif)
        try:
            self.ovs().del_port(dev, if_exists=True).execute(check_error=True)
        except idlutils.RowNotFound:
            pass
        LOG.info("unplugged %s", dev, instance=instance)

    def plug_vifs(self, instance, network_info):
        for vif in network_info or []:
            self._plug(instance, vif)

    def unplug_vifs(self, instance, network_info):
        for vif in network_info or []:
            self._unplug(instance, vif)

    def spawn(self, context, instance, image_meta, injected_files, admin_password, allocations,
              network_info=None, block_device_info=None, power_on=True, accel_info=None):
        super().spawn(context, instance, image_meta, injected_files, admin_password, allocations,
                      network_info=network_info, block_device_info=block_device_info, power_on=power_on,
                      accel_info=accel_info)
        self.plug_vifs(instance, network_info)

    def destroy(self, context, instance, network_info, block_device_info=None, destroy_disks=True,
                destroy_secrets=True):
        self.unplug_vifs(instance, network_info)
        super().destroy(context, instance, network_info, block_device_info, destroy_disks, destroy_secrets)

    def attach_interface(self, context, instance, image_meta, vif):
        super().attach_interface(context, instance, image_meta, vif)
        self._plug(instance, vif)

    def detach_interface(self, context, instance, vif):
        self._unplug(instance, vif)
        super().detach_interface(context, instance, vif)
