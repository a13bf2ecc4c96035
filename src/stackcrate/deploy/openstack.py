"""What stackcrate knows about each OpenStack service, as data: one table that the config writer, the init
steps, the local backend and the container backend all read (in the spirit of cibuildwheel's options as data).

Adding a service means adding a row here (and its config file's content in configs.py), nothing else.
Strings in commands may hold placeholders filled in at run time: {config_file}, {config_dir}, {venv},
{public_url}, {region}, {user}, {group} and, in environments only, {secret:NAME} (read from secrets.yaml, never
put on a command line).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Command:
    """A management command run at init: a program of the service's venv and its arguments."""

    program: str
    args: tuple[str, ...]
    ok_exit: tuple[int, ...] = (0,)         # exit statuses that mean success (e.g. "already exists")
    env: tuple[tuple[str, str], ...] = ()   # environment (secrets go here, never on the command line)
    # a file of the service's config folder whose content, with the venv's artifact, decides what the command
    # makes: when both are as at its last success, it is not run again (nor are the stamped commands after it,
    # unless it did not run)
    unless_same: str | None = None
    # SQL (run as the database's administrator) whose answer, when not empty, says the command's work is done:
    # for a command that cannot tell by itself (nova's create_cell, below). It is asked before the commands it
    # runs with (those between two Sql steps share one interpreter), so it must not depend on what they do; a
    # table it reads that does not exist yet (a new cloud) means not done.
    unless_sql: str | None = None
    # its whole work is in the service's databases, and on empty ones it is the same for the same venv and
    # database server (migrations; data it loads from the venv): a new cloud's databases as these commands leave
    # them are kept in stackcrate's cache and loaded instead of running them again (schemas.py). They come before
    # the service's other commands, and get no secret (the dump kept must hold none)
    schema_only: bool = False


@dataclass(frozen=True)
class Sql:
    """SQL run as the database's administrator at init (between the service's commands), each idempotent."""

    statements: tuple[str, ...]
    # "database.table": the statements run only when it exists (they fix rows of it; a new cloud has none yet)
    if_table: str | None = None


@dataclass(frozen=True)
class Renamed:
    """An option the service renamed: releases from `since` on read `new` and log a deprecation at every start
    when the file says `old`; older ones know only `old`. stackcrate writes the name the installed release reads
    as its own (configs.py)."""

    section: str
    old: str
    new: str
    since: str  # the first release (of the service's component) with `new`


@dataclass(frozen=True)
class Probe:
    """How to tell a process serves (health.py runs it): "token" (keystone issues one), "api" (an authenticated
    GET of `path` on the process's own port, which reads its database), "page" (a GET of `path` answers 200 with
    an HTML page: the dashboard's login page, rendered from its templates and compressed static files), "rpc" (up
    in nova's service list and consuming its RPC queue `queue`; {host} is the compute host)."""

    kind: str
    path: str = ""
    queue: str = ""


@dataclass(frozen=True)
class Launcher:
    """A process run through a module stackcrate writes into the deployment: `main` ("module:function") runs with
    `modules` (files of stackcrate's launched/, copied beside it) added to `package`'s path, since nova loads
    drivers only from nova.virt (e.g. the fake driver that plugs ports: stackcrate_fake.FakeOVSDriver). `imports`:
    those of them imported (from `package`) before main, each mending a bug of the venv's code named in it."""

    package: str
    main: str
    modules: tuple[str, ...] = ()
    imports: tuple[str, ...] = ()


@dataclass(frozen=True)
class Process:
    """One long-running process of a service."""

    name: str               # process name: keystone, nova-api, nova-conductor, ...
    program: str            # program of the service's venv; "gunicorn" serves the service's WSGI app
    probe: Probe
    role: str = "api"       # what services.yaml selects (nova: api, conductor, scheduler, compute)
    launcher: Launcher | None = None
    sockets: tuple[str, ...] = ()  # folders of the state folder with sockets it connects to (mounted read-write)
    # the OpenStack processes that must serve before it starts (the backing services always start first): a
    # process starts as soon as those serve (startstop.needs). keystone first, every other one checks tokens
    # against it
    after: tuple[str, ...] = ("keystone",)
    # sections of its service's config it must not be given: it reads a file of its own without them
    # (Layout.process_conf_file), and a host running no other process of the service has no other
    withheld: tuple[str, ...] = ()

    @property
    def wsgi(self) -> bool:
        return self.program == "gunicorn"


@dataclass(frozen=True)
class ServiceSpec:
    name: str                                # the key in services.yaml
    catalog: tuple[str, str] | None          # (type, name) registered in keystone, with a service user; None:
                                             # keystone itself (it registers at bootstrap), or the dashboard
    api_path: str                            # path of the API root in the catalog URL
    wsgi_app: str                            # module whose `application` gunicorn serves
    config_file: str                         # the generated config file (under <state>/etc/<service>/)
    config_dir_env: str                      # environment variable naming the config folder (WSGI loaders)
    config_files_env: str | None             # ... naming the files in it, ";"-separated (None: the loader
                                             # reads the config file by its name in that folder)
    db_user: str
    databases: tuple[str, ...]
    sync: tuple[Command | Sql, ...]          # schema migrations and setup, in order, each idempotent
    processes: tuple[Process, ...]           # in start order
    venv_config_files: tuple[str, ...] = ()  # shipped in the venv, loaded before ours (paths in the venv)
    wsgi_after_import: tuple[str, ...] = ()  # lines run once the WSGI app is imported
    health_path: str = "/"                   # what the API answers without a token (its version document)
    data_dirs: tuple[str, ...] = field(default=())  # folders under <state>/data/<service> it writes
    # Sections stackcrate's config names itself, whose options the service registers under another group only
    # at run time (section -> that group); options.py checks overrides of them against that group.
    section_aliases: tuple[tuple[str, str], ...] = ()
    wsgi_env: tuple[tuple[str, str], ...] = ()  # more environment of the API process (gunicorn)
    # `deploy upgrade`: the new release's readiness check, run before anything changes (exit 1 is a warning,
    # 2 a failure), and the data migrations run once the new release serves, until they report nothing left
    # (exit 1: some migrated, run again; 0: none left)
    upgrade_check: Command | None = None
    online_migrations: Command | None = None
    # "ini": an oslo.config file; "django": a Django settings module (horizon's local_settings.py), whose
    # overrides are settings (overrides: {horizon: {local_settings: {NAME: value}}})
    config_format: str = "ini"
    # a folder of its data folder that its stamped commands (`unless_same`) make anew from the venv and the
    # settings alone (the dashboard's static files): kept in stackcrate's cache under their stamps, and linked
    # from there when the same venv and settings come again (a deployment made anew, a rollback)
    made_files: str | None = None
    renamed: tuple[Renamed, ...] = ()        # options stackcrate writes that the service renamed


def _cmd(program: str, *args: str, ok_exit: tuple[int, ...] = (0,), env: tuple = (),
         unless_sql: str | None = None, schema_only: bool = False) -> Command:
    return Command(program, ("--config-file", "{config_file}", *args), ok_exit, env, unless_sql=unless_sql,
                   schema_only=schema_only)


def _schema(program: str, *args: str) -> Command:
    return _cmd(program, *args, schema_only=True)


KEYSTONE = ServiceSpec(
    name="keystone", catalog=None, api_path="/v3", wsgi_app="keystone.wsgi.api",
    config_file="keystone.conf", config_dir_env="OS_KEYSTONE_CONFIG_DIR", config_files_env="OS_KEYSTONE_CONFIG_FILES",
    db_user="keystone", databases=("keystone",),
    sync=(
        _schema("keystone-manage", "db_sync"),
        # both return at once when the key repository already holds keys
        _cmd("keystone-manage", "fernet_setup", "--keystone-user", "{user}", "--keystone-group", "{group}"),
        _cmd("keystone-manage", "credential_setup", "--keystone-user", "{user}", "--keystone-group", "{group}"),
        _cmd("keystone-manage", "bootstrap", "--bootstrap-username", "admin", "--bootstrap-project-name", "admin",
             "--bootstrap-role-name", "admin", "--bootstrap-region-id", "{region}",
             "--bootstrap-admin-url", "{public_url}", "--bootstrap-internal-url", "{public_url}",
             "--bootstrap-public-url", "{public_url}",
             env=(("OS_BOOTSTRAP_PASSWORD", "{secret:admin_password}"),)),
    ),
    processes=(Process("keystone", "gunicorn", Probe("token"), after=()),), health_path="/v3",
    data_dirs=("fernet-keys", "credential-keys"),
    upgrade_check=_cmd("keystone-status", "upgrade", "check", ok_exit=(0, 1)),
)

GLANCE = ServiceSpec(
    name="glance", catalog=("image", "glance"), api_path="", wsgi_app="glance.wsgi.api",
    config_file="glance-api.conf", config_dir_env="OS_GLANCE_CONFIG_DIR", config_files_env=None,
    db_user="glance", databases=("glance",),
    # the metadata definitions shipped in the venv (what devstack loads too): the dashboard's Launch Instance
    # offers them, and fails on a glance that has none; namespaces already loaded are skipped
    sync=(_schema("glance-manage", "db_sync"),
          _schema("glance-manage", "db_load_metadefs", "{venv}/etc/glance/metadefs")),
    processes=(Process("glance", "gunicorn", Probe("api", "/v2/images?limit=1")),),
    data_dirs=("images", "staging", "tasks", "locks"),
    # glance_store's backend sections: "fs" is the store configs.py names in enabled_backends ("fs:file"), the
    # other two are glance's reserved stores; all take glance_store's options.
    section_aliases=(("fs", "glance_store"), ("os_glance_staging_store", "glance_store"),
                     ("os_glance_tasks_store", "glance_store")),
    upgrade_check=_cmd("glance-status", "upgrade", "check", ok_exit=(0, 1)),
)

PLACEMENT = ServiceSpec(
    name="placement", catalog=("placement", "placement"), api_path="", wsgi_app="placement.wsgi.api",
    config_file="placement.conf", config_dir_env="OS_PLACEMENT_CONFIG_DIR", config_files_env=None,
    db_user="placement", databases=("placement",),
    sync=(_schema("placement-manage", "db", "sync"),),
    processes=(Process("placement", "gunicorn", Probe("api", "/resource_providers")),),
    upgrade_check=_cmd("placement-status", "upgrade", "check", ok_exit=(0, 1)),
)

NEUTRON = ServiceSpec(
    name="neutron", catalog=("network", "neutron"), api_path="", wsgi_app="neutron.wsgi.api",
    config_file="neutron.conf", config_dir_env="OS_NEUTRON_CONFIG_DIR", config_files_env="OS_NEUTRON_CONFIG_FILES",
    db_user="neutron", databases=("neutron",),
    sync=(_schema("neutron-db-manage", "upgrade", "heads"),),
    # the API serves under gunicorn; with ML2/OVN, the OVN maintenance worker keeps neutron's database and OVN's
    # in step (and, started first, sets OVN's defaults up); it has no port: alive is what there is to check.
    # The probe lists security groups: the project's default group is made on a first list, so the answer holds
    # one and neutron checks its policy on it. neutron loads its policy rules on its first check and a request
    # beside that one may be checked against no rules (403 "disallowed by policy", seen on verify's first two
    # requests, made together, to a new cloud); an empty list of networks checks none
    processes=(Process("neutron", "gunicorn", Probe("api", "/v2.0/security-groups?limit=1")),
               Process("neutron-ovn-maintenance-worker", "neutron-ovn-maintenance-worker", Probe("none"),
                       after=("neutron",),
                       # python-ovs drops the answer to its lock request now and then (stackcrate_ovs_lock.py)
                       launcher=Launcher("ovs.db", "neutron.cmd.server:main_ovn_maintenance",
                                         ("stackcrate_ovs_lock.py",), imports=("stackcrate_ovs_lock",)))),
    # neutron's get_ports reads Port.port_forwardings, a backref that only exists once SQLAlchemy has configured
    # the mappers; neutron-server's own start-up triggers that, loading the WSGI app alone does not.
    wsgi_after_import=("from sqlalchemy import orm", "orm.configure_mappers()"),
    # neutron's API finds its paste pipeline by the default name (api-paste.ini) in the folders of its config
    # files (oslo.config's find_file): the venv's own one, given first, puts the venv's etc/neutron among them
    # ([DEFAULT] api_paste_config, which would name it, is deprecated for removal with oslo.service's WSGI server)
    venv_config_files=("etc/neutron/api-paste.ini",),
    data_dirs=("locks",),
    upgrade_check=_cmd("neutron-status", "upgrade", "check", ok_exit=(0, 1)),
    renamed=(Renamed("ml2", "tenant_network_types", "project_network_types", since="28.0.0"),),  # 2026.1
)

# nova's URL templates ({{...}}: braces for nova to fill, not placeholders of ours)
CELL0_UUID = "00000000-0000-0000-0000-000000000000"
CELL0_DB = "{{scheme}}://{{username}}:{{password}}@{{hostname}}:{{port}}/nova_cell0"
CELL_DB = "{{scheme}}://{{username}}:{{password}}@{{hostname}}:{{port}}/{{path}}"
CELL_MQ = "{{scheme}}://{{username}}:{{password}}@{{hostname}}:{{port}}/{{path}}"
ALL_CELL1 = "SELECT id FROM nova_api.cell_mappings WHERE name = 'cell1'"
FIRST_CELL1 = "SELECT MIN(id) AS id FROM nova_api.cell_mappings WHERE name = 'cell1'"

NOVA = ServiceSpec(
    name="nova", catalog=("compute", "nova"), api_path="/v2.1", wsgi_app="nova.wsgi.osapi_compute",
    config_file="nova.conf", config_dir_env="OS_NOVA_CONFIG_DIR", config_files_env="OS_NOVA_CONFIG_FILES",
    db_user="nova", databases=("nova_api", "nova", "nova_cell0"),
    sync=(
        # Cells keep their database and message-queue URLs in nova_api. As templates, nova fills them from
        # nova.conf's own URLs, so a changed password or port needs no cell update. (Cells made with literal
        # URLs by an older stackcrate are turned into templates here, before nova-manage reads them; a new cloud
        # has no cells yet.)
        Sql((f"UPDATE nova_api.cell_mappings SET database_connection='{CELL0_DB}' WHERE uuid='{CELL0_UUID}';",
             (f"UPDATE nova_api.cell_mappings SET database_connection='{CELL_DB}', transport_url='{CELL_MQ}' "
              "WHERE name='cell1';"),
             # the copies of cell1 that every init of an older stackcrate added (see create_cell below): one cell
             # listed twice makes nova list each of its servers twice (and horizon's usage page loop forever).
             # All point at the same database (made templates just above): the hosts and servers mapped to a
             # copy are mapped to the first cell1, then the copies go. (Running nova processes keep the cells
             # they read at start until they are restarted.)
             *(f"UPDATE nova_api.{table} SET cell_id = (SELECT f.id FROM ({FIRST_CELL1}) f) "
               f"WHERE cell_id IN (SELECT c.id FROM ({ALL_CELL1}) c);"
               for table in ("host_mappings", "instance_mappings")),
             (f"DELETE FROM nova_api.cell_mappings WHERE name = 'cell1' "
              f"AND id > (SELECT f.id FROM ({FIRST_CELL1}) f);")), if_table="nova_api.cell_mappings"),
        _schema("nova-manage", "api_db", "sync"),
        _schema("nova-manage", "cell_v2", "map_cell0", "--database_connection", CELL0_DB),  # 0 also when mapped
        _schema("nova-manage", "db", "sync"),
        # once: nova's own check (exit 2, "already exists") compares the cells' URLs filled in from nova.conf with
        # the templates it is given, which never match: it would add a cell1 at every init
        _cmd("nova-manage", "cell_v2", "create_cell", "--name", "cell1", "--database_connection", CELL_DB,
             "--transport-url", CELL_MQ, ok_exit=(0, 2),
             unless_sql="SELECT uuid FROM nova_api.cell_mappings WHERE name = 'cell1' LIMIT 1;"),
    ),
    processes=(Process("nova-api", "gunicorn", Probe("api", "/v2.1/os-services"), "api"),
               Process("nova-conductor", "nova-conductor", Probe("rpc", queue="conductor"), "conductor"),
               Process("nova-scheduler", "nova-scheduler", Probe("rpc", queue="scheduler"), "scheduler"),
               # its driver plugs ports through Open vSwitch's database socket (ovn.py's run/openvswitch); it
               # registers with the conductor and reports its resources to placement as it starts. It reaches
               # the databases only through the conductor, and gets no database URL (with a password): nova
               # refuses it any database access, and given [api_database] it logs an ERROR at every start ("You
               # should run this service without the [api_database]/connection config option")
               Process("nova-compute", "nova-compute", Probe("rpc", queue="compute.{host}"), "compute",
                       Launcher("nova.virt", "nova.cmd.compute:main", ("stackcrate_fake.py",)),
                       sockets=("run/openvswitch",), after=("keystone", "nova-conductor", "placement"),
                       withheld=("database", "api_database"))),
    # nova loads its paste pipeline from the first config file: the venv's api-paste.ini
    venv_config_files=("etc/nova/api-paste.ini",),
    # nova's API before 33 (2025.2's 32) monkey-patches with eventlet when imported unless told not to, and then
    # never answers under gunicorn's threaded worker ("RLock(s) were not greened"); 33 runs without eventlet
    wsgi_env=(("OS_NOVA_DISABLE_EVENTLET_PATCHING", "true"),),
    data_dirs=("instances", "locks"),
    upgrade_check=_cmd("nova-status", "upgrade", "check", ok_exit=(0, 1)),
    online_migrations=_cmd("nova-manage", "db", "online_data_migrations", ok_exit=(0, 1)),
)

# Horizon's settings: openstack_dashboard.settings imports `local.local_settings` (a top-level `local`, found on
# sys.path); the deployment's config folder, first on PYTHONPATH, holds local/local_settings.py, so nothing is
# written into the versioned venv.
DJANGO_ENV = (("DJANGO_SETTINGS_MODULE", "openstack_dashboard.settings"), ("PYTHONPATH", "{config_dir}"))
HORIZON_STATIC = "static.json"  # what its static files depend on: its settings but the secret key (configs.py)

HORIZON = ServiceSpec(
    name="horizon", catalog=None, api_path="", wsgi_app="openstack_dashboard.wsgi",
    config_file="local/local_settings.py", config_dir_env="PYTHONPATH", config_files_env=None,
    db_user="", databases=(),
    # static files: collected from the venv's packages into the data folder, then compressed ahead
    # (COMPRESS_OFFLINE: no page compresses anything while serving; ~3 s on two cores); both only when the venv
    # or a setting changed
    sync=(Command("django-admin", ("collectstatic", "--noinput", "--clear", "--verbosity", "0"), env=DJANGO_ENV,
                  unless_same=HORIZON_STATIC),
          Command("django-admin", ("compress", "--force", "--verbosity", "0"), env=DJANGO_ENV,
                  unless_same=HORIZON_STATIC)),
    processes=(Process("horizon", "gunicorn", Probe("page", "/auth/login/")),),
    # gunicorn serves the static files too, through WhiteNoise around Django's application
    wsgi_after_import=("from django.conf import settings", "from whitenoise import WhiteNoise",
                       "application = WhiteNoise(application, root=settings.STATIC_ROOT, prefix=settings.STATIC_URL)"),
    wsgi_env=(("DJANGO_SETTINGS_MODULE", "openstack_dashboard.settings"),),
    data_dirs=("static",),
    config_format="django",
    made_files="static",
)

# The start order (and the order of the lines in `status`): keystone first (every other service checks tokens
# against it), nova after the services it calls, the dashboard last (it calls them all). Processes start
# together as their `after` allows.
SERVICES: dict[str, ServiceSpec] = {s.name: s for s in (KEYSTONE, GLANCE, PLACEMENT, NEUTRON, NOVA, HORIZON)}
