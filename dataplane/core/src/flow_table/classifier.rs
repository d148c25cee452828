//! Tuple space search over a table set's flows: flows with the same mask
//! (which fields, which bits) share a subtable, a hash map from the masked
//! packet fields to the flows with those values; subtables are searched in
//! order of the highest priority they hold and the search stops once no
//! subtable left can beat the flow found. Built whole by the control
//! thread for a snapshot (flows change by publishing a new one), read by
//! the workers without a lock and without allocating.
//!
//! It gives exactly [`lookup_linear`](super::lookup_linear)'s answer: the
//! highest priority, the first flow of the list among equals (property
//! test below).
//!
//! Width: the fields most tables match (in_port, L2, the IPv4 5-tuple)
//! fill the layout's first [`NARROW`] bytes; a classifier none of whose
//! flows looks further keys, hashes and compares those bytes only, and
//! its caches never touch the rest. Flows on the other fields (TOS, TTL,
//! TCP flags, ARP hardware addresses, IPv6, ND, registers, metadata) make
//! the whole classifier wide, every lookup over all [`LEN`] bytes.

use super::{Flow, Match, PortRef, Registers, VlanMatch};
use crate::flow_key::FlowKey;
use crate::wire::{EtherType, IpProtocol, Ipv4Packet, Tci, TcpPacket, UdpPacket, VlanStack};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The fields a match looks at, in one fixed layout (a "miniflow"). The
/// narrow part: in_port 2, dl_src 6, dl_dst 6, vlan 2 (OVS's TCI: PCP,
/// 0x1000 for a tag, VID), dl_type 2, nw_proto 1, flags 1, nw_src 4,
/// nw_dst 4 (IPv4 or ARP), tp_src 2, tp_dst 2. The wide part: nw_tos 1,
/// nw_ttl 1, tcp_flags 2, ipv6_label 4, arp_sha 6 (+2), arp_tha 6 (+2),
/// ipv6_src 16, ipv6_dst 16, nd_target 16, metadata 8, reg0..reg7 4 each,
/// ct_state 1, ct_zone 2, ct_mark 4 (+9).
const LEN: usize = 160;
/// Bytes of the narrow part.
const NARROW: usize = 32;
type Fields = [u8; LEN];

mod at {
    pub const IN_PORT: usize = 0;
    pub const DL_SRC: usize = 2;
    pub const DL_DST: usize = 8;
    pub const VLAN: usize = 14;
    pub const DL_TYPE: usize = 16;
    pub const NW_PROTO: usize = 18;
    pub const FLAGS: usize = 19;
    pub const NW_SRC: usize = 20;
    pub const NW_DST: usize = 24;
    pub const TP_SRC: usize = 28;
    pub const TP_DST: usize = 30;
    pub const NW_TOS: usize = 32;
    pub const NW_TTL: usize = 33;
    pub const TCP_FLAGS: usize = 34;
    pub const IPV6_LABEL: usize = 36;
    pub const ARP_SHA: usize = 40;
    pub const ARP_THA: usize = 48;
    pub const IPV6_SRC: usize = 56;
    pub const IPV6_DST: usize = 72;
    pub const ND_TARGET: usize = 88;
    pub const METADATA: usize = 104;
    pub const REGS: usize = 112;
    pub const CT_STATE: usize = 144;
    pub const CT_ZONE: usize = 145;
    pub const CT_MARK: usize = 147;
}
const IP_OR_ARP: u8 = 1;
const NOT_LATER_FRAGMENT: u8 = 2;
const IP: u8 = 4;

/// Which lookup stage each byte of the layout belongs to, as Open
/// vSwitch's staged lookup has them: 0, in_port, L2 and the pipeline's
/// registers; 1, L3 (and the flags); 2, L4.
const STAGE: [u8; LEN] = {
    let mut s = [0u8; LEN];
    let mut i = 0;
    while i < LEN {
        s[i] = match i {
            at::NW_PROTO..at::TP_SRC => 1,
            at::TP_SRC..at::NW_TOS => 2,
            at::NW_TOS..at::TCP_FLAGS => 1,
            at::TCP_FLAGS..at::IPV6_LABEL => 2,
            at::IPV6_LABEL..at::ND_TARGET => 1,
            at::ND_TARGET..at::METADATA => 2,
            _ => 0,
        };
        i += 1;
    }
    s
};

/// The layout as 8-byte words: the narrow part is the first four. Eight
/// bytes, because a packet's narrow fields are written as such words
/// ([`fill_plain`]) and read back at once: a wider load over them would
/// wait for the stores to drain instead of taking their data.
#[inline(always)]
fn word(f: &Fields, i: usize) -> u64 {
    le_u64(f.get(i * 8..).unwrap_or_default())
}

/// `fields & mask == masked` (over the narrow part only, unless `wide`).
#[inline(always)]
fn masked_same(fields: &Fields, mask: &Fields, masked: &Fields, wide: bool) -> bool {
    let words = if wide { LEN / 8 } else { NARROW / 8 };
    (0..words).fold(0, |d, i| {
        d | ((word(fields, i) & word(mask, i)) ^ word(masked, i))
    }) == 0
}

/// The little-endian word of the first 8 bytes of `b` (0 if shorter).
#[inline(always)]
fn le_u64(b: &[u8]) -> u64 {
    b.first_chunk::<8>().map_or(0, |w| u64::from_le_bytes(*w))
}

/// `fields & mask` (the wide part zero unless `wide`).
#[inline(always)]
fn masked(fields: &Fields, mask: &Fields, wide: bool) -> Fields {
    let mut m = [0u8; LEN];
    let n = if wide { LEN } else { NARROW };
    for ((o, f), k) in m[..n].iter_mut().zip(fields).zip(mask) {
        *o = f & k;
    }
    m
}

/// A packet's fields in the layout (the wide part left zero unless
/// `wide`).
#[inline(always)]
fn packet_fields(in_port: u16, key: &FlowKey, regs: &Registers, wide: bool) -> Fields {
    let mut f = [0u8; LEN];
    fill_fields(&mut f, in_port, key, regs, wide);
    f
}

/// Writes a packet's fields into `f`: every byte of the narrow part, and
/// of the wide part if `wide` (else the wide part is left as it was: a
/// narrow classifier never reads it). In place, so a burst's fields are
/// not copied around.
#[inline(always)]
fn fill_fields(f: &mut Fields, in_port: u16, key: &FlowKey, regs: &Registers, wide: bool) {
    f[..NARROW].fill(0);
    f[at::IN_PORT..at::IN_PORT + 2].copy_from_slice(&in_port.to_be_bytes());
    f[at::DL_SRC..at::DL_SRC + 6].copy_from_slice(&key.dl_src.0);
    f[at::DL_DST..at::DL_DST + 6].copy_from_slice(&key.dl_dst.0);
    if key.has_vlan {
        f[at::VLAN..at::VLAN + 2].copy_from_slice(&(key.vlan_tci | 0x1000).to_be_bytes());
    }
    f[at::DL_TYPE..at::DL_TYPE + 2].copy_from_slice(&key.dl_type.to_be_bytes());
    f[at::NW_SRC..at::NW_SRC + 4].copy_from_slice(&key.nw_src[..4]);
    f[at::NW_DST..at::NW_DST + 4].copy_from_slice(&key.nw_dst[..4]);
    f[at::NW_PROTO] = key.nw_proto;
    f[at::TP_SRC..at::TP_SRC + 2].copy_from_slice(&key.tp_src.to_be_bytes());
    f[at::TP_DST..at::TP_DST + 2].copy_from_slice(&key.tp_dst.to_be_bytes());
    let ip_or_arp = key.ip_version == 4 || EtherType(key.dl_type) == EtherType::ARP;
    f[at::FLAGS] = if ip_or_arp { IP_OR_ARP } else { 0 }
        | if key.is_fragment {
            0
        } else {
            NOT_LATER_FRAGMENT
        }
        | if key.ip_version != 0 { IP } else { 0 };
    if wide {
        f[NARROW..].fill(0);
        f[at::NW_TOS] = key.nw_tos;
        f[at::NW_TTL] = key.nw_ttl;
        f[at::TCP_FLAGS..at::TCP_FLAGS + 2]
            .copy_from_slice(&u16::from(key.tcp_flags).to_be_bytes());
        f[at::IPV6_LABEL..at::IPV6_LABEL + 4].copy_from_slice(&key.ipv6_label.to_be_bytes());
        f[at::ARP_SHA..at::ARP_SHA + 6].copy_from_slice(&key.arp_sha.0);
        f[at::ARP_THA..at::ARP_THA + 6].copy_from_slice(&key.arp_tha.0);
        if key.ip_version == 6 {
            f[at::IPV6_SRC..at::IPV6_SRC + 16].copy_from_slice(&key.nw_src);
            f[at::IPV6_DST..at::IPV6_DST + 16].copy_from_slice(&key.nw_dst);
        }
        f[at::ND_TARGET..at::ND_TARGET + 16].copy_from_slice(&key.nd_target);
        f[at::METADATA..at::METADATA + 8].copy_from_slice(&regs.metadata.to_be_bytes());
        for (r, v) in regs.reg.iter().enumerate() {
            let o = at::REGS + 4 * r;
            f[o..o + 4].copy_from_slice(&v.to_be_bytes());
        }
        f[at::CT_STATE] = regs.ct_state;
        f[at::CT_ZONE..at::CT_ZONE + 2].copy_from_slice(&regs.ct_zone.to_be_bytes());
        f[at::CT_MARK..at::CT_MARK + 4].copy_from_slice(&regs.ct_mark.to_be_bytes());
    }
}

/// A plain frame's fields (the narrow part, and the wide part if `wide`)
/// for table 0, read straight from its bytes with no [`FlowKey`] in
/// between: Ethernet (with the VLAN tags [`VlanStack`] takes), IPv4 that
/// is not a later fragment, TCP or UDP, every header checked as
/// [`FlowKey::extract_l4_chained`] checks it. The same bytes
/// [`fill_fields`] writes from that key and zero registers (property
/// test below); `false`
/// for any other frame (ARP, IPv6, ICMP, fragments, a header that does
/// not check out), which the caller parses in full. `frame`: the first
/// segment's bytes, `frame_len` the whole frame's.
#[inline(always)]
fn fill_plain(f: &mut Fields, in_port: u16, frame: &[u8], frame_len: usize, wide: bool) -> bool {
    let Some((eth, rest)) = frame.split_first_chunk::<14>() else {
        return false;
    };
    let ethertype = EtherType(u16::from_be_bytes([eth[12], eth[13]]));
    // An untagged IPv4 frame (the usual one) needs no tag parsing.
    let (vlan, l3) = if ethertype == EtherType::IPV4 {
        (0, rest)
    } else {
        let Ok(tags) = VlanStack::parse(ethertype, rest, None) else {
            return false;
        };
        if tags.ethertype != EtherType::IPV4 {
            return false;
        }
        (
            tags.outer.map_or(0, |Tci(t)| t | 0x1000),
            rest.get(tags.tags_len..).unwrap_or_default(),
        )
    };
    let ip = Ipv4Packet::new_unchecked(l3);
    if ip
        .check_prefix_len(l3.len() + frame_len.saturating_sub(frame.len()))
        .is_err()
        || ip.is_later_fragment()
    {
        return false;
    }
    let total = usize::from(ip.total_len());
    let l4 = l3
        .get(ip.header_len()..total.min(l3.len()))
        .unwrap_or_default();
    let partial = ip.more_frags() || total > l3.len();
    let proto = ip.protocol();
    // Some(TCP flags) when the L4 header checks out.
    let tcp_flags = match proto {
        IpProtocol::TCP => TcpPacket::new_checked(l4).ok().map(|t| t.flags().0),
        IpProtocol::UDP if partial => UdpPacket::new_checked_header(l4).ok().map(|_| 0),
        IpProtocol::UDP => UdpPacket::new_checked(l4).ok().map(|_| 0),
        _ => None,
    };
    let Some(tcp_flags) = tcp_flags else {
        return false;
    };
    let (Some(addrs), Some(l4_ports)) = (l3.get(12..20), l4.first_chunk::<4>()) else {
        return false;
    };
    // The narrow part as four little-endian words of the layout, built in
    // registers from the frame's bytes (the addresses and ports are
    // already in the layout's order there) and stored whole.
    let dst = le_u64(frame) & 0xffff_ffff_ffff;
    let src = le_u64(&frame[6..]) & 0xffff_ffff_ffff;
    let words = [
        u64::from(in_port.swap_bytes()) | src << 16,
        dst | u64::from(vlan.swap_bytes()) << 48,
        u64::from(EtherType::IPV4.0.swap_bytes())
            | u64::from(proto.0) << 16
            | u64::from(IP_OR_ARP | NOT_LATER_FRAGMENT | IP) << 24
            | (le_u64(addrs) & 0xffff_ffff) << 32,
        le_u64(addrs) >> 32 | u64::from(u32::from_le_bytes(*l4_ports)) << 32,
    ];
    for (w, v) in f[..NARROW].chunks_exact_mut(8).zip(words) {
        w.copy_from_slice(&v.to_le_bytes());
    }
    if wide {
        // TOS, TTL and TCP flags; every other wide field of an IPv4
        // TCP/UDP packet entering table 0 is zero (no IPv6, ARP or ND
        // fields; registers, metadata and ct fields start at 0).
        let (tos, ttl) = (ip.tos(), ip.ttl());
        f[NARROW..].fill(0);
        f[at::NW_TOS] = tos;
        f[at::NW_TTL] = ttl;
        f[at::TCP_FLAGS + 1] = tcp_flags;
    }
    true
}

/// A match as (value, mask) in the layout; `None` for a match nothing can
/// meet (a port still given by name).
fn match_fields(m: &Match) -> Option<(Fields, Fields)> {
    let (mut v, mut k) = ([0u8; LEN], [0u8; LEN]);
    // Two fields that want different values of the same bits (dl_vlan=0xffff
    // and dl_vlan_pcp=3, say): a match nothing meets.
    let mut contradiction = false;
    let mut put = |off: usize, value: &[u8], mask: &[u8]| {
        for i in 0..value.len() {
            contradiction |= k[off + i] & mask[i] & (v[off + i] ^ value[i]) != 0;
            v[off + i] |= value[i] & mask[i];
            k[off + i] |= mask[i];
        }
    };
    match &m.in_port {
        None => {}
        Some(PortRef::Number(n)) => put(at::IN_PORT, &n.to_be_bytes(), &[0xff; 2]),
        Some(PortRef::Name(_)) => return None,
    }
    if let Some(x) = &m.dl_src {
        put(at::DL_SRC, &x.value.0, &x.mask.0);
    }
    if let Some(x) = &m.dl_dst {
        put(at::DL_DST, &x.value.0, &x.mask.0);
    }
    match m.dl_vlan {
        None => {}
        Some(VlanMatch::None) => put(at::VLAN, &[0, 0], &[0x10, 0]),
        // No 12-bit VID is larger: a match nothing meets.
        Some(VlanMatch::Vid(vid)) if vid > 0x0fff => return None,
        Some(VlanMatch::Vid(vid)) => put(at::VLAN, &(0x1000 | vid).to_be_bytes(), &[0x1f, 0xff]),
    }
    match m.dl_vlan_pcp {
        None => {}
        Some(p) if p > 7 => return None,
        Some(p) => put(at::VLAN, &[0x10 | p << 5, 0], &[0xf0, 0]),
    }
    if let Some(t) = m.vlan_tci {
        put(at::VLAN, &t.value.to_be_bytes(), &t.mask.to_be_bytes());
    }
    if let Some(t) = m.dl_type {
        put(at::DL_TYPE, &t.to_be_bytes(), &[0xff; 2]);
    }
    if let Some(x) = &m.nw_src {
        put(at::NW_SRC, &x.value, &x.mask);
        put(at::FLAGS, &[IP_OR_ARP], &[IP_OR_ARP]);
    }
    if let Some(x) = &m.nw_dst {
        put(at::NW_DST, &x.value, &x.mask);
        put(at::FLAGS, &[IP_OR_ARP], &[IP_OR_ARP]);
    }
    if let Some(p) = m.nw_proto {
        put(at::NW_PROTO, &[p], &[0xff]);
    }
    if let Some(x) = &m.tp_src {
        put(at::TP_SRC, &x.value.to_be_bytes(), &x.mask.to_be_bytes());
        put(at::FLAGS, &[NOT_LATER_FRAGMENT], &[NOT_LATER_FRAGMENT]);
    }
    if let Some(x) = &m.tp_dst {
        put(at::TP_DST, &x.value.to_be_bytes(), &x.mask.to_be_bytes());
        put(at::FLAGS, &[NOT_LATER_FRAGMENT], &[NOT_LATER_FRAGMENT]);
    }
    if let Some(x) = m.nw_tos {
        put(at::NW_TOS, &[x.value], &[x.mask]);
        put(at::FLAGS, &[IP], &[IP]);
    }
    if let Some(t) = m.nw_ttl {
        put(at::NW_TTL, &[t], &[0xff]);
        put(at::FLAGS, &[IP], &[IP]);
    }
    if let Some(x) = m.tcp_flags {
        // The key has the eight flag bits FIN..CWR; no packet has more.
        if x.value & x.mask > 0xff {
            return None;
        }
        put(at::TCP_FLAGS, &x.value.to_be_bytes(), &x.mask.to_be_bytes());
    }
    if let Some(x) = m.ipv6_label {
        put(
            at::IPV6_LABEL,
            &x.value.to_be_bytes(),
            &x.mask.to_be_bytes(),
        );
    }
    if let Some(x) = &m.arp_sha {
        put(at::ARP_SHA, &x.value.0, &x.mask.0);
    }
    if let Some(x) = &m.arp_tha {
        put(at::ARP_THA, &x.value.0, &x.mask.0);
    }
    if let Some(x) = &m.ipv6_src {
        put(at::IPV6_SRC, &x.value, &x.mask);
    }
    if let Some(x) = &m.ipv6_dst {
        put(at::IPV6_DST, &x.value, &x.mask);
    }
    if let Some(x) = &m.nd_target {
        put(at::ND_TARGET, &x.value, &x.mask);
    }
    if let Some(x) = m.metadata {
        put(at::METADATA, &x.value.to_be_bytes(), &x.mask.to_be_bytes());
    }
    for (r, x) in m.regs.iter().enumerate() {
        if let Some(x) = x {
            put(
                at::REGS + 4 * r,
                &x.value.to_be_bytes(),
                &x.mask.to_be_bytes(),
            );
        }
    }
    if let Some(x) = m.ct_state {
        put(at::CT_STATE, &[x.value], &[x.mask]);
    }
    if let Some(z) = m.ct_zone {
        put(at::CT_ZONE, &z.to_be_bytes(), &[0xff; 2]);
    }
    if let Some(x) = m.ct_mark {
        put(at::CT_MARK, &x.value.to_be_bytes(), &x.mask.to_be_bytes());
    }
    (!contradiction).then_some((v, k))
}

/// A multiply-rotate hash over 8-byte words (FxHash's recipe): no state
/// to seed, a few cycles per word (the maps belong to one snapshot, and
/// their keys are masked packet fields, not chosen from outside to
/// collide).
#[derive(Default)]
struct FieldsHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FieldsHasher {
    #[inline(always)]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FieldsHasher {
    /// The words' product chain leaves its low bits depending on little
    /// more than the inputs' low bits, and both the exact-match cache and
    /// the hash maps index by the low bits: they are mixed in from the
    /// high ones first (MurmurHash3's 64-bit finaliser).
    #[inline(always)]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.add(u64::from_le_bytes(b));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }
    #[inline(always)]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

/// Odd multipliers of [`hash`]'s four lanes.
const LANES: [u64; 4] = [
    0x9e37_79b9_7f4a_7c15,
    0xc2b2_ae3d_27d4_eb4f,
    0x1656_67b1_9e37_79f9,
    0x27d4_eb2f_1656_67c5,
];

/// The hash of the fields (a narrow classifier's: the narrow part only)
/// and `extra`: every 8-byte word multiplied on its own (word i by lane
/// i mod 4, rotated by i), the products folded by xor, then mixed (as
/// [`FieldsHasher::finish`]). The multiplications do not wait on each
/// other, so a packet's hash costs about one multiplication's latency
/// and the finaliser's, not one per word (FieldsHasher's chain).
#[inline(always)]
fn hash(f: &Fields, wide: bool, extra: u64) -> u64 {
    let words = if wide { LEN / 8 } else { NARROW / 8 };
    let h = (0..words).fold(extra.wrapping_mul(SEED), |h, i| {
        h ^ (word(f, i) ^ i as u64)
            .wrapping_mul(LANES[i % 4])
            .rotate_left(i as u32 * 7)
    });
    FieldsHasher(h).finish()
}

/// Maps keyed by a layout's first `W` bytes.
type FieldsMap<const W: usize, V> = HashMap<[u8; W], V, BuildHasherDefault<FieldsHasher>>;

/// The first `W` bytes of `f`.
#[inline(always)]
fn prefix<const W: usize>(f: &Fields) -> [u8; W] {
    let mut p = [0u8; W];
    let n = W.min(LEN);
    p[..n].copy_from_slice(&f[..n]);
    p
}

/// A mask's parts up to stage 0 and up to stage 1 (the staged lookup).
fn stage_masks<const W: usize>(mask: &[u8; W]) -> [[u8; W]; 2] {
    let upto = |s: u8| std::array::from_fn(|i| if STAGE[i] <= s { mask[i] } else { 0 });
    [upto(0), upto(1)]
}

/// The flows of one mask in one table, over a layout's first `W` bytes.
#[derive(Debug)]
struct Subtable<const W: usize> {
    mask: [u8; W],
    /// The highest priority of its flows: where the search may stop.
    max_priority: u16,
    /// Masked fields -> the best flow with them: (priority, index in the
    /// flow list); later ones of the same values can never win.
    best: FieldsMap<W, (u16, usize)>,
    /// The staged lookup: the mask up to L2 and up to L3 (`None` where the
    /// stage adds no bit to the one before), and the values its flows
    /// have under each. A packet whose L2 (or L3) values no flow has is
    /// answered there, and the megaflow of the answer does not depend on
    /// the later stages' fields (a UDP port nobody's addresses reach).
    stages: [Option<([u8; W], FieldsMap<W, ()>)>; 2],
}

/// One table's subtables, highest `max_priority` first.
#[derive(Debug)]
struct Table<const W: usize> {
    subtables: Vec<Subtable<W>>,
}

/// Indexes `flows` (value and mask, by table) over the first `W` bytes.
/// Also each flow's [`signature`].
fn build_tables<const W: usize, F: Borrow<Flow>>(flows: &[F]) -> (Vec<Table<W>>, Vec<u128>) {
    let mut tables: Vec<Vec<Subtable<W>>> = Vec::new();
    let mut sigs = Vec::with_capacity(flows.len());
    for (i, f) in flows.iter().enumerate() {
        let f = f.borrow();
        // One flow's layout at a time: 100,000 of them at 320 bytes each
        // would be 32 MB the process keeps after the build.
        let m = match_fields(&f.m);
        sigs.push(signature(f, m.as_ref().map(|(v, k)| (&v[..W], &k[..W]))));
        let Some((value, mask)) = m else {
            continue;
        };
        let (value, mask) = (prefix::<W>(&value), prefix::<W>(&mask));
        let t = usize::from(f.table);
        if tables.len() <= t {
            tables.resize_with(t + 1, Vec::new);
        }
        let subs = &mut tables[t];
        let s = match subs.iter().position(|s| s.mask == mask) {
            Some(s) => s,
            None => {
                let [l2, l3] = stage_masks(&mask);
                let stage = |m: [u8; W], before: Option<&[u8; W]>| {
                    (m != mask && m != [0; W] && before != Some(&m))
                        .then(|| (m, FieldsMap::default()))
                };
                subs.push(Subtable {
                    mask,
                    max_priority: 0,
                    best: FieldsMap::default(),
                    stages: [stage(l2, None), stage(l3, Some(&l2))],
                });
                subs.len() - 1
            }
        };
        let sub = &mut subs[s];
        for (m, set) in sub.stages.iter_mut().flatten() {
            set.insert(std::array::from_fn(|i| value[i] & m[i]), ());
        }
        sub.max_priority = sub.max_priority.max(f.priority);
        let e = sub.best.entry(value).or_insert((f.priority, i));
        if f.priority > e.0 {
            *e = (f.priority, i);
        }
    }
    let tables = tables
        .into_iter()
        .map(|mut subtables| {
            subtables.sort_by_key(|s| std::cmp::Reverse(s.max_priority));
            Table { subtables }
        })
        .collect();
    (tables, sigs)
}

/// The lookup in `tables`, adding to `seen` the mask of every subtable
/// it looked in: any packet whose fields agree with these under `seen`
/// gets the same answer (the megaflow of the answer).
#[inline]
fn lookup_in<const W: usize>(
    tables: &[Table<W>],
    table: u8,
    fields: &Fields,
    seen: &mut Fields,
) -> Option<usize> {
    let t = tables.get(usize::from(table))?;
    let fields = prefix::<W>(fields);
    let mut found: Option<(u16, usize)> = None;
    for s in &t.subtables {
        if found.is_some_and(|(p, _)| s.max_priority < p) {
            break;
        }
        let mut absent = false;
        for (m, set) in s.stages.iter().flatten() {
            let masked: [u8; W] = std::array::from_fn(|i| fields[i] & m[i]);
            if !set.contains_key(&masked) {
                // No flow here has these values: the later stages'
                // fields do not matter to this subtable's answer.
                for (w, b) in seen.iter_mut().zip(m) {
                    *w |= b;
                }
                absent = true;
                break;
            }
        }
        if absent {
            continue;
        }
        for (w, m) in seen.iter_mut().zip(&s.mask) {
            *w |= m;
        }
        let masked: [u8; W] = std::array::from_fn(|i| fields[i] & s.mask[i]);
        if let Some(&(p, i)) = s.best.get(&masked) {
            let better = match found {
                None => true,
                Some((bp, bi)) => p > bp || (p == bp && i < bi),
            };
            if better {
                found = Some((p, i));
            }
        }
    }
    found.map(|(_, i)| i)
}

/// Entries of an [`FlowCache`] (a power of two).
pub const EXACT_CACHE_ENTRIES: usize = 8192;

/// A cached answer, in either cache: the narrow part of its fields (the
/// packet's, or under a megaflow mask), and the answer; the wide part, for
/// wide classifiers, sits in an array of its own, so a narrow
/// classifier's cache lookups touch only these.
#[derive(Debug, Clone, Copy)]
struct CacheEntry {
    /// The [`Classifier`]'s id (0: empty).
    classifier: u64,
    table: u8,
    /// The megaflow mask the answer holds under ([`NO_MASK`]: unknown).
    mask: u8,
    head: [u8; NARROW],
    flow: Option<u32>,
}

const EMPTY_ENTRY: CacheEntry = CacheEntry {
    classifier: 0,
    table: 0,
    mask: NO_MASK,
    head: [0; NARROW],
    flow: None,
};

/// The wide part of a cached answer's fields.
type Tail = [u8; LEN - NARROW];

/// The narrow part of `f`.
#[inline(always)]
fn head(f: &Fields) -> [u8; NARROW] {
    prefix::<NARROW>(f)
}

impl CacheEntry {
    /// Whether it was kept for `fields` (their narrow part `head`, their
    /// wide part in `tail` if `wide`) in `table`.
    #[inline(always)]
    fn holds(
        &self,
        tail: &Tail,
        table: u8,
        head: &[u8; NARROW],
        fields: &Fields,
        wide: bool,
    ) -> bool {
        self.table == table && self.head == *head && (!wide || tail[..] == fields[NARROW..])
    }
}

/// Which of a bucket's two places a new answer of classifier `id` takes:
/// an empty or stale one first, else the one a hash bit picks.
#[inline(always)]
fn place_in(bucket: &[CacheEntry; 2], id: u64, hash: u64) -> usize {
    match (bucket[0].classifier == id, bucket[1].classifier == id) {
        (false, _) => 0,
        (true, false) => 1,
        (true, true) => (hash >> 63) as usize,
    }
}

/// Two entries side by side: the two places a packet's decision may be
/// (one line pair to fetch).
#[derive(Debug, Clone, Copy)]
#[repr(align(128))]
struct CacheBucket([CacheEntry; 2]);

/// A worker's exact-match cache: the decisions of the packets it saw
/// last, by all their fields, two ways per hash bucket (a new packet
/// replaces the older-looking one, as Open vSwitch's EMC does with its
/// two places). Owned by one worker: no lock; sized once.
#[derive(Debug)]
pub struct FlowCache {
    buckets: Box<[CacheBucket]>,
    /// The wide parts of the buckets' entries.
    tails: Box<[[Tail; 2]]>,
    mega: MegaflowCache,
    /// Lookups the exact-match cache answered, the megaflow cache
    /// answered, and neither (the classifier did).
    pub hits: u64,
    pub mega_hits: u64,
    pub misses: u64,
}

impl Default for FlowCache {
    fn default() -> Self {
        FlowCache {
            buckets: vec![CacheBucket([EMPTY_ENTRY; 2]); EXACT_CACHE_ENTRIES / 2]
                .into_boxed_slice(),
            tails: vec![[[0; LEN - NARROW]; 2]; EXACT_CACHE_ENTRIES / 2].into_boxed_slice(),
            mega: MegaflowCache::default(),
            hits: 0,
            mega_hits: 0,
            misses: 0,
        }
    }
}

impl FlowCache {
    /// Drops every exact-match entry (the megaflow cache stays), so tests
    /// reach the megaflow cache.
    #[cfg(test)]
    fn forget_exact(&mut self) {
        self.buckets
            .iter_mut()
            .for_each(|b| *b = CacheBucket([EMPTY_ENTRY; 2]));
    }

    /// The megaflow of `p`'s answer by classifier `id`, under mask `m` (as
    /// [`Classifier::lookup_masked`] said); `None` if the mask is not known.
    #[inline]
    pub fn megaflow(&self, id: u64, p: &PacketFields, m: u8) -> Option<Megaflow> {
        let mask = *self.mega.mask(id, m)?;
        Some(Megaflow {
            table: p.table,
            wide: p.wide,
            mask,
            masked: masked(&p.fields, &mask, p.wide),
        })
    }

    /// Starts fetching the bucket `p` lives in (a burst places every
    /// packet before it looks any up).
    #[inline(always)]
    pub fn prefetch(&self, p: &PacketFields) {
        if let Some(b) = self.buckets.get(p.bucket()) {
            cpu::prefetch(b);
        }
    }
}

/// Entries of a [`MegaflowCache`] (a power of two), and the masks it
/// holds at most.
pub const MEGAFLOW_ENTRIES: usize = 8192;
pub const MEGAFLOW_MASKS: usize = 16;

/// A worker's megaflow cache, as Open vSwitch's datapath classifier
/// keeps them: each classifier answer is kept with the fields that
/// answer really depended on (the masks of the subtables the lookup
/// searched), so every packet that agrees on those (flows that differ
/// only in a source port nobody matches, say) is answered from it. A few
/// masks, searched in the order they came, each a hash probe into one
/// fixed table of two-way buckets. Masks and entries belong to one
/// classifier and, revalidated as they are hit, to the one derived from
/// it; any other classifier starts the cache afresh. Sized once.
#[derive(Debug)]
struct MegaflowCache {
    classifier: u64,
    /// The classifier the entries may also come from (revalidated when
    /// hit): the one `classifier` was derived from.
    parent: u64,
    masks: [Fields; MEGAFLOW_MASKS],
    n_masks: usize,
    buckets: Box<[[CacheEntry; 2]]>,
    tails: Box<[[Tail; 2]]>,
}

impl Default for MegaflowCache {
    fn default() -> Self {
        MegaflowCache {
            classifier: 0,
            parent: 0,
            masks: [[0; LEN]; MEGAFLOW_MASKS],
            n_masks: 0,
            buckets: vec![[EMPTY_ENTRY; 2]; MEGAFLOW_ENTRIES / 2].into_boxed_slice(),
            tails: vec![[[0; LEN - NARROW]; 2]; MEGAFLOW_ENTRIES / 2].into_boxed_slice(),
        }
    }
}

/// `fields` under `mask`, and their hash with the table and mask number.
#[inline(always)]
fn masked_hash(table: u8, m: usize, p: &PacketFields, mask: &Fields) -> (Fields, u64) {
    let masked = masked(&p.fields, mask, p.wide);
    let h = hash(&masked, p.wide, u64::from(table) | (m as u64) << 8);
    (masked, h)
}

impl MegaflowCache {
    /// Mask `m` of classifier `id`'s megaflows, if the cache holds it.
    #[inline(always)]
    fn mask(&self, id: u64, m: u8) -> Option<&Fields> {
        if self.classifier != id {
            return None;
        }
        self.masks[..self.n_masks.min(MEGAFLOW_MASKS)].get(usize::from(m))
    }

    /// Entries and masks of `parent` serve classifier `id`, derived
    /// from it (entries revalidated as they are hit); any other change
    /// of classifier starts afresh at the next insert.
    #[inline(always)]
    fn adopt(&mut self, id: u64, parent: Option<u64>) {
        if self.classifier != id && parent == Some(self.classifier) {
            (self.parent, self.classifier) = (self.classifier, id);
        }
    }

    /// The answer kept for `p` by classifier `c`, if any (an entry of the
    /// classifier it was derived from, if it stands, is made `c`'s).
    #[inline]
    fn lookup(&mut self, c: &Classifier, p: &PacketFields) -> Option<(Option<usize>, u8)> {
        let id = c.id;
        let MegaflowCache {
            classifier,
            parent,
            masks,
            n_masks,
            buckets,
            tails,
        } = self;
        if *classifier != id {
            return None;
        }
        for (m, mask) in masks[..(*n_masks).min(MEGAFLOW_MASKS)].iter().enumerate() {
            let (masked, h) = masked_hash(p.table, m, p, mask);
            let b = h as usize & (MEGAFLOW_ENTRIES / 2 - 1);
            let (bucket, tails) = (buckets.get_mut(b)?, tails.get(b)?);
            let hd = head(&masked);
            for (e, t) in bucket.iter_mut().zip(tails) {
                if usize::from(e.mask) != m || !e.holds(t, p.table, &hd, &masked, p.wide) {
                    continue;
                }
                if e.classifier == id {
                    return Some((e.flow.map(|i| i as usize), m as u8));
                }
                if e.classifier == *parent && *parent != 0 {
                    // Stands if no new flow's match meets the megaflow.
                    let n = if p.wide { LEN } else { NARROW };
                    let meets = |v: &Fields, k: &Fields| {
                        (0..n).all(|i| (masked[i] ^ v[i]) & mask[i] & k[i] == 0)
                    };
                    if let Some(flow) = c.revalidate(*parent, p.table, e.flow, meets) {
                        (e.classifier, e.flow) = (id, flow);
                        return Some((flow.map(|i| i as usize), m as u8));
                    }
                }
            }
        }
        None
    }

    /// Keeps `found`, classifier `id`'s answer for `p`, for every packet
    /// that agrees with it under `seen`.
    fn insert(&mut self, id: u64, p: &PacketFields, seen: &Fields, found: Option<usize>) -> u8 {
        if self.classifier != id {
            (self.classifier, self.parent) = (id, 0);
            self.n_masks = 0;
        }
        let n = self.n_masks.min(MEGAFLOW_MASKS);
        let m = match self.masks[..n].iter().position(|k| k == seen) {
            Some(m) => m,
            // Full: this answer is not kept (the classifier answers again).
            None if n == MEGAFLOW_MASKS => return NO_MASK,
            None => {
                self.masks[n] = *seen;
                self.n_masks = n + 1;
                n
            }
        };
        let (masked, h) = masked_hash(p.table, m, p, seen);
        let b = h as usize & (MEGAFLOW_ENTRIES / 2 - 1);
        let (Some(bucket), Some(tails)) = (self.buckets.get_mut(b), self.tails.get_mut(b)) else {
            return NO_MASK;
        };
        let way = place_in(bucket, id, h);
        bucket[way] = CacheEntry {
            classifier: id,
            table: p.table,
            mask: m as u8,
            head: head(&masked),
            flow: found.and_then(|i| u32::try_from(i).ok()),
        };
        if p.wide {
            tails[way].copy_from_slice(&masked[NARROW..]);
        }
        m as u8
    }
}

/// No megaflow mask is known for an answer.
pub const NO_MASK: u8 = u8::MAX;

/// The megaflow one packet's answer held under: any packet that agrees
/// with it there gets the same answer from the same classifier.
#[derive(Debug, Clone, Copy)]
pub struct Megaflow {
    table: u8,
    wide: bool,
    mask: Fields,
    masked: Fields,
}

impl Megaflow {
    /// Whether `p` falls in the megaflow (so its answer is the same).
    #[inline(always)]
    pub fn covers(&self, p: &PacketFields) -> bool {
        p.table == self.table
            && p.wide == self.wide
            && masked_same(&p.fields, &self.mask, &self.masked, self.wide)
    }
}

/// A packet's fields for one table's lookup, and their hash.
#[derive(Debug, Clone, Copy)]
pub struct PacketFields {
    table: u8,
    /// Whether the wide part is filled in (the classifier it is for is
    /// wide).
    wide: bool,
    fields: Fields,
    hash: u64,
}

impl Default for PacketFields {
    fn default() -> Self {
        PacketFields {
            table: 0,
            wide: false,
            fields: [0; LEN],
            hash: 0,
        }
    }
}

impl PacketFields {
    /// Hashes the fields as they were filled in.
    #[inline(always)]
    pub fn rehash(&mut self) {
        self.hash = hash(&self.fields, self.wide, u64::from(self.table));
    }

    #[inline(always)]
    fn bucket(&self) -> usize {
        self.hash as usize & (EXACT_CACHE_ENTRIES / 2 - 1)
    }
}

/// All tables of a flow list, ready for lookups.
#[derive(Debug)]
pub struct Classifier {
    tables: Tables,
    /// Unique to this build: what a cached decision was made by.
    id: u64,
    /// Per flow: its identity (as the caller gives it) and a signature of
    /// its table, priority and match, to tell a successor which flows it
    /// keeps unchanged; and its priority.
    flow_ids: Vec<u64>,
    sigs: Vec<u128>,
    priorities: Vec<u16>,
    /// What this build keeps of the one before, if it was derived from it.
    lineage: Option<Lineage>,
}

/// How a classifier differs from the one it was derived from, so that
/// what the caches hold of the old one's answers is revalidated instead
/// of thrown away: an old answer stands if its flow is still there
/// unchanged and no new or changed flow of equal or higher priority could
/// match the packet (the megaflow: any packet of it).
#[derive(Debug)]
struct Lineage {
    parent: u64,
    /// The parent's flow index -> this build's index of the same flow
    /// (same identity, table, priority and match); `NONE`: gone or changed.
    carry: Box<[u32]>,
    /// Flows new or changed since: table, priority, value, mask.
    fresh: Vec<(u8, u16, Fields, Fields)>,
}

const NONE: u32 = u32::MAX;

/// New or changed flows past which a successor does not revalidate (the
/// check is a scan of them): it starts the caches afresh instead.
pub const MAX_FRESH: usize = 64;

/// A flow's table, priority and match (the value and mask over the
/// classifier's width), hashed twice (128 bits): equal signatures are the
/// same flow to the lookup.
fn signature(f: &Flow, m: Option<(&[u8], &[u8])>) -> u128 {
    use std::hash::{DefaultHasher, Hash};
    let half = |seed: u8| {
        let mut h = DefaultHasher::new();
        (seed, f.table, f.priority, m).hash(&mut h);
        h.finish()
    };
    u128::from(half(1)) << 64 | u128::from(half(2))
}

/// Whether a match looks at the wide part of the layout.
fn is_wide_match(m: &Match) -> bool {
    m.nw_tos.is_some()
        || m.nw_ttl.is_some()
        || m.tcp_flags.is_some()
        || m.arp_sha.is_some()
        || m.arp_tha.is_some()
        || m.ipv6_src.is_some()
        || m.ipv6_dst.is_some()
        || m.ipv6_label.is_some()
        || m.nd_target.is_some()
        || m.metadata.is_some()
        || m.regs.iter().any(Option::is_some)
        || m.ct_state.is_some()
        || m.ct_zone.is_some()
        || m.ct_mark.is_some()
}

/// The tables over the narrow part of the layout, or over all of it.
#[derive(Debug)]
enum Tables {
    Narrow(Vec<Table<NARROW>>),
    Wide(Vec<Table<LEN>>),
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier::new(&[])
    }
}

/// Ids of classifiers built so far (0 is never one: an empty cache entry).
static BUILT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Classifier {
    /// Indexes `flows` (their positions are what lookups return).
    pub fn new(flows: &[Flow]) -> Classifier {
        let ids: Vec<u64> = (0..flows.len() as u64).collect();
        Classifier::derive(flows, &ids, None)
    }

    /// [`new`](Self::new), the flows known by `ids` (stable across
    /// builds), derived from `parent` (the build it replaces): what the
    /// caches hold of the parent's answers is revalidated, not dropped,
    /// when few flows changed ([`MAX_FRESH`]) and the layout's width is
    /// the same.
    pub fn derive<F: Borrow<Flow>>(
        flows: &[F],
        ids: &[u64],
        parent: Option<&Classifier>,
    ) -> Classifier {
        let wide = flows.iter().any(|f| is_wide_match(&f.borrow().m));
        let (tables, sigs) = if wide {
            let (t, s) = build_tables(flows);
            (Tables::Wide(t), s)
        } else {
            let (t, s) = build_tables(flows);
            (Tables::Narrow(t), s)
        };
        let lineage = parent
            .filter(|p| p.is_wide() == wide)
            .and_then(|p| Self::lineage(p, flows, ids, &sigs));
        Classifier {
            id: BUILT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
            tables,
            flow_ids: ids.to_vec(),
            sigs,
            priorities: flows.iter().map(|f| f.borrow().priority).collect(),
            lineage,
        }
    }

    /// What a build of `flows` keeps of `parent`; `None` past
    /// [`MAX_FRESH`] changes.
    fn lineage<F: Borrow<Flow>>(
        parent: &Classifier,
        flows: &[F],
        ids: &[u64],
        sigs: &[u128],
    ) -> Option<Lineage> {
        let here: HashMap<(u64, u128), usize> = ids
            .iter()
            .zip(sigs)
            .enumerate()
            .map(|(i, (&id, &sig))| ((id, sig), i))
            .collect();
        let mut carry = vec![NONE; parent.flow_ids.len()].into_boxed_slice();
        let mut kept = vec![false; flows.len()];
        for (o, (&id, &sig)) in parent.flow_ids.iter().zip(&parent.sigs).enumerate() {
            if let Some(&i) = here.get(&(id, sig)) {
                carry[o] = u32::try_from(i).ok()?;
                kept[i] = true;
            }
        }
        let mut fresh = Vec::new();
        for (i, f) in flows.iter().enumerate() {
            let f = f.borrow();
            if kept[i] {
                continue;
            }
            // A match nothing meets takes no packet from anyone.
            if let Some((v, m)) = match_fields(&f.m) {
                if fresh.len() == MAX_FRESH {
                    return None;
                }
                fresh.push((f.table, f.priority, v, m));
            }
        }
        Some(Lineage {
            parent: parent.id,
            carry,
            fresh,
        })
    }

    /// Whether an answer of the parent, `old` (its flow index) for table
    /// `table`, stands here for every packet `covers` says a new flow's
    /// match could take: `Some` with this build's answer, `None` if not
    /// (or if this build has no parent `from`).
    #[inline]
    fn revalidate(
        &self,
        from: u64,
        table: u8,
        old: Option<u32>,
        covers: impl Fn(&Fields, &Fields) -> bool,
    ) -> Option<Option<u32>> {
        let lin = self.lineage.as_ref().filter(|l| l.parent == from)?;
        let new = match old {
            Some(o) => Some(*lin.carry.get(o as usize).filter(|&&i| i != NONE)?),
            None => None,
        };
        let prio = new.and_then(|i| self.priorities.get(i as usize).copied());
        let taken = lin
            .fresh
            .iter()
            .any(|(t, p, v, m)| *t == table && prio.is_none_or(|q| *p >= q) && covers(v, m));
        (!taken).then_some(new)
    }

    /// The parent this build can revalidate answers of.
    #[inline(always)]
    fn parent(&self) -> Option<u64> {
        self.lineage.as_ref().map(|l| l.parent)
    }

    /// Whether its flows look beyond the narrow part of the layout.
    pub fn is_wide(&self) -> bool {
        matches!(self.tables, Tables::Wide(_))
    }

    /// A packet's fields for a lookup in `table` by this classifier.
    #[inline(always)]
    pub fn place(&self, table: u8, in_port: u16, key: &FlowKey, regs: &Registers) -> PacketFields {
        let mut p = PacketFields::default();
        self.fill_into(&mut p, table, in_port, key, regs);
        p.rehash();
        p
    }

    /// [`fill_into`](Self::fill_into) for table 0 from a plain frame's
    /// bytes (see [`fill_plain`]), with the registers a packet enters
    /// table 0 with (all zero): no [`FlowKey`] parsed. `false` (and `p` not to be
    /// used) for other frames.
    #[inline(always)]
    pub fn fill_frame(
        &self,
        p: &mut PacketFields,
        in_port: u16,
        frame: &[u8],
        frame_len: usize,
    ) -> bool {
        let wide = self.is_wide();
        if !fill_plain(&mut p.fields, in_port, frame, frame_len, wide) {
            return false;
        }
        p.table = 0;
        p.wide = wide;
        true
    }

    /// [`place`](Self::place) into `p` (a burst's slot), in place, all
    /// but the hash: [`PacketFields::rehash`] before `p` is looked up (a
    /// burst hashes only the frames its megaflows may not answer).
    #[inline(always)]
    pub fn fill_into(
        &self,
        p: &mut PacketFields,
        table: u8,
        in_port: u16,
        key: &FlowKey,
        regs: &Registers,
    ) {
        let wide = self.is_wide();
        fill_fields(&mut p.fields, in_port, key, regs, wide);
        p.table = table;
        p.wide = wide;
    }

    /// The index of the flow [`lookup_linear`](super::lookup_linear) would
    /// return for the same list.
    #[inline]
    pub fn lookup(
        &self,
        table: u8,
        in_port: u16,
        key: &FlowKey,
        regs: &Registers,
    ) -> Option<usize> {
        let fields = packet_fields(in_port, key, regs, self.is_wide());
        self.lookup_wildcards(table, &fields, &mut [0; LEN])
    }

    /// [`lookup`](Self::lookup), answered from `cache` when it holds this
    /// packet's decision for this classifier (a new classifier, a new
    /// snapshot's, finds none of the old ones), else looked up and kept.
    #[inline]
    pub fn lookup_cached(
        &self,
        cache: &mut FlowCache,
        table: u8,
        in_port: u16,
        key: &FlowKey,
        regs: &Registers,
    ) -> Option<usize> {
        self.lookup_placed(cache, &self.place(table, in_port, key, regs))
    }

    /// [`lookup_cached`](Self::lookup_cached) of fields already placed:
    /// the exact-match cache, then the megaflow cache, then the
    /// classifier; what a later level answers is kept in the earlier ones.
    #[inline]
    pub fn lookup_placed(&self, cache: &mut FlowCache, p: &PacketFields) -> Option<usize> {
        self.lookup_masked(cache, p).0
    }

    /// [`lookup_placed`](Self::lookup_placed), and the megaflow mask its
    /// answer holds under ([`NO_MASK`] if the cache had no room for it).
    #[inline]
    pub fn lookup_masked(&self, cache: &mut FlowCache, p: &PacketFields) -> (Option<usize>, u8) {
        let b = p.bucket();
        let (Some(bucket), Some(tails)) = (cache.buckets.get_mut(b), cache.tails.get_mut(b)) else {
            return (
                self.lookup_wildcards(p.table, &p.fields, &mut [0; LEN]),
                NO_MASK,
            );
        };
        let wide = p.wide;
        let h = head(&p.fields);
        let parent = self.parent();
        for (e, et) in bucket.0.iter_mut().zip(tails.iter()) {
            if !e.holds(et, p.table, &h, &p.fields, wide) {
                continue;
            }
            if e.classifier == self.id {
                cache.hits += 1;
                return (e.flow.map(|i| i as usize), e.mask);
            }
            if parent.is_some_and(|q| q == e.classifier) {
                // The parent's answer for this very packet: it stands if
                // no new flow matches the packet. Its megaflow is not
                // known to hold (a new flow may take part of it).
                let n = if wide { LEN } else { NARROW };
                let covers = |v: &Fields, m: &Fields| (0..n).all(|i| p.fields[i] & m[i] == v[i]);
                if let Some(flow) = self.revalidate(e.classifier, p.table, e.flow, covers) {
                    (e.classifier, e.flow, e.mask) = (self.id, flow, NO_MASK);
                    cache.hits += 1;
                    return (flow.map(|i| i as usize), NO_MASK);
                }
            }
        }
        cache.mega.adopt(self.id, parent);
        let (found, mask) = match cache.mega.lookup(self, p) {
            Some(answer) => {
                cache.mega_hits += 1;
                answer
            }
            None => {
                let mut seen = [0u8; LEN];
                let found = self.lookup_wildcards(p.table, &p.fields, &mut seen);
                let m = cache.mega.insert(self.id, p, &seen, found);
                cache.misses += 1;
                (found, m)
            }
        };
        let way = place_in(&bucket.0, self.id, p.hash);
        bucket.0[way] = CacheEntry {
            classifier: self.id,
            table: p.table,
            mask,
            head: h,
            flow: found.and_then(|i| u32::try_from(i).ok()),
        };
        if wide {
            tails[way].copy_from_slice(&p.fields[NARROW..]);
        }
        (found, mask)
    }

    /// This build's id (what cached answers are tied to).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Subtables of `table` (a measure of the lookup's work).
    pub fn subtables(&self, table: u8) -> usize {
        let t = usize::from(table);
        match &self.tables {
            Tables::Narrow(ts) => ts.get(t).map(|t| t.subtables.len()),
            Tables::Wide(ts) => ts.get(t).map(|t| t.subtables.len()),
        }
        .unwrap_or(0)
    }

    /// The lookup, adding to `seen` the mask of every subtable it looked
    /// in (see [`lookup_in`]).
    fn lookup_wildcards(&self, table: u8, fields: &Fields, seen: &mut Fields) -> Option<usize> {
        match &self.tables {
            Tables::Narrow(t) => lookup_in(t, table, fields, seen),
            Tables::Wide(t) => lookup_in(t, table, fields, seen),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{lookup_linear, Action, Masked, REGISTERS};
    use super::*;
    use crate::wire::EthernetAddress;
    use proptest::prelude::*;

    /// Values from small sets, so random flows and packets meet often.
    fn mac() -> impl Strategy<Value = [u8; 6]> {
        (0u8..4).prop_map(|i| [0xfa, 0x16, 0x3e, 0, 0, i])
    }
    fn ip() -> impl Strategy<Value = [u8; 4]> {
        (0u8..2, 0u8..4).prop_map(|(a, b)| [10, 0, a, b])
    }

    fn mac_m() -> impl Strategy<Value = Masked<EthernetAddress>> {
        (
            mac(),
            prop_oneof![Just([0xff; 6]), Just([0, 0, 0, 0, 0, 1])],
        )
            .prop_map(|(v, m)| Masked {
                value: EthernetAddress(std::array::from_fn(|i| v[i] & m[i])),
                mask: EthernetAddress(m),
            })
    }

    fn ip_m() -> impl Strategy<Value = Masked<[u8; 4]>> {
        let masks = prop_oneof![
            Just([0xff; 4]),
            Just([0xff, 0xff, 0xff, 0]),
            Just([0, 0, 0xff, 0])
        ];
        (ip(), masks).prop_map(|(v, m)| Masked {
            value: std::array::from_fn(|i| v[i] & m[i]),
            mask: m,
        })
    }

    fn tp_m() -> impl Strategy<Value = Masked<u16>> {
        (20u16..24, prop_oneof![Just(0xffffu16), Just(0xfffe)]).prop_map(|(v, m)| Masked {
            value: v & m,
            mask: m,
        })
    }

    fn arb_match() -> impl Strategy<Value = Match> {
        (
            (
                proptest::option::of((0u16..3).prop_map(PortRef::Number)),
                proptest::option::of(mac_m()),
                proptest::option::of(mac_m()),
                proptest::option::of(prop_oneof![
                    Just(VlanMatch::None),
                    (1u16..3).prop_map(VlanMatch::Vid)
                ]),
                proptest::option::of(0u8..2),
                proptest::option::of(prop_oneof![
                    Just((0x0000u16, 0x1fffu16)),
                    Just((0x1000, 0x1000)),
                    Just((0x1001, 0x1fff)),
                    Just((0x3000, 0xf000)),
                    Just((0x2000, 0xe000)),
                ]),
            ),
            (
                proptest::option::of(prop_oneof![Just(0x0800u16), Just(0x0806), Just(0x86dd)]),
                proptest::option::of(ip_m()),
                proptest::option::of(ip_m()),
                proptest::option::of(prop_oneof![Just(6u8), Just(17)]),
                proptest::option::of(tp_m()),
                proptest::option::of(tp_m()),
            ),
        )
            .prop_map(
                |(
                    (in_port, dl_src, dl_dst, dl_vlan, dl_vlan_pcp, tci),
                    (dl_type, nw_src, nw_dst, nw_proto, tp_src, tp_dst),
                )| Match {
                    in_port,
                    dl_src,
                    dl_dst,
                    dl_vlan,
                    dl_vlan_pcp,
                    // Alone, as the parser insists.
                    vlan_tci: tci
                        .filter(|_| dl_vlan.is_none() && dl_vlan_pcp.is_none())
                        .map(|(value, mask)| Masked { value, mask }),
                    dl_type,
                    nw_src,
                    nw_dst,
                    nw_proto,
                    tp_src,
                    tp_dst,
                    ..Match::default()
                },
            )
    }

    fn masked<T: Copy + std::fmt::Debug>(
        values: impl Strategy<Value = T>,
        masks: impl Strategy<Value = T>,
    ) -> impl Strategy<Value = Masked<T>> {
        (values, masks).prop_map(|(value, mask)| Masked { value, mask })
    }

    fn ip6() -> impl Strategy<Value = [u8; 16]> {
        (0u8..2, 0u8..3).prop_map(|(a, b)| {
            let mut x = [0u8; 16];
            (x[0], x[1], x[7], x[15]) = (0x20, 0x01, a, b);
            x
        })
    }

    fn some<T: std::fmt::Debug + 'static>(p: BoxedStrategy<T>) -> impl Strategy<Value = Option<T>> {
        proptest::option::weighted(0.15, p)
    }

    /// The fields of the wide part, each present now and then.
    fn arb_wide(m: Match) -> impl Strategy<Value = Match> {
        let ip6_masks = prop_oneof![
            Just([0xff; 16]),
            Just(std::array::from_fn(|i| if i < 8 { 0xff } else { 0 }))
        ];
        (
            (
                some(
                    masked(
                        prop_oneof![Just(0x2cu8), Just(0), Just(1)],
                        prop_oneof![Just(0xfcu8), Just(0x03)],
                    )
                    .boxed(),
                ),
                some((63u8..65).boxed()),
                some(
                    masked(
                        prop_oneof![Just(0x02u16), Just(0x10), Just(0)],
                        prop_oneof![Just(0x02u16), Just(0x12), Just(0xff)],
                    )
                    .boxed(),
                ),
                some(mac_m().boxed()),
                some(mac_m().boxed()),
            ),
            (
                some(masked(ip6(), ip6_masks.clone()).boxed()),
                some(masked(ip6(), ip6_masks).boxed()),
                some(masked(0u32..2, prop_oneof![Just(0xf_ffffu32), Just(1)]).boxed()),
                some(masked(ip6(), Just([0xff; 16])).boxed()),
                some(masked(0u32..3, prop_oneof![Just(u32::MAX), Just(1)]).boxed()),
                some(masked(0u32..3, prop_oneof![Just(u32::MAX), Just(2)]).boxed()),
                some(masked(0u64..2, prop_oneof![Just(u64::MAX), Just(1)]).boxed()),
            ),
            (
                some(
                    masked(
                        prop_oneof![Just(0x21u8), Just(0x22), Just(0)],
                        prop_oneof![Just(0x21u8), Just(0x20), Just(0x3f)],
                    )
                    .boxed(),
                ),
                some(prop_oneof![Just(0u16), Just(5)].boxed()),
                some(masked(0u32..2, prop_oneof![Just(u32::MAX), Just(1)]).boxed()),
            ),
        )
            .prop_map(
                move |(
                    (tos, ttl, flags, sha, tha),
                    (s6, d6, label, nd, r0, r5, meta),
                    (ct_state, ct_zone, ct_mark),
                )| {
                    let mut m = m.clone();
                    (m.nw_tos, m.nw_ttl, m.tcp_flags, m.arp_sha, m.arp_tha) =
                        (tos, ttl, flags, sha, tha);
                    (m.ipv6_src, m.ipv6_dst, m.ipv6_label, m.nd_target) = (s6, d6, label, nd);
                    (m.regs[0], m.regs[5], m.metadata) = (r0, r5, meta);
                    (m.ct_state, m.ct_zone, m.ct_mark) = (ct_state, ct_zone, ct_mark);
                    m
                },
            )
    }

    fn arb_flow() -> impl Strategy<Value = Flow> {
        (0u8..3, 0u16..6, arb_match().prop_flat_map(arb_wide)).prop_map(|(table, priority, m)| {
            Flow {
                table,
                priority,
                m,
                actions: vec![Action::Normal],
                ..Flow::default()
            }
        })
    }

    /// `flows` with no field of the wide part (a narrow classifier).
    fn narrowed(flows: &mut [Flow]) {
        for f in flows {
            let m = &mut f.m;
            (m.nw_tos, m.nw_ttl, m.tcp_flags, m.arp_sha, m.arp_tha) =
                (None, None, None, None, None);
            (m.ipv6_src, m.ipv6_dst, m.ipv6_label, m.nd_target) = (None, None, None, None);
            (m.regs, m.metadata) = ([None; REGISTERS], None);
            (m.ct_state, m.ct_zone, m.ct_mark) = (None, None, None);
        }
    }

    fn arb_packet() -> impl Strategy<Value = (u16, FlowKey, Registers)> {
        (
            0u16..3,
            (mac(), mac(), proptest::option::of((1u16..3, 0u16..2))),
            (
                prop_oneof![Just(0x0800u16), Just(0x0806), Just(0x86dd), Just(0x88cc)],
                ip(),
                ip(),
            ),
            (
                prop_oneof![Just(6u8), Just(17), Just(1)],
                20u16..24,
                20u16..24,
                any::<bool>(),
            ),
            (
                prop_oneof![Just(0x2cu8), Just(0), Just(1), Just(0x2d)],
                63u8..65,
                prop_oneof![Just(0x02u8), Just(0x10), Just(0x12), Just(0)],
                (mac(), mac(), ip6(), ip6(), 0u32..2, ip6()),
                (
                    0u32..3,
                    0u32..3,
                    0u64..2,
                    prop_oneof![Just(0u8), Just(0x21), Just(0x22), Just(0x2a)],
                    prop_oneof![Just(0u16), Just(5)],
                    0u32..2,
                ),
            ),
        )
            .prop_map(
                |(
                    port,
                    (src, dst, vlan),
                    (dl_type, s, d),
                    (proto, sp, dp, frag),
                    (tos, ttl, flags, (sha, tha, s6, d6, label, nd), (r0, r5, meta, cts, ctz, ctm)),
                )| {
                    let mut k = FlowKey {
                        dl_src: EthernetAddress(src),
                        dl_dst: EthernetAddress(dst),
                        dl_type,
                        ..FlowKey::default()
                    };
                    if let Some((vid, pcp)) = vlan {
                        k.has_vlan = true;
                        k.vlan_tci = vid | pcp << 13;
                    }
                    if dl_type != 0x88cc {
                        k.ip_version = match dl_type {
                            0x0800 => 4,
                            0x86dd => 6,
                            _ => 0,
                        };
                        k.nw_src[..4].copy_from_slice(&s);
                        k.nw_dst[..4].copy_from_slice(&d);
                        k.nw_proto = proto;
                        k.is_fragment = frag;
                        if !frag {
                            (k.tp_src, k.tp_dst) = (sp, dp);
                        }
                    }
                    // The extra fields where a real packet has them.
                    if k.ip_version != 0 {
                        (k.nw_tos, k.nw_ttl) = (tos, ttl);
                        if proto == 6 && !frag {
                            k.tcp_flags = flags;
                        }
                    }
                    if k.ip_version == 6 {
                        (k.nw_src, k.nw_dst, k.ipv6_label) = (s6, d6, label);
                        if proto == 58 || ttl == 64 {
                            k.nd_target = nd;
                        }
                    }
                    if dl_type == 0x0806 {
                        (k.arp_sha, k.arp_tha) = (EthernetAddress(sha), EthernetAddress(tha));
                    }
                    let mut regs = Registers {
                        metadata: meta,
                        ct_state: cts,
                        ct_zone: ctz,
                        ct_mark: ctm,
                        ..Registers::default()
                    };
                    (regs.reg[0], regs.reg[5]) = (r0, r5);
                    (port, k, regs)
                },
            )
    }

    /// A snapshot that adds one flow keeps every cached answer the flow
    /// cannot take (no miss for them) and gives the new answer where it can.
    #[test]
    fn a_derived_classifier_keeps_the_answers_its_change_does_not_touch() {
        let parse = |l: &str| super::super::ofctl::parse_flow(l).unwrap();
        let mut flows = vec![
            parse("priority=10,udp,nw_dst=10.0.1.0/24,actions=NORMAL"),
            parse("priority=5,udp,nw_dst=10.0.2.0/24,actions=NORMAL"),
        ];
        let key = |d: u8, h: u8| {
            let mut k = FlowKey {
                dl_type: 0x0800,
                ip_version: 4,
                nw_proto: 17,
                tp_src: 1000,
                tp_dst: 53,
                ..FlowKey::default()
            };
            k.nw_dst[..4].copy_from_slice(&[10, 0, d, h]);
            k
        };
        let regs = Registers::default();
        let mut cache = FlowCache::default();
        let c1 = Classifier::derive(&flows, &[0, 1], None);
        for d in 1..=2 {
            for h in 0..50 {
                c1.lookup_cached(&mut cache, 0, 1, &key(d, h), &regs);
            }
        }
        assert_eq!(cache.misses + cache.mega_hits, 100);
        flows.push(parse("priority=20,udp,nw_dst=10.0.2.7,actions=drop"));
        let c2 = Classifier::derive(&flows, &[0, 1, 2], Some(&c1));
        let (hits, misses) = (cache.hits, cache.misses);
        for d in 1..=2 {
            for h in 0..50 {
                let want = if (d, h) == (2, 7) {
                    2
                } else {
                    usize::from(d - 1)
                };
                let got = c2.lookup_cached(&mut cache, 0, 1, &key(d, h), &regs);
                assert_eq!(got, Some(want), "10.0.{d}.{h}");
            }
        }
        // Only the packet the new flow takes was looked up again.
        assert_eq!((cache.hits - hits, cache.misses - misses), (99, 1));
        // A classifier derived from another one finds nothing of c1's.
        let c3 = Classifier::derive(&flows, &[0, 1, 2], None);
        let misses = cache.misses;
        c3.lookup_cached(&mut cache, 0, 1, &key(1, 1), &regs);
        assert_eq!(cache.misses, misses + 1);
    }

    /// Fields placed from a frame's bytes, or `None` where the caller
    /// has to parse its key; and those the frame's key gives (`None`: no
    /// key, a frame the switch drops).
    fn placed_both_ways(
        c: &Classifier,
        frame: &[u8],
        frame_len: usize,
    ) -> (Option<PacketFields>, Option<PacketFields>) {
        // Leftovers of an earlier frame in the slot must not show.
        let mut p = PacketFields {
            fields: [0xa5; LEN],
            ..PacketFields::default()
        };
        let direct = c.fill_frame(&mut p, 7, frame, frame_len).then(|| {
            p.rehash();
            p
        });
        let key = FlowKey::extract_l4_chained(frame, frame_len, None)
            .or_else(|_| FlowKey::extract_l2(frame, None))
            .ok();
        (
            direct,
            key.map(|k| c.place(0, 7, &k, &Registers::default())),
        )
    }

    #[test]
    fn plain_frames_are_placed_from_their_bytes_and_others_from_their_key() {
        let parse = |l: &str| super::super::ofctl::parse_flow(l).unwrap();
        let narrow = Classifier::new(&[parse("udp,tp_dst=53,actions=drop")]);
        let wide = Classifier::new(&[parse("reg0=1,actions=drop")]);
        use crate::flow_key::tests::{eth, ipv4, udp as udp_header};
        let (a, b) = ([0xfa, 0x16, 0x3e, 0, 0, 1], [0xfa, 0x16, 0x3e, 0, 0, 2]);
        let ip = ipv4(
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            17,
            0,
            0,
            &udp_header(1024, 53, 0, &[0; 8]),
        );
        let udp = [eth(b, a, &[], 0x0800), ip.clone()].concat();
        let tagged = [eth(b, a, &[(0x8100, 0x2005)], 0x0800), ip].concat();
        for (c, f) in [
            (&narrow, &udp),
            (&narrow, &tagged),
            (&wide, &udp),
            (&wide, &tagged),
        ] {
            let (direct, keyed) = placed_both_ways(c, f, f.len());
            let direct = direct.expect("a plain UDP frame is placed from its bytes");
            let keyed = keyed.unwrap();
            let n = if c.is_wide() { LEN } else { NARROW };
            assert_eq!(direct.fields[..n], keyed.fields[..n]);
            assert_eq!(direct.hash, keyed.hash);
        }
        assert_eq!(&tagged_vlan(&narrow, &tagged), &[0x30, 0x05]);
        // Frames that are not IPv4 TCP/UDP go through the key.
        let mut arp = udp.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(placed_both_ways(&narrow, &arp, arp.len()).0.is_none());
    }

    /// The VLAN field as placed: PCP, the tag bit, VID.
    fn tagged_vlan(c: &Classifier, frame: &[u8]) -> [u8; 2] {
        let mut p = PacketFields::default();
        assert!(c.fill_frame(&mut p, 7, frame, frame.len()));
        [p.fields[at::VLAN], p.fields[at::VLAN + 1]]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, failure_persistence: None, ..ProptestConfig::default() })]

        /// Placing a frame straight from its bytes gives the fields (and
        /// hash) its flow key gives, for random frames (tags, IPv4, IPv6,
        /// ARP, fragments, TCP, UDP, ICMP), one byte of them changed at
        /// random, cut anywhere, with more bytes said to follow in
        /// chained segments.
        #[test]
        fn a_frame_placed_from_its_bytes_has_its_keys_fields(
            mut spec in crate::flow_key::tests::frame_spec(),
            flip in proptest::option::of((any::<proptest::sample::Index>(), any::<u8>())),
            cut in any::<proptest::sample::Index>(),
            chained in prop_oneof![Just(0usize), 0usize..2000],
        ) {
            spec.strip_outer = false;
            let (mut frame, _, _, _) = crate::flow_key::tests::build(&spec);
            if let Some((at, x)) = flip {
                let i = at.index(frame.len());
                frame[i] ^= x;
            }
            frame.truncate(cut.index(frame.len() + 1).max(14));
            let narrow = Classifier::new(&[]);
            let wide = Classifier::new(&[super::super::ofctl::parse_flow("reg0=1,actions=drop").unwrap()]);
            for c in [&narrow, &wide] {
                let (direct, keyed) = placed_both_ways(c, &frame, frame.len() + chained);
                if let Some(d) = direct {
                    let keyed = keyed.expect("a frame placed from its bytes has a key");
                    let n = if c.is_wide() { LEN } else { NARROW };
                    prop_assert_eq!(&d.fields[..n], &keyed.fields[..n]);
                    prop_assert_eq!(d.hash, keyed.hash);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

        /// The classifier, and the classifier behind its caches (exact
        /// match, and megaflow once the exact entries are gone), decide
        /// as the linear scan does: random flow lists (overlapping
        /// matches, equal priorities, three tables), changed by random
        /// removals and additions between packets.
        #[test]
        fn the_classifier_agrees_with_a_linear_scan(
            narrow in any::<bool>(),
            flows in proptest::collection::vec(arb_flow(), 0..24),
            added in proptest::collection::vec(arb_flow(), 0..6),
            removed in proptest::collection::vec(any::<proptest::sample::Index>(), 0..4),
            changed in proptest::collection::vec(any::<proptest::sample::Index>(), 0..3),
            packets in proptest::collection::vec(arb_packet(), 1..12),
        ) {
            let mut flows = flows;
            let mut added = added;
            if narrow {
                narrowed(&mut flows);
                narrowed(&mut added);
            }
            // One cache across the rounds: each classifier is derived
            // from the one before (the caches revalidate its answers) and
            // must never be answered with a decision that no longer holds,
            // nor with one of the round before that.
            let mut cache = FlowCache::default();
            let mut ids: Vec<u64> = (0..flows.len() as u64).collect();
            let mut next_id = 1_000;
            let mut before: Option<Classifier> = None;
            for round in 0..3 {
                let c = Classifier::derive(&flows, &ids, before.as_ref());
                // Each packet three times: a miss, then (mostly) an exact
                // hit, then with the exact entries gone, the megaflow
                // cache's answer (or a miss).
                prop_assert!(!(narrow && c.is_wide()));
                for (pass, (port, key, regs)) in packets.iter().chain(&packets).chain(&packets).enumerate() {
                    if pass == 2 * packets.len() {
                        cache.forget_exact();
                    }
                    for table in 0..3u8 {
                        let want = lookup_linear(&flows, table, *port, key, regs)
                            .map(|f| f as *const Flow as usize);
                        let got = c.lookup(table, *port, key, regs).map(|i| &flows[i] as *const Flow as usize);
                        prop_assert_eq!(got, want, "round {} table {} port {} key {:?}", round, table, port, key);
                        let cached = c
                            .lookup_cached(&mut cache, table, *port, key, regs)
                            .map(|i| &flows[i] as *const Flow as usize);
                        prop_assert_eq!(cached, want, "cached: round {} table {}", round, table);
                    }
                }
                // The next snapshot: some flows gone, some changed (same
                // identity, another priority), some new.
                for r in &removed {
                    if !flows.is_empty() {
                        let i = r.index(flows.len());
                        flows.remove(i);
                        ids.remove(i);
                    }
                }
                for r in &changed {
                    if !flows.is_empty() {
                        let i = r.index(flows.len());
                        flows[i].priority = (flows[i].priority + 1) % 6;
                    }
                }
                for f in &added {
                    flows.push(f.clone());
                    ids.push(next_id);
                    next_id += 1;
                }
                before = Some(c);
            }
        }
    }
}
