"""services.yaml / configuration.yaml validation, secrets, generated configs."""

from __future__ import annotations

import stat

import pytest
import yaml

from stackcrate.deploy import backing, configs, secrets
from stackcrate.deploy.config import Deployment
from stackcrate.deploy.layout import Layout
from stackcrate.errors import StackcrateError


def load(dep) -> Deployment:
    return Deployment(dep["services"], dep["config"])


def test_example_files_load(dep):
    d = load(dep)
    assert list(d.services.enabled()) == ["keystone", "glance", "placement", "neutron", "nova", "horizon"]
    assert d.listen == "127.0.0.1"
    assert d.state == dep["state"].resolve()


def test_unknown_field_names_file_and_line(dep):
    services = yaml.safe_load(dep["services"].read_text())
    services["services"]["glance"]["bogus"] = 1
    text = yaml.safe_dump(services, sort_keys=False)
    dep["services"].write_text(text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "bogus" in ln)
    with pytest.raises(StackcrateError) as e:
        load(dep)
    assert f"services.yaml:{line}" in str(e.value)
    assert "unknown field 'services.glance.bogus'" in str(e.value)
    assert "backend_port" in str(e.value)  # the allowed fields are listed


@pytest.mark.parametrize("processes, said", [
    ([], "nova cannot build a server without api, conductor, scheduler"),
    (["compute"], "nova cannot build a server without api, conductor, scheduler"),
    (["api", "conductor", "scheduler", "api"], "api listed twice"),
])
def test_a_nova_that_cannot_build_a_server_is_refused(dep, processes, said):
    services = yaml.safe_load(dep["services"].read_text())
    services["services"]["nova"]["processes"] = processes
    dep["services"].write_text(yaml.safe_dump(services, sort_keys=False))
    with pytest.raises(StackcrateError, match=f"field 'services.nova.processes': {said}"):
        load(dep)


def test_nova_without_compute_is_a_control_plane_whose_compute_hosts_come_later(dep):
    services = yaml.safe_load(dep["services"].read_text())
    services["services"]["nova"]["processes"] = ["api", "conductor", "scheduler"]
    dep["services"].write_text(yaml.safe_dump(services, sort_keys=False))
    assert load(dep).services.enabled()["nova"].processes == ["api", "conductor", "scheduler"]


def test_bad_listen_address(dep):
    conf = yaml.safe_load(dep["config"].read_text())
    conf["listen"] = "localhost"
    dep["config"].write_text(yaml.safe_dump(conf))
    with pytest.raises(StackcrateError, match=r"configuration.yaml:\d+: field 'listen': 'localhost' is not an IP"):
        load(dep)


def test_port_used_twice(dep):
    services = yaml.safe_load(dep["services"].read_text())
    keystone_port = services["services"]["keystone"]["backend_port"]
    services["services"]["glance"]["backend_port"] = keystone_port
    dep["services"].write_text(yaml.safe_dump(services))
    with pytest.raises(StackcrateError, match=f"port {keystone_port} is used twice"):
        load(dep)


def test_override_of_unknown_service(dep):
    conf = yaml.safe_load(dep["config"].read_text())
    conf["overrides"] = {"cinder": {"DEFAULT": {"debug": True}}}
    dep["config"].write_text(yaml.safe_dump(conf))
    with pytest.raises(StackcrateError, match="unknown service 'cinder'"):
        load(dep)


def test_secrets_generated_once_mode_0600(tmp_path):
    first = secrets.ensure(tmp_path)
    path = tmp_path / "secrets.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
    assert set(first) == set(secrets.NAMES) and len(set(first.values())) == len(first)
    assert secrets.ensure(tmp_path) == first == secrets.applied(tmp_path)


def test_a_compute_host_of_several_keeps_only_the_secrets_it_uses(tmp_path):
    """None of the databases' passwords: made there by none, and those an older stackcrate gave it dropped."""
    compute = secrets.needed(["compute"])
    assert secrets.needed(["control"]) == secrets.needed(["control", "compute"]) == secrets.NAMES
    assert not [n for n in compute if n.startswith("db_") or n == "horizon_secret_key"]
    assert set(secrets.ensure(tmp_path, names=compute)) == set(compute) == set(secrets.applied(tmp_path))
    secrets.record(tmp_path, dict.fromkeys(secrets.NAMES, "v" * 32))  # every one, as an older stackcrate gave
    given = {"db_nova": "w" * 32, "service_password": "s" * 32}
    assert secrets.desired(tmp_path, given, compute) == {**dict.fromkeys(compute, "v" * 32),
                                                         "service_password": "s" * 32}
    assert set(secrets.applied(tmp_path)) == set(compute)
    # an applying file that cannot be read makes every secret the host uses pending, and only those
    (tmp_path / secrets.APPLYING).write_text("[unclosed")
    assert secrets.pending(tmp_path, {}, compute) == sorted(compute)
    # a name a newer stackcrate recorded stays
    secrets.record(tmp_path, {**secrets.applied(tmp_path), "a_newer_secret": "n" * 32})
    assert secrets.ensure(tmp_path, names=compute)["a_newer_secret"] == "n" * 32


def test_a_secret_changed_in_the_configuration_is_pending_until_init_records_it(tmp_path):
    first = secrets.ensure(tmp_path)
    given = {"admin_password": "given-one"}
    assert secrets.pending(tmp_path, given) == ["admin_password"]
    wanted = secrets.desired(tmp_path, given)
    assert wanted["admin_password"] == "given-one" and wanted["db_nova"] == first["db_nova"]
    assert secrets.applied(tmp_path)["admin_password"] == first["admin_password"]  # not applied yet
    secrets.record(tmp_path, wanted)
    assert secrets.pending(tmp_path, given) == []


def test_a_secret_an_init_began_to_apply_stays_pending_until_an_init_ends(tmp_path):
    first = secrets.ensure(tmp_path)
    given = {"rabbitmq_password": "new-one"}
    secrets.begin_applying(tmp_path, secrets.pending(tmp_path, given))
    # the init stopped half-way; the configuration goes back to the value secrets.yaml records
    assert secrets.pending(tmp_path, {}) == ["rabbitmq_password"]
    assert secrets.pending(tmp_path, {"rabbitmq_password": first["rabbitmq_password"]}) == ["rabbitmq_password"]
    secrets.begin_applying(tmp_path, ["admin_password"])  # another init, stopped too: both stay pending
    assert secrets.pending(tmp_path, {}) == ["admin_password", "rabbitmq_password"]
    assert "new-one" not in (tmp_path / secrets.APPLYING).read_text()  # names only
    secrets.record(tmp_path, secrets.desired(tmp_path, {}))  # generating a new secret records too...
    assert secrets.pending(tmp_path, {}) == ["admin_password", "rabbitmq_password"]  # ...and ends nothing
    secrets.finish_applying(tmp_path)
    assert secrets.pending(tmp_path, {}) == []


def test_a_hand_broken_secrets_file_is_told_by_its_line_without_its_text(tmp_path):
    secrets.ensure(tmp_path)
    path = tmp_path / secrets.FILE
    path.write_text(path.read_text() + "db_nova: [s3cr3t-value\n")  # an unclosed list on the last line
    with pytest.raises(StackcrateError) as exc:
        secrets.applied(tmp_path)
    assert exc.value.where.startswith(f"{path}:") and "not valid YAML" in exc.value.message
    assert "s3cr3t-value" not in exc.value.render() and "backup" in exc.value.render()


def test_a_hand_broken_applying_file_keeps_every_secret_pending(tmp_path):
    secrets.ensure(tmp_path)
    (tmp_path / secrets.APPLYING).write_text("- rabbitmq_password\n- [\n")
    assert secrets.pending(tmp_path, {}) == sorted(secrets.NAMES)


def test_a_secret_given_before_the_first_init_is_not_generated(tmp_path):
    values = secrets.desired(tmp_path, {"rabbitmq_password": "mine"})
    assert values["rabbitmq_password"] == "mine" and "rabbitmq_password" not in secrets.applied(tmp_path)
    assert secrets.pending(tmp_path, {"rabbitmq_password": "mine"}) == []


def test_unknown_secret_name_is_refused(tmp_path):
    with pytest.raises(StackcrateError, match="unknown secret.*admin_pasword"):
        secrets.desired(tmp_path, {"admin_pasword": "typo"})


def test_world_readable_secrets_refused(tmp_path):
    secrets.ensure(tmp_path)
    (tmp_path / "secrets.yaml").chmod(0o644)
    with pytest.raises(StackcrateError, match="readable by other users"):
        secrets.applied(tmp_path)


def test_haproxy_fronts_every_api(dep):
    d = load(dep)
    cfg = backing.haproxy_config(d)
    for name, s in d.services.enabled().items():
        assert f"bind 127.0.0.1:{s.port}" in cfg
        assert f"server {name} 127.0.0.1:{s.backend_port}" in cfg
    assert "0.0.0.0" not in cfg


def test_ovn_ports_are_checked_with_the_others(dep):
    services = yaml.safe_load(dep["services"].read_text())
    services["backing"]["ovn"]["sb_port"] = services["backing"]["mariadb"]["port"]
    dep["services"].write_text(yaml.safe_dump(services))
    with pytest.raises(StackcrateError) as exc:
        load(dep)
    assert "is used twice (mariadb and ovn southbound)" in exc.value.render()


def test_an_unknown_datapath_is_refused_naming_the_choices(dep):
    conf = yaml.safe_load(dep["config"].read_text())
    conf["ovs_datapath"] = "dpdk"
    dep["config"].write_text(yaml.safe_dump(conf))
    with pytest.raises(StackcrateError) as exc:
        load(dep)
    assert "ovs_datapath" in exc.value.render() and "'netdev'" in exc.value.render()


def test_ovn_runs_only_where_neutron_does(dep):
    services = yaml.safe_load(dep["services"].read_text())
    for name in ("nova", "neutron", "glance", "placement"):
        del services["services"][name]
    dep["services"].write_text(yaml.safe_dump(services))
    d = load(dep)
    assert backing.backing_names(d) == ("mariadb", "epmd", "rabbitmq", "memcached", "haproxy")
    assert [p.name for p in backing.backing_processes(d)] == list(backing.backing_names(d))
    assert "ovn" not in backing.images_needed(d)


def test_a_missing_ovn_program_is_named_with_its_package(dep, monkeypatch):
    from stackcrate.deploy import ovn

    monkeypatch.setattr(backing, "program", lambda name, required=True: f"/usr/sbin/{name}")
    monkeypatch.setitem(ovn.PATHS, "ovn-controller", str(dep["dir"] / "no-such-ovn-controller"))
    with pytest.raises(StackcrateError) as exc:
        backing.check_programs(load(dep))
    text = exc.value.render()
    assert "'ovn-controller' is not installed" in text and "apt-get install ovn-host" in text


def test_every_api_caches_the_tokens_it_validated_encrypted_with_the_deployments_key(dep):
    d = Deployment(dep["services"], dep["config"])
    values = {n: f"value-of-{n}" for n in secrets.NAMES}
    lay = Layout(d, {s.component: f"/opt/openstack/{s.component}-1" for s in d.services.enabled().values()}, values)
    sections = {svc: conf["keystone_authtoken"] for svc, conf in configs.configs(lay).items()
                if "keystone_authtoken" in conf}
    assert set(sections) == {"glance", "placement", "nova", "neutron"}
    for section in sections.values():
        assert section["memcached_servers"] and section["memcache_security_strategy"] == "ENCRYPT"
        assert section["memcache_secret_key"] == "value-of-memcache_secret_key"
    # a compute host of several has not the key (it serves no API): no strategy it could not follow
    compute = Layout(d, lay.venvs, {n: values[n] for n in secrets.COMPUTE_HOST})
    assert "memcache_security_strategy" not in compute.authtoken("nova")


def test_a_venv_that_cannot_encrypt_the_token_cache_is_refused_naming_the_component_and_the_fix(dep, tmp_path):
    d = Deployment(dep["services"], dep["config"])
    venvs = {s.component: tmp_path / f"{s.component}-1" for s in d.services.enabled().values()}
    for component, venv in venvs.items():
        if component != "openstack-placement":
            (venv / "lib" / "python3.11" / "site-packages" / "cryptography-43.0.3.dist-info").mkdir(parents=True)
    lay = Layout(d, {c: str(v) for c, v in venvs.items()}, dict.fromkeys(secrets.NAMES, "x" * 20))
    with pytest.raises(StackcrateError) as exc:
        configs.refuse_token_cache_without_crypto(lay)
    text = exc.value.render()
    assert "openstack-placement's venv" in text and "has no cryptography" in text
    assert "add cryptography to openstack-placement's extra_requirements" in text
    (venvs["openstack-placement"] / "lib" / "python3.11" / "site-packages" / "cryptography-43.dist-info").mkdir(
        parents=True)
    configs.refuse_token_cache_without_crypto(lay)  # every venv can


@pytest.mark.parametrize("neutron, written", [
    ("28.0.2", "project_network_types"),    # 2026.1 renamed it: the old name logs a deprecation at every start
    ("28.1.0.dev4", "project_network_types"),
    ("27.0.1", "tenant_network_types"),     # 2025.2 knows only the old name
    (None, "tenant_network_types"),         # not known: the name every release reads
])
def test_an_option_the_service_renamed_is_written_by_the_name_its_release_reads(dep, neutron, written):
    d = load(dep)
    lay = Layout(d, {s.component: f"/opt/openstack/{s.component}-1" for s in d.services.enabled().values()},
                 dict.fromkeys(secrets.NAMES, "x"), {"neutron": neutron} if neutron else {})
    ml2 = configs.configs(lay)["neutron"]["ml2"]
    assert ml2[written] == "geneve"
    assert [k for k in ml2 if k.endswith("_network_types")] == [written]
    assert list(ml2)[1] == written  # in its place in the section


def test_an_override_of_a_renamed_options_old_name_is_the_value_the_service_reads(dep):
    conf = yaml.safe_load(dep["config"].read_text())
    conf["overrides"] = {"neutron": {"ml2": {"tenant_network_types": "vxlan"}}}
    dep["config"].write_text(yaml.safe_dump(conf))
    d = load(dep)
    lay = Layout(d, {s.component: f"/opt/openstack/{s.component}-1" for s in d.services.enabled().values()},
                 dict.fromkeys(secrets.NAMES, "x"), {"neutron": "28.0.2"})
    ml2 = configs.configs(lay)["neutron"]["ml2"]
    # under the new name, stackcrate's geneve would be read in place of the override's vxlan
    assert [(k, v) for k, v in ml2.items() if k.endswith("_network_types")] == [("tenant_network_types", "vxlan")]
