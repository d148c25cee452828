//! Security-group rule sets as the snapshot carries them for one port,
//! compiled from Neutron's model: protocols as numbers, ranges as
//! integers, a remote group as a shared set of its members' addresses;
//! and [`RuleIndex`], the form a new connection's packet is decided
//! against, whose lookup does not walk the port's rules.
use std::sync::Arc;

/// An address prefix (IPv4 addresses are held as IPv4-mapped integers of
/// their own family, never mixed with IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    pub v6: bool,
    /// Network address, host bits zero.
    pub base: u128,
    pub len: u8,
}

impl Prefix {
    pub fn contains(&self, v6: bool, addr: u128) -> bool {
        let bits: u32 = if self.v6 { 128 } else { 32 };
        if v6 != self.v6 || self.len as u32 > bits {
            return false;
        }
        if self.len == 0 {
            return true;
        }
        let shift = bits - self.len as u32;
        (addr >> shift) == (self.base >> shift)
    }
}

/// The addresses of a remote group's member ports in one family (their
/// fixed IPs and allowed address pairs): built once per group and shared by
/// every rule, of every port, that names the group, so a member joining or
/// leaving costs one new set, not one per rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AddressSet {
    v6: bool,
    /// Sorted, without duplicates.
    prefixes: Vec<Prefix>,
}

impl AddressSet {
    /// The set of `prefixes` of family `v6` (others are left out).
    pub fn new(v6: bool, prefixes: impl IntoIterator<Item = Prefix>) -> AddressSet {
        let mut prefixes: Vec<Prefix> = prefixes.into_iter().filter(|p| p.v6 == v6).collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        AddressSet { v6, prefixes }
    }

    /// Adds `p` (of this set's family); false if it was there, or is of
    /// the other family. A member joining costs a binary search and a move
    /// of the larger part, not a new set.
    pub fn insert(&mut self, p: Prefix) -> bool {
        if p.v6 != self.v6 {
            return false;
        }
        match self.prefixes.binary_search(&p) {
            Ok(_) => false,
            Err(at) => {
                self.prefixes.insert(at, p);
                true
            }
        }
    }

    /// Takes `p` out; false if it was not there.
    pub fn remove(&mut self, p: &Prefix) -> bool {
        match self.prefixes.binary_search(p) {
            Ok(at) => {
                self.prefixes.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    pub fn is_v6(&self) -> bool {
        self.v6
    }

    pub fn len(&self) -> usize {
        self.prefixes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }

    pub fn prefixes(&self) -> &[Prefix] {
        &self.prefixes
    }

    /// Some member prefix holds `addr`.
    pub fn contains(&self, v6: bool, addr: u128) -> bool {
        v6 == self.v6 && self.prefixes.iter().any(|p| p.contains(v6, addr))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Towards the port (the VM receives).
    Ingress,
    /// From the port (the VM sends).
    Egress,
}

/// Who the peer of an allowed packet may be.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Remote {
    /// Anywhere.
    Any,
    Prefix(Prefix),
    /// A member of a remote group.
    Group(Arc<AddressSet>),
}

impl Remote {
    pub fn contains(&self, v6: bool, addr: u128) -> bool {
        match self {
            Remote::Any => true,
            Remote::Prefix(p) => p.contains(v6, addr),
            Remote::Group(g) => g.contains(v6, addr),
        }
    }
}

/// One allow rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AclRule {
    pub direction: Direction,
    pub v6: bool,
    /// IP protocol number; `None` = any.
    pub protocol: Option<u8>,
    /// TCP/UDP destination port range (ICMP: type in `port_min`, code in
    /// `port_max`, 255 = any); (0, 65535) when unset.
    pub port_min: u16,
    pub port_max: u16,
    /// Where the peer may be.
    pub remote: Remote,
}

/// Everything a port's filter needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortAcl {
    /// Neutron `port_security_enabled`: false = no filtering at all.
    pub port_security: bool,
    /// (MAC, prefix) pairs the port may send from: its fixed IPs with its
    /// MAC, plus allowed address pairs.
    pub allowed_sources: Vec<(u64, Prefix)>,
    pub rules: Vec<AclRule>,
    /// `rules` indexed (see [`PortAcl::index_rules`]).
    pub index: RuleIndex,
}

impl PortAcl {
    /// Builds `index` from `rules`: call once the rules are all in.
    pub fn index_rules(&mut self) {
        self.index = RuleIndex::new(&self.rules);
    }

    pub fn count(&self, d: Direction) -> usize {
        self.rules.iter().filter(|r| r.direction == d).count()
    }
}

/// Why a frame a port sent is not its to send (Neutron's port security,
/// as its OVS firewall driver enforces it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpoofReason {
    /// The source MAC is not the port's (nor an allowed pair's).
    Mac,
    /// An IPv4 source the port's MAC may not use.
    Ipv4Source,
    /// An IPv6 source the port's MAC may not use.
    Ipv6Source,
    /// An ARP sender (hardware or protocol address) not the port's.
    ArpSender,
    /// A neighbour advertisement for an address not the port's.
    NeighbourTarget,
    /// A DHCP or DHCPv6 server's message: VMs do not serve addresses.
    DhcpServer,
    /// An IPv6 router advertisement: VMs are not routers.
    RouterAdvert,
    /// Neither IPv4, IPv6 nor ARP: nothing else leaves a secured port.
    Ethertype,
}

impl SpoofReason {
    pub const ALL: [SpoofReason; 8] = [
        SpoofReason::Mac,
        SpoofReason::Ipv4Source,
        SpoofReason::Ipv6Source,
        SpoofReason::ArpSender,
        SpoofReason::NeighbourTarget,
        SpoofReason::DhcpServer,
        SpoofReason::RouterAdvert,
        SpoofReason::Ethertype,
    ];

    /// Its place in [`SpoofReason::ALL`] (and in per-reason counters).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The name counters and metrics use.
    pub const fn name(self) -> &'static str {
        match self {
            SpoofReason::Mac => "mac",
            SpoofReason::Ipv4Source => "ipv4_source",
            SpoofReason::Ipv6Source => "ipv6_source",
            SpoofReason::ArpSender => "arp_sender",
            SpoofReason::NeighbourTarget => "nd_target",
            SpoofReason::DhcpServer => "dhcp_server",
            SpoofReason::RouterAdvert => "router_advert",
            SpoofReason::Ethertype => "ethertype",
        }
    }
}

/// An address as the rules compare it: IPv4 from the first four bytes of
/// the 16 the flow key and the connection key hold.
pub(crate) fn addr_of(v6: bool, a: &[u8; 16]) -> u128 {
    if v6 {
        u128::from_be_bytes(*a)
    } else {
        u128::from(u32::from_be_bytes([a[0], a[1], a[2], a[3]]))
    }
}

/// The IPv6 link-local address a MAC gives itself (fe80::/64, EUI-64),
/// which Neutron allows every port without listing it.
fn link_local(mac: u64) -> u128 {
    let m = mac.to_be_bytes();
    let eui = [m[2] ^ 0x02, m[3], m[4], 0xff, 0xfe, m[5], m[6], m[7]];
    (0xfe80u128 << 112) | u128::from(u64::from_be_bytes(eui))
}

impl PortAcl {
    /// One of the port's addresses (fixed IPs and allowed pairs) holds
    /// `addr`, whatever MAC it goes with.
    pub fn owns(&self, v6: bool, addr: u128) -> bool {
        self.allowed_sources
            .iter()
            .any(|&(_, p)| p.contains(v6, addr))
    }

    /// `mac` may send from `addr`.
    fn may_use(&self, mac: u64, v6: bool, addr: u128) -> bool {
        (v6 && addr == link_local(mac))
            || self
                .allowed_sources
                .iter()
                .any(|&(m, p)| m == mac && p.contains(v6, addr))
    }

    /// Port security of a frame this port sent: `Ok` if it may send it.
    /// `key` is the frame's flow key at depth L4; `l3` the bytes from its
    /// L3 header on (for the fields the key does not keep: the ARP sender
    /// hardware address, a neighbour advertisement's target). A port with
    /// port security off may send anything.
    pub fn check_source(
        &self,
        key: &crate::flow_key::FlowKey,
        l3: &[u8],
    ) -> Result<(), SpoofReason> {
        use crate::wire::{ArpPacket, EtherType, Ipv6Packet};
        if !self.port_security {
            return Ok(());
        }
        let mac = key.dl_src.to_u64();
        if !self.allowed_sources.iter().any(|&(m, _)| m == mac) {
            return Err(SpoofReason::Mac);
        }
        match EtherType(key.dl_type) {
            EtherType::ARP => {
                let sha = ArpPacket::new_checked(l3)
                    .map(|a| a.sha().to_u64())
                    .map_err(|_| SpoofReason::ArpSender)?;
                if sha != mac || !self.may_use(mac, false, addr_of(false, &key.nw_src)) {
                    return Err(SpoofReason::ArpSender);
                }
                Ok(())
            }
            EtherType::IPV4 => {
                let (sport, dport) = (key.tp_src, key.tp_dst);
                if key.nw_proto == 17 && sport == 67 && dport == 68 {
                    return Err(SpoofReason::DhcpServer);
                }
                // A DHCP client has no address yet.
                let dhcp_client = key.nw_proto == 17 && sport == 68 && dport == 67;
                if !self.may_use(mac, false, addr_of(false, &key.nw_src)) && !dhcp_client {
                    return Err(SpoofReason::Ipv4Source);
                }
                Ok(())
            }
            EtherType::IPV6 => {
                let icmp6 = key.nw_proto == 58;
                if icmp6 && key.tp_src == 134 {
                    return Err(SpoofReason::RouterAdvert);
                }
                if key.nw_proto == 17 && key.tp_src == 547 {
                    return Err(SpoofReason::DhcpServer);
                }
                let src = addr_of(true, &key.nw_src);
                // Duplicate address detection and MLD reports come from ::.
                let unspecified_ok = icmp6 && matches!(key.tp_src, 135 | 143);
                if !(self.may_use(mac, true, src) || (src == 0 && unspecified_ok)) {
                    return Err(SpoofReason::Ipv6Source);
                }
                if icmp6 && key.tp_src == 136 {
                    let target = Ipv6Packet::new_checked(l3)
                        .ok()
                        .and_then(|ip| {
                            let upper = ip.upper_layer().ok()?;
                            let body = ip.upper_layer_payload(&upper);
                            let t: [u8; 16] = body.get(8..24)?.try_into().ok()?;
                            Some(u128::from_be_bytes(t))
                        })
                        .ok_or(SpoofReason::NeighbourTarget)?;
                    if !self.may_use(mac, true, target) {
                        return Err(SpoofReason::NeighbourTarget);
                    }
                }
                Ok(())
            }
            _ => Err(SpoofReason::Ethertype),
        }
    }
}

/// What a rule is checked against: the first packet of a connection, seen
/// from the port (ingress: the remote is the source; egress: the
/// destination).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleQuery {
    pub direction: Direction,
    pub v6: bool,
    pub protocol: u8,
    /// TCP/UDP/SCTP/UDP-Lite destination port; ICMP type.
    pub port: u16,
    /// ICMP code.
    pub icmp_code: u8,
    /// The peer's address.
    pub remote: u128,
}

/// IP protocols whose rules carry a destination port range.
fn has_ports(protocol: u8) -> bool {
    matches!(protocol, 6 | 17 | 132 | 136)
}

pub(crate) fn is_icmp(protocol: u8, v6: bool) -> bool {
    (protocol == 1 && !v6) || (protocol == 58 && v6)
}

impl AclRule {
    /// Whether the rule admits `q`, checked field by field (the reference
    /// the index is tested against, and the check on its candidates).
    pub fn admits(&self, q: &RuleQuery) -> bool {
        if self.direction != q.direction || self.v6 != q.v6 {
            return false;
        }
        let fields = match self.protocol {
            None => true,
            Some(p) if p != q.protocol => false,
            Some(p) if has_ports(p) => (self.port_min..=self.port_max).contains(&q.port),
            Some(p) if is_icmp(p, q.v6) => {
                (self.port_min == 255 || q.port == self.port_min)
                    && (self.port_max == 255 || u16::from(q.icmp_code) == self.port_max)
            }
            Some(_) => true,
        };
        fields && self.remote.contains(q.v6, q.remote)
    }
}

/// A port's rules indexed by direction, family, protocol and port: a
/// lookup finds the rules whose protocol and port range hold the packet by
/// binary search, then checks only those (remote and ICMP code). Built on
/// the control thread with the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleIndex {
    /// Per (direction, family): `[ingress v4, ingress v6, egress v4, egress v6]`.
    parts: [Part; 4],
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Part {
    /// Rules of any protocol, by rule number.
    any: Vec<u32>,
    /// Per protocol, sorted by protocol: its rules over the port space.
    protocols: Vec<(u8, Intervals)>,
}

/// The port space cut where some rule's range starts or ends; each piece
/// lists the rules covering it, by rule number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Intervals {
    /// Sorted starts; piece i covers `starts[i]..starts[i + 1]`.
    starts: Vec<u16>,
    rules: Vec<Vec<u32>>,
}

impl Intervals {
    fn build(ranges: &[(u32, u16, u16)]) -> Intervals {
        let mut cuts: Vec<u32> = vec![0];
        for &(_, lo, hi) in ranges {
            cuts.push(u32::from(lo));
            cuts.push(u32::from(hi) + 1);
        }
        cuts.sort_unstable();
        cuts.dedup();
        cuts.retain(|&c| c <= 65535);
        let rules = cuts
            .iter()
            .map(|&c| {
                ranges
                    .iter()
                    .filter(|&&(_, lo, hi)| (u32::from(lo)..=u32::from(hi)).contains(&c))
                    .map(|&(r, _, _)| r)
                    .collect()
            })
            .collect();
        Intervals {
            starts: cuts.into_iter().map(|c| c as u16).collect(),
            rules,
        }
    }

    fn at(&self, port: u16) -> &[u32] {
        let i = self.starts.partition_point(|&s| s <= port);
        i.checked_sub(1)
            .and_then(|i| self.rules.get(i))
            .map_or(&[], |v| &v[..])
    }
}

impl RuleIndex {
    pub fn new(rules: &[AclRule]) -> RuleIndex {
        let mut index = RuleIndex::default();
        for (pi, part) in index.parts.iter_mut().enumerate() {
            let direction = if pi < 2 {
                Direction::Ingress
            } else {
                Direction::Egress
            };
            let v6 = pi % 2 == 1;
            let mine = rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.direction == direction && r.v6 == v6);
            let mut by_proto: std::collections::BTreeMap<u8, Vec<(u32, u16, u16)>> =
                Default::default();
            for (i, r) in mine {
                let i = i as u32;
                match r.protocol {
                    None => part.any.push(i),
                    Some(p) if has_ports(p) => by_proto
                        .entry(p)
                        .or_default()
                        .push((i, r.port_min, r.port_max)),
                    // ICMP: the type as the port (255: every type).
                    Some(p) if is_icmp(p, v6) && r.port_min != 255 => by_proto
                        .entry(p)
                        .or_default()
                        .push((i, r.port_min, r.port_min)),
                    Some(p) => by_proto.entry(p).or_default().push((i, 0, 65535)),
                }
            }
            part.protocols = by_proto
                .into_iter()
                .map(|(p, ranges)| (p, Intervals::build(&ranges)))
                .collect();
        }
        index
    }

    /// The lowest-numbered rule of `rules` (those the index was built
    /// from) that admits `q`, if any.
    pub fn lookup(&self, rules: &[AclRule], q: &RuleQuery) -> Option<usize> {
        let pi = match q.direction {
            Direction::Ingress => 0,
            Direction::Egress => 2,
        } + usize::from(q.v6);
        let part = &self.parts[pi];
        let by_port = part
            .protocols
            .binary_search_by_key(&q.protocol, |(p, _)| *p)
            .ok()
            .map_or(&[][..], |i| part.protocols[i].1.at(q.port));
        let first = |ids: &[u32]| {
            ids.iter()
                .map(|&i| i as usize)
                .find(|&i| rules.get(i).is_some_and(|r| r.admits(q)))
        };
        match (first(&part.any), first(by_port)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_contains() {
        let p = Prefix {
            v6: false,
            base: 0x0a00_0000,
            len: 8,
        };
        assert!(p.contains(false, 0x0a01_0203));
        assert!(!p.contains(false, 0x0b00_0000));
        assert!(!p.contains(true, 0x0a01_0203), "families never mix");
        let any = Prefix {
            v6: false,
            base: 0,
            len: 0,
        };
        assert!(any.contains(false, 0xffff_ffff));
        let host = Prefix {
            v6: true,
            base: 1,
            len: 128,
        };
        assert!(host.contains(true, 1) && !host.contains(true, 2));
    }

    fn rule(
        direction: Direction,
        v6: bool,
        protocol: Option<u8>,
        ports: (u16, u16),
        remote: Remote,
    ) -> AclRule {
        AclRule {
            direction,
            v6,
            protocol,
            port_min: ports.0,
            port_max: ports.1,
            remote,
        }
    }

    #[test]
    fn the_index_finds_the_rule_neutron_would() {
        use Direction::*;
        let net10 = Remote::Prefix(Prefix {
            v6: false,
            base: 0x0a00_0000,
            len: 8,
        });
        let rules = vec![
            rule(Ingress, false, Some(6), (22, 22), Remote::Any),
            rule(Ingress, false, Some(1), (8, 255), net10.clone()),
            rule(Egress, false, None, (0, 65535), Remote::Any),
            rule(Ingress, false, Some(17), (5000, 5100), net10),
        ];
        let ix = RuleIndex::new(&rules);
        let q = |direction, protocol, port, icmp_code, remote| RuleQuery {
            direction,
            v6: false,
            protocol,
            port,
            icmp_code,
            remote,
        };
        assert_eq!(ix.lookup(&rules, &q(Ingress, 6, 22, 0, 7)), Some(0));
        assert_eq!(ix.lookup(&rules, &q(Ingress, 6, 23, 0, 7)), None);
        assert_eq!(
            ix.lookup(&rules, &q(Ingress, 1, 8, 3, 0x0a01_0101)),
            Some(1),
            "echo, any code"
        );
        assert_eq!(
            ix.lookup(&rules, &q(Ingress, 1, 0, 0, 0x0a01_0101)),
            None,
            "not echo"
        );
        assert_eq!(
            ix.lookup(&rules, &q(Ingress, 1, 8, 0, 0x0b00_0001)),
            None,
            "not from 10/8"
        );
        assert_eq!(ix.lookup(&rules, &q(Egress, 47, 0, 0, 1)), Some(2));
        assert_eq!(
            ix.lookup(&rules, &q(Ingress, 17, 5100, 0, 0x0a00_0001)),
            Some(3)
        );
        assert_eq!(
            ix.lookup(&rules, &q(Ingress, 17, 5101, 0, 0x0a00_0001)),
            None
        );
    }

    proptest::proptest! {
        /// The index answers as checking every rule in order does.
        #[test]
        fn the_index_equals_a_scan(
            specs in proptest::collection::vec((proptest::bool::ANY, proptest::bool::ANY, 0usize..6, 0u16..70, 0u16..70, 0usize..3), 0..24),
            queries in proptest::collection::vec((proptest::bool::ANY, proptest::bool::ANY, 0usize..6, 0u16..80, 0u8..4, 0u128..8), 1..64),
        ) {
            let protos = [None, Some(1u8), Some(6), Some(17), Some(58), Some(47)];
            let group = Arc::new(AddressSet::new(false, [Prefix { v6: false, base: 2, len: 31 }]));
            let rules: Vec<AclRule> = specs
                .iter()
                .map(|&(ing, v6, p, a, b, remote)| {
                    let protocol = protos[p];
                    // ICMP: small types and codes, 255 for any now and then.
                    let (lo, hi) = match protocol {
                        Some(1 | 58) => (if a > 60 { 255 } else { a % 4 }, if b > 60 { 255 } else { b % 4 }),
                        _ => (a.min(b), a.max(b)),
                    };
                    let remote = match remote {
                        0 => Remote::Any,
                        1 => Remote::Prefix(Prefix { v6, base: 4, len: if v6 { 126 } else { 30 } }),
                        _ => Remote::Group(Arc::clone(&group)),
                    };
                    let direction = if ing { Direction::Ingress } else { Direction::Egress };
                    rule(direction, v6, protocol, (lo, hi), remote)
                })
                .collect();
            let ix = RuleIndex::new(&rules);
            for (ing, v6, p, port, code, remote) in queries {
                let q = RuleQuery {
                    direction: if ing { Direction::Ingress } else { Direction::Egress },
                    v6,
                    protocol: protos[p].unwrap_or(132),
                    port: if matches!(protos[p], Some(1 | 58)) { port % 4 } else { port },
                    icmp_code: code,
                    remote,
                };
                let want = rules.iter().position(|r| r.admits(&q));
                proptest::prop_assert_eq!(ix.lookup(&rules, &q), want, "{:?}", q);
            }
        }
    }

    mod spoofing {
        use super::super::*;
        use crate::flow_key::{FlowKey, ParseDepth};

        const MAC: u64 = 0xfa16_3e00_0001;
        const PAIR_MAC: u64 = 0xfa16_3e00_0099;

        fn acl() -> PortAcl {
            let host4 = |a: u32| Prefix {
                v6: false,
                base: u128::from(a),
                len: 32,
            };
            PortAcl {
                port_security: true,
                allowed_sources: vec![
                    (MAC, host4(0x0a00_0005)),
                    (
                        MAC,
                        Prefix {
                            v6: true,
                            base: 0xfd00_u128 << 112 | 5,
                            len: 128,
                        },
                    ),
                    // An allowed address pair: a VIP on another MAC.
                    (PAIR_MAC, host4(0x0a00_0063)),
                ],
                rules: vec![],
                index: RuleIndex::default(),
            }
        }

        fn eth(src: u64, ethertype: u16, l3: &[u8]) -> Vec<u8> {
            let mut f = vec![0xff; 6];
            f.extend_from_slice(&src.to_be_bytes()[2..]);
            f.extend_from_slice(&ethertype.to_be_bytes());
            f.extend_from_slice(l3);
            f
        }

        fn ipv4(src: u32, proto: u8, l4: &[u8]) -> Vec<u8> {
            let total = 20 + l4.len();
            let mut p = vec![
                0x45,
                0,
                (total >> 8) as u8,
                total as u8,
                0,
                0,
                0,
                0,
                64,
                proto,
                0,
                0,
            ];
            p.extend_from_slice(&src.to_be_bytes());
            p.extend_from_slice(&[10, 0, 0, 1]);
            p.extend_from_slice(l4);
            p
        }

        fn ipv6(src: u128, next: u8, l4: &[u8]) -> Vec<u8> {
            let len = l4.len();
            let mut p = vec![0x60, 0, 0, 0, (len >> 8) as u8, len as u8, next, 255];
            p.extend_from_slice(&src.to_be_bytes());
            p.extend_from_slice(&(0xff02u128 << 112 | 1).to_be_bytes());
            p.extend_from_slice(l4);
            p
        }

        fn arp(sha: u64, spa: u32) -> Vec<u8> {
            let mut p = vec![0, 1, 8, 0, 6, 4, 0, 1];
            p.extend_from_slice(&sha.to_be_bytes()[2..]);
            p.extend_from_slice(&spa.to_be_bytes());
            p.extend_from_slice(&[0; 6]);
            p.extend_from_slice(&[10, 0, 0, 1]);
            p
        }

        fn check(a: &PortAcl, frame: &[u8]) -> Result<(), SpoofReason> {
            let key = FlowKey::extract(frame, None, ParseDepth::L4).expect("parses");
            a.check_source(&key, &frame[usize::from(key.l3_offset)..])
        }

        fn udp(sport: u16, dport: u16) -> Vec<u8> {
            let mut u = sport.to_be_bytes().to_vec();
            u.extend_from_slice(&dport.to_be_bytes());
            u.extend_from_slice(&[0, 8, 0, 0]);
            u
        }

        #[test]
        fn every_spoof_kind_is_refused_and_what_is_allowed_passes() {
            let a = acl();
            let lla = link_local(MAC);
            let na = |target: u128| {
                let mut m = vec![136, 0, 0, 0, 0x60, 0, 0, 0];
                m.extend_from_slice(&target.to_be_bytes());
                m
            };
            let cases: Vec<(Vec<u8>, Result<(), SpoofReason>)> = vec![
                (
                    eth(MAC, 0x0800, &ipv4(0x0a00_0005, 17, &udp(5000, 53))),
                    Ok(()),
                ),
                (
                    eth(
                        0xfa16_3e00_0002,
                        0x0800,
                        &ipv4(0x0a00_0005, 17, &udp(5000, 53)),
                    ),
                    Err(SpoofReason::Mac),
                ),
                (
                    eth(MAC, 0x0800, &ipv4(0x0a00_0006, 17, &udp(5000, 53))),
                    Err(SpoofReason::Ipv4Source),
                ),
                (
                    eth(MAC, 0x0800, &ipv4(0x0a00_0063, 17, &udp(5000, 53))),
                    Err(SpoofReason::Ipv4Source),
                ),
                (
                    eth(PAIR_MAC, 0x0800, &ipv4(0x0a00_0063, 17, &udp(5000, 53))),
                    Ok(()),
                ),
                (eth(MAC, 0x0800, &ipv4(0, 17, &udp(68, 67))), Ok(())),
                (
                    eth(MAC, 0x0800, &ipv4(0x0a00_0005, 17, &udp(67, 68))),
                    Err(SpoofReason::DhcpServer),
                ),
                (eth(MAC, 0x0806, &arp(MAC, 0x0a00_0005)), Ok(())),
                (
                    eth(MAC, 0x0806, &arp(MAC, 0x0a00_0007)),
                    Err(SpoofReason::ArpSender),
                ),
                (
                    eth(MAC, 0x0806, &arp(PAIR_MAC, 0x0a00_0005)),
                    Err(SpoofReason::ArpSender),
                ),
                (
                    eth(
                        MAC,
                        0x86dd,
                        &ipv6(0xfd00_u128 << 112 | 5, 17, &udp(5000, 53)),
                    ),
                    Ok(()),
                ),
                (eth(MAC, 0x86dd, &ipv6(lla, 17, &udp(5000, 53))), Ok(())),
                (
                    eth(
                        MAC,
                        0x86dd,
                        &ipv6(0xfd00_u128 << 112 | 6, 17, &udp(5000, 53)),
                    ),
                    Err(SpoofReason::Ipv6Source),
                ),
                (
                    eth(MAC, 0x86dd, &ipv6(0, 58, &[135, 0, 0, 0, 0, 0, 0, 0])),
                    Ok(()),
                ),
                (
                    eth(MAC, 0x86dd, &ipv6(lla, 58, &na(0xfd00_u128 << 112 | 5))),
                    Ok(()),
                ),
                (
                    eth(MAC, 0x86dd, &ipv6(lla, 58, &na(0xfd00_u128 << 112 | 6))),
                    Err(SpoofReason::NeighbourTarget),
                ),
                (
                    eth(MAC, 0x86dd, &ipv6(lla, 58, &[134, 0, 0, 0, 0, 0, 0, 0])),
                    Err(SpoofReason::RouterAdvert),
                ),
                (
                    eth(MAC, 0x86dd, &ipv6(lla, 17, &udp(547, 546))),
                    Err(SpoofReason::DhcpServer),
                ),
                (eth(MAC, 0x88cc, &[0; 20]), Err(SpoofReason::Ethertype)),
            ];
            for (i, (frame, want)) in cases.iter().enumerate() {
                assert_eq!(check(&a, frame), *want, "case {i}");
            }
            let open = PortAcl {
                port_security: false,
                ..acl()
            };
            for (frame, _) in &cases {
                assert_eq!(
                    check(&open, frame),
                    Ok(()),
                    "port security off lets everything out"
                );
            }
        }
    }

    #[test]
    fn address_sets_hold_one_family_sorted_once() {
        let h = |base: u128, v6: bool| Prefix {
            v6,
            base,
            len: if v6 { 128 } else { 32 },
        };
        let s = AddressSet::new(false, [h(3, false), h(1, false), h(3, false), h(9, true)]);
        assert_eq!(s.prefixes(), &[h(1, false), h(3, false)]);
        assert!(s.contains(false, 3) && !s.contains(false, 2) && !s.contains(true, 9));
        let r = Remote::Group(Arc::new(s));
        assert!(r.contains(false, 1) && !r.contains(false, 4));
        assert!(Remote::Any.contains(true, 7));
        assert!(AddressSet::new(true, [h(1, false)]).is_empty());
    }

    proptest::proptest! {
        /// Members joining and leaving one at a time give the set built
        /// from the members left.
        #[test]
        fn address_set_edits_equal_a_set_built_anew(
            ops in proptest::collection::vec((proptest::bool::ANY, proptest::bool::ANY, 0u128..12), 0..64),
        ) {
            let h = |base: u128, v6: bool| Prefix { v6, base, len: if v6 { 128 } else { 32 } };
            let mut set = AddressSet::new(false, []);
            let mut members = std::collections::BTreeSet::new();
            for (join, v6, base) in ops {
                let p = h(base, v6);
                if join {
                    proptest::prop_assert_eq!(set.insert(p), !v6 && members.insert(p));
                } else {
                    proptest::prop_assert_eq!(set.remove(&p), members.remove(&p));
                }
                proptest::prop_assert_eq!(&set, &AddressSet::new(false, members.iter().copied()));
            }
        }
    }
}
