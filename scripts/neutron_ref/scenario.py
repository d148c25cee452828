"""The one scenario scripts/neutron_diff.py runs against the real Neutron and
against Ferroswitch, step by step.

A step is a dict:
  id        unique step id (what divergences.json matches)
  what      one line: what the step checks
  method, path, body | raw   a raw HTTP request (X-Project-Id: PROJECT and
            X-Roles: admin,member,reader unless project=False / "other")
  cli       an `openstack` client command (argv after the auth options;
            `-f json` is added unless json=False)
  reg       name (or list of names, bulk) to register the created
            resource's id under; later steps use @{name}
  ordered   the list in the answer has an order to compare (sort_key)
  rev       compare revision_number (elsewhere it is normalised)
  ignore    keys dropped before comparing

Placeholders (resolved per server): @{name} id; @{mac:name} / @{ip:name} /
@{seg:name} of a registered port/network; @{first:STEP:coll} /
@{last:STEP:coll} id of the first/last item of a list answer;
@{next:STEP:coll} / @{previous:STEP:coll} the path of a *_links href;
@{minid:a,b,c} the smallest of these ids.

Projects: raw HTTP sends X-User-Id, X-Project-Id: PROJECT and X-Roles:
admin,member,reader, what keystonemiddleware passes on for a validated
token (the reference runs with --identity-headers: under plain noauth
Neutron would ignore them); creates also name their project in the body,
as Nova does with `tenant_id` on the ports it creates. The openstack client
with --os-auth-type none sends no identity at all: noauth's
"fake_project_id", admin.
"""

PROJECT = "5e1f0c3a9d2b4e6f8a7c1b2d3e4f5a6b"
OTHER = "0f9e8d7c6b5a49382716a5b4c3d2e1f0"
VM = "4d2c1b0a-9e8f-4a6b-8c7d-1e2f3a4b5c6d"   # a Nova server uuid
# Nova's service user: Neutron's policy gives binding:profile to the
# "service" role only
NOVA_ROLES = "admin,member,reader,service"

_steps = []


def H(id, method, path, body=None, what="", **kw):
    st = {"id": id, "method": method, "path": path, "what": what}
    if body is not None:
        st["body"] = body
    st.update(kw)
    _steps.append(st)


def N(id, method, path, body=None, what="", **kw):
    """A request as Nova sends it: its service user (admin + service)."""
    H(id, method, path, body, what=what, roles=NOVA_ROLES, **kw)


def C(id, *cli, what="", **kw):
    st = {"id": id, "cli": list(cli), "what": what}
    st.update(kw)
    _steps.append(st)


def net(name, **kw):
    return {"network": dict(name=name, project_id=PROJECT, **kw)}


def subnet(name, netref, cidr, **kw):
    d = dict(name=name, network_id=netref, cidr=cidr, project_id=PROJECT)
    d.setdefault("ip_version", 6 if ":" in cidr else 4)
    d.update(kw)
    if d["ip_version"] is None:
        del d["ip_version"]
    return {"subnet": d}


def port(name, netref, **kw):
    return {"port": dict(name=name, network_id=netref, project_id=PROJECT,
                         **kw)}


def rule(sgref, **kw):
    return {"security_group_rule": dict(security_group_id=sgref,
                                        project_id=PROJECT, **kw)}


def build():
    # ---------------------------------------------------------------- API
    H("api-versions", "GET", "/", what="version document", project=False)
    H("api-v2", "GET", "/v2.0/", what="v2.0 resource list")
    H("ext-list", "GET", "/v2.0/extensions", what="every extension alias")
    H("ext-show-quotas", "GET", "/v2.0/extensions/quotas")
    H("ext-show-missing", "GET", "/v2.0/extensions/no-such-ext",
      what="404 for an unknown extension")
    H("noauth-no-project-body", "POST", "/v2.0/networks",
      {"network": {"name": "no-project"}}, reg="net:noproj",
      what="project from X-Project-Id only")

    # ----------------------------------------------------------- networks
    H("net-create-prov-vlan", "POST", "/v2.0/networks",
      net("prov-vlan", **{"provider:network_type": "vlan",
                          "provider:physical_network": "physnet1",
                          "provider:segmentation_id": 3101}),
      reg="net:prov", rev=True, what="provider VLAN network")
    H("net-create-flat", "POST", "/v2.0/networks",
      net("flat", **{"provider:network_type": "flat",
                     "provider:physical_network": "physnet1"}),
      reg="net:flat", what="provider flat network")
    H("net-create-tenant", "POST", "/v2.0/networks", net("tenant"),
      reg="net:tenant", rev=True, what="tenant network: VLAN from the range")
    H("net-create-external", "POST", "/v2.0/networks",
      net("external", **{"router:external": True,
                         "provider:network_type": "vlan",
                         "provider:physical_network": "physnet1",
                         "provider:segmentation_id": 3105}),
      reg="net:ext", what="router:external")
    H("net-create-shared", "POST", "/v2.0/networks",
      net("shared", shared=True), reg="net:shared")
    H("net-create-mtu", "POST", "/v2.0/networks",
      net("mtu1400", mtu=1400, description="small mtu"), reg="net:mtu")
    H("net-create-local", "POST", "/v2.0/networks",
      net("local", **{"provider:network_type": "local"}), reg="net:local")
    H("net-create-vxlan", "POST", "/v2.0/networks",
      net("vxlan", **{"provider:network_type": "vxlan"}), reg="net:vxlan",
      what="vxlan: the lowest VNI of vni_ranges, MTU 1500 less 50")
    H("net-create-vxlan-vni", "POST", "/v2.0/networks",
      net("vxlan-vni", **{"provider:network_type": "vxlan",
                          "provider:segmentation_id": 1500}),
      reg="net:vxlan-vni", what="vxlan with a given VNI")
    H("net-create-nops", "POST", "/v2.0/networks",
      net("nops", port_security_enabled=False, admin_state_up=False),
      reg="net:nops", what="port_security_enabled false, admin down")
    H("sg-list-initial", "GET", f"/v2.0/security-groups?project_id={PROJECT}",
      what="the project's default group (created with its first network)")
    H("net-show-prov", "GET", "/v2.0/networks/@{net:prov}", rev=True)
    H("net-show-fields", "GET",
      "/v2.0/networks/@{net:prov}?fields=name&fields=mtu&fields=provider:"
      "segmentation_id", what="fields= on show")
    H("net-update-name", "PUT", "/v2.0/networks/@{net:prov}",
      {"network": {"name": "prov-vlan-2", "description": "renamed"}},
      rev=True)
    H("net-update-mtu-too-big", "PUT", "/v2.0/networks/@{net:mtu}",
      {"network": {"mtu": 9000}}, what="mtu above the physnet's")
    H("net-update-mtu", "PUT", "/v2.0/networks/@{net:mtu}",
      {"network": {"mtu": 1300}})
    H("net-update-segid", "PUT", "/v2.0/networks/@{net:flat}",
      {"network": {"provider:segmentation_id": 3110}},
      what="segmentation id on a flat network")
    H("net-update-shared", "PUT", "/v2.0/networks/@{net:local}",
      {"network": {"shared": True}})
    H("net-list", "GET", "/v2.0/networks", what="every network")
    H("net-list-external", "GET", "/v2.0/networks?router:external=true")
    H("net-list-shared", "GET", "/v2.0/networks?shared=true&fields=name")
    H("net-list-vlan-fields", "GET",
      "/v2.0/networks?provider:network_type=vlan&fields=id&fields=name")
    H("net-list-name", "GET", "/v2.0/networks?name=tenant")
    H("net-list-sorted", "GET",
      "/v2.0/networks?sort_key=name&sort_dir=desc&fields=name",
      ordered=True)
    H("net-page-1", "GET", "/v2.0/networks?sort_key=name&sort_dir=asc"
      "&limit=3&fields=id&fields=name", ordered=True,
      what="first page and its links")
    H("net-page-2", "GET", "@{next:net-page-1:networks}", ordered=True,
      what="following the next link")
    H("net-page-3", "GET", "@{next:net-page-2:networks}", ordered=True)
    H("net-page-back", "GET", "@{previous:net-page-2:networks}",
      ordered=True, what="following the previous link")
    H("net-page-marker", "GET", "/v2.0/networks?sort_key=name&limit=2"
      "&marker=@{net:mtu}&fields=name", ordered=True)
    H("net-page-reverse", "GET", "/v2.0/networks?sort_key=name"
      "&sort_dir=asc&limit=2&page_reverse=true&fields=name", ordered=True)
    H("net-sort-bad-key", "GET", "/v2.0/networks?sort_key=nosuch")
    H("net-sort-bad-dir", "GET", "/v2.0/networks?sort_key=name"
      "&sort_dir=up")
    H("net-limit-bad", "GET", "/v2.0/networks?limit=-1")
    H("net-filter-bad", "GET", "/v2.0/networks?nosuchattr=1",
      what="filter-validation: unknown filter")
    # errors
    H("net-err-vlan-range", "POST", "/v2.0/networks",
      net("bad", **{"provider:network_type": "vlan",
                    "provider:physical_network": "physnet1",
                    "provider:segmentation_id": 5000}))
    H("net-err-vlan-in-use", "POST", "/v2.0/networks",
      net("dup", **{"provider:network_type": "vlan",
                    "provider:physical_network": "physnet1",
                    "provider:segmentation_id": 3101}))
    H("net-err-flat-in-use", "POST", "/v2.0/networks",
      net("dupflat", **{"provider:network_type": "flat",
                        "provider:physical_network": "physnet1"}))
    H("net-err-physnet", "POST", "/v2.0/networks",
      net("bad", **{"provider:network_type": "vlan",
                    "provider:physical_network": "physnet9",
                    "provider:segmentation_id": 3102}))
    H("net-err-type", "POST", "/v2.0/networks",
      net("bad", **{"provider:network_type": "geneve"}))
    H("net-err-vni-in-use", "POST", "/v2.0/networks",
      net("dup", **{"provider:network_type": "vxlan",
                    "provider:segmentation_id": 1500}))
    H("net-err-vxlan-physnet", "POST", "/v2.0/networks",
      net("bad", **{"provider:network_type": "vxlan",
                    "provider:physical_network": "physnet1"}))
    H("net-err-vxlan-mtu", "POST", "/v2.0/networks",
      net("bad", mtu=1451, **{"provider:network_type": "vxlan"}))
    H("net-err-unknown-attr", "POST", "/v2.0/networks",
      net("bad", color="blue"))
    H("net-err-bad-bool", "PUT", "/v2.0/networks/@{net:tenant}",
      {"network": {"admin_state_up": "maybe"}})
    H("net-err-no-wrapper", "POST", "/v2.0/networks", {"name": "x"})
    H("net-err-json", "POST", "/v2.0/networks", raw="{not json")
    H("net-err-notfound", "GET",
      "/v2.0/networks/11111111-2222-3333-4444-555555555555")
    H("net-err-delete-notfound", "DELETE",
      "/v2.0/networks/11111111-2222-3333-4444-555555555555")
    H("net-err-method", "PATCH", "/v2.0/networks/@{net:tenant}",
      {"network": {}})
    H("net-err-name-type", "POST", "/v2.0/networks", net(["x"]))

    # ------------------------------------------------------------ subnets
    H("sub-create-v4", "POST", "/v2.0/subnets",
      subnet("v4a", "@{net:prov}", "10.0.0.0/24",
             dns_nameservers=["8.8.8.8", "1.1.1.1"],
             host_routes=[{"destination": "192.168.0.0/16",
                           "nexthop": "10.0.0.254"}],
             allocation_pools=[{"start": "10.0.0.10", "end": "10.0.0.100"}]),
      reg="sub:v4a", rev=True)
    H("sub-create-v4-nogw", "POST", "/v2.0/subnets",
      subnet("v4nogw", "@{net:flat}", "10.1.0.0/24", gateway_ip=None),
      reg="sub:v4nogw", what="no gateway: pool covers .1")
    H("sub-create-v4-nodhcp", "POST", "/v2.0/subnets",
      subnet("v4nodhcp", "@{net:tenant}", "10.2.0.0/24", enable_dhcp=False,
             gateway_ip="10.2.0.254"),
      reg="sub:v4nodhcp", what="gateway at the end, dhcp off")
    H("sub-create-v4-unaligned", "POST", "/v2.0/subnets",
      subnet("v4unaligned", "@{net:shared}", "10.3.0.5/24"),
      reg="sub:v4unal", what="cidr with host bits")
    H("sub-create-v6-slaac", "POST", "/v2.0/subnets",
      subnet("v6slaac", "@{net:prov}", "fd00:10::/64",
             ipv6_ra_mode="slaac", ipv6_address_mode="slaac"),
      reg="sub:v6slaac")
    H("sub-create-v6-stateful", "POST", "/v2.0/subnets",
      subnet("v6stateful", "@{net:tenant}", "fd00:20::/64",
             ipv6_ra_mode="dhcpv6-stateful",
             ipv6_address_mode="dhcpv6-stateful"),
      reg="sub:v6stateful")
    H("sub-create-v6-stateless", "POST", "/v2.0/subnets",
      subnet("v6stateless", "@{net:flat}", "fd00:30::/64",
             ipv6_ra_mode="dhcpv6-stateless",
             ipv6_address_mode="dhcpv6-stateless"),
      reg="sub:v6stateless")
    H("sub-create-v6-default", "POST", "/v2.0/subnets",
      subnet("v6default", "@{net:shared}", "fd00:10::/64"),
      reg="sub:v6default", what="IPv6 defaults for fd00:10::/64")
    H("sub-create-v6-addr-only", "POST", "/v2.0/subnets",
      subnet("v6addronly", "@{net:mtu}", "fd00:50::/64",
             ipv6_address_mode="slaac"),
      reg="sub:v6addronly", what="address mode without ra mode")
    H("sub-create-v4-ext", "POST", "/v2.0/subnets",
      subnet("ext", "@{net:ext}", "203.0.113.0/24", enable_dhcp=False),
      reg="sub:ext")
    H("sub-show", "GET", "/v2.0/subnets/@{sub:v4a}", rev=True)
    H("sub-update", "PUT", "/v2.0/subnets/@{sub:v4a}",
      {"subnet": {"name": "v4a-2", "dns_nameservers": ["9.9.9.9"],
                  "host_routes": [],
                  "allocation_pools": [{"start": "10.0.0.10",
                                        "end": "10.0.0.120"}]}},
      rev=True)
    H("sub-update-gateway", "PUT", "/v2.0/subnets/@{sub:v4nogw}",
      {"subnet": {"gateway_ip": "10.1.0.1"}},
      what="gateway inside the pool")
    H("sub-update-cidr", "PUT", "/v2.0/subnets/@{sub:v4a}",
      {"subnet": {"cidr": "10.9.0.0/24"}}, what="cidr is read-only")
    H("sub-list-v6", "GET", "/v2.0/subnets?ip_version=6&fields=name"
      "&fields=ipv6_ra_mode&fields=ipv6_address_mode")
    H("sub-list-net", "GET", "/v2.0/subnets?network_id=@{net:prov}")
    H("sub-list-sorted", "GET", "/v2.0/subnets?sort_key=cidr&sort_dir=asc"
      "&fields=cidr", ordered=True)
    H("sub-list-cidr", "GET", "/v2.0/subnets?cidr=10.0.0.0/24&fields=name")
    H("net-show-subnets", "GET", "/v2.0/networks/@{net:prov}?fields=subnets")
    H("sub-err-overlap", "POST", "/v2.0/subnets",
      subnet("ovl", "@{net:prov}", "10.0.0.128/25"))
    H("sub-err-pool-outside", "POST", "/v2.0/subnets",
      subnet("bad", "@{net:local}", "10.5.0.0/24",
             allocation_pools=[{"start": "10.6.0.10", "end": "10.6.0.20"}]))
    H("sub-err-pool-gw", "POST", "/v2.0/subnets",
      subnet("bad", "@{net:local}", "10.5.0.0/24", gateway_ip="10.5.0.15",
             allocation_pools=[{"start": "10.5.0.10", "end": "10.5.0.20"}]))
    H("sub-err-pool-reversed", "POST", "/v2.0/subnets",
      subnet("bad", "@{net:local}", "10.5.0.0/24",
             allocation_pools=[{"start": "10.5.0.20", "end": "10.5.0.10"}]))
    H("sub-err-v6-modes", "POST", "/v2.0/subnets",
      subnet("bad", "@{net:local}", "fd00:60::/64", ipv6_ra_mode="slaac",
             ipv6_address_mode="dhcpv6-stateful"))
    H("sub-err-v6-slaac-prefix", "POST", "/v2.0/subnets",
      subnet("bad", "@{net:local}", "fd00:60::/80",
             ipv6_address_mode="slaac"))
    H("sub-err-v6-modes-on-v4", "POST", "/v2.0/subnets",
      subnet("bad", "@{net:local}", "10.5.0.0/24", ipv6_ra_mode="slaac"))
    H("sub-err-cidr", "POST", "/v2.0/subnets",
      subnet("bad", "@{net:local}", "10.0.0.0/33"))
    H("sub-err-ip-version", "POST", "/v2.0/subnets",
      subnet("bad", "@{net:local}", "10.5.0.0/24", ip_version=5))
    H("sub-err-version-mismatch", "POST", "/v2.0/subnets",
      subnet("bad", "@{net:local}", "fd00:61::/64", ip_version=4))
    H("sub-err-no-network", "POST", "/v2.0/subnets",
      subnet("bad", "11111111-2222-3333-4444-555555555555", "10.5.0.0/24"))
    H("sub-err-dns-dup", "POST", "/v2.0/subnets",
      subnet("bad", "@{net:local}", "10.5.0.0/24",
             dns_nameservers=["8.8.8.8", "8.8.8.8"]))
    H("sub-err-route", "POST", "/v2.0/subnets",
      subnet("bad", "@{net:local}", "10.5.0.0/24",
             host_routes=[{"destination": "nonsense", "nexthop": "10.5.0.9"}]))
    H("sub-err-gw-network-addr", "POST", "/v2.0/subnets",
      subnet("bad", "@{net:local}", "10.5.0.0/24", gateway_ip="10.5.0.0"))
    H("sub-err-notfound", "GET",
      "/v2.0/subnets/11111111-2222-3333-4444-555555555555")

    # -------------------------------------------------------------- ports
    H("port-create", "POST", "/v2.0/ports", port("p1", "@{net:prov}"),
      reg="port:p1", rev=True,
      what="allocated IPv4 + SLAAC address, default SG")
    H("port-create-fixed-ip", "POST", "/v2.0/ports",
      port("p2", "@{net:prov}", fixed_ips=[{"ip_address": "10.0.0.150"}]),
      reg="port:p2")
    H("port-create-subnet-only", "POST", "/v2.0/ports",
      port("p3", "@{net:prov}", fixed_ips=[{"subnet_id": "@{sub:v4a}"}],
           mac_address="fa:16:3e:00:00:33"),
      reg="port:p3", what="subnet-only fixed ip, chosen MAC")
    H("port-create-v6-stateful", "POST", "/v2.0/ports",
      port("p4", "@{net:tenant}"), reg="port:p4",
      what="DHCPv6-stateful address + v4 without DHCP")
    H("port-create-stateless", "POST", "/v2.0/ports",
      port("p5", "@{net:flat}"), reg="port:p5",
      what="no gateway subnet + DHCPv6-stateless")
    H("port-create-aap", "POST", "/v2.0/ports",
      port("aap", "@{net:prov}", allowed_address_pairs=[
          {"ip_address": "10.0.0.200"},
          {"ip_address": "10.0.1.0/24", "mac_address": "fa:16:3e:aa:bb:cc"}]),
      reg="port:aap")
    H("port-create-nops", "POST", "/v2.0/ports",
      port("nops", "@{net:prov}", port_security_enabled=False),
      reg="port:nops", what="port security off: no groups")
    H("port-create-nops-net", "POST", "/v2.0/ports",
      port("nopsnet", "@{net:nops}"), reg="port:nopsnet",
      what="inherits port_security_enabled=false from the network")
    H("port-err-nops-sg", "POST", "/v2.0/ports",
      port("bad", "@{net:prov}", port_security_enabled=False,
           security_groups=["@{first:sg-list-initial:security_groups}"]))
    H("port-create-bound", "POST", "/v2.0/ports",
      port("bound", "@{net:prov}", **{"binding:host_id": "compute-1",
                                      "device_owner": "compute:nova",
                                      "device_id": VM}),
      reg="port:bound", what="bound on the OVS-DPDK host: vhostuser")
    H("port-create-otherhost", "POST", "/v2.0/ports",
      port("otherhost", "@{net:prov}", **{"binding:host_id": "compute-2"}),
      reg="port:other", what="host without an agent: binding_failed")
    H("port-create-direct", "POST", "/v2.0/ports",
      port("direct", "@{net:prov}", **{"binding:host_id": "compute-1",
                                       "binding:vnic_type": "direct"}),
      reg="port:direct", what="direct without switchdev")
    H("port-create-direct-switchdev", "POST", "/v2.0/ports",
      port("directsd", "@{net:prov}", **{
          "binding:host_id": "compute-1", "binding:vnic_type": "direct",
          "binding:profile": {"capabilities": ["switchdev"]}}),
      reg="port:directsd", roles=NOVA_ROLES,
      what="binding:profile as Nova sets it (service role)")
    H("port-err-profile-admin", "POST", "/v2.0/ports",
      port("profile", "@{net:prov}", **{"binding:profile": {"a": "b"}}),
      what="binding:profile without the service role: 403")
    H("port-create-flat-bound", "POST", "/v2.0/ports",
      port("flatbound", "@{net:flat}", **{"binding:host_id": "compute-1"}),
      reg="port:flatbound")
    H("port-create-local-bound", "POST", "/v2.0/ports",
      port("localbound", "@{net:local}", **{"binding:host_id": "compute-1"}),
      reg="port:localbound", what="local network on the OVS host")
    H("port-create-dhcp-opts", "POST", "/v2.0/ports",
      port("dhcpopts", "@{net:prov}", extra_dhcp_opts=[
          {"opt_name": "bootfile-name", "opt_value": "pxelinux.0"},
          {"opt_name": "tftp-server", "opt_value": "10.0.0.5",
           "ip_version": 4}]),
      reg="port:dhcpopts")
    H("port-create-owner", "POST", "/v2.0/ports",
      port("dhcp", "@{net:prov}", device_owner="network:dhcp",
           device_id="dhcp-1"),
      reg="port:dhcp", what="network:dhcp owner")
    H("port-create-no-subnet-net", "POST", "/v2.0/ports",
      port("nosubnet", "@{net:local}"), reg="port:nosubnet",
      what="network without subnets: no fixed ips")
    H("port-show", "GET", "/v2.0/ports/@{port:p1}", rev=True)
    H("port-show-bound", "GET", "/v2.0/ports/@{port:bound}",
      what="binding:vif_type/vif_details/status")
    H("port-show-fields", "GET", "/v2.0/ports/@{port:bound}?fields="
      "binding:vif_details&fields=binding:vif_type&fields=status")
    H("port-update-name", "PUT", "/v2.0/ports/@{port:p1}",
      {"port": {"name": "p1-renamed", "admin_state_up": False}}, rev=True)
    H("port-update-fixed-ips", "PUT", "/v2.0/ports/@{port:p2}",
      {"port": {"fixed_ips": [{"ip_address": "10.0.0.151"},
                              {"ip_address": "10.0.0.152"}]}})
    H("port-update-aap-clear", "PUT", "/v2.0/ports/@{port:aap}",
      {"port": {"allowed_address_pairs": []}})
    H("port-update-sg-clear", "PUT", "/v2.0/ports/@{port:p3}",
      {"port": {"security_groups": []}})
    H("port-update-ps-off", "PUT", "/v2.0/ports/@{port:p3}",
      {"port": {"port_security_enabled": False}},
      what="no groups left: port security can go")
    H("port-update-ps-off-with-sg", "PUT", "/v2.0/ports/@{port:p4}",
      {"port": {"port_security_enabled": False}},
      what="still has the default group")
    H("port-update-bind-host", "PUT", "/v2.0/ports/@{port:other}",
      {"port": {"binding:host_id": "compute-1"}},
      what="rebinding to the OVS host")
    H("port-update-mac", "PUT", "/v2.0/ports/@{port:p4}",
      {"port": {"mac_address": "fa:16:3e:00:00:44"}})
    H("port-update-mac-bound", "PUT", "/v2.0/ports/@{port:bound}",
      {"port": {"mac_address": "fa:16:3e:00:00:45"}},
      what="MAC of a bound port")
    H("port-update-dhcp-opts", "PUT", "/v2.0/ports/@{port:dhcpopts}",
      {"port": {"extra_dhcp_opts": [
          {"opt_name": "bootfile-name", "opt_value": None}]}},
      what="removing a DHCP option")
    H("port-list", "GET", "/v2.0/ports", what="every port")
    H("port-list-device", "GET", f"/v2.0/ports?device_id={VM}")
    H("port-list-owner", "GET", "/v2.0/ports?device_owner=network:dhcp"
      "&fields=name")
    H("port-list-network", "GET", "/v2.0/ports?network_id=@{net:flat}"
      "&fields=name")
    H("port-list-mac", "GET", "/v2.0/ports?mac_address=fa:16:3e:00:00:33"
      "&fields=name")
    H("port-list-ip", "GET", "/v2.0/ports?fixed_ips=ip_address%3D10.0.0.151"
      "&fields=name")
    # "0.0.151", not ".151": p5's address on 10.1.0.0/24 is Neutron's
    # random pick and may be 10.1.0.151 (a flaky difference, seen once).
    H("port-list-ip-substr", "GET", "/v2.0/ports?fixed_ips=ip_address_"
      "substr%3D0.0.151&fields=name")
    H("port-list-subnet", "GET", "/v2.0/ports?fixed_ips=subnet_id%3D"
      "@{sub:v6stateful}&fields=name")
    H("port-list-status", "GET", "/v2.0/ports?status=DOWN&fields=name")
    H("port-list-host", "GET", "/v2.0/ports?binding:host_id=compute-1"
      "&fields=name")
    H("port-list-sorted-page", "GET", "/v2.0/ports?sort_key=name"
      "&sort_dir=asc&limit=4&fields=name", ordered=True)
    H("port-list-sorted-page-2", "GET", "@{next:port-list-sorted-page:ports}",
      ordered=True)
    H("port-err-ip-outside", "POST", "/v2.0/ports",
      port("bad", "@{net:prov}", fixed_ips=[{"ip_address": "10.7.0.5"}]))
    H("port-err-ip-in-use", "POST", "/v2.0/ports",
      port("bad", "@{net:prov}", fixed_ips=[{"ip_address": "10.0.0.151"}]))
    H("port-err-mac-in-use", "POST", "/v2.0/ports",
      port("bad", "@{net:prov}", mac_address="fa:16:3e:00:00:33"))
    H("port-err-mac-bad", "POST", "/v2.0/ports",
      port("bad", "@{net:prov}", mac_address="zz:16:3e:00:00:33"))
    H("port-err-mac-multicast", "POST", "/v2.0/ports",
      port("bad", "@{net:prov}", mac_address="01:00:5e:00:00:01"))
    H("port-err-no-network", "POST", "/v2.0/ports",
      port("bad", "11111111-2222-3333-4444-555555555555"))
    H("port-err-subnet-other-net", "POST", "/v2.0/ports",
      port("bad", "@{net:prov}", fixed_ips=[{"subnet_id": "@{sub:v4nogw}"}]))
    H("port-err-too-many-ips", "POST", "/v2.0/ports",
      port("bad", "@{net:prov}", fixed_ips=[
          {"ip_address": f"10.0.0.{i}"} for i in range(130, 137)]),
      what="7 fixed IPs outside the pool (none can be taken)")
    H("port-err-aap-bad", "POST", "/v2.0/ports",
      port("bad", "@{net:prov}", allowed_address_pairs=[
          {"ip_address": "not-an-ip"}]))
    H("port-err-aap-multicast", "POST", "/v2.0/ports",
      port("bad", "@{net:prov}", allowed_address_pairs=[
          {"ip_address": "224.0.0.5"}]))
    H("port-err-vnic", "POST", "/v2.0/ports",
      port("bad", "@{net:prov}", **{"binding:vnic_type": "sideways"}))
    H("port-err-sg-notfound", "POST", "/v2.0/ports",
      port("bad", "@{net:prov}",
           security_groups=["11111111-2222-3333-4444-555555555555"]))
    H("port-err-notfound", "GET",
      "/v2.0/ports/11111111-2222-3333-4444-555555555555")
    H("port-err-update-network", "PUT", "/v2.0/ports/@{port:p1}",
      {"port": {"network_id": "@{net:flat}"}})
    H("port-bulk-create", "POST", "/v2.0/ports",
      {"ports": [port("bulk1", "@{net:prov}")["port"],
                 port("bulk2", "@{net:tenant}",
                      fixed_ips=[{"ip_address": "10.2.0.20"}])["port"]]},
      reg=["port:bulk1", "port:bulk2"], what="bulk create")
    H("port-bulk-create-bad", "POST", "/v2.0/ports",
      {"ports": [port("bulk3", "@{net:prov}")["port"],
                 port("bulk4", "@{net:tenant}",
                      fixed_ips=[{"ip_address": "10.2.0.20"}])["port"]]},
      what="bulk create with one bad port: nothing created")
    H("port-bulk-check", "GET", "/v2.0/ports?name=bulk3&fields=name")
    H("port-delete", "DELETE", "/v2.0/ports/@{port:bulk1}")
    H("port-delete-again", "DELETE", "/v2.0/ports/@{port:bulk1}")

    # ----------------------------------------------------- security groups
    H("sg-show-default", "GET",
      "/v2.0/security-groups/@{first:sg-list-initial:security_groups}",
      what="the default group's four rules")
    H("sg-create", "POST", "/v2.0/security-groups",
      {"security_group": {"name": "web", "description": "web servers",
                          "project_id": PROJECT}},
      reg="sg:web", rev=True, what="a new group: two egress rules")
    H("sg-create-stateless", "POST", "/v2.0/security-groups",
      {"security_group": {"name": "stateless", "stateful": False,
                          "project_id": PROJECT}}, reg="sg:stateless")
    H("sg-create-other", "POST", "/v2.0/security-groups",
      {"security_group": {"name": "peers", "project_id": PROJECT}},
      reg="sg:peers")
    H("sg-update", "PUT", "/v2.0/security-groups/@{sg:web}",
      {"security_group": {"description": "web tier"}}, rev=True)
    H("sg-update-default", "PUT",
      "/v2.0/security-groups/@{first:sg-list-initial:security_groups}",
      {"security_group": {"name": "not-default"}},
      what="renaming the default group")
    H("sg-update-stateful-in-use", "PUT", "/v2.0/security-groups/@{sg:web}",
      {"security_group": {"stateful": False}})
    rules = [
        ("tcp-22", dict(direction="ingress", ethertype="IPv4",
                        protocol="tcp", port_range_min=22, port_range_max=22)),
        ("tcp-range", dict(direction="ingress", ethertype="IPv4",
                           protocol="tcp", port_range_min=80,
                           port_range_max=443,
                           remote_ip_prefix="192.0.2.0/24")),
        ("udp-53", dict(direction="ingress", ethertype="IPv4",
                        protocol="udp", port_range_min=53, port_range_max=53)),
        ("icmp-echo", dict(direction="ingress", ethertype="IPv4",
                           protocol="icmp", port_range_min=8,
                           port_range_max=0)),
        ("icmp-any", dict(direction="ingress", ethertype="IPv4",
                          protocol="icmp", remote_ip_prefix="10.0.0.0/8")),
        ("icmp-type-only", dict(direction="ingress", ethertype="IPv4",
                                protocol="icmp", port_range_min=3)),
        ("ipv6-icmp", dict(direction="ingress", ethertype="IPv6",
                           protocol="ipv6-icmp")),
        ("icmpv6-alias", dict(direction="ingress", ethertype="IPv6",
                              protocol="icmpv6", port_range_min=128)),
        ("proto-number", dict(direction="ingress", ethertype="IPv4",
                              protocol="6", port_range_min=8080,
                              port_range_max=8080)),
        ("proto-vrrp", dict(direction="ingress", ethertype="IPv4",
                            protocol="vrrp")),
        ("proto-112", dict(direction="egress", ethertype="IPv6",
                           protocol="112")),
        ("sctp-range", dict(direction="ingress", ethertype="IPv4",
                            protocol="sctp", port_range_min=1000,
                            port_range_max=2000)),
        ("udplite-ports", dict(direction="ingress", ethertype="IPv4",
                               protocol="udplite", port_range_min=5000,
                               port_range_max=5001)),
        ("gre", dict(direction="ingress", ethertype="IPv4", protocol="gre")),
        ("any-proto-v6-prefix", dict(direction="ingress", ethertype="IPv6",
                                     remote_ip_prefix="2001:db8::/32")),
        ("unnormalized-cidr", dict(direction="ingress", ethertype="IPv4",
                                   protocol="tcp", port_range_min=25,
                                   port_range_max=25,
                                   remote_ip_prefix="10.1.2.3/16")),
        ("remote-group", dict(direction="ingress", ethertype="IPv4",
                              protocol="tcp", port_range_min=3306,
                              port_range_max=3306,
                              remote_group_id="@{sg:peers}")),
        ("egress-tcp", dict(direction="egress", ethertype="IPv4",
                            protocol="tcp", port_range_min=443,
                            port_range_max=443,
                            remote_ip_prefix="0.0.0.0/0")),
        ("full-range", dict(direction="ingress", ethertype="IPv4",
                            protocol="udp", port_range_min=1,
                            port_range_max=65535)),
        ("described", dict(direction="ingress", ethertype="IPv6",
                           protocol="tcp", port_range_min=22,
                           port_range_max=22, description="ssh v6")),
    ]
    for name, r in rules:
        H(f"rule-{name}", "POST", "/v2.0/security-group-rules",
          rule("@{sg:web}", **r), reg=f"rule:{name}")
    H("rule-show", "GET", "/v2.0/security-group-rules/@{rule:tcp-22}",
      rev=True)
    H("rule-show-default-sg", "GET", "/v2.0/security-group-rules?"
      "security_group_id=@{first:sg-list-initial:security_groups}",
      what="the default group's rules: belongs_to_default_sg")
    bad_rules = [
        ("err-range-reversed", dict(direction="ingress", protocol="tcp",
                                    port_range_min=100, port_range_max=90)),
        ("err-port-zero", dict(direction="ingress", protocol="tcp",
                               port_range_min=0, port_range_max=10)),
        ("err-port-big", dict(direction="ingress", protocol="udp",
                              port_range_min=1, port_range_max=70000)),
        ("err-icmp-type", dict(direction="ingress", protocol="icmp",
                               port_range_min=256)),
        ("err-icmp-code-only", dict(direction="ingress", protocol="icmp",
                                    port_range_max=0)),
        ("err-ports-no-proto", dict(direction="ingress", port_range_min=22,
                                    port_range_max=22)),
        ("err-ports-on-gre", dict(direction="ingress", protocol="gre",
                                  port_range_min=1, port_range_max=2)),
        ("err-remote-both", dict(direction="ingress",
                                 remote_ip_prefix="10.0.0.0/8",
                                 remote_group_id="@{sg:peers}")),
        ("err-ethertype-conflict", dict(direction="ingress",
                                        ethertype="IPv4",
                                        remote_ip_prefix="2001:db8::/32")),
        ("err-icmp-v6-conflict", dict(direction="ingress", ethertype="IPv4",
                                      protocol="ipv6-icmp")),
        ("err-protocol", dict(direction="ingress", protocol="foo")),
        ("err-protocol-number", dict(direction="ingress", protocol="256")),
        ("err-direction", dict(direction="sideways")),
        ("err-ethertype", dict(direction="ingress", ethertype="IPv5")),
        ("err-prefix", dict(direction="ingress", remote_ip_prefix="10.0.0/8")),
        ("err-duplicate", dict(direction="ingress", ethertype="IPv4",
                               protocol="tcp", port_range_min=22,
                               port_range_max=22)),
        ("err-remote-group-notfound", dict(
            direction="ingress",
            remote_group_id="11111111-2222-3333-4444-555555555555")),
    ]
    for name, r in bad_rules:
        H(f"rule-{name}", "POST", "/v2.0/security-group-rules",
          rule("@{sg:web}", **r))
    H("rule-err-sg-notfound", "POST", "/v2.0/security-group-rules",
      rule("11111111-2222-3333-4444-555555555555", direction="ingress"))
    H("rule-err-update", "PUT", "/v2.0/security-group-rules/@{rule:tcp-22}",
      {"security_group_rule": {"port_range_min": 23}},
      what="rules are immutable")
    H("rule-update-description", "PUT",
      "/v2.0/security-group-rules/@{rule:tcp-22}",
      {"security_group_rule": {"description": "ssh"}})
    H("rule-list-sg", "GET",
      "/v2.0/security-group-rules?security_group_id=@{sg:web}")
    H("rule-list-filter", "GET", "/v2.0/security-group-rules?"
      "security_group_id=@{sg:web}&protocol=tcp&direction=ingress"
      "&fields=port_range_min&fields=port_range_max&fields=remote_ip_prefix")
    H("rule-list-sorted", "GET", "/v2.0/security-group-rules?"
      "security_group_id=@{sg:web}&sort_key=port_range_min&sort_dir=desc"
      "&fields=port_range_min&limit=5", ordered=True)
    H("sg-show-web", "GET", "/v2.0/security-groups/@{sg:web}",
      what="the group with all its rules")
    H("sg-list-fields", "GET", "/v2.0/security-groups?fields=name"
      "&fields=stateful&fields=shared")
    H("rule-delete", "DELETE", "/v2.0/security-group-rules/@{rule:udp-53}")
    H("rule-show-deleted", "GET",
      "/v2.0/security-group-rules/@{rule:udp-53}")
    H("port-set-sgs", "PUT", "/v2.0/ports/@{port:p1}",
      {"port": {"security_groups": ["@{sg:web}", "@{sg:peers}"]}})
    H("port-list-by-sg", "GET",
      "/v2.0/ports?security_groups=@{sg:web}&fields=name")
    H("sg-delete-in-use", "DELETE", "/v2.0/security-groups/@{sg:web}")
    H("sg-delete-default", "DELETE",
      "/v2.0/security-groups/@{first:sg-list-initial:security_groups}")
    H("sg-delete-notfound", "DELETE",
      "/v2.0/security-groups/11111111-2222-3333-4444-555555555555")
    H("sg-delete", "DELETE", "/v2.0/security-groups/@{sg:stateless}")

    # ---------------------------------------------------------------- tags
    H("tag-add", "PUT", "/v2.0/networks/@{net:tenant}/tags/red")
    H("tag-add-2", "PUT", "/v2.0/networks/@{net:prov}/tags/red")
    H("tag-check", "GET", "/v2.0/networks/@{net:tenant}/tags/red")
    H("tag-check-missing", "GET", "/v2.0/networks/@{net:tenant}/tags/blue")
    H("tag-replace", "PUT", "/v2.0/networks/@{net:tenant}/tags",
      {"tags": ["red", "green", "blue"]})
    H("tag-list", "GET", "/v2.0/networks/@{net:tenant}/tags")
    H("tag-filter", "GET", "/v2.0/networks?tags=red,green&fields=name")
    H("tag-filter-any", "GET", "/v2.0/networks?tags-any=red,blue"
      "&fields=name")
    H("tag-filter-not", "GET", "/v2.0/networks?not-tags=red&fields=name")
    H("tag-port", "PUT", "/v2.0/ports/@{port:p1}/tags/vm")
    H("tag-port-show", "GET", "/v2.0/ports/@{port:p1}?fields=tags")
    H("tag-err-long", "PUT", "/v2.0/networks/@{net:tenant}/tags/" + "x" * 70)
    H("tag-err-body", "PUT", "/v2.0/networks/@{net:tenant}/tags",
      {"tags": "red"})
    H("tag-delete", "DELETE", "/v2.0/networks/@{net:tenant}/tags/green")
    H("tag-delete-missing", "DELETE",
      "/v2.0/networks/@{net:tenant}/tags/green")
    H("tag-delete-all", "DELETE", "/v2.0/networks/@{net:tenant}/tags")
    H("tag-on-create", "POST", "/v2.0/networks",
      net("tagged", tags=["a", "b"]), reg="net:tagged",
      what="tags in a network's create body (Neutron: ports only)")
    H("tag-on-create-port", "POST", "/v2.0/ports",
      port("tagged", "@{net:local}", tags=["a", "b"]), reg="port:tagged",
      what="tags in a port's create body (tag-creation)")

    # -------------------------------------------------------------- quotas
    H("quota-list", "GET", "/v2.0/quotas")
    H("quota-show", "GET", f"/v2.0/quotas/{PROJECT}")
    H("quota-default", "GET", f"/v2.0/quotas/{PROJECT}/default")
    H("quota-details", "GET", f"/v2.0/quotas/{PROJECT}/details.json",
      what="used/limit/reserved per resource")
    H("quota-set", "PUT", f"/v2.0/quotas/{PROJECT}",
      {"quota": {"network": 20, "port": 100, "security_group_rule": 200}})
    H("quota-show-after", "GET", f"/v2.0/quotas/{PROJECT}")
    H("quota-list-after", "GET", "/v2.0/quotas")
    H("quota-err-negative", "PUT", f"/v2.0/quotas/{PROJECT}",
      {"quota": {"network": -5}})
    H("quota-err-unknown", "PUT", f"/v2.0/quotas/{PROJECT}",
      {"quota": {"widgets": 5}})
    H("quota-err-string", "PUT", f"/v2.0/quotas/{PROJECT}",
      {"quota": {"port": "many"}})
    H("quota-other-set", "PUT", f"/v2.0/quotas/{OTHER}",
      {"quota": {"network": 1, "security_group": 2}})
    H("quota-other-net1", "POST", "/v2.0/networks",
      {"network": {"name": "other1", "project_id": OTHER}},
      reg="net:other1")
    H("quota-other-over", "POST", "/v2.0/networks",
      {"network": {"name": "other2", "project_id": OTHER}},
      what="past the quota: 409 OverQuota")
    H("quota-other-details", "GET", f"/v2.0/quotas/{OTHER}/details.json")
    H("quota-other-delete", "DELETE", f"/v2.0/quotas/{OTHER}")
    H("quota-other-show", "GET", f"/v2.0/quotas/{OTHER}",
      what="defaults again")
    H("quota-check-limit", "PUT", f"/v2.0/quotas/{OTHER}",
      {"quota": {"network": 0, "check_limit": True}},
      what="quota-check-limit: below the usage")
    H("quota-delete", "DELETE", f"/v2.0/quotas/{PROJECT}")
    H("quota-show-tenant", "GET", "/v2.0/quotas/tenant",
      what="the caller's own project")

    # ---------------------------------------------------------- Nova flow
    N("nova-extensions", "GET", "/v2.0/extensions",
      what="Nova caches the extension list", ignore=["updated"])
    N("nova-networks", "GET", "/v2.0/networks?id=@{net:tenant}",
      what="Nova: _get_available_networks")
    N("nova-quota", "GET", f"/v2.0/quotas/{PROJECT}",
      what="Nova: validate_networks reads the port quota")
    N("nova-port-count", "GET", f"/v2.0/ports?tenant_id={PROJECT}"
      "&fields=id", what="Nova: counts the project's ports")
    N("nova-sg-lookup", "GET", f"/v2.0/security-groups?tenant_id={PROJECT}"
      "&fields=id&fields=name", what="Nova: resolves security group names")
    N("nova-port-create", "POST", "/v2.0/ports",
      {"port": {"network_id": "@{net:tenant}", "admin_state_up": True,
                "tenant_id": PROJECT}},
      reg="port:vm", what="Nova: _create_port_minimal")
    N("nova-port-bind", "PUT", "/v2.0/ports/@{port:vm}",
      {"port": {"device_id": VM, "device_owner": "compute:nova",
                "binding:host_id": "compute-1", "binding:profile": {}}},
      what="Nova: _update_port_binding_for_instance")
    N("nova-port-refresh", "GET", f"/v2.0/ports?tenant_id={PROJECT}"
      f"&device_id={VM}", what="Nova: info cache refresh (both VM ports)")
    N("nova-vif-details", "GET", "/v2.0/ports/@{port:vm}?fields="
      "binding:vif_type&fields=binding:vif_details&fields=binding:vnic_type"
      "&fields=status&fields=mac_address",
      what="what os-vif plugs: vhostuser socket, mode, datapath")
    N("nova-subnets", "GET", "/v2.0/subnets?network_id=@{net:tenant}",
      what="Nova: subnets of the VIF's network")
    N("nova-port-status", "GET", "/v2.0/ports/@{port:vm}?fields=status",
      what="no agent reported the port up")
    N("nova-unbind", "PUT", "/v2.0/ports/@{port:bound}",
      {"port": {"device_id": "", "device_owner": "",
                "binding:host_id": None}},
      what="Nova: unbinding a pre-existing port on server delete")
    N("nova-port-delete", "DELETE", "/v2.0/ports/@{port:vm}",
      what="Nova: deleting the port it created")
    N("nova-port-gone", "GET", "/v2.0/ports/@{port:vm}")

    # ----------------------------------------------------- openstack client
    C("cli-network-create", "network", "create", "cli-net",
      "--provider-network-type", "vlan", "--provider-physical-network",
      "physnet1", "--provider-segment", "3120", "--mtu", "1450",
      reg="net:cli")
    C("cli-network-show", "network", "show", "@{net:prov}")
    C("cli-network-set", "network", "set", "--name", "cli-net-2",
      "--description", "via osc", "@{net:cli}", json=False)
    C("cli-network-list", "network", "list", "--long")
    C("cli-network-list-external", "network", "list", "--external")
    for i in (1, 2, 3):
        H(f"cli-page-net-{i}", "POST", "/v2.0/networks", net("page"),
          reg=f"net:page{i}", token="net:page")
        H(f"cli-page-tag-{i}", "PUT", f"/v2.0/networks/@{{net:page{i}}}"
          "/tags/page")
    C("cli-network-list-limit", "network", "list", "--tags", "page",
      "--limit", "1", what="pages of one through *_links next")
    C("cli-network-list-marker", "network", "list", "--tags", "page",
      "--limit", "1", "--marker", "@{minid:net:page1,net:page2,net:page3}",
      what="--marker: everything after the smallest id")
    C("cli-subnet-create", "subnet", "create", "cli-sub", "--network",
      "@{net:cli}", "--subnet-range", "10.20.0.0/24", "--dns-nameserver",
      "8.8.4.4", "--allocation-pool", "start=10.20.0.100,end=10.20.0.150",
      reg="sub:cli")
    C("cli-subnet-create-v6", "subnet", "create", "cli-sub6", "--network",
      "@{net:cli}", "--ip-version", "6", "--ipv6-ra-mode", "slaac",
      "--ipv6-address-mode", "slaac", "--subnet-range", "fd00:99::/64",
      reg="sub:cli6")
    C("cli-subnet-list", "subnet", "list", "--network", "@{net:cli}")
    C("cli-subnet-show", "subnet", "show", "@{sub:cli}")
    C("cli-port-create", "port", "create", "cli-port", "--network",
      "@{net:cli}", "--fixed-ip", "subnet=@{sub:cli},ip-address=10.20.0.110",
      "--host", "compute-1", "--vnic-type", "normal", "--device-owner",
      "compute:nova", "--device", VM, reg="port:cli")
    C("cli-port-set", "port", "set", "--allowed-address",
      "ip-address=10.20.0.200", "--name", "cli-port-2", "@{port:cli}",
      json=False)
    C("cli-port-unset", "port", "unset", "--security-group",
      "@{first:sg-list-initial:security_groups}", "@{port:cli}", json=False)
    C("cli-port-show", "port", "show", "@{port:cli}")
    C("cli-port-list", "port", "list", "--device-owner", "compute:nova",
      "--long")
    C("cli-sg-create", "security", "group", "create", "cli-sg",
      "--description", "from osc", reg="sg:cli")
    C("cli-sg-show", "security", "group", "show", "@{sg:cli}")
    C("cli-sg-list", "security", "group", "list")
    C("cli-sg-rule-create", "security", "group", "rule", "create",
      "--protocol", "tcp", "--dst-port", "22:22", "--remote-ip",
      "10.0.0.0/8", "@{sg:cli}", reg="rule:cli")
    C("cli-sg-rule-create-icmp", "security", "group", "rule", "create",
      "--protocol", "icmp", "--icmp-type", "8", "--icmp-code", "0",
      "--ingress", "@{sg:cli}", reg="rule:cli-icmp")
    C("cli-sg-rule-list", "security", "group", "rule", "list", "@{sg:cli}",
      "--long")
    C("cli-sg-rule-bad", "security", "group", "rule", "create",
      "--protocol", "tcp", "--dst-port", "30:20", "@{sg:cli}")
    # The client resolves the project through the identity API first; with
    # identity v3 and one endpoint it asks that endpoint's /v2.0/projects.
    C("cli-quota-show", "--os-identity-api-version", "3", "quota", "show",
      "--network", PROJECT,
      what="the project looked up at the one endpoint (identity v3)")
    C("cli-quota-set", "--os-identity-api-version", "3", "quota", "set",
      "--networks", "30", PROJECT, json=False,
      what="the project looked up at the one endpoint (identity v3)")
    C("cli-quota-show-after", "--os-identity-api-version", "3", "quota",
      "show", "--network", PROJECT, what="the limit just set")
    C("cli-port-delete", "port", "delete", "@{port:cli}", json=False)
    C("cli-sg-delete", "security", "group", "delete", "@{sg:cli}",
      json=False)
    C("cli-subnet-delete", "subnet", "delete", "@{sub:cli6}", json=False)
    C("cli-network-delete-in-use", "network", "delete", "@{net:cli}",
      json=False, what="still has a subnet: fine, subnets go with it")
    C("cli-network-show-deleted", "network", "show", "@{net:cli}")

    # ------------------------------------------------------------ cleanup
    H("net-delete-in-use", "DELETE", "/v2.0/networks/@{net:prov}",
      what="ports with device owners still on it: 409 NetworkInUse")
    H("sub-delete-in-use", "DELETE", "/v2.0/subnets/@{sub:v4a}",
      what="IPs still allocated: 409 SubnetInUse")
    H("port-delete-p1", "DELETE", "/v2.0/ports/@{port:p1}")
    H("sub-delete", "DELETE", "/v2.0/subnets/@{sub:v6default}")
    H("net-delete", "DELETE", "/v2.0/networks/@{net:mtu}",
      what="a network with a subnet and no ports")
    H("net-show-deleted", "GET", "/v2.0/networks/@{net:mtu}")
    H("quota-details-end", "GET", f"/v2.0/quotas/{PROJECT}/details.json",
      what="usage after everything")
    # Last, in a project of its own: Neutron stores this network (a VNI no
    # VXLAN header can carry), Ferroswitch refuses it; nothing after it
    # would see the difference.
    H("net-err-vni-range", "POST", "/v2.0/networks",
      {"network": {"name": "vni-too-big", "project_id": "vni-range-project",
                   "provider:network_type": "vxlan",
                   "provider:segmentation_id": 16777216}},
      what="a VNI beyond 24 bits (documented divergence)")


def steps():
    _steps.clear()
    build()
    return [dict(s) for s in _steps]
