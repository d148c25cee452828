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

/// The layout as two 16-byte words and the last two bytes: comparisons
/// in three loads instead of a call to `memcmp`.
#[inline(always)]
fn words(f: &Fields) -> (u128, u128, u16) {
    let word = |at: usize| {
        let mut w = [0u8; 16];
        w.copy_from_slice(&f[at..at + 16]);
        u128::from_ne_bytes(w)
    };
    (word(0), word(16), u16::from_ne_bytes([f[32], f[33]]))
}

/// `a == b`.
#[inline(always)]
fn same(a: &Fields, b: &Fields) -> bool {
    words(a) == words(b)
}

/// `fields & mask == masked`.
#[inline(always)]
fn masked_same(fields: &Fields, mask: &Fields, masked: &Fields) -> bool {
    let ((f0, f1, f2), (m0, m1, m2)) = (words(fields), words(mask));
    (f0 & m0, f1 & m1, f2 & m2) == words(masked)
}

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
    // OVS's TCI: the present bit and the VID in the VLAN field, the PCP
    // in the PCP byte (an untagged packet has 0 in both).
    if let Some(t) = m.vlan_tci {
        put(
            at::VLAN,
            &(t.value & 0x1fff).to_be_bytes(),
            &(t.mask & 0x1fff).to_be_bytes(),
        );
        put(at::PCP, &[(t.value >> 13) as u8], &[(t.mask >> 13) as u8]);
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

type FieldsMap<V> = HashMap<Fields, V, BuildHasherDefault<FieldsHasher>>;

/// Which bytes of the layout each lookup stage covers, as Open vSwitch's
/// staged lookup has them: in_port and L2; then L3 (and the flags); then
/// L4. Each stage's mask includes the stages before it.
fn stage_masks(mask: &Fields) -> [Fields; 2] {
    let mut l2 = [0u8; LEN];
    l2[..at::NW_SRC].copy_from_slice(&mask[..at::NW_SRC]);
    let mut l3 = l2;
    l3[at::NW_SRC..at::TP_SRC].copy_from_slice(&mask[at::NW_SRC..at::TP_SRC]);
    l3[at::FLAGS..].copy_from_slice(&mask[at::FLAGS..]);
    [l2, l3]
}

/// The flows of one mask in one table.
#[derive(Debug)]
struct Subtable {
    mask: Fields,
    /// The highest priority of its flows: where the search may stop.
    max_priority: u16,
    /// Masked fields -> the best flow with them: (priority, index in the
    /// flow list); later ones of the same values can never win.
    best: FieldsMap<(u16, usize)>,
    /// The staged lookup: the mask up to L2 and up to L3 (`None` where the
    /// stage adds no bit to the one before), and the values its flows
    /// have under each. A packet whose L2 (or L3) values no flow has is
    /// answered there, and the megaflow of the answer does not depend on
    /// the later stages' fields (a UDP port nobody's addresses reach).
    stages: [Option<(Fields, FieldsMap<()>)>; 2],
}

/// Entries of an [`FlowCache`] (a power of two).
pub const EXACT_CACHE_ENTRIES: usize = 8192;

#[derive(Debug, Clone, Copy)]
struct CacheEntry {
    /// The [`Classifier`]'s id (0: empty).
    classifier: u64,
    table: u8,
    /// The megaflow mask the answer holds under ([`NO_MASK`]: unknown).
    mask: u8,
    fields: Fields,
    flow: Option<u32>,
}

const EMPTY_ENTRY: CacheEntry = CacheEntry {
    classifier: 0,
    table: 0,
    mask: NO_MASK,
    fields: [0; LEN],
    flow: None,
};

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
            mask,
            masked: std::array::from_fn(|i| p.fields[i] & mask[i]),
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

/// A wildcarded decision: the packet fields under one of the cache's
/// masks, and the flow.
#[derive(Debug, Clone, Copy)]
struct MegaEntry {
    classifier: u64,
    table: u8,
    mask: u8,
    fields: Fields,
    flow: Option<u32>,
}

const EMPTY_MEGA: MegaEntry = MegaEntry {
    classifier: 0,
    table: 0,
    mask: 0,
    fields: [0; LEN],
    flow: None,
};

/// A worker's megaflow cache, as Open vSwitch's datapath classifier
/// keeps them: each classifier answer is kept with the fields that
/// answer really depended on (the masks of the subtables the lookup
/// searched), so every packet that agrees on those (flows that differ
/// only in a source port nobody matches, say) is answered from it. A few
/// masks, searched in the order they came, each a hash probe into one
/// fixed table of two-way buckets. Masks and entries belong to one
/// classifier: a new one starts the cache afresh. Sized once.
#[derive(Debug)]
struct MegaflowCache {
    classifier: u64,
    masks: [Fields; MEGAFLOW_MASKS],
    n_masks: usize,
    buckets: Box<[[MegaEntry; 2]]>,
}

impl Default for MegaflowCache {
    fn default() -> Self {
        MegaflowCache {
            classifier: 0,
            masks: [[0; LEN]; MEGAFLOW_MASKS],
            n_masks: 0,
            buckets: vec![[EMPTY_MEGA; 2]; MEGAFLOW_ENTRIES / 2].into_boxed_slice(),
        }
    }
}

/// `fields` under `mask`, and their hash with the table and mask number.
#[inline(always)]
fn masked_hash(table: u8, m: usize, fields: &Fields, mask: &Fields) -> (Fields, u64) {
    let masked: Fields = std::array::from_fn(|i| fields[i] & mask[i]);
    let mut h = FieldsHasher::default();
    h.write(&masked);
    h.add(u64::from(table) | (m as u64) << 8);
    (masked, h.finish())
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

    /// The answer kept for `p` by classifier `id`, if any.
    #[inline]
    fn lookup(&self, id: u64, p: &PacketFields) -> Option<(Option<usize>, u8)> {
        if self.classifier != id {
            return None;
        }
        for (m, mask) in self.masks[..self.n_masks.min(MEGAFLOW_MASKS)]
            .iter()
            .enumerate()
        {
            let (masked, h) = masked_hash(p.table, m, &p.fields, mask);
            let b = self.buckets.get(h as usize & (MEGAFLOW_ENTRIES / 2 - 1))?;
            for e in b {
                if e.classifier == id
                    && e.table == p.table
                    && usize::from(e.mask) == m
                    && same(&e.fields, &masked)
                {
                    return Some((e.flow.map(|i| i as usize), m as u8));
                }
            }
        }
        None
    }

    /// Keeps `found`, classifier `id`'s answer for `p`, for every packet
    /// that agrees with it under `seen`.
    fn insert(&mut self, id: u64, p: &PacketFields, seen: &Fields, found: Option<usize>) -> u8 {
        if self.classifier != id {
            self.classifier = id;
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
        let (masked, h) = masked_hash(p.table, m, &p.fields, seen);
        let Some(b) = self
            .buckets
            .get_mut(h as usize & (MEGAFLOW_ENTRIES / 2 - 1))
        else {
            return NO_MASK;
        };
        let way = match (b[0].classifier == id, b[1].classifier == id) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => (h >> 63) as usize,
        };
        b[way] = MegaEntry {
            classifier: id,
            table: p.table,
            mask: m as u8,
            fields: masked,
            flow: found.and_then(|i| u32::try_from(i).ok()),
        };
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
    mask: Fields,
    masked: Fields,
}

impl Megaflow {
    /// Whether `p` falls in the megaflow (so its answer is the same).
    #[inline(always)]
    pub fn covers(&self, p: &PacketFields) -> bool {
        p.table == self.table && masked_same(&p.fields, &self.mask, &self.masked)
    }
}

/// A packet's fields for one table's lookup, and their hash.
#[derive(Debug, Clone, Copy)]
pub struct PacketFields {
    table: u8,
    fields: Fields,
    hash: u64,
}

impl PacketFields {
    #[inline(always)]
    pub fn new(table: u8, in_port: u16, key: &FlowKey) -> PacketFields {
        let fields = packet_fields(in_port, key);
        let mut h = FieldsHasher::default();
        h.write(&fields);
        h.add(u64::from(table));
        PacketFields {
            table,
            fields,
            hash: h.finish(),
        }
    }

    #[inline(always)]
    fn bucket(&self) -> usize {
        self.hash as usize & (EXACT_CACHE_ENTRIES / 2 - 1)
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
                    let [l2, l3] = stage_masks(&mask);
                    let stage = |m: Fields, before: Option<&Fields>| {
                        (m != mask && m != [0; LEN] && before != Some(&m))
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
        cache: &mut FlowCache,
        table: u8,
        in_port: u16,
        key: &FlowKey,
    ) -> Option<usize> {
        self.lookup_placed(cache, &PacketFields::new(table, in_port, key))
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
        let Some(bucket) = cache.buckets.get_mut(p.bucket()) else {
            return (self.lookup_fields(p.table, &p.fields), NO_MASK);
        };
        let live = |e: &CacheEntry| e.classifier == self.id;
        for e in &bucket.0 {
            if live(e) && e.table == p.table && same(&e.fields, &p.fields) {
                cache.hits += 1;
                return (e.flow.map(|i| i as usize), e.mask);
            }
        }
        let (found, mask) = match cache.mega.lookup(self.id, p) {
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
        // An empty or stale place first; else the one a hash bit picks.
        let way = match (live(&bucket.0[0]), live(&bucket.0[1])) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => (p.hash >> 63) as usize,
        };
        bucket.0[way] = CacheEntry {
            classifier: self.id,
            table: p.table,
            mask,
            fields: p.fields,
            flow: found.and_then(|i| u32::try_from(i).ok()),
        };
        (found, mask)
    }

    /// This build's id (what cached answers are tied to).
    pub fn id(&self) -> u64 {
        self.id
    }

    fn lookup_fields(&self, table: u8, fields: &Fields) -> Option<usize> {
        self.lookup_wildcards(table, fields, &mut [0; LEN])
    }

    /// The lookup, adding to `seen` the mask of every subtable it looked
    /// in: any packet whose fields agree with these under `seen` gets the
    /// same answer (the megaflow of the answer).
    fn lookup_wildcards(&self, table: u8, fields: &Fields, seen: &mut Fields) -> Option<usize> {
        let t = self.tables.get(usize::from(table))?;
        let mut found: Option<(u16, usize)> = None;
        for s in &t.subtables {
            if found.is_some_and(|(p, _)| s.max_priority < p) {
                break;
            }
            let mut absent = false;
            for (m, set) in s.stages.iter().flatten() {
                let masked: Fields = std::array::from_fn(|i| fields[i] & m[i]);
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

        /// The classifier, and the classifier behind its caches (exact
        /// match, and megaflow once the exact entries are gone), decide
        /// as the linear scan does: random flow lists (overlapping
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
            let mut cache = FlowCache::default();
            for round in 0..2 {
                let c = Classifier::new(&flows);
                // Each packet three times: a miss, then (mostly) an exact
                // hit, then with the exact entries gone, the megaflow
                // cache's answer (or a miss).
                for (pass, (port, key)) in packets.iter().chain(&packets).chain(&packets).enumerate() {
                    if pass == 2 * packets.len() {
                        cache.forget_exact();
                    }
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
