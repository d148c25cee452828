//! The switch ports: opening, adding and deleting them (each change a new
//! snapshot), and what `port list`, `port stats` and `fdb` report.
use super::error::{FdbError, OpenError, PortError};
use super::{Daemon, GRACE_TIMEOUT};
use crate::port::{PortDevice, PortState};
use control_api::config::{ConfigError, Device, PortConfig, PortType};
use control_api::protocol::{FdbRow, PortInfo, PortSecurity, PortStatsRow, VhostInfo};
use dataplane::acl::{Direction, PortAcl};
use dataplane::port::{PortMask, MAX_ETHDEV_PORTS};

// The switch's ethdev limit is DPDK's.
const _: () = assert!(MAX_ETHDEV_PORTS == dpdk_sys::raw::RTE_MAX_ETHPORTS as usize);
use super::snapshot::Tunnel;
use dataplane::neighbour::{Neighbour, NeighbourTable, NextHop, Resolution};
use dataplane::stats::PortTotals;
use dataplane::view::{TunnelKey, VlanVnis};
use dataplane::vlan::PortVlan;
use dataplane::wire::vxlan::{Ipv4Tunnel, Ipv6Tunnel, OuterHeader, Vni};
use dataplane::wire::EthernetAddress;
use dpdk_sys::ethdev::{EthStats, PortSetup};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{error, info};

/// A switch port the daemon holds open.
pub(super) struct OpenPort {
    pub cfg: PortConfig,
    pub bridge: usize,
    pub vlan: PortVlan,
    /// Security-group rule set of the attached Neutron port.
    pub acl: Option<Arc<PortAcl>>,
    /// The switch's DHCP server for the attached Neutron port.
    pub dhcp: Option<Arc<dataplane::dhcp::DhcpServer>>,
    /// Opened by the daemon for a Neutron port bound here (an SR-IOV VF or
    /// a vhost-user socket), not by config or `port add`.
    pub auto_attached: bool,
    /// Opened by the daemon as a tunnel to another host for a vxlan
    /// network (l2population), not by config or `port add`.
    pub auto_tunnel: bool,
    pub dev: PortDevice,
    /// As last seen by the control thread (changes are logged).
    pub state: PortState,
    /// The counters when the port was added (numbers are reused).
    pub base: PortTotals,
}

impl Daemon {
    /// Opens `cfg`'s device as a port of bridge `bridge`, with the lowest
    /// free port number. Not yet in a snapshot: the caller publishes.
    pub(super) fn open_port(&mut self, bridge: usize, cfg: PortConfig) -> Result<(), OpenError> {
        let vlan = cfg.validate("port")?;
        let setup = PortSetup {
            rx_queues: cfg.rx_queues,
            tx_queues: self.cfg.dataplane.pmd_cores.len() as u16,
            rx_desc: self.cfg.dataplane.rx_desc,
            tx_desc: self.cfg.dataplane.tx_desc,
            mtu: cfg.mtu(),
            offloads: self.bridges.get(bridge).is_some_and(|b| b.userspace_tso),
        };
        let used: PortMask = self.ports.values().map(|p| p.dev.port_id()).collect();
        let number = used.first_free().ok_or(OpenError::Full)?;
        let device = cfg.device(&self.cfg.dataplane.vhost_sock_dir);
        let ethdevs = self
            .ports
            .values()
            .filter(|p| matches!(p.dev, PortDevice::Eth(_)))
            .count();
        if matches!(device, Device::Eth { .. }) && ethdevs >= MAX_ETHDEV_PORTS {
            return Err(OpenError::Full);
        }
        let dev = PortDevice::open(
            number,
            &device,
            setup,
            &self.pool,
            self.tso_pool.as_ref(),
            self.vhost_gid,
        )?;
        let base = PortTotals::sum(&self.workers, number);
        let state = dev.state();
        info!(port = %cfg.name, port_id = number.get(), r#type = %cfg.kind, device = %dev.dpdk_name(), vlan_mode = %vlan.mode(), state = state.as_str(), "port added");
        self.ports.insert(
            cfg.name.clone(),
            OpenPort {
                cfg,
                bridge,
                vlan,
                acl: None,
                dhcp: None,
                auto_attached: false,
                auto_tunnel: false,
                dev,
                state,
                base,
            },
        );
        Ok(())
    }

    /// The ports' tunnel endpoints (`tunnel_ip`s).
    pub(super) fn tunnel_endpoints(&self) -> Vec<std::net::IpAddr> {
        self.ports
            .values()
            .filter_map(|p| p.cfg.tunnel_ip.map(|t| t.ip))
            .collect()
    }

    /// The port holding tunnel endpoint `local`, and the endpoint's MAC.
    pub(super) fn endpoint(
        &self,
        local: std::net::IpAddr,
    ) -> Result<(&OpenPort, EthernetAddress), String> {
        let uplink = self
            .ports
            .values()
            .find(|p| p.cfg.tunnel_ip.is_some_and(|t| t.ip == local))
            .ok_or_else(|| format!("no port holds {local}"))?;
        let mac = match uplink.cfg.tunnel_mac.as_deref() {
            Some(m) => m
                .parse::<EthernetAddress>()
                .map_err(|_| format!("{}'s tunnel_mac {m:?}", uplink.cfg.name))?,
            None => EthernetAddress(uplink.dev.mac_addr().ok_or_else(|| {
                format!(
                    "its uplink {} has no MAC of its own to send from: give it a tunnel_mac",
                    uplink.cfg.name
                )
            })?),
        };
        Ok((uplink, mac))
    }

    /// This host's VXLAN endpoint for Neutron's networks (`neutron.local_ip`):
    /// its address and MAC, if it has one that works.
    pub(super) fn neutron_endpoint(&self) -> Option<(std::net::IpAddr, EthernetAddress)> {
        let ip = self.neutron.as_ref()?.compiler.local_ip()?;
        match self.endpoint(ip) {
            Ok((_, mac)) => Some((ip, mac)),
            Err(e) => {
                tracing::error!("neutron.local_ip {ip}: {e}");
                None
            }
        }
    }

    /// What a `vxlan` port's frames need on the way out: its uplink (the
    /// port holding its endpoint, with a MAC of its own), outer headers
    /// and next hop (the remote endpoint on the endpoint's subnet, else
    /// the endpoint's gateway). `Err` says why it cannot work now (it then
    /// sends nothing).
    pub(super) fn tunnel_of(&self, cfg: &PortConfig) -> Result<Tunnel, String> {
        let local =
            control_api::config::tunnel_endpoint(cfg, &self.tunnel_endpoints(), cfg.remote_ip)?;
        let (uplink, src_mac) = self.endpoint(local)?;
        let remote = cfg.remote_ip.ok_or("no remote_ip")?;
        let addr = uplink.cfg.tunnel_ip.unwrap_or(local.into());
        let hop = addr.next_hop(uplink.cfg.tunnel_gateway, remote)?;
        let fixed = match cfg.remote_mac.as_deref() {
            Some(m) => Some(
                m.parse::<EthernetAddress>()
                    .map_err(|_| format!("remote_mac {m:?}"))?,
            ),
            None => None,
        };
        let key = match cfg.key {
            Some(k) => TunnelKey::Fixed(Vni::new(k).ok_or("key is not a VNI")?),
            None => TunnelKey::ByVlan(
                VlanVnis::new(
                    cfg.vlan_keys
                        .iter()
                        .filter_map(|&(vlan, v)| Some((vlan, Vni::new(v)?))),
                )
                .ok_or("no key, and vlan_keys name no VLAN once and VNI once")?,
            ),
        };
        // The next hop's MAC is written per batch once resolved.
        let dst_mac = fixed.unwrap_or(EthernetAddress::BROADCAST);
        let outer = match (local, remote) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => OuterHeader::V4(Ipv4Tunnel {
                src_mac,
                dst_mac,
                src_ip: src.octets(),
                dst_ip: dst.octets(),
                // Open vSwitch's defaults: TTL 64, TOS 0, DF set.
                ttl: 64,
                tos: 0,
                dont_fragment: true,
            }),
            (IpAddr::V6(src), IpAddr::V6(dst)) => OuterHeader::V6(Ipv6Tunnel {
                src_mac,
                dst_mac,
                src_ip: src.octets(),
                dst_ip: dst.octets(),
                hop_limit: 64,
                traffic_class: 0,
            }),
            _ => {
                return Err(format!(
                    "remote_ip {remote} is not of local_ip {local}'s IP version"
                ))
            }
        };
        Ok(Tunnel {
            uplink: uplink.dev.port_id(),
            outer,
            key,
            next_hop: NextHop {
                uplink: uplink.dev.port_id(),
                src_ip: local,
                src_mac,
                ip: hop,
                fixed,
            },
        })
    }

    /// `port add`: checks everything first, then opens the device and
    /// publishes; on any error nothing changed.
    pub(super) fn add_port(&mut self, bridge: &str, cfg: PortConfig) -> Result<(), PortError> {
        cfg.validate("port")?;
        let bi = self
            .bridges
            .iter()
            .position(|b| b.name == bridge)
            .ok_or_else(|| PortError::NoBridge(bridge.to_owned()))?;
        if self.ports.contains_key(&cfg.name) {
            return Err(PortError::NameTaken(cfg.name));
        }
        let endpoints = self.tunnel_endpoints();
        if cfg.kind == PortType::Vxlan {
            let local = control_api::config::tunnel_endpoint(&cfg, &endpoints, cfg.remote_ip)
                .map_err(|reason| ConfigError {
                    key: "port.local_ip".into(),
                    reason,
                })?;
            if let (Ok((uplink, _)), Some(remote)) = (self.endpoint(local), cfg.remote_ip) {
                let addr = uplink.cfg.tunnel_ip.unwrap_or(local.into());
                addr.next_hop(uplink.cfg.tunnel_gateway, remote)
                    .map_err(|reason| ConfigError {
                        key: "port.remote_ip".into(),
                        reason,
                    })?;
            }
        }
        if let Some(ip) = cfg
            .tunnel_ip
            .map(|t| t.ip)
            .filter(|ip| endpoints.contains(ip))
        {
            return Err(PortError::Config(ConfigError {
                key: "port.tunnel_ip".into(),
                reason: format!("{ip} is another port's tunnel_ip"),
            }));
        }
        let sock_dir = &self.cfg.dataplane.vhost_sock_dir;
        let dev = cfg.device(sock_dir).identity();
        if self
            .ports
            .values()
            .any(|p| p.cfg.device(sock_dir).identity() == dev)
        {
            return Err(PortError::DeviceTaken {
                key: cfg.device_key(),
                device: dev,
            });
        }
        let key = cfg.device_key();
        let name = cfg.name.clone();
        self.open_port(bi, cfg).map_err(|e| match e {
            OpenError::Full => PortError::Full,
            OpenError::Config(e) => PortError::Config(e),
            OpenError::Device(source) => PortError::Device { key, source },
            OpenError::NoBridge(name) => PortError::NoBridge(name),
        })?;
        // A port for a Neutron port the daemon attached itself replaces
        // that attachment (one switch port per Neutron port).
        if let Some(id) = self.ports.get(&name).and_then(|p| p.cfg.iface_id.clone()) {
            self.reconcile_attachments(Some(&[id].into()));
        }
        self.compile_neutron();
        self.publish();
        self.report_neutron_status();
        Ok(())
    }

    /// Removes a port; returns its final counters (complete: every worker
    /// has finished with it when this returns).
    pub(super) fn del_port(&mut self, name: &str) -> Result<PortStatsRow, PortError> {
        if !self.ports.contains_key(name) {
            return Err(PortError::NoSuchPort(name.to_owned()));
        }
        if self
            .neutron
            .as_ref()
            .is_some_and(|n| n.compiler.mappings().values().any(|u| u == name))
        {
            return Err(PortError::Uplink(name.to_owned()));
        }
        let Some(p) = self.ports.remove(name) else {
            return Err(PortError::NoSuchPort(name.to_owned()));
        };
        self.compile_neutron();
        // Workers drop the port's queues when they adopt this snapshot.
        self.publish();
        let id = p.dev.port_id();
        if let Some(b) = self.bridges.get(p.bridge) {
            b.fdb.flush_port(id);
        }
        let (base, hw) = (p.base, p.dev.hw_stats());
        close_device(name, p.dev);
        let t = PortTotals::sum(&self.workers, id).since(base);
        self.report_neutron_status();
        info!(
            port = name,
            port_id = id.get(),
            rx = t.rx_packets,
            tx = t.tx_packets,
            "port deleted"
        );
        Ok(stats_row(name, id.get(), t, hw))
    }

    pub(super) fn port_list(&self) -> Vec<PortInfo> {
        let mut v: Vec<PortInfo> = self
            .ports
            .values()
            .map(|p| {
                let state = p.dev.state();
                PortInfo {
                    name: p.cfg.name.clone(),
                    bridge: self
                        .bridges
                        .get(p.bridge)
                        .map(|b| b.name.clone())
                        .unwrap_or_default(),
                    port_id: p.dev.port_id().get(),
                    ofport: dataplane::flow_table::program::ofport(p.dev.port_id()),
                    devargs: p.cfg.devargs.clone(),
                    dpdk_name: p.dev.dpdk_name().to_owned(),
                    vlan_mode: p.vlan.mode().to_string(),
                    tag: p.vlan.tag(),
                    trunks: p.vlan.trunks().to_vec(),
                    vlan_translations: p.vlan.translations().to_vec(),
                    rx_queues: p.cfg.rx_queues,
                    iface_id: p.cfg.iface_id.clone(),
                    security: p.acl.as_ref().map(|a| PortSecurity {
                        port_security: a.port_security,
                        allowed_sources: a.allowed_sources.len(),
                        ingress_rules: a.count(Direction::Ingress),
                        egress_rules: a.count(Direction::Egress),
                    }),
                    link_up: state == PortState::Active,
                    state: state.as_str().to_owned(),
                    kind: p.cfg.kind.to_string(),
                    mac: p
                        .dev
                        .mac_addr()
                        .map(|m| EthernetAddress(m).to_string())
                        .unwrap_or_default(),
                    vhost: p.dev.vhost_status().map(|v| VhostInfo {
                        mode: match p.cfg.kind {
                            PortType::Dpdkvhostuser => "server",
                            _ => "client",
                        }
                        .to_owned(),
                        attached: v.attached,
                        queue_pairs: v.queue_pairs,
                        enabled_queues: v.enabled_queues,
                        connects: v.connects,
                        disconnects: v.disconnects,
                    }),
                }
            })
            .collect();
        v.sort_by_key(|p| p.port_id);
        v
    }

    pub(super) fn port_stats(&self) -> Vec<PortStatsRow> {
        let mut v: Vec<PortStatsRow> = self
            .ports
            .values()
            .map(|p| {
                let id = p.dev.port_id();
                let t = PortTotals::sum(&self.workers, id).since(p.base);
                stats_row(&p.cfg.name, id.get(), t, p.dev.hw_stats())
            })
            .collect();
        v.sort_by_key(|r| r.port_id);
        v
    }

    pub(super) fn fdb_rows(&self, bridge: Option<&str>) -> Result<Vec<FdbRow>, FdbError> {
        self.check_bridge(bridge)?;
        let snap = self.cell.load_full();
        let mut rows = Vec::new();
        for br in self.bridges_named(bridge) {
            for e in br.fdb.entries() {
                rows.push(FdbRow {
                    bridge: br.name.clone(),
                    port: snap
                        .view
                        .port(e.port)
                        .map(|p| p.name.clone())
                        .unwrap_or_else(|| e.port.to_string()),
                    vlan: e.vlan,
                    mac: EthernetAddress::from_u64(e.mac).to_string(),
                    age: e.age,
                });
            }
        }
        Ok(rows)
    }

    /// `tunnel list`: every vxlan port, its endpoints and counters, and
    /// the remote MACs l2population sends through it.
    pub(super) fn tunnel_rows(&self) -> Vec<control_api::protocol::TunnelRow> {
        let stats = self.port_stats();
        let mut rows = Vec::new();
        for p in self
            .ports
            .values()
            .filter(|p| p.cfg.kind == PortType::Vxlan)
        {
            let id = p.dev.port_id();
            let tunnel = self.tunnel_of(&p.cfg).ok();
            let t = tunnel.as_ref();
            let hop = t.and_then(|t| {
                self.neighbours
                    .entries()
                    .iter()
                    .find(|n| n.hop == t.next_hop)
            });
            let uplink = t
                .and_then(|t| self.ports.values().find(|u| u.dev.port_id() == t.uplink))
                .map(|u| u.cfg.name.clone())
                .unwrap_or_default();
            let mut macs: Vec<(u16, String)> = self
                .bridges
                .get(p.bridge)
                .and_then(|b| b.known.as_deref())
                .into_iter()
                .flat_map(|k| k.remote_macs_via(id))
                .map(|(vlan, mac)| (vlan, EthernetAddress::from_u64(mac).to_string()))
                .collect();
            macs.sort();
            let s = stats.iter().find(|s| s.name == p.cfg.name);
            let n = |f: fn(&PortStatsRow) -> u64| s.map_or(0, f);
            rows.push(control_api::protocol::TunnelRow {
                port: p.cfg.name.clone(),
                local_ip: t.map_or(String::new(), |t| t.outer.src_ip().to_string()),
                remote_ip: p.cfg.remote_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                vni: p.cfg.key,
                vlan_keys: {
                    let mut k = p.cfg.vlan_keys.clone();
                    k.sort_unstable();
                    k
                },
                next_hop: t.map_or(String::new(), |t| t.next_hop.ip.to_string()),
                remote_mac: hop
                    .and_then(|n| n.mac())
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                next_hop_state: match (t, hop) {
                    (None, _) => "no route".into(),
                    (Some(_), None) => "unpublished".into(),
                    (Some(_), Some(n)) => neighbour_state(n, &self.neighbours),
                },
                arp_requests: hop.map_or(0, |n| n.requests.load(Ordering::Relaxed)),
                uplink,
                neutron: p.auto_tunnel,
                macs,
                rx_packets: n(|s| s.rx_packets),
                tx_packets: n(|s| s.tx_packets),
                rx_bytes: n(|s| s.rx_bytes),
                tx_bytes: n(|s| s.tx_bytes),
                tx_dropped: n(|s| s.tx_dropped),
            });
        }
        rows
    }

    /// `host list`: the hosts registered in the cluster's model.
    pub(super) fn host_rows(&self) -> Result<Vec<control_api::protocol::HostRow>, String> {
        let n = self
            .neutron
            .as_ref()
            .ok_or("no [neutron] section: this switch has no Neutron model")?;
        let own = self.cfg.neutron.as_ref().map_or("", |c| c.host.as_str());
        let state = n.service.state();
        let mut ports: std::collections::BTreeMap<&str, usize> = Default::default();
        for p in state.ports.values() {
            *ports.entry(p.binding.host_id.as_str()).or_default() += 1;
        }
        Ok(state
            .hosts
            .values()
            .map(|h| control_api::protocol::HostRow {
                host: h.host.clone(),
                tunnel_ip: h.tunnel_ip.clone(),
                tunnel_mac: h.tunnel_mac.clone(),
                bridge_mappings: h
                    .bridge_mappings
                    .iter()
                    .map(|(p, b)| format!("{p}:{b}"))
                    .collect(),
                started_at: h.started_at.clone(),
                ports: ports.get(h.host.as_str()).copied().unwrap_or(0),
                this: h.host == own,
            })
            .collect())
    }

    /// `trace`: the steps the hex `frame` would take from `in_port` of
    /// `bridge` in the running snapshot.
    pub(super) fn trace(
        &self,
        bridge: &str,
        in_port: &str,
        frame: &str,
    ) -> Result<Vec<String>, String> {
        let bytes = parse_hex(frame).ok_or_else(|| {
            "frame: not an even number of hexadecimal digits (spaces and colons allowed)".to_owned()
        })?;
        let snap = self.cell.load_full();
        let port = snap
            .view
            .port_by_name(in_port)
            .ok_or_else(|| format!("in_port: no port named {in_port:?}"))?;
        let on = snap.view.bridge(port.bridge).map(|b| b.name.as_str());
        if on != Some(bridge) {
            return Err(format!(
                "in_port: {in_port:?} is on bridge {}, not {bridge:?}",
                on.unwrap_or("?")
            ));
        }
        let flows = &self.bridges[port.bridge].flows;
        Ok(dataplane::pipeline::trace(
            &snap.view,
            self.conntrack.as_deref(),
            port.id,
            &bytes,
            &|id| flows.describe(id),
        ))
    }

    /// `fdb flush`: how many entries went.
    pub(super) fn fdb_flush(&self, bridge: Option<&str>) -> Result<usize, FdbError> {
        self.check_bridge(bridge)?;
        Ok(self.bridges_named(bridge).map(|b| b.fdb.flush()).sum())
    }

    fn check_bridge(&self, bridge: Option<&str>) -> Result<(), FdbError> {
        match bridge {
            Some(b) if !self.bridges.iter().any(|x| x.name == b) => {
                Err(FdbError::NoBridge(b.to_owned()))
            }
            _ => Ok(()),
        }
    }

    fn bridges_named<'a>(
        &'a self,
        bridge: Option<&'a str>,
    ) -> impl Iterator<Item = &'a super::BridgeState> + 'a {
        self.bridges
            .iter()
            .filter(move |b| bridge.is_none_or(|want| want == b.name))
    }

    /// Logs every port whose state changed since the last look (a VM's
    /// vhost-user device coming and going, a link going down).
    pub(super) fn log_port_states(&mut self) {
        for p in self.ports.values_mut() {
            let now = p.dev.state();
            if now != p.state {
                let v = p.dev.vhost_status().unwrap_or_default();
                info!(port = %p.cfg.name, from = p.state.as_str(), to = now.as_str(), queue_pairs = v.queue_pairs, enabled_queues = v.enabled_queues, "port state");
                p.state = now;
            }
        }
    }
}

/// Closes a device whose port is in no snapshot any more, waiting out
/// workers that still hold one of its queues (a grace period at most);
/// one that stays busy is left open rather than closed under a worker.
pub(super) fn close_device(name: &str, dev: PortDevice) {
    let deadline = Instant::now() + GRACE_TIMEOUT;
    let mut dev = dev;
    loop {
        match dev.close() {
            Ok(()) => return,
            Err((back, e)) => {
                if Instant::now() >= deadline {
                    error!(port = name, "cannot close: {e}; leaving the device open");
                    std::mem::forget(back);
                    return;
                }
                dev = back;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// A port's row: the switch's own counters plus what the PMD saw missing.
pub(super) fn stats_row(name: &str, port_id: u16, t: PortTotals, hw: EthStats) -> PortStatsRow {
    PortStatsRow {
        name: name.to_owned(),
        port_id,
        rx_packets: t.rx_packets,
        rx_bytes: t.rx_bytes,
        tx_packets: t.tx_packets,
        tx_bytes: t.tx_bytes,
        rx_dropped: t.rx_dropped,
        tx_dropped: t.tx_dropped,
        tx_oversize: t.tx_oversize,
        spoofed: dataplane::acl::SpoofReason::ALL
            .iter()
            .filter(|r| t.spoofed[r.index()] > 0)
            .map(|r| (r.name().to_owned(), t.spoofed[r.index()]))
            .collect(),
        dhcp: if t.dhcp.iter().all(|&n| n == 0) {
            Default::default()
        } else {
            dataplane::dhcp::DhcpCounter::ALL
                .iter()
                .map(|c| (c.name().to_owned(), t.dhcp[c.index()]))
                .collect()
        },
        arp_answered: t.arp_answered,
        rx_missed: hw.imissed,
        rx_errors: hw.ierrors,
        tx_errors: hw.oerrors,
    }
}

/// Bytes from hex digits, ignoring spaces and colons.
fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !matches!(b, b' ' | b':' | b'\n' | b'\t'))
        .map(|b| (b as char).to_digit(16).map(|d| d as u8))
        .collect::<Option<_>>()?;
    if !digits.len().is_multiple_of(2) || digits.is_empty() {
        return None;
    }
    Some(digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect())
}

/// How a next hop stands, for `tunnel list`: "static", "reachable" or
/// "probing" with the seconds since it was confirmed, or "unresolved".
fn neighbour_state(n: &Neighbour, table: &NeighbourTable) -> String {
    let now = table.now();
    match (n.resolve(now, table.aging()), n.age(now)) {
        (Resolution::Known(_), None) => "static".into(),
        (Resolution::Known(_), Some(age)) => format!("reachable {age}s"),
        (Resolution::Probe(_), age) => format!("probing {}s", age.unwrap_or(0)),
        (Resolution::Unknown, _) => "unresolved".into(),
    }
}
