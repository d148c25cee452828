#!/usr/bin/env python3
"""Serve the real OpenStack Neutron API (the version installed in this venv,
pinned to 29.0.0 by scripts/neutron-ref.sh) on a loopback port, as the
reference that scripts/neutron_diff.py compares Ferroswitch against.

Run it with the reference venv's python:

    $(scripts/neutron-ref.sh) scripts/neutron_ref/server.py --port 19696 \
        --workdir /tmp/nref [--vhostuser-socket-dir DIR]

What it sets up, as a real deployment would (neutron-server under uwsgi,
ML2/OVS with an OVS-DPDK compute host):

* neutron.conf / ml2_conf.ini in WORKDIR: core_plugin ml2, type drivers
  vlan,flat,local,vxlan, tenant_network_types vlan, network_vlan_ranges
  physnet1:3000:3099, vni_ranges 1000:1999, flat_networks *, mechanism driver openvswitch,
  extension driver port_security, the OVS firewall driver, auth_strategy
  noauth, no service plugins beyond Neutron's defaults (tag, timestamp,
  revisions, network-ip-availability, flavors, auto-allocate), the fake
  oslo.messaging transport (no agents listen anyway), no Nova notifier;
* a SQLite database in WORKDIR whose schema is built from Neutron's models
  (what Neutron's unit tests do: alembic migrations do not run on SQLite),
  stamped at the alembic heads, with the four default security group rule
  templates that migration c33da356b165 inserts;
* with --identity-headers, a request that carries X-User-Id gets the
  request context Neutron's keystone pipeline builds from the identity
  headers (neutron.auth.NeutronKeystoneContext), as if keystonemiddleware
  had validated a token: under plain noauth Neutron ignores X-Project-Id
  and X-Roles and runs such a request in an admin context without a
  project. Requests without X-User-Id (the openstack client with
  --os-auth-type none) keep noauth's behaviour: project "fake_project_id",
  admin;
* the WSGI application exactly as `neutron.wsgi.api` builds it (the entry
  point uwsgi/mod_wsgi load: Neutron ships no neutron-server script any
  more), served by wsgiref on 127.0.0.1;
* a live "Open vSwitch agent" on host compute-1 that reports what
  neutron-openvswitch-agent reports on an OVS-DPDK host (datapath_type
  netdev, dpdkvhostuserclient interfaces, bridge_mappings physnet1:br-phy,
  vhostuser_socket_dir), its heartbeat refreshed before any request once it
  is older than 15 s, so ports with binding:host_id compute-1 bind as
  vhostuser ports.

Prints `neutron-ref: ready http://127.0.0.1:PORT/` on stdout once it serves;
stops cleanly on SIGTERM/SIGINT. Logs go to WORKDIR/neutron-server.log.
"""

import argparse
import importlib.util
import os
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))

NEUTRON_CONF = """\
[DEFAULT]
core_plugin = ml2
service_plugins =
auth_strategy = noauth
api_paste_config = {paste}
host = controller
state_path = {work}
transport_url = fake:/
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
allow_overlapping_ips = true
debug = {debug}
log_file = {work}/neutron-server.log
use_stderr = false
# every API worker in-process: wsgiref serves one request at a time
api_workers = 0
rpc_workers = 0
rpc_state_report_workers = 0

[database]
connection = sqlite:///{work}/neutron.sqlite
# MySQL (InnoDB) enforces foreign keys and their ON DELETE CASCADEs
sqlite_fk = true

[oslo_concurrency]
lock_path = {work}/lock

"""

ML2_CONF = """\
[ml2]
type_drivers = vlan,flat,local,vxlan
tenant_network_types = vlan
mechanism_drivers = openvswitch
extension_drivers = port_security

[ml2_type_vlan]
network_vlan_ranges = {vlan_ranges}

[ml2_type_vxlan]
vni_ranges = 1000:1999

[ml2_type_flat]
flat_networks = *

[securitygroup]
enable_security_group = true
firewall_driver = openvswitch
"""


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=19696)
    p.add_argument("--workdir", required=True)
    p.add_argument("--host", default="compute-1",
                   help="host of the fake OVS-DPDK agent (default compute-1)")
    p.add_argument("--physnet", default="physnet1:br-phy",
                   help="the agent's bridge_mappings entry")
    p.add_argument("--vlan-ranges", default="physnet1:3000:3099")
    p.add_argument("--vhostuser-socket-dir", default="/var/run/openvswitch")
    p.add_argument("--identity-headers", action="store_true",
                   help="a request with X-User-Id gets the context the "
                   "keystone pipeline would build from X-User-Id/"
                   "X-Project-Id/X-Roles (as if authtoken had validated a "
                   "token); others get noauth's fake_project_id admin")
    p.add_argument("--debug", action="store_true")
    return p.parse_args()


def write_config(a):
    os.makedirs(os.path.join(a.workdir, "lock"), exist_ok=True)
    import neutron
    # The pipeline that ships with this neutron (pip puts data_files under
    # the venv's etc/); falls back to the copy inside the package's tests.
    cands = [os.path.join(sys.prefix, "etc", "neutron", "api-paste.ini"),
             os.path.join(os.path.dirname(neutron.__file__), "tests", "etc",
                          "api-paste.ini")]
    paste = next(c for c in cands if os.path.exists(c))
    conf = os.path.join(a.workdir, "neutron.conf")
    ml2 = os.path.join(a.workdir, "ml2_conf.ini")
    with open(conf, "w") as f:
        f.write(NEUTRON_CONF.format(paste=paste, work=a.workdir,
                                    debug=str(a.debug).lower()))
    with open(ml2, "w") as f:
        f.write(ML2_CONF.format(vlan_ranges=a.vlan_ranges))
    return conf, ml2


def create_schema(db_path):
    """Schema from the models (as neutron/tests/unit/testlib_api.py does),
    alembic stamped at head, and the data migrations' rows the API needs."""
    import sqlalchemy as sa
    from neutron.db.migration.models import head  # noqa: F401 all models
    from neutron_lib.db import model_base
    from neutron.db import migration as nmig

    engine = sa.create_engine("sqlite:///" + db_path)
    model_base.BASEV2.metadata.create_all(engine)

    versions = os.path.join(os.path.dirname(nmig.__file__),
                            "alembic_migrations", "versions")
    heads = []
    for name in ("EXPAND_HEAD", "CONTRACT_HEAD"):
        with open(os.path.join(versions, name)) as f:
            heads.append(f.read().strip())

    # Migration c33da356b165 (2023.2) creates the default security group
    # rule templates: two egress rules for every group, two ingress rules
    # from the group itself only for "default" groups. Load it to use its
    # exact rows.
    mig = os.path.join(versions, "2023.2", "expand",
                       "c33da356b165_security_group_default_rules.py")
    spec = importlib.util.spec_from_file_location("_sg_default_rules", mig)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    templates = model_base.BASEV2.metadata.tables[m.table_name]
    stdattr = model_base.BASEV2.metadata.tables["standardattributes"]
    with engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE TABLE IF NOT EXISTS alembic_version "
            "(version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        for h in heads:
            conn.execute(sa.text(
                "INSERT INTO alembic_version VALUES (:v)"), {"v": h})
        for rule in m.default_template_rules:
            rule = dict(rule)
            res = conn.execute(sa.insert(stdattr).values(
                description=rule.pop("description"),
                resource_type=m.table_name))
            rule["standard_attr_id"] = res.inserted_primary_key[0]
            conn.execute(sa.insert(templates).values(rule))
    engine.dispose()


class FakeOvsAgent:
    """What neutron-openvswitch-agent reports over RPC (report_state) on an
    OVS-DPDK compute host, fed to the plugin directly."""

    REFRESH = 15  # seconds; the server's agent_down_time is 75

    def __init__(self, host, bridge_mappings, sock_dir):
        from neutron_lib import constants as nlc
        from neutron.api.rpc.callbacks import resources
        from neutron.common import _constants as nc  # noqa: F401
        self.lock = threading.Lock()
        self.last = 0.0
        self.state = {
            "binary": "neutron-openvswitch-agent",
            "host": host,
            "topic": nlc.L2_AGENT_TOPIC,
            "availability_zone": None,
            "configurations": {
                "bridge_mappings": bridge_mappings,
                "resource_provider_bandwidths": {},
                "resource_provider_inventory_defaults": {
                    "allocation_ratio": 1.0, "min_unit": 1, "step_size": 1,
                    "reserved": 0},
                "resource_provider_packet_processing_without_direction": {},
                "resource_provider_packet_processing_with_direction": {},
                "resource_provider_packet_processing_inventory_defaults": {
                    "allocation_ratio": 1.0, "min_unit": 1, "step_size": 1,
                    "reserved": 0},
                "resource_provider_hypervisors": {},
                "integration_bridge": "br-int",
                "tunnel_types": [],
                "tunneling_ip": None,
                "l2_population": False,
                "arp_responder_enabled": False,
                "enable_distributed_routing": False,
                "log_agent_heartbeats": False,
                "extensions": [],
                "datapath_type": "netdev",
                "ovs_capabilities": {
                    "datapath_types": ["netdev", "system"],
                    "iface_types": ["dpdk", "dpdkvhostuser",
                                    "dpdkvhostuserclient", "internal",
                                    "patch", "tap", "vxlan", "geneve",
                                    "gre"]},
                "vhostuser_socket_dir": sock_dir,
                "ovs_hybrid_plug": False,
                "baremetal_smartnic": False,
            },
            "resource_versions": dict(resources.LOCAL_RESOURCE_VERSIONS),
            "agent_type": nlc.AGENT_TYPE_OVS,
            "start_flag": True,
        }

    def report(self, force=False):
        with self.lock:
            now = time.monotonic()
            if not force and now - self.last < self.REFRESH:
                return
            from neutron_lib import context
            from neutron_lib.plugins import directory
            from oslo_utils import timeutils
            plugin = directory.get_plugin()
            ts = timeutils.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%f")
            plugin.create_or_update_agent(context.get_admin_context(),
                                          dict(self.state), ts)
            self.state["start_flag"] = False
            self.last = now

    def middleware(self, app, identity_headers):
        def wrapped(environ, start_response):
            try:
                self.report()
            except Exception as e:  # the request still goes through
                print(f"neutron-ref: agent heartbeat failed: {e!r}",
                      file=sys.stderr)
            if identity_headers and environ.get("HTTP_X_USER_ID"):
                # What the keystone pipeline's keystonecontext filter
                # (neutron.auth.NeutronKeystoneContext) does with the
                # headers authtoken sets once it has validated a token.
                from neutron_lib import context
                environ["neutron.context"] = context.Context.from_environ(
                    environ)
            return app(environ, start_response)
        return wrapped


def main():
    a = parse_args()
    a.workdir = os.path.abspath(a.workdir)
    os.makedirs(a.workdir, exist_ok=True)
    conf, ml2 = write_config(a)
    create_schema(os.path.join(a.workdir, "neutron.sqlite"))

    # neutron.wsgi.api reads its config files from these and its command
    # line from sys.argv, exactly as under uwsgi.
    os.environ["OS_NEUTRON_CONFIG_DIR"] = a.workdir
    os.environ["OS_NEUTRON_CONFIG_FILES"] = "neutron.conf;ml2_conf.ini"
    sys.argv = [sys.argv[0]]
    from neutron.wsgi import api as neutron_wsgi
    app = neutron_wsgi.application
    if app is None:
        print("neutron-ref: neutron.wsgi.api built no application",
              file=sys.stderr)
        return 1

    phys, _, br = a.physnet.partition(":")
    agent = FakeOvsAgent(a.host, {phys: br}, a.vhostuser_socket_dir)
    agent.report(force=True)

    from wsgiref import simple_server

    class Handler(simple_server.WSGIRequestHandler):
        def log_message(self, fmt, *args):  # into the log file, not stderr
            with open(os.path.join(a.workdir, "access.log"), "a") as f:
                f.write("%s %s\n" % (self.log_date_time_string(),
                                     fmt % args))

    httpd = simple_server.make_server("127.0.0.1", a.port,
                                      agent.middleware(app, a.identity_headers),
                                      handler_class=Handler)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
        # shutdown() waits for serve_forever(): call it off the main thread
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"neutron-ref: ready http://127.0.0.1:{a.port}/", flush=True)
    httpd.serve_forever(poll_interval=0.2)
    httpd.server_close()
    print("neutron-ref: stopped", flush=True)
    # oslo/neutron leave non-daemon threads behind; the process is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
