//! `vswitchctl`: talks to a running `vswitchd` over its control socket.
mod flow;
mod neutron_client;

use clap::{Parser, Subcommand};
use control_api::config::{PortConfig, PortType, DEFAULT_SOCKET};
use control_api::protocol::{
    call, FdbRow, HostRow, PmdStatsRow, PortInfo, PortStatsRow, Request, TableRow, TunnelRow,
};
use neutron_client::{
    ApiArgs, NetworkCmd, NeutronCommand, PortCmd as NeutronPortCmd, SecurityGroupCmd, SubnetCmd,
};
use std::time::Duration;
use switch_core::vlan::VlanMode;

#[derive(Parser)]
#[command(version, about = "Control a running Ferroswitch daemon")]
struct Args {
    /// The daemon's control socket (switch ports, FDB, PMDs).
    #[arg(long, global = true, env = "FERROSWITCH_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: std::path::PathBuf,
    #[command(flatten)]
    api: ApiArgs,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

// `port add` carries every port field; the command is parsed once per
// run, so its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Switch ports (list, stats, add, del) and Neutron ports (create, show,
    /// set, delete; `list --neutron`).
    Port {
        #[command(subcommand)]
        cmd: PortCmd,
    },
    /// MAC learning table.
    Fdb {
        #[command(subcommand)]
        cmd: FdbCmd,
    },
    /// VXLAN tunnels: `tunnel list` (endpoints, VNI, the remote ports'
    /// MACs l2population sends through each, counters).
    Tunnel {
        #[command(subcommand)]
        cmd: ListCmd,
    },
    /// Hosts of the cluster's model (etcd): `host list`.
    Host {
        #[command(subcommand)]
        cmd: ListCmd,
    },
    /// Connection tracking (ports with port security), like
    /// `ovs-appctl dpctl/dump-conntrack`.
    Conntrack {
        #[command(subcommand)]
        cmd: ConntrackCmd,
    },
    /// What the switch would do with a frame, step by step, like
    /// `ovs-appctl ofproto/trace`: the VLAN decision, port security, the
    /// connection state, the security-group rule that admits it or why it
    /// is dropped, the MAC-table decision and the output. Runs against the
    /// running configuration; nothing is learned, tracked or sent.
    /// Example: trace br-int 'in_port=vm1,tcp,dl_src=fa:16:3e:00:00:01,nw_src=10.0.0.5,nw_dst=10.0.0.6,tp_dst=22'
    Trace {
        bridge: String,
        /// in_port=NAME and OVS flow fields: dl_src, dl_dst, dl_vlan,
        /// ip|ipv6|arp|tcp|udp|icmp|tcp6|udp6|icmp6, dl_type, nw_proto,
        /// nw_src, nw_dst, ipv6_src, ipv6_dst, tp_src, tp_dst, icmp_type,
        /// icmp_code, icmp_id, tcp_flags (e.g. syn+ack; TCP defaults to
        /// syn), arp_op, arp_spa, arp_tpa, arp_sha, arp_tha.
        flow: String,
        /// The frame as hex digits instead (the flow then needs only
        /// in_port).
        #[arg(long)]
        hex: Option<String>,
    },
    /// Add one flow, as `ovs-ofctl add-flow`: a flow with the same table,
    /// priority and match replaces it. Ports by name or OpenFlow number
    /// (`port list` shows OFPORT).
    /// Example: add-flow br-int 'priority=4,in_port=phy,dl_vlan=2,actions=mod_vlan_vid:3029,NORMAL'
    AddFlow {
        bridge: String,
        flow: String,
        /// Not kept across a restart of the daemon.
        #[arg(long)]
        volatile: bool,
    },
    /// Add the flows of FILE (`-`: standard input), one a line, all or
    /// none, in one snapshot (`ovs-ofctl add-flows`).
    AddFlows {
        bridge: String,
        file: String,
        #[arg(long)]
        volatile: bool,
    },
    /// Make FILE's flows the bridge's flows, at once: flows already there
    /// unchanged keep their counters (`ovs-ofctl replace-flows --bundle`).
    ReplaceFlows {
        bridge: String,
        file: String,
        #[arg(long)]
        volatile: bool,
    },
    /// Delete the flows MATCH selects: those at least as narrow, or with
    /// --strict the one with exactly this match and priority. No MATCH:
    /// every flow (the bridge then drops everything, as OVS's does).
    DelFlows {
        bridge: String,
        #[arg(name = "MATCH")]
        pattern: Option<String>,
        #[arg(long)]
        strict: bool,
    },
    /// Give the flows FLOW's match selects FLOW's actions (counters kept).
    ModFlows {
        bridge: String,
        flow: String,
        #[arg(long)]
        strict: bool,
    },
    /// The flows (those MATCH selects), with their counters, in
    /// `ovs-ofctl dump-flows`' layout; each line can be added back.
    DumpFlows {
        bridge: String,
        #[arg(name = "MATCH")]
        pattern: Option<String>,
    },
    /// Per flow table: active flows, lookups, matches.
    DumpTables { bridge: String },
    /// Per-PMD counters, like `ovs-appctl dpif-netdev/pmd-stats-show`.
    PmdStats,
    /// Zero the PMD counters (like `dpif-netdev/pmd-stats-clear`).
    PmdStatsClear,
    /// Neutron networks.
    Network {
        #[command(subcommand)]
        cmd: NetworkCmd,
    },
    /// Neutron subnets.
    Subnet {
        #[command(subcommand)]
        cmd: SubnetCmd,
    },
    /// Neutron security groups and their rules.
    SecurityGroup {
        #[command(subcommand)]
        cmd: SecurityGroupCmd,
    },
}

#[derive(Subcommand)]
enum PortCmd {
    /// Switch ports; with --neutron (or --network) the Neutron ports.
    List {
        #[arg(long)]
        neutron: bool,
        #[arg(long)]
        network: Option<String>,
    },
    Stats,
    /// Add a switch port while the switch runs.
    Add {
        bridge: String,
        name: String,
        /// DPDK devargs (type dpdk): a PCI address or a vdev string.
        devargs: Option<String>,
        /// dpdk, dpdkvhostuserclient, dpdkvhostuser, internal, afpacket or
        /// vxlan.
        #[arg(long = "type", default_value = "dpdk")]
        kind: PortType,
        /// dpdkvhostuserclient: the VM's socket (it is the server).
        #[arg(long)]
        vhost_server_path: Option<String>,
        /// afpacket: the kernel interface (default: the port name).
        #[arg(long)]
        iface: Option<String>,
        #[arg(long)]
        tag: Option<u16>,
        /// Comma-separated VLAN ids.
        #[arg(long, value_delimiter = ',')]
        trunks: Vec<u16>,
        #[arg(long, value_parser = parse_mode)]
        vlan_mode: Option<VlanMode>,
        /// EXTERNAL:LOCAL VID translation (repeatable), e.g. 3029:2.
        #[arg(long = "vlan-translation", value_parser = parse_translation)]
        vlan_translations: Vec<(u16, u16)>,
        #[arg(long, default_value_t = 1)]
        rx_queues: u16,
        /// The Neutron port this attaches (os-vif's iface-id): VLAN and
        /// status then follow Neutron.
        #[arg(long)]
        iface_id: Option<String>,
        /// The port's MTU (default 1500): longer frames are not sent.
        #[arg(long)]
        mtu_request: Option<u16>,
        /// A tunnel endpoint on this port: VXLAN to this IPv4 or IPv6
        /// address (and the port's MAC) is its tunnels'; a.b.c.d/len or
        /// x:x::x/len gives its subnet.
        #[arg(long)]
        tunnel_ip: Option<control_api::config::TunnelAddr>,
        /// The router towards remote endpoints outside the endpoint's
        /// subnet.
        #[arg(long)]
        tunnel_gateway: Option<std::net::IpAddr>,
        /// The endpoint's MAC (default: the device's own).
        #[arg(long)]
        tunnel_mac: Option<String>,
        /// vxlan: the remote endpoint's IPv4 or IPv6 address.
        #[arg(long)]
        remote_ip: Option<std::net::IpAddr>,
        /// vxlan: the VNI.
        #[arg(long)]
        key: Option<u32>,
        /// vxlan, instead of --key: VLAN:VNI, a local VLAN and the VNI its
        /// frames travel with (repeatable; the port is a trunk of these
        /// VLANs), e.g. 2:5001.
        #[arg(long = "vlan-key", value_parser = parse_vlan_key)]
        vlan_keys: Vec<(u16, u32)>,
        /// vxlan: the endpoint it starts from (a port's tunnel_ip).
        #[arg(long)]
        local_ip: Option<std::net::IpAddr>,
        /// vxlan: the next hop's MAC on the uplink, static (default:
        /// resolved by ARP or neighbour discovery).
        #[arg(long)]
        remote_mac: Option<String>,
    },
    /// Remove a switch port; prints its final counters.
    Del {
        name: String,
    },
    #[command(flatten)]
    Neutron(NeutronPortCmd),
}

#[derive(Subcommand)]
enum ConntrackCmd {
    /// Every tracked connection (of one zone: a network's local VLAN).
    Dump {
        #[arg(long)]
        zone: Option<u16>,
    },
    /// Forget every connection (of one zone).
    Flush {
        #[arg(long)]
        zone: Option<u16>,
    },
    /// Counts per zone and per state, creations, expiries, refusals.
    Stats,
}

#[derive(Subcommand)]
enum FdbCmd {
    Show { bridge: Option<String> },
    Flush { bridge: Option<String> },
}

#[derive(Subcommand)]
enum ListCmd {
    List,
}

fn parse_translation(s: &str) -> Result<(u16, u16), String> {
    let (e, l) = s.split_once(':').ok_or("EXTERNAL:LOCAL, e.g. 3029:2")?;
    Ok((
        e.parse().map_err(|_| "EXTERNAL is a VID")?,
        l.parse().map_err(|_| "LOCAL is a VID")?,
    ))
}

fn parse_vlan_key(s: &str) -> Result<(u16, u32), String> {
    let (vlan, vni) = s.split_once(':').ok_or("VLAN:VNI, e.g. 2:5001")?;
    Ok((
        vlan.parse().map_err(|_| "VLAN is a VID")?,
        vni.parse().map_err(|_| "VNI is a number")?,
    ))
}

fn parse_mode(s: &str) -> Result<VlanMode, String> {
    match s {
        "access" => Ok(VlanMode::Access),
        "trunk" => Ok(VlanMode::Trunk),
        "native-tagged" => Ok(VlanMode::NativeTagged),
        "native-untagged" => Ok(VlanMode::NativeUntagged),
        _ => Err("one of access, trunk, native-tagged, native-untagged".into()),
    }
}

/// The lines of `file` (`-`: standard input), numbered as in the file.
fn read_lines(file: &str) -> Vec<String> {
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    };
    match text {
        Ok(t) => t.lines().map(str::to_owned).collect(),
        Err(e) => {
            eprintln!("vswitchctl: {file}: {e}");
            std::process::exit(1);
        }
    }
}

/// Runs a Neutron command against the REST API and exits on error.
fn neutron(cmd: NeutronCommand, api: &ApiArgs, json: bool) {
    match cmd.run(api, json) {
        Ok(out) => print!("{out}"),
        Err(e) => {
            eprintln!("vswitchctl: {e}");
            std::process::exit(1);
        }
    }
}

fn main() {
    let args = Args::parse();
    let json = args.json;
    let (req, kind) = match args.cmd {
        Cmd::Network { cmd } => return neutron(NeutronCommand::Network(cmd), &args.api, json),
        Cmd::Subnet { cmd } => return neutron(NeutronCommand::Subnet(cmd), &args.api, json),
        Cmd::SecurityGroup { cmd } => {
            return neutron(NeutronCommand::SecurityGroup(cmd), &args.api, json)
        }
        Cmd::Port {
            cmd: PortCmd::Neutron(cmd),
        } => return neutron(NeutronCommand::Port(cmd), &args.api, json),
        Cmd::Port {
            cmd: PortCmd::List {
                neutron: n,
                network,
            },
        } if n || network.is_some() => {
            return neutron(NeutronCommand::PortList(network), &args.api, json)
        }
        Cmd::Port {
            cmd: PortCmd::List { .. },
        } => (Request::PortList, "port-list"),
        Cmd::Port {
            cmd: PortCmd::Stats,
        } => (Request::PortStats, "port-stats"),
        Cmd::Port {
            cmd:
                PortCmd::Add {
                    bridge,
                    name,
                    devargs,
                    kind,
                    vhost_server_path,
                    iface,
                    tag,
                    trunks,
                    vlan_mode,
                    vlan_translations,
                    rx_queues,
                    iface_id,
                    mtu_request,
                    tunnel_ip,
                    tunnel_gateway,
                    tunnel_mac,
                    remote_ip,
                    key,
                    vlan_keys,
                    local_ip,
                    remote_mac,
                },
        } => (
            Request::PortAdd {
                bridge,
                port: PortConfig {
                    name,
                    kind,
                    devargs: devargs.unwrap_or_default(),
                    vhost_server_path,
                    iface,
                    vlan_mode,
                    tag,
                    trunks,
                    vlan_translations,
                    rx_queues,
                    iface_id,
                    mtu_request,
                    tunnel_ip,
                    tunnel_gateway,
                    tunnel_mac,
                    remote_ip,
                    key,
                    vlan_keys,
                    local_ip,
                    remote_mac,
                },
            },
            "",
        ),
        Cmd::Port {
            cmd: PortCmd::Del { name },
        } => (Request::PortDel { name }, ""),
        Cmd::Fdb {
            cmd: FdbCmd::Show { bridge },
        } => (Request::FdbShow { bridge }, "fdb"),
        Cmd::Fdb {
            cmd: FdbCmd::Flush { bridge },
        } => (Request::FdbFlush { bridge }, ""),
        Cmd::Tunnel { cmd: ListCmd::List } => (Request::TunnelList, "tunnel"),
        Cmd::Host { cmd: ListCmd::List } => (Request::HostList, "host"),
        Cmd::Conntrack {
            cmd: ConntrackCmd::Dump { zone },
        } => (Request::ConntrackDump { zone }, "conntrack"),
        Cmd::Conntrack {
            cmd: ConntrackCmd::Flush { zone },
        } => (Request::ConntrackFlush { zone }, ""),
        Cmd::Conntrack {
            cmd: ConntrackCmd::Stats,
        } => (Request::ConntrackStats, ""),
        Cmd::Trace { bridge, flow, hex } => {
            let parsed = flow::parse(&flow).unwrap_or_else(|e| {
                eprintln!("vswitchctl: trace: {e}");
                std::process::exit(2);
            });
            let frame =
                hex.unwrap_or_else(|| parsed.frame.iter().map(|b| format!("{b:02x}")).collect());
            (
                Request::Trace {
                    bridge,
                    in_port: parsed.in_port,
                    frame,
                },
                "trace",
            )
        }
        Cmd::AddFlow {
            bridge,
            flow,
            volatile,
        } => (
            Request::FlowAdd {
                bridge,
                flows: vec![flow],
                volatile,
            },
            "",
        ),
        Cmd::AddFlows {
            bridge,
            file,
            volatile,
        } => (
            Request::FlowAdd {
                bridge,
                flows: read_lines(&file),
                volatile,
            },
            "",
        ),
        Cmd::ReplaceFlows {
            bridge,
            file,
            volatile,
        } => (
            Request::FlowReplace {
                bridge,
                flows: read_lines(&file),
                volatile,
            },
            "",
        ),
        Cmd::DelFlows {
            bridge,
            pattern,
            strict,
        } => (
            Request::FlowDel {
                bridge,
                pattern,
                strict,
            },
            "",
        ),
        Cmd::ModFlows {
            bridge,
            flow,
            strict,
        } => (
            Request::FlowMod {
                bridge,
                flow,
                strict,
            },
            "",
        ),
        Cmd::DumpFlows { bridge, pattern } => (Request::FlowDump { bridge, pattern }, "flows"),
        Cmd::DumpTables { bridge } => (Request::FlowTables { bridge }, "tables"),
        Cmd::PmdStats => (Request::PmdStats, "pmd"),
        Cmd::PmdStatsClear => (Request::PmdStatsClear, ""),
    };
    let resp = match call(&args.socket, &req, Duration::from_secs(60)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "vswitchctl: {}: {e} (is vswitchd running?)",
                args.socket.display()
            );
            std::process::exit(1);
        }
    };
    if !resp.ok {
        eprintln!("vswitchctl: {}", resp.error.unwrap_or_default());
        std::process::exit(1);
    }
    if json {
        println!("{}", resp.result);
        return;
    }
    let r = resp.result;
    match kind {
        "flows" => {
            let lines: Vec<String> = serde_json::from_value(r).unwrap_or_default();
            for l in lines {
                println!("{l}");
            }
        }
        "tables" => {
            let rows: Vec<TableRow> = serde_json::from_value(r).unwrap_or_default();
            for t in rows {
                println!(
                    "  {}: active={}, lookup={}, matched={}",
                    t.table, t.active, t.lookups, t.matched
                );
            }
        }
        "port-list" => {
            let rows: Vec<PortInfo> = serde_json::from_value(r).unwrap_or_default();
            println!(
                "{:<4} {:<6} {:<14} {:<10} {:<19} {:<16} {:<6} {:<17} DEVICE",
                "ID", "OFPORT", "NAME", "BRIDGE", "TYPE", "VLAN", "STATE", "MAC"
            );
            for p in rows {
                let vlan = match (p.tag, p.trunks.is_empty()) {
                    (Some(t), true) => format!("{} {t}", p.vlan_mode),
                    (Some(t), false) => format!("{} {t} {:?}", p.vlan_mode, p.trunks),
                    (None, true) => format!("{} all", p.vlan_mode),
                    (None, false) => format!("{} {:?}", p.vlan_mode, p.trunks),
                };
                let device = match (&p.vhost, p.devargs.is_empty()) {
                    (Some(v), _) => format!(
                        "{} ({}, {} queue pairs, {} rings enabled)",
                        p.dpdk_name, v.mode, v.queue_pairs, v.enabled_queues
                    ),
                    (None, true) => p.dpdk_name.clone(),
                    (None, false) => format!("{} ({})", p.dpdk_name, p.devargs),
                };
                println!(
                    "{:<4} {:<6} {:<14} {:<10} {:<19} {:<16} {:<6} {:<17} {}",
                    p.port_id,
                    p.ofport,
                    p.name,
                    p.bridge,
                    p.kind,
                    vlan,
                    p.state,
                    if p.mac.is_empty() { "-" } else { &p.mac },
                    device
                );
            }
        }
        "port-stats" => {
            let rows: Vec<PortStatsRow> = serde_json::from_value(r).unwrap_or_default();
            for p in rows {
                println!("port {}: {}", p.port_id, p.name);
                println!(
                    "  RX packets:{} bytes:{} dropped:{} missed:{} errors:{}",
                    p.rx_packets, p.rx_bytes, p.rx_dropped, p.rx_missed, p.rx_errors
                );
                println!(
                    "  TX packets:{} bytes:{} dropped:{} oversize:{} errors:{}",
                    p.tx_packets, p.tx_bytes, p.tx_dropped, p.tx_oversize, p.tx_errors
                );
                if !p.dhcp.is_empty() {
                    let n = |k: &str| p.dhcp.get(k).copied().unwrap_or(0);
                    println!(
                        "  DHCP requests:{} offers:{} acks:{} naks:{} unanswered:{}",
                        n("requests"),
                        n("offers"),
                        n("acks"),
                        n("naks"),
                        n("unanswered")
                    );
                }
            }
        }
        "conntrack" => {
            let rows: Vec<control_api::protocol::ConnRow> =
                serde_json::from_value(r).unwrap_or_default();
            for c in rows {
                println!(
                    "zone={} proto={} src={} dst={} sport={} dport={} state={} idle={}s",
                    c.zone, c.proto, c.src, c.dst, c.sport, c.dport, c.state, c.idle
                );
            }
        }
        "trace" => {
            let lines: Vec<String> = serde_json::from_value(r).unwrap_or_default();
            for l in lines {
                println!("{l}");
            }
        }
        "tunnel" => {
            let rows: Vec<TunnelRow> = serde_json::from_value(r).unwrap_or_default();
            for t in rows {
                let vni = match t.vni {
                    Some(v) => format!("vni {v}"),
                    None => {
                        let by_vlan: Vec<String> = t
                            .vlan_keys
                            .iter()
                            .map(|(vlan, v)| format!("{v} (VLAN {vlan})"))
                            .collect();
                        format!("vnis {}", by_vlan.join(", "))
                    }
                };
                println!(
                    "{}: {} {} -> {} via {}{}",
                    t.port,
                    vni,
                    t.local_ip,
                    t.remote_ip,
                    t.uplink,
                    if t.neutron { ", l2population" } else { "" }
                );
                let mac = if t.remote_mac.is_empty() {
                    "?"
                } else {
                    &t.remote_mac
                };
                println!(
                    "  next hop {} {} {}, ARP/ND requests {}",
                    t.next_hop, mac, t.next_hop_state, t.arp_requests
                );
                println!(
                    "  rx {} packets {} bytes, tx {} packets {} bytes, tx dropped {}",
                    t.rx_packets, t.rx_bytes, t.tx_packets, t.tx_bytes, t.tx_dropped
                );
                for (vlan, mac) in &t.macs {
                    println!("  remote {mac} (local VLAN {vlan})");
                }
            }
        }
        "host" => {
            let rows: Vec<HostRow> = serde_json::from_value(r).unwrap_or_default();
            // IPv6 endpoints are wider than IPv4's 15 characters.
            let ipw = rows
                .iter()
                .filter_map(|h| h.tunnel_ip.as_ref().map(String::len))
                .fold(15, usize::max);
            println!(
                "{:<20} {:<ipw$} {:<17} {:>6}  {:<24} BRIDGE MAPPINGS",
                "HOST", "TUNNEL IP", "TUNNEL MAC", "PORTS", "STARTED"
            );
            for h in rows {
                println!(
                    "{:<20} {:<ipw$} {:<17} {:>6}  {:<24} {}",
                    format!("{}{}", h.host, if h.this { " (this)" } else { "" }),
                    h.tunnel_ip.as_deref().unwrap_or("-"),
                    h.tunnel_mac.as_deref().unwrap_or("-"),
                    h.ports,
                    h.started_at,
                    h.bridge_mappings.join(",")
                );
            }
        }
        "fdb" => {
            let rows: Vec<FdbRow> = serde_json::from_value(r).unwrap_or_default();
            println!(
                "{:<10} {:<12} {:>4}  {:<17} {:>4}",
                "BRIDGE", "PORT", "VLAN", "MAC", "AGE"
            );
            for e in rows {
                println!(
                    "{:<10} {:<12} {:>4}  {:<17} {:>4}",
                    e.bridge, e.port, e.vlan, e.mac, e.age
                );
            }
        }
        "pmd" => {
            let rows: Vec<PmdStatsRow> = serde_json::from_value(r).unwrap_or_default();
            for w in rows {
                println!("pmd thread core_id {}:", w.core);
                println!("  packets received: {}", w.packets);
                println!(
                    "  idle cycles: {} ({:.2}%)",
                    w.idle_cycles,
                    100.0 - w.busy_percent
                );
                println!(
                    "  processing cycles: {} ({:.2}%)",
                    w.busy_cycles, w.busy_percent
                );
                println!(
                    "  avg processing cycles per packet: {:.2}",
                    w.cycles_per_packet
                );
                println!("  iterations: {}", w.iterations);
                let lookups = w.flow_cache_hits + w.flow_megaflow_hits + w.flow_cache_misses;
                if lookups > 0 {
                    let pct = |n: u64| 100.0 * n as f64 / lookups as f64;
                    println!(
                        "  flow lookups: exact-match hits {} ({:.2}%), megaflow hits {} ({:.2}%), classifier {} ({:.2}%)",
                        w.flow_cache_hits,
                        pct(w.flow_cache_hits),
                        w.flow_megaflow_hits,
                        pct(w.flow_megaflow_hits),
                        w.flow_cache_misses,
                        pct(w.flow_cache_misses)
                    );
                }
                let decisions = w.normal_cache_hits + w.normal_cache_misses;
                if decisions > 0 {
                    println!(
                        "  NORMAL decisions: cache hits {} ({:.2}%), decided afresh {}",
                        w.normal_cache_hits,
                        100.0 * w.normal_cache_hits as f64 / decisions as f64,
                        w.normal_cache_misses
                    );
                }
                println!("  rx queues: {}", w.rx_queues.join(" "));
                println!(
                    "  drops: malformed {} vlan {} link-local {} no-output {} oversize {} spoofed {} denied {} ct-invalid {} flow {} tx-full {} no-mbuf {} unresolved {}",
                    w.drops_malformed,
                    w.drops_vlan,
                    w.drops_link_local,
                    w.drops_no_output,
                    w.drops_oversize,
                    w.drops_spoofed,
                    w.drops_denied,
                    w.drops_ct_invalid,
                    w.drops_flow,
                    w.drops_tx_full,
                    w.drops_no_mbuf,
                    w.drops_unresolved
                );
            }
        }
        _ => {
            if !r.is_null() {
                println!("{r}");
            }
        }
    }
}
