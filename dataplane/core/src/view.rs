//! The switching view of a snapshot: every port's VLAN rules and filter,
//! every bridge's MAC table and members. Immutable once published; what the
//! pipeline reads per burst. The device side of a snapshot (queues, which
//! worker polls what) lives with the PMD worker, not here.
use crate::acl::PortAcl;
use crate::dhcp::DhcpServer;
use crate::flow_table::program::FlowTables;
use crate::l2pop::KnownPorts;
use crate::mac_table::MacTable;
use crate::neighbour::NeighbourTable;
use crate::port::{PortId, PortMask, MAX_PORTS};
use crate::vlan::PortVlan;
use crate::wire::vxlan::{HeaderTemplate, OuterHeader, Vni};
use crate::wire::EthernetAddress;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A port as the pipeline sees it.
#[derive(Debug, Clone)]
pub struct PortView {
    pub id: PortId,
    pub name: String,
    /// Index of its bridge in [`SwitchView::bridges`].
    pub bridge: usize,
    pub vlan: PortVlan,
    /// Security-group rule set of the Neutron port attached here, if any.
    pub acl: Option<Arc<PortAcl>>,
    /// The switch's DHCP server for the Neutron port attached here, when
    /// its subnet has DHCP enabled (`pipeline::serve` answers it).
    pub dhcp: Option<Arc<DhcpServer>>,
    /// Longest frame this port sends, in bytes without the FCS (see
    /// [`max_frame_len`]); longer ones are dropped and counted, never cut.
    pub max_frame: u32,
}

/// The default MTU of a port, as Open vSwitch's `mtu_request` defaults.
pub const DEFAULT_MTU: u16 = 1500;

/// The longest frame a port of `mtu` sends: the MTU plus an Ethernet header
/// and one VLAN tag (DPDK's and Open vSwitch's rule: a 1500-byte MTU sends
/// frames up to 1518 bytes without FCS).
pub const fn max_frame_len(mtu: u16) -> u32 {
    mtu as u32 + 18
}

/// A bridge: its own MAC table and flood domain.
#[derive(Debug)]
pub struct BridgeView {
    pub name: String,
    pub fdb: Arc<MacTable>,
    /// Its ports (filled by [`SwitchView::add_port`]).
    pub ports: PortMask,
    /// Forward frames to link-local control addresses
    /// ([`EthernetAddress::is_reserved`](crate::wire::EthernetAddress::is_reserved))
    /// like any multicast, instead of dropping them (OVS's `forward-bpdu`).
    pub forward_bpdu: bool,
    /// Its flow tables, when it has flows other than the default
    /// `priority=0 actions=NORMAL` (which is what `None` means: the flow
    /// stage is skipped).
    pub flows: Option<Arc<FlowTables>>,
    /// Remote MACs and known addresses of its tunnelled Neutron networks
    /// (l2population and the ARP responder), when it has any.
    pub known: Option<Arc<KnownPorts>>,
}

/// Which VNI a tunnel port's frames travel with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelKey {
    /// One VNI for every frame (Open vSwitch's `options:key=N`): the port
    /// is in its VLANs as any port is.
    Fixed(Vni),
    /// Each local VLAN its own VNI, as the OVS agent's `br-tun` maps them
    /// (a `key=flow` port, with flows that set the tunnel id from the local
    /// VLAN and back): one port per remote endpoint carries every network
    /// the two hosts share. A frame leaves with its 802.1Q tag's VNI, the
    /// tag removed; a received frame gets its VNI's VLAN tag. The port is
    /// a trunk of exactly these VLANs.
    ByVlan(VlanVnis),
}

/// Local VLANs and their VNIs: each VLAN and each VNI once, sorted by
/// VLAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanVnis(Arc<[(u16, Vni)]>);

impl VlanVnis {
    /// `None` if there are none, or a VLAN or a VNI comes twice.
    pub fn new(pairs: impl IntoIterator<Item = (u16, Vni)>) -> Option<VlanVnis> {
        let mut pairs: Vec<(u16, Vni)> = pairs.into_iter().collect();
        pairs.sort_unstable();
        let mut vnis: Vec<Vni> = pairs.iter().map(|&(_, v)| v).collect();
        vnis.sort_unstable();
        vnis.dedup();
        let vlans_once = pairs.windows(2).all(|w| w[0].0 < w[1].0);
        (!pairs.is_empty() && vlans_once && vnis.len() == pairs.len())
            .then(|| VlanVnis(pairs.into()))
    }

    pub fn pairs(&self) -> &[(u16, Vni)] {
        &self.0
    }
}

impl TunnelKey {
    /// The VNI of frames in local VLAN `vlan` (`None`: untagged), if
    /// they travel at all.
    #[inline(always)]
    pub fn vni_of(&self, vlan: Option<u16>) -> Option<Vni> {
        match (self, vlan) {
            (TunnelKey::Fixed(v), _) => Some(*v),
            (TunnelKey::ByVlan(m), Some(vid)) => {
                m.0.binary_search_by_key(&vid, |&(v, _)| v)
                    .ok()
                    .map(|i| m.0[i].1)
            }
            (TunnelKey::ByVlan(_), None) => None,
        }
    }

    /// The VNI the port's header template is made with: the fixed one, or
    /// the first VLAN's.
    pub fn first(&self) -> Vni {
        match self {
            TunnelKey::Fixed(v) => *v,
            // Never empty (`VlanVnis::new`).
            TunnelKey::ByVlan(m) => m.0.first().map_or(Vni::default(), |&(_, v)| v),
        }
    }

    /// The VNIs received, each with the VLAN tag its frames get (`None`:
    /// none, a `Fixed` key).
    pub fn received(&self) -> Vec<(Vni, Option<u16>)> {
        match self {
            TunnelKey::Fixed(v) => vec![(*v, None)],
            TunnelKey::ByVlan(m) => m.0.iter().map(|&(vid, v)| (v, Some(vid))).collect(),
        }
    }
}

/// A VXLAN tunnel port (Open vSwitch's `type=vxlan` interface): a port of
/// its bridge like any other, whose frames leave encapsulated towards one
/// remote endpoint through an uplink port, and whose received frames are
/// the ones that remote endpoint sends this switch's endpoint with its
/// VNI (or VNIs: [`TunnelKey`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelPort {
    /// The port the encapsulated frames leave by.
    pub uplink: PortId,
    /// The outer headers: this endpoint's MAC and IP, the remote
    /// endpoint's IP (private: `header` is made from them). Their
    /// destination MAC is the next hop's, resolved per batch.
    outer: OuterHeader,
    key: TunnelKey,
    /// `outer` and the VNI (the first, for a `ByVlan` key) as bytes,
    /// written in front of every frame.
    header: HeaderTemplate,
    /// Its next hop in the view's neighbour table.
    pub next_hop: usize,
}

impl TunnelPort {
    pub fn new(uplink: PortId, outer: OuterHeader, key: TunnelKey, next_hop: usize) -> TunnelPort {
        TunnelPort {
            uplink,
            outer,
            header: outer.template(key.first()),
            key,
            next_hop,
        }
    }

    pub fn outer(&self) -> &OuterHeader {
        &self.outer
    }

    pub fn key(&self) -> &TunnelKey {
        &self.key
    }

    /// The outer header to write in front of each frame.
    #[inline(always)]
    pub fn header(&self) -> &HeaderTemplate {
        &self.header
    }
}

/// Where an endpoint's tunnel packets from one remote endpoint with one
/// VNI go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelIn {
    pub remote: IpAddr,
    pub vni: Vni,
    /// The tunnel port that receives them.
    pub port: PortId,
    /// The VLAN tag their inner frames get (a `ByVlan` port), if any.
    pub vlan: Option<u16>,
}

/// A tunnel endpoint of this switch: an IPv4 or IPv6 address on an uplink
/// port.
/// VXLAN packets to it (and to its MAC) are the tunnels' (see
/// `pipeline::decapsulate`); everything else on the uplink is switched as
/// usual.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub uplink: PortId,
    pub mac: EthernetAddress,
    pub ip: IpAddr,
    /// Where the packets of each remote endpoint and VNI go.
    pub tunnels: Vec<TunnelIn>,
}

impl Endpoint {
    /// Where packets from `remote` with `vni` go.
    #[inline]
    pub fn tunnel(&self, remote: IpAddr, vni: Vni) -> Option<&TunnelIn> {
        self.tunnels
            .iter()
            .find(|t| t.vni == vni && t.remote == remote)
    }
}

/// Why a view could not take a port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    #[error("port {0}: no bridge number {1}")]
    NoBridge(String, usize),
    #[error("port {name}: number {id} is already {other}")]
    Taken {
        name: String,
        id: PortId,
        other: String,
    },
    #[error(
        "tunnel port {0}: it or its uplink is not in the view, the uplink is a tunnel, or its \
         next hop is not on that uplink"
    )]
    BadTunnel(String),
}

/// Every port and bridge at one instant.
#[derive(Debug)]
pub struct SwitchView {
    ports: Box<[Option<PortView>; MAX_PORTS]>,
    /// Every port's `max_frame`, side by side (0: no port): the one field
    /// the execute stage reads per output frame, kept in four cache lines.
    max_frame: [u32; MAX_PORTS],
    /// Ports with port security on: a burst touching none skips the
    /// security stage at once.
    secured: PortMask,
    bridges: Vec<BridgeView>,
    /// Tunnel ports, by number.
    tunnels: Box<[Option<TunnelPort>; MAX_PORTS]>,
    /// The tunnel ports, as a set: frames from one never go to another
    /// (split horizon: the tunnels are a full mesh).
    tunnel_ports: PortMask,
    /// This switch's tunnel endpoints, and the uplinks that hold them (a
    /// burst from any other port skips decapsulation with one test).
    endpoints: Vec<Endpoint>,
    uplinks: PortMask,
    /// The tunnels' next hops (shared with the next snapshot when they
    /// stay the same: what was learned is kept).
    neighbours: Arc<NeighbourTable>,
    /// Unique to this view as it now is: a fresh one on every change, so
    /// that what was decided under one view is never taken for another's.
    id: u64,
}

/// A view id never handed out before.
fn fresh_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Default for SwitchView {
    fn default() -> Self {
        SwitchView {
            ports: Box::new(std::array::from_fn(|_| None)),
            max_frame: [0; MAX_PORTS],
            secured: PortMask::EMPTY,
            bridges: Vec::new(),
            tunnels: Box::new(std::array::from_fn(|_| None)),
            tunnel_ports: PortMask::EMPTY,
            endpoints: Vec::new(),
            uplinks: PortMask::EMPTY,
            neighbours: Arc::default(),
            id: fresh_id(),
        }
    }
}

impl SwitchView {
    /// Adds a bridge; returns its index.
    pub fn add_bridge(&mut self, name: impl Into<String>, fdb: Arc<MacTable>) -> usize {
        self.id = fresh_id();
        self.bridges.push(BridgeView {
            name: name.into(),
            fdb,
            ports: PortMask::EMPTY,
            forward_bpdu: false,
            flows: None,
            known: None,
        });
        self.bridges.len() - 1
    }

    /// Gives bridge `index` what l2population knows of its tunnelled
    /// networks (`None`: nothing); false if there is no such bridge.
    pub fn set_known(&mut self, index: usize, known: Option<Arc<KnownPorts>>) -> bool {
        self.id = fresh_id();
        self.bridges
            .get_mut(index)
            .map(|b| b.known = known)
            .is_some()
    }

    /// Sets bridge `index`'s `forward_bpdu` (false by default); false if
    /// there is no such bridge.
    pub fn set_forward_bpdu(&mut self, index: usize, on: bool) -> bool {
        self.id = fresh_id();
        self.bridges
            .get_mut(index)
            .map(|b| b.forward_bpdu = on)
            .is_some()
    }

    /// Gives bridge `index` its flow tables (`None`: only NORMAL); false if
    /// there is no such bridge.
    pub fn set_flows(&mut self, index: usize, flows: Option<Arc<FlowTables>>) -> bool {
        self.id = fresh_id();
        self.bridges
            .get_mut(index)
            .map(|b| b.flows = flows)
            .is_some()
    }

    /// The bridge of port `id`.
    #[inline(always)]
    pub fn bridge_of(&self, id: PortId) -> Option<&BridgeView> {
        self.bridges.get(self.port(id)?.bridge)
    }

    /// The flow tables of `in_port`'s bridge, if it has some.
    #[inline(always)]
    pub fn flows_of(&self, in_port: PortId) -> Option<&FlowTables> {
        self.bridge_of(in_port)?.flows.as_deref()
    }

    /// Adds a port to its bridge.
    pub fn add_port(&mut self, port: PortView) -> Result<(), ViewError> {
        self.id = fresh_id();
        let Some(b) = self.bridges.get_mut(port.bridge) else {
            return Err(ViewError::NoBridge(port.name, port.bridge));
        };
        if let Some(other) = &self.ports[port.id.index()] {
            return Err(ViewError::Taken {
                name: port.name,
                id: port.id,
                other: other.name.clone(),
            });
        }
        b.ports.insert(port.id);
        let slot = port.id.index();
        self.max_frame[slot] = port.max_frame;
        if port.acl.as_ref().is_some_and(|a| a.port_security) {
            self.secured.insert(port.id);
        }
        self.ports[slot] = Some(port);
        Ok(())
    }

    /// Sets the tunnels' next hops (before any tunnel is added).
    pub fn set_neighbours(&mut self, table: Arc<NeighbourTable>) {
        self.id = fresh_id();
        self.neighbours = table;
    }

    /// The tunnels' next hops.
    #[inline(always)]
    pub fn neighbours(&self) -> &Arc<NeighbourTable> {
        &self.neighbours
    }

    /// Makes port `id` (already added) a tunnel port, received through the
    /// endpoint on `tunnel.uplink` (an added port that is no tunnel) with
    /// address `tunnel.outer.src_ip` and MAC `tunnel.outer.src_mac`. Two
    /// tunnels of one endpoint with the same remote and VNI: the first
    /// receives.
    pub fn add_tunnel(&mut self, id: PortId, tunnel: TunnelPort) -> Result<(), ViewError> {
        self.id = fresh_id();
        let name = |v: &SwitchView| {
            v.port(id)
                .map_or_else(|| id.to_string(), |p| p.name.clone())
        };
        if self.port(id).is_none()
            || self.port(tunnel.uplink).is_none()
            || self.tunnel_ports.contains(tunnel.uplink)
            || self.uplinks.contains(id)
            || tunnel.uplink == id
            || !matches!(
                self.neighbours.get(tunnel.next_hop),
                Some(n) if n.hop.uplink == tunnel.uplink && n.hop.src_ip == tunnel.outer.src_ip()
            )
        {
            return Err(ViewError::BadTunnel(name(self)));
        }
        let (ip, mac) = (tunnel.outer.src_ip(), tunnel.outer.src_mac());
        let at = match self
            .endpoints
            .iter()
            .position(|e| e.uplink == tunnel.uplink && e.ip == ip && e.mac == mac)
        {
            Some(at) => at,
            None => {
                self.endpoints.push(Endpoint {
                    uplink: tunnel.uplink,
                    mac,
                    ip,
                    tunnels: Vec::new(),
                });
                self.endpoints.len() - 1
            }
        };
        let remote = tunnel.outer.dst_ip();
        self.endpoints[at]
            .tunnels
            .extend(
                tunnel
                    .key
                    .received()
                    .into_iter()
                    .map(|(vni, vlan)| TunnelIn {
                        remote,
                        vni,
                        port: id,
                        vlan,
                    }),
            );
        self.uplinks.insert(tunnel.uplink);
        self.tunnel_ports.insert(id);
        self.tunnels[id.index()] = Some(tunnel);
        Ok(())
    }

    /// Port `id`'s tunnel, if it is a tunnel port.
    #[inline(always)]
    pub fn tunnel(&self, id: PortId) -> Option<&TunnelPort> {
        self.tunnels[id.index()].as_ref()
    }

    /// The tunnel ports.
    #[inline(always)]
    pub fn tunnel_ports(&self) -> PortMask {
        self.tunnel_ports
    }

    /// Whether `id` holds a tunnel endpoint (its bursts are decapsulated
    /// first).
    #[inline(always)]
    pub fn is_uplink(&self, id: PortId) -> bool {
        self.uplinks.contains(id)
    }

    /// The tunnel endpoints.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// Where a frame from `in_port` may go among `members`: a frame a
    /// tunnel brought never leaves by another tunnel.
    #[inline(always)]
    pub fn reachable_from(&self, in_port: PortId, members: PortMask) -> PortMask {
        if self.tunnel_ports.contains(in_port) {
            members.minus(self.tunnel_ports)
        } else {
            members
        }
    }

    #[inline(always)]
    pub fn port(&self, id: PortId) -> Option<&PortView> {
        self.ports[id.index()].as_ref()
    }

    /// Some port has port security on.
    #[inline(always)]
    pub fn any_secured(&self) -> bool {
        !self.secured.is_empty()
    }

    /// The longest frame `id` sends (0 when there is no such port).
    #[inline(always)]
    pub fn max_frame(&self, id: PortId) -> u32 {
        self.max_frame[id.index()]
    }

    #[inline(always)]
    pub fn bridge(&self, index: usize) -> Option<&BridgeView> {
        self.bridges.get(index)
    }

    /// This view's id: two views with one id are the same view, unchanged.
    #[inline(always)]
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn bridges(&self) -> &[BridgeView] {
        &self.bridges
    }

    /// Every port, by number.
    pub fn ports(&self) -> impl Iterator<Item = &PortView> {
        self.ports.iter().flatten()
    }

    pub fn port_by_name(&self, name: &str) -> Option<&PortView> {
        self.ports().find(|p| p.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(n: u16, name: &str, bridge: usize) -> PortView {
        PortView {
            id: PortId::new(n).unwrap(),
            name: name.into(),
            bridge,
            vlan: PortVlan::new(None, Some(10), &[]).unwrap(),
            acl: None,
            dhcp: None,
            max_frame: max_frame_len(DEFAULT_MTU),
        }
    }

    #[test]
    fn ports_join_their_bridge_once() {
        let mut v = SwitchView::default();
        let b0 = v.add_bridge("br0", Arc::new(MacTable::new(64, 300)));
        let b1 = v.add_bridge("br1", Arc::new(MacTable::new(64, 300)));
        v.add_port(port(0, "a", b0)).unwrap();
        v.add_port(port(5, "b", b1)).unwrap();
        v.add_port(port(63, "c", b0)).unwrap();
        assert_eq!(
            v.add_port(port(5, "d", b0)),
            Err(ViewError::Taken {
                name: "d".into(),
                id: PortId::new(5).unwrap(),
                other: "b".into()
            })
        );
        assert!(matches!(
            v.add_port(port(6, "e", 7)),
            Err(ViewError::NoBridge(_, 7))
        ));
        let members: Vec<u16> = v.bridges()[b0].ports.iter().map(PortId::get).collect();
        assert_eq!(members, [0, 63]);
        assert_eq!(v.port(PortId::new(5).unwrap()).map(|p| p.bridge), Some(b1));
        assert!(v.port(PortId::new(6).unwrap()).is_none());
        assert_eq!(v.ports().count(), 3);
        assert_eq!(v.port_by_name("c").map(|p| p.id.get()), Some(63));
    }
}
