//! OpenFlow-style flows, as `ovs-ofctl` writes them (issue 15, its first
//! part): a flow has a table, a priority, a cookie, timeouts, a match over
//! a packet's fields (masks where OpenFlow has them) and actions.
//!
//! What is here: the flow as data ([`Flow`], [`Match`], [`Action`]), its
//! text form both ways ([`ofctl`]), and the meaning of a match on a
//! packet's [`FlowKey`] with the reference lookup ([`lookup_linear`]: the
//! highest-priority flow of a table that matches) that the classifier and
//! its caches must agree with, and the classifier ([`classifier`]: tuple
//! space search, property-tested against it). Not yet: the caches, tables
//! in the pipeline, management commands.

pub mod classifier;
pub mod ofctl;
pub mod program;

use crate::flow_key::FlowKey;
use crate::wire::{EtherType, EthernetAddress};

/// OpenFlow's default priority.
pub const DEFAULT_PRIORITY: u16 = 32_768;
/// Tables 0..=253, as OVS has them.
pub const MAX_TABLE: u8 = 253;

/// A switch port in a flow: by OpenFlow number or by name (resolved by the
/// control plane before the flow reaches a table).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

/// `dl_vlan`: untagged (`0xffff` in OpenFlow), or a VLAN id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VlanMatch {
    None,
    Vid(u16),
}

/// A value and the mask of the bits that must equal it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Masked<T> {
    pub value: T,
    pub mask: T,
}

impl<T: Copy + PartialEq + std::ops::BitAnd<Output = T>> Masked<T> {
    /// Whether `v`'s bits under the mask are the value's.
    #[inline(always)]
    pub fn admits(self, v: T) -> bool {
        v & self.mask == self.value & self.mask
    }
}

/// A MAC address as the low 48 bits of a number (how `load`,
/// `set_field` and `move` see it), and back.
pub(crate) fn mac_bits(a: EthernetAddress) -> u64 {
    let mut b = [0u8; 8];
    b[2..].copy_from_slice(&a.0);
    u64::from_be_bytes(b)
}

pub(crate) fn mac_of_bits(v: u64) -> EthernetAddress {
    let b = v.to_be_bytes();
    EthernetAddress([b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// What a flow matches; `None`: any value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Match {
    pub in_port: Option<PortRef>,
    pub dl_src: Option<Masked<EthernetAddress>>,
    pub dl_dst: Option<Masked<EthernetAddress>>,
    pub dl_vlan: Option<VlanMatch>,
    pub dl_vlan_pcp: Option<u8>,
    /// The TCI as OVS reads it: bit 12 (the CFI's place) says a tag is
    /// present, then the VID and the PCP; 0 for an untagged packet.
    /// Not together with `dl_vlan` or `dl_vlan_pcp`.
    pub vlan_tci: Option<Masked<u16>>,
    pub dl_type: Option<u16>,
    /// IPv4 source (ARP: sender protocol address).
    pub nw_src: Option<Masked<[u8; 4]>>,
    /// IPv4 destination (ARP: target protocol address).
    pub nw_dst: Option<Masked<[u8; 4]>>,
    /// IP protocol (ARP: opcode).
    pub nw_proto: Option<u8>,
    pub tp_src: Option<Masked<u16>>,
    pub tp_dst: Option<Masked<u16>>,
    /// The IP TOS byte / IPv6 traffic class: its DSCP bits (`nw_tos`,
    /// `ip_dscp`) and its ECN bits (`nw_ecn`), each matched only where a
    /// mask bit says.
    pub nw_tos: Option<Masked<u8>>,
    /// IPv4 TTL or IPv6 hop limit.
    pub nw_ttl: Option<u8>,
    /// TCP flags, FIN (0x001) to CWR (0x080).
    pub tcp_flags: Option<Masked<u16>>,
    pub arp_sha: Option<Masked<EthernetAddress>>,
    pub arp_tha: Option<Masked<EthernetAddress>>,
    pub ipv6_src: Option<Masked<[u8; 16]>>,
    pub ipv6_dst: Option<Masked<[u8; 16]>>,
    /// The IPv6 flow label (20 bits).
    pub ipv6_label: Option<Masked<u32>>,
    /// An ICMPv6 neighbour solicitation's or advertisement's target.
    pub nd_target: Option<Masked<[u8; 16]>>,
    /// Registers and metadata: the pipeline's scratch fields, 0 when a
    /// packet enters table 0, set by `load`, `set_field` and `move`.
    pub regs: [Option<Masked<u32>>; REGISTERS],
    pub metadata: Option<Masked<u64>>,
    /// Connection tracking, as a `ct(table=...)` action leaves it: the
    /// state bits (`+trk+new`, ...), the zone and the connection's mark.
    pub ct_state: Option<Masked<u8>>,
    pub ct_zone: Option<u16>,
    pub ct_mark: Option<Masked<u32>>,
}

/// Registers `reg0` to `reg7`, as OVS has them.
pub const REGISTERS: usize = 8;

/// A packet's registers, metadata and connection-tracking fields on its
/// way through the tables (all 0, untracked, in table 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Registers {
    pub reg: [u32; REGISTERS],
    pub metadata: u64,
    pub ct_state: u8,
    pub ct_zone: u16,
    pub ct_mark: u32,
}

/// The zone of a `ct` action: a number, or bits of a field
/// (`zone=NXM_NX_REG6[0..15]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtZone {
    Value(u16),
    Field(SubField),
}

/// OVS's `ct(...)`: the packet through connection tracking in `zone`;
/// with `commit`, its connection tracked from now on (and its mark set
/// as `exec(...)` says); with `table`, the packet continues in that table
/// with the `ct_*` fields set, then the actions after this one go on
/// with them as they were.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ct {
    pub commit: bool,
    pub table: Option<u8>,
    pub zone: CtZone,
    /// `exec(set_field:V/M->ct_mark)` (or `load` into it).
    pub mark: Option<Masked<u32>>,
}

/// What a flow does with a packet it matches, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    Output(PortRef),
    /// Back out of the port it came in on.
    InPort,
    /// The switch's L2 behaviour (MAC learning, VLANs).
    Normal,
    /// Every port of the bridge but the input one and those with flooding off.
    Flood,
    /// Every port of the bridge but the input one.
    All,
    /// Sets the VLAN id, pushing a tag if the frame has none.
    ModVlanVid(u16),
    ModVlanPcp(u8),
    StripVlan,
    ModDlSrc(EthernetAddress),
    ModDlDst(EthernetAddress),
    /// IPv4 source or destination address (checksums updated; nothing
    /// for other packets).
    ModNwSrc([u8; 4]),
    ModNwDst([u8; 4]),
    /// The IPv4 TOS byte's DSCP bits (a multiple of 4; ECN kept).
    ModNwTos(u8),
    /// TCP or UDP source or destination port (checksum updated).
    ModTpSrc(u16),
    ModTpDst(u16),
    /// Decrements the IPv4 TTL or IPv6 hop limit; a packet whose TTL
    /// would reach 0 is dropped.
    DecTtl,
    /// Pushes a new outer VLAN tag with this TPID (0x8100 or 0x88a8) and
    /// TCI 0, as Open vSwitch does (OpenFlow 1.1+ would copy the covered
    /// tag's VID and PCP; OVS does not: `ovs_flow_diff.py` checks it).
    PushVlan(u16),
    /// Writes `value` into bits `dst.ofs ..` of `dst.field`
    /// (`load:VALUE->FIELD[RANGE]`).
    Load {
        value: u64,
        dst: SubField,
    },
    /// Writes `value` into the bits of `field` that `mask` has
    /// (`set_field:VALUE[/MASK]->FIELD`).
    SetField {
        field: Field,
        value: u64,
        mask: u64,
    },
    /// Copies bits of one field into another of the same width
    /// (`move:SRC[RANGE]->DST[RANGE]`).
    Move {
        src: SubField,
        dst: SubField,
    },
    /// Connection tracking (`ct(...)`).
    Ct(Ct),
    /// The `ct_*` fields back to untracked.
    CtClear,
    /// Looks the packet up in table T and runs that flow's actions here.
    Resubmit(u8),
    /// Continues in table T (a later one) with what it has.
    GotoTable(u8),
}

/// A field `load`, `set_field` and `move` read or write: registers,
/// metadata, and the packet's L2 to L4 header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Reg(u8),
    Metadata,
    EthSrc,
    EthDst,
    /// OVS's TCI: PCP, the present bit (0x1000), VID; 0: no tag.
    VlanTci,
    /// The present bit (0x1000) and the VID.
    VlanVid,
    VlanPcp,
    EthType,
    InPort,
    IpSrc,
    IpDst,
    /// The whole TOS byte; only its DSCP bits can be written.
    IpTos,
    IpDscp,
    IpTtl,
    IpProto,
    TpSrc,
    TpDst,
    CtState,
    CtZone,
    /// Written only by `ct(commit,exec(...))`.
    CtMark,
}

impl Field {
    /// The field's width in bits.
    pub fn bits(self) -> u8 {
        match self {
            Field::Reg(_) | Field::IpSrc | Field::IpDst | Field::CtMark => 32,
            Field::CtZone => 16,
            Field::CtState => 8,
            Field::Metadata => 64,
            Field::EthSrc | Field::EthDst => 48,
            Field::VlanTci | Field::EthType | Field::InPort | Field::TpSrc | Field::TpDst => 16,
            Field::VlanVid => 13,
            Field::VlanPcp => 3,
            Field::IpTos | Field::IpTtl | Field::IpProto => 8,
            Field::IpDscp => 6,
        }
    }

    /// Whether an action may write it (the rest are read-only, as in OVS).
    pub fn writable(self) -> bool {
        !matches!(
            self,
            Field::EthType
                | Field::InPort
                | Field::IpProto
                | Field::CtState
                | Field::CtZone
                | Field::CtMark
        )
    }

    /// The field's value in a packet with `key` from `in_port`, with
    /// registers `regs` (0 where the packet has no such field).
    pub fn read(self, in_port: u16, key: &FlowKey, regs: &Registers) -> u64 {
        let ip4 = key.ip_version == 4;
        let tci = if key.has_vlan {
            u64::from(key.vlan_tci | 0x1000)
        } else {
            0
        };
        let ports = key.ip_version != 0 && matches!(key.nw_proto, 6 | 17) && !key.is_fragment;
        match self {
            Field::Reg(r) => regs.reg.get(usize::from(r)).map_or(0, |&v| u64::from(v)),
            Field::Metadata => regs.metadata,
            Field::EthSrc => mac_bits(key.dl_src),
            Field::EthDst => mac_bits(key.dl_dst),
            Field::VlanTci => tci,
            Field::VlanVid => tci & 0x1fff,
            Field::VlanPcp => tci >> 13,
            Field::EthType => u64::from(key.dl_type),
            Field::InPort => u64::from(in_port),
            Field::IpSrc if ip4 => u64::from(u32::from_be_bytes(key.nw_src_v4())),
            Field::IpDst if ip4 => u64::from(u32::from_be_bytes(key.nw_dst_v4())),
            Field::IpTos if key.ip_version != 0 => u64::from(key.nw_tos),
            Field::IpDscp if key.ip_version != 0 => u64::from(key.nw_tos >> 2),
            Field::IpTtl if key.ip_version != 0 => u64::from(key.nw_ttl),
            Field::IpProto if key.ip_version != 0 => u64::from(key.nw_proto),
            Field::TpSrc if ports => u64::from(key.tp_src),
            Field::TpDst if ports => u64::from(key.tp_dst),
            Field::CtState => u64::from(regs.ct_state),
            Field::CtZone => u64::from(regs.ct_zone),
            Field::CtMark => u64::from(regs.ct_mark),
            _ => 0,
        }
    }
}

/// Bits `ofs .. ofs + n_bits` of a field (`NXM_NX_REG0[0..15]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubField {
    pub field: Field,
    pub ofs: u8,
    pub n_bits: u8,
}

impl SubField {
    /// The whole field.
    pub fn whole(field: Field) -> SubField {
        SubField {
            field,
            ofs: 0,
            n_bits: field.bits(),
        }
    }

    /// Its bits of the field's value `v`, as a number.
    pub fn extract(self, v: u64) -> u64 {
        (v & self.mask())
            .checked_shr(u32::from(self.ofs))
            .unwrap_or(0)
    }

    /// `v` in its bits (to write them with [`mask`](Self::mask)).
    pub fn place(self, v: u64) -> u64 {
        v.checked_shl(u32::from(self.ofs)).unwrap_or(0)
    }

    /// The mask of its bits within the field.
    pub fn mask(self) -> u64 {
        let ones = if self.n_bits >= 64 {
            u64::MAX
        } else {
            (1u64 << self.n_bits) - 1
        };
        ones.checked_shl(u32::from(self.ofs)).unwrap_or(0)
    }
}

/// One flow. No actions: the packet is dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Flow {
    pub table: u8,
    pub priority: u16,
    pub cookie: u64,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub m: Match,
    pub actions: Vec<Action>,
}

impl Default for Flow {
    fn default() -> Self {
        Flow {
            table: 0,
            priority: DEFAULT_PRIORITY,
            cookie: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            m: Match::default(),
            actions: Vec::new(),
        }
    }
}

impl Flow {
    /// The flow every bridge starts with, as in OVS: `priority=0
    /// actions=NORMAL`.
    pub fn default_normal() -> Flow {
        Flow {
            priority: 0,
            actions: vec![Action::Normal],
            ..Flow::default()
        }
    }
}

/// The bits of `v` under `mask` are those of `value`.
fn masked_eq(v: &[u8], value: &[u8], mask: &[u8]) -> bool {
    v.iter()
        .zip(value.iter().zip(mask))
        .all(|(v, (x, m))| v & m == x & m)
}

impl Match {
    /// Whether a packet with `key` that came in on port `in_port`, with
    /// registers `regs`, matches. A port given by name matches nothing
    /// (names are resolved first). The fields added for IPv6, ARP, ND,
    /// TCP flags and the registers compare the key's value, which is 0
    /// for a packet without the field; `ofctl` insists on their
    /// prerequisites (`ipv6`, `arp`, `tcp`, ...), as OpenFlow does.
    pub fn matches(&self, in_port: u16, key: &FlowKey, regs: &Registers) -> bool {
        let ip = key.ip_version != 0;
        let v6 = |a: &[u8; 16]| if key.ip_version == 6 { *a } else { [0; 16] };
        let extra = self.nw_tos.is_none_or(|m| ip && m.admits(key.nw_tos))
            && self.nw_ttl.is_none_or(|t| ip && key.nw_ttl == t)
            && self
                .tcp_flags
                .is_none_or(|m| m.admits(u16::from(key.tcp_flags)))
            && self
                .arp_sha
                .is_none_or(|m| masked_eq(&key.arp_sha.0, &m.value.0, &m.mask.0))
            && self
                .arp_tha
                .is_none_or(|m| masked_eq(&key.arp_tha.0, &m.value.0, &m.mask.0))
            && self
                .ipv6_src
                .is_none_or(|m| masked_eq(&v6(&key.nw_src), &m.value, &m.mask))
            && self
                .ipv6_dst
                .is_none_or(|m| masked_eq(&v6(&key.nw_dst), &m.value, &m.mask))
            && self.ipv6_label.is_none_or(|m| m.admits(key.ipv6_label))
            && self
                .nd_target
                .is_none_or(|m| masked_eq(&key.nd_target, &m.value, &m.mask))
            && self
                .regs
                .iter()
                .zip(regs.reg)
                .all(|(m, r)| m.is_none_or(|m| m.admits(r)))
            && self.metadata.is_none_or(|m| m.admits(regs.metadata))
            && self.ct_state.is_none_or(|m| m.admits(regs.ct_state))
            && self.ct_zone.is_none_or(|z| regs.ct_zone == z)
            && self.ct_mark.is_none_or(|m| m.admits(regs.ct_mark));
        extra && self.matches_base(in_port, key)
    }

    fn matches_base(&self, in_port: u16, key: &FlowKey) -> bool {
        let port_ok = match &self.in_port {
            None => true,
            Some(PortRef::Number(n)) => *n == in_port,
            Some(PortRef::Name(_)) => false,
        };
        let vlan_ok = match self.dl_vlan {
            None => true,
            Some(VlanMatch::None) => !key.has_vlan,
            Some(VlanMatch::Vid(v)) => key.has_vlan && key.vlan_tci & 0x0fff == v,
        };
        let ip_or_arp = key.ip_version == 4 || EtherType(key.dl_type) == EtherType::ARP;
        // The DEI bit's place says "tagged", as in OVS.
        let tci = if key.has_vlan {
            key.vlan_tci | 0x1000
        } else {
            0
        };
        port_ok
            && self.vlan_tci.is_none_or(|m| m.admits(tci))
            && vlan_ok
            && self
                .dl_vlan_pcp
                .is_none_or(|p| key.has_vlan && (key.vlan_tci >> 13) as u8 == p)
            && self
                .dl_src
                .is_none_or(|m| masked_eq(&key.dl_src.0, &m.value.0, &m.mask.0))
            && self
                .dl_dst
                .is_none_or(|m| masked_eq(&key.dl_dst.0, &m.value.0, &m.mask.0))
            && self.dl_type.is_none_or(|t| key.dl_type == t)
            && self
                .nw_src
                .is_none_or(|m| ip_or_arp && masked_eq(&key.nw_src[..4], &m.value, &m.mask))
            && self
                .nw_dst
                .is_none_or(|m| ip_or_arp && masked_eq(&key.nw_dst[..4], &m.value, &m.mask))
            && self.nw_proto.is_none_or(|p| key.nw_proto == p)
            && self
                .tp_src
                .is_none_or(|m| !key.is_fragment && m.admits(key.tp_src))
            && self
                .tp_dst
                .is_none_or(|m| !key.is_fragment && m.admits(key.tp_dst))
    }
}

/// The reference lookup: of table `table`'s flows in `flows`, the one of
/// highest priority that matches (the first of them in `flows` on a tie,
/// which OpenFlow leaves undefined). The classifier is checked against it.
pub fn lookup_linear<'a>(
    flows: &'a [Flow],
    table: u8,
    in_port: u16,
    key: &FlowKey,
    regs: &Registers,
) -> Option<&'a Flow> {
    let mut best: Option<&Flow> = None;
    for f in flows
        .iter()
        .filter(|f| f.table == table && f.m.matches(in_port, key, regs))
    {
        if best.is_none_or(|b| f.priority > b.priority) {
            best = Some(f);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow_key::{FlowKey, ParseDepth};

    fn key(frame: &[u8]) -> FlowKey {
        FlowKey::extract(frame, None, ParseDepth::L4).unwrap()
    }

    /// An untagged or tagged TCP/IPv4 frame 10.0.0.1:1000 -> 10.0.0.2:22.
    fn tcp(vid: Option<u16>) -> Vec<u8> {
        let mut f = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1];
        if let Some(v) = vid {
            f.extend_from_slice(&[0x81, 0, (v >> 8) as u8, v as u8]);
        }
        f.extend_from_slice(&[0x08, 0, 0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(&[0x03, 0xe8, 0, 22, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0, 0]);
        f.extend_from_slice(&[0, 0, 0, 0]);
        f
    }

    #[test]
    fn the_seed_example_decides_as_ovs_does() {
        // ../shared/seeds: VLAN 2 inside, 3029 on the wire, from port 1.
        let flows: Vec<Flow> = [
            "priority=4,in_port=1,dl_vlan=2,actions=mod_vlan_vid:3029,NORMAL",
            "priority=2,in_port=1,actions=drop",
            "priority=1,actions=NORMAL",
        ]
        .iter()
        .map(|s| ofctl::parse_flow(s).unwrap())
        .collect();
        let on = |port, vid| {
            lookup_linear(&flows, 0, port, &key(&tcp(vid)), &Registers::default())
                .map(|f| f.priority)
        };
        assert_eq!(on(1, Some(2)), Some(4));
        assert_eq!(on(1, Some(3)), Some(2));
        assert_eq!(on(1, None), Some(2));
        assert_eq!(on(2, Some(2)), Some(1));
        assert_eq!(
            lookup_linear(&flows, 0, 1, &key(&tcp(Some(2))), &Registers::default())
                .unwrap()
                .actions,
            vec![Action::ModVlanVid(3029), Action::Normal]
        );
    }

    #[test]
    fn vlan_tci_reads_the_tag_as_ovs_does() {
        let (untagged, tagged) = (key(&tcp(None)), key(&tcp(Some(5))));
        let m = |s: &str, k: &FlowKey| {
            ofctl::parse_flow(s)
                .unwrap()
                .m
                .matches(1, k, &Registers::default())
        };
        assert!(m("vlan_tci=0x0000/0x1fff,actions=drop", &untagged));
        assert!(!m("vlan_tci=0x0000/0x1fff,actions=drop", &tagged));
        assert!(m("vlan_tci=0x1000/0x1000,actions=drop", &tagged));
        assert!(m("vlan_tci=0x1005/0x1fff,actions=drop", &tagged));
        assert!(!m("vlan_tci=0x1006/0x1fff,actions=drop", &tagged));
        assert!(ofctl::parse_flow("dl_vlan=5,vlan_tci=0x1005,actions=drop").is_err());
    }

    #[test]
    fn icmp_type_and_code_match_where_the_ports_are() {
        let mut f = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0];
        f.extend_from_slice(&[
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        f.extend_from_slice(&[8, 0, 0, 0, 0, 1, 0, 1]);
        let k = key(&f);
        let m = |s: &str| {
            ofctl::parse_flow(s)
                .unwrap()
                .m
                .matches(1, &k, &Registers::default())
        };
        assert!(m("icmp,icmp_type=8,icmp_code=0,actions=drop"));
        assert!(!m("icmp,icmp_type=0,actions=drop"));
        assert!(ofctl::parse_flow("udp,icmp_type=8,actions=drop").is_err());
        let f = ofctl::parse_flow("icmp,icmp_type=8,actions=drop").unwrap();
        assert_eq!(ofctl::format_flow(&f), "icmp,icmp_type=8 actions=drop");
    }

    #[test]
    fn masks_prefixes_and_transport_ports() {
        let k = key(&tcp(None));
        let m = |s: &str| {
            ofctl::parse_flow(s)
                .unwrap()
                .m
                .matches(7, &k, &Registers::default())
        };
        assert!(m("tcp,nw_src=10.0.0.0/24,tp_dst=22,actions=drop"));
        assert!(!m("tcp,nw_src=10.0.1.0/24,actions=drop"));
        assert!(m("ip,nw_dst=10.0.0.2,actions=drop"));
        assert!(m("tcp,tp_src=0x0300/0xff00,actions=drop"));
        assert!(!m("udp,actions=drop"));
        assert!(m("dl_src=00:00:00:00:00:00/01:00:00:00:00:00,actions=drop"));
        assert!(m("dl_vlan=0xffff,actions=drop"));
        assert!(!m("dl_vlan=5,actions=drop"));
        assert!(!m("in_port=8,actions=drop"));
    }
}
