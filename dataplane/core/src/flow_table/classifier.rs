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

use super::{Flow, Match, PortRef, VlanMatch};
use crate::flow_key::FlowKey;
use crate::wire::EtherType;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The fields a match looks at, in one fixed layout (a "miniflow"):
/// in_port 2, dl_src 6, dl_dst 6, vlan 2 (0x1000: tagged, and the VID),
/// pcp 1 (0x8: tagged, and the PCP), dl_type 2, nw_src 4, nw_dst 4,
/// nw_proto 1, tp_src 2, tp_dst 2, flags 1 (bit 0: IPv4 or ARP, bit 1: not
/// a later fragment).
const LEN: usize = 34;
type Fields = [u8; LEN];

mod at {
    pub const IN_PORT: usize = 0;
    pub const DL_SRC: usize = 2;
    pub const DL_DST: usize = 8;
    pub const VLAN: usize = 14;
    pub const PCP: usize = 16;
    pub const DL_TYPE: usize = 17;
    pub const NW_SRC: usize = 19;
    pub const NW_DST: usize = 23;
    pub const NW_PROTO: usize = 27;
    pub const TP_SRC: usize = 28;
    pub const TP_DST: usize = 30;
    pub const FLAGS: usize = 32;
}
const IP_OR_ARP: u8 = 1;
const NOT_LATER_FRAGMENT: u8 = 2;

/// A packet's fields in the layout.
fn packet_fields(in_port: u16, key: &FlowKey) -> Fields {
    let mut f = [0u8; LEN];
    f[at::IN_PORT..at::IN_PORT + 2].copy_from_slice(&in_port.to_be_bytes());
    f[at::DL_SRC..at::DL_SRC + 6].copy_from_slice(&key.dl_src.0);
    f[at::DL_DST..at::DL_DST + 6].copy_from_slice(&key.dl_dst.0);
    if key.has_vlan {
        let vlan = 0x1000 | (key.vlan_tci & 0x0fff);
        f[at::VLAN..at::VLAN + 2].copy_from_slice(&vlan.to_be_bytes());
        f[at::PCP] = 0x8 | (key.vlan_tci >> 13) as u8;
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
        };
    f
}

/// A match as (value, mask) in the layout; `None` for a match nothing can
/// meet (a port still given by name).
fn match_fields(m: &Match) -> Option<(Fields, Fields)> {
    let (mut v, mut k) = ([0u8; LEN], [0u8; LEN]);
    let mut put = |off: usize, value: &[u8], mask: &[u8]| {
        for i in 0..value.len() {
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
        Some(p) => put(at::PCP, &[0x8 | p], &[0x0f]),
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
    Some((v, k))
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
    #[inline(always)]
    fn finish(&self) -> u64 {
        self.0
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

type FieldsMap<V> = HashMap<Fields, V, BuildHasherDefault<FieldsHasher>>;

/// The flows of one mask in one table.
#[derive(Debug)]
struct Subtable {
    mask: Fields,
    /// The highest priority of its flows: where the search may stop.
    max_priority: u16,
    /// Masked fields -> the best flow with them: (priority, index in the
    /// flow list); later ones of the same values can never win.
    best: FieldsMap<(u16, usize)>,
}

/// Entries of an [`ExactCache`] (a power of two).
pub const EXACT_CACHE_ENTRIES: usize = 8192;

#[derive(Debug, Clone, Copy)]
struct CacheEntry {
    /// The [`Classifier`]'s id (0: empty).
    classifier: u64,
    table: u8,
    fields: Fields,
    flow: Option<u32>,
}

/// A worker's exact-match cache: the decisions of the packets it saw
/// last, by all their fields, one entry per hash slot (a new packet
/// replaces the one there). Owned by one worker: no lock; sized once.
#[derive(Debug)]
pub struct ExactCache {
    entries: Box<[CacheEntry]>,
    pub hits: u64,
    pub misses: u64,
}

impl Default for ExactCache {
    fn default() -> Self {
        ExactCache {
            entries: vec![
                CacheEntry {
                    classifier: 0,
                    table: 0,
                    fields: [0; LEN],
                    flow: None,
                };
                EXACT_CACHE_ENTRIES
            ]
            .into_boxed_slice(),
            hits: 0,
            misses: 0,
        }
    }
}

/// One table's subtables, highest `max_priority` first.
#[derive(Debug, Default)]
struct Table {
    subtables: Vec<Subtable>,
}

/// All tables of a flow list, ready for lookups.
#[derive(Debug, Default)]
pub struct Classifier {
    tables: Vec<Table>,
    /// Unique to this build: what a cached decision was made by.
    id: u64,
}

/// Ids of classifiers built so far (0 is never one: an empty cache entry).
static BUILT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Classifier {
    /// Indexes `flows` (their positions are what lookups return).
    pub fn new(flows: &[Flow]) -> Classifier {
        let mut tables: Vec<Vec<Subtable>> = Vec::new();
        for (i, f) in flows.iter().enumerate() {
            let Some((value, mask)) = match_fields(&f.m) else {
                continue;
            };
            let t = usize::from(f.table);
            if tables.len() <= t {
                tables.resize_with(t + 1, Vec::new);
            }
            let subs = &mut tables[t];
            let s = match subs.iter().position(|s| s.mask == mask) {
                Some(s) => s,
                None => {
                    subs.push(Subtable {
                        mask,
                        max_priority: 0,
                        best: FieldsMap::default(),
                    });
                    subs.len() - 1
                }
            };
            let sub = &mut subs[s];
            sub.max_priority = sub.max_priority.max(f.priority);
            let e = sub.best.entry(value).or_insert((f.priority, i));
            if f.priority > e.0 {
                *e = (f.priority, i);
            }
        }
        Classifier {
            id: BUILT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
            tables: tables
                .into_iter()
                .map(|mut subtables| {
                    subtables.sort_by_key(|s| std::cmp::Reverse(s.max_priority));
                    Table { subtables }
                })
                .collect(),
        }
    }

    /// The index of the flow [`lookup_linear`](super::lookup_linear) would
    /// return for the same list.
    #[inline]
    pub fn lookup(&self, table: u8, in_port: u16, key: &FlowKey) -> Option<usize> {
        self.lookup_fields(table, &packet_fields(in_port, key))
    }

    /// [`lookup`](Self::lookup), answered from `cache` when it holds this
    /// packet's decision for this classifier (a new classifier, a new
    /// snapshot's, finds none of the old ones), else looked up and kept.
    #[inline]
    pub fn lookup_cached(
        &self,
        cache: &mut ExactCache,
        table: u8,
        in_port: u16,
        key: &FlowKey,
    ) -> Option<usize> {
        let fields = packet_fields(in_port, key);
        let mut h = FieldsHasher::default();
        h.write(&fields);
        h.add(u64::from(table));
        let slot = &mut cache.entries[h.finish() as usize & (EXACT_CACHE_ENTRIES - 1)];
        if slot.classifier == self.id && slot.table == table && slot.fields == fields {
            cache.hits += 1;
            return slot.flow.map(|i| i as usize);
        }
        let found = self.lookup_fields(table, &fields);
        *slot = CacheEntry {
            classifier: self.id,
            table,
            fields,
            flow: found.and_then(|i| u32::try_from(i).ok()),
        };
        cache.misses += 1;
        found
    }

    fn lookup_fields(&self, table: u8, fields: &Fields) -> Option<usize> {
        let t = self.tables.get(usize::from(table))?;
        let mut found: Option<(u16, usize)> = None;
        for s in &t.subtables {
            if found.is_some_and(|(p, _)| s.max_priority < p) {
                break;
            }
            let masked: Fields = std::array::from_fn(|i| fields[i] & s.mask[i]);
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

    /// Subtables of `table` (a measure of the lookup's work).
    pub fn subtables(&self, table: u8) -> usize {
        self.tables
            .get(usize::from(table))
            .map_or(0, |t| t.subtables.len())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{lookup_linear, Action, Masked};
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
                    (in_port, dl_src, dl_dst, dl_vlan, dl_vlan_pcp),
                    (dl_type, nw_src, nw_dst, nw_proto, tp_src, tp_dst),
                )| Match {
                    in_port,
                    dl_src,
                    dl_dst,
                    dl_vlan,
                    dl_vlan_pcp,
                    dl_type,
                    nw_src,
                    nw_dst,
                    nw_proto,
                    tp_src,
                    tp_dst,
                },
            )
    }

    fn arb_flow() -> impl Strategy<Value = Flow> {
        (0u8..3, 0u16..6, arb_match()).prop_map(|(table, priority, m)| Flow {
            table,
            priority,
            m,
            actions: vec![Action::Normal],
            ..Flow::default()
        })
    }

    fn arb_packet() -> impl Strategy<Value = (u16, FlowKey)> {
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
        )
            .prop_map(
                |(port, (src, dst, vlan), (dl_type, s, d), (proto, sp, dp, frag))| {
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
                    (port, k)
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

        /// The classifier, and the classifier behind an exact-match cache,
        /// decide as the linear scan does: random flow lists (overlapping
        /// matches, equal priorities, three tables), changed by random
        /// removals and additions between packets.
        #[test]
        fn the_classifier_agrees_with_a_linear_scan(
            flows in proptest::collection::vec(arb_flow(), 0..24),
            added in proptest::collection::vec(arb_flow(), 0..6),
            removed in proptest::collection::vec(any::<proptest::sample::Index>(), 0..4),
            packets in proptest::collection::vec(arb_packet(), 1..12),
        ) {
            let mut flows = flows;
            // One cache across both rounds: the second classifier must not
            // be answered with the first one's decisions.
            let mut cache = ExactCache::default();
            for round in 0..2 {
                let c = Classifier::new(&flows);
                // Each packet twice: a miss, then (mostly) a hit.
                for (port, key) in packets.iter().chain(&packets) {
                    for table in 0..3u8 {
                        let want = lookup_linear(&flows, table, *port, key)
                            .map(|f| f as *const Flow as usize);
                        let got = c.lookup(table, *port, key).map(|i| &flows[i] as *const Flow as usize);
                        prop_assert_eq!(got, want, "round {} table {} port {} key {:?}", round, table, port, key);
                        let cached = c
                            .lookup_cached(&mut cache, table, *port, key)
                            .map(|i| &flows[i] as *const Flow as usize);
                        prop_assert_eq!(cached, want, "cached: round {} table {}", round, table);
                    }
                }
                // The next snapshot: some flows gone, some new.
                for r in &removed {
                    if !flows.is_empty() {
                        let i = r.index(flows.len());
                        flows.remove(i);
                    }
                }
                flows.extend(added.iter().cloned());
            }
        }
    }
}
