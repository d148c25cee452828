//! The NORMAL action's MAC-learning table (the FDB), keyed by (VLAN, MAC).
//!
//! Shared by every worker of a bridge: a fixed array of 3-way buckets, each
//! one cache line (a sequence word, three keys, three values), so a lookup
//! or a learn touches one line, and a burst prefetches one line per MAC.
//! Each bucket is a seqlock. Readers never wait: they read the sequence, the slots, the
//! sequence again, and take a change in between (a writer was in the
//! bucket) as a miss, which NORMAL handles by flooding. Writers own the
//! bucket while they change it (the sequence is odd); a worker that finds
//! another writer there skips the learn (the next frame learns), so no
//! worker ever waits for another. A (key, value) pair therefore only
//! changes as a whole: no reader can pair one MAC's key with another's port.
//! Nothing allocates after construction.
//!
//! Bounded: at most `capacity` entries; a new MAC beyond that (or in a full
//! bucket) evicts the least recently seen entry of its bucket. Aging: an entry
//! not seen for `aging` seconds reads as a miss and is removed by the control
//! thread's [`MacTable::expire`] sweep.
use crate::port::PortId;
use cpu::HugeSlice;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize, Ordering};

pub const DEFAULT_CAPACITY: usize = 65_536;
pub const DEFAULT_AGING_SECS: u32 = 300;
const WAYS: usize = 3;
const OCCUPIED: u64 = 1 << 63;
const VALID: u64 = 1 << 16;

/// Counts every change of any table that can change where a frame to a
/// known MAC goes (a MAC moved, evicted, aged out or flushed; the clock's
/// second or the aging time changed), so that a cache of decisions taken
/// from the tables ([`classify`](crate::pipeline::classify)'s) can tell in
/// one load whether what it holds may be stale. A MAC learned anew changes
/// nothing for it: until then frames to that MAC were flooded, and no
/// cache keeps a flood. Bumped after the change is written (Release), read
/// before the table is (Acquire): a decision taken after reading
/// generation `g` reflects every change counted in `g`.
static GENERATION: AtomicU32 = AtomicU32::new(1);

/// The current [`GENERATION`] of the MAC tables.
#[inline(always)]
pub fn generation() -> u32 {
    GENERATION.load(Ordering::Acquire)
}

fn changed() {
    GENERATION.fetch_add(1, Ordering::Release);
}

#[repr(C, align(64))]
struct Bucket {
    /// Even: stable; odd: a writer is changing the bucket.
    seq: AtomicU64,
    keys: [AtomicU64; WAYS],
    vals: [AtomicU64; WAYS],
}

// One cache line per bucket.
const _: () = assert!(std::mem::size_of::<Bucket>() == 64);

/// What [`MacTable::learn`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// Already known on this port and refreshed this second: no write.
    Unchanged,
    Refreshed,
    New,
    /// The MAC was known on another port: it moved.
    Moved {
        from: PortId,
    },
    /// A new entry that displaced the bucket's least recently seen one.
    Evicted,
    /// Not learned: the table is full and the bucket held nothing to evict.
    Full,
    /// Not learned: another writer was in the bucket (the next frame learns).
    Skipped,
}

/// One entry as [`MacTable::entries`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacEntry {
    pub vlan: u16,
    pub mac: u64,
    pub port: PortId,
    /// Seconds since the entry was last seen.
    pub age: u32,
}

/// A (VLAN, MAC) key with the bucket it hashes to: worked out once per
/// frame, so a burst can [`MacTable::prefetch`] every bucket it will touch
/// before it learns and looks up (DPDK's bulk lookups and VPP's
/// multi-packet loops do the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MacKey {
    /// The packed key (never 0: the occupied bit is set); 0 for "no key".
    key: u64,
    /// Index of its bucket in `MacTable::buckets`.
    slot: u32,
}

impl MacKey {
    /// No key (a placeholder where a frame has nothing to learn or look up).
    pub const NONE: MacKey = MacKey { key: 0, slot: 0 };

    #[inline(always)]
    pub fn is_none(self) -> bool {
        self.key == 0
    }

    /// The packed (VLAN, MAC) ([`pack_key`]); 0 for no key.
    #[inline(always)]
    pub fn packed(self) -> u64 {
        self.key
    }
}

/// The table's clock and aging time, read once per burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    now: u32,
    aging: u32,
}

/// A [`MacTable`] with the clock read once, for the frames of one burst
/// ([`MacTable::for_burst`]).
#[derive(Clone, Copy)]
pub struct BurstTable<'a> {
    table: &'a MacTable,
    buckets: &'a [Bucket],
    shift: u32,
    clock: Clock,
}

/// The key of `mac` in `vlan` in a table of 2^(64 - `shift`) buckets.
#[inline(always)]
fn key_in(shift: u32, vlan: u16, mac: u64) -> MacKey {
    let key = pack_key(vlan, mac);
    // Fibonacci hashing: the top bits of the product depend on every bit
    // of the key, and consecutive MACs land far apart. Two instructions,
    // where the frame's other work is a few dozen.
    MacKey {
        key,
        // shift >= 36 (at most 2^28 buckets): the slot fits in u32.
        slot: (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as u32,
    }
}

impl BurstTable<'_> {
    /// [`MacTable::key`].
    #[inline(always)]
    pub fn key(&self, vlan: u16, mac: u64) -> MacKey {
        key_in(self.shift, vlan, mac)
    }

    /// Starts loading `k`'s bucket (one cache line) without waiting.
    #[inline(always)]
    pub fn prefetch(&self, k: MacKey) {
        // No bounds check: a prefetch never faults, and every key of this
        // table names one of its buckets.
        cpu::prefetch_ptr(self.buckets.as_ptr().wrapping_add(k.slot as usize));
    }

    /// [`MacTable::lookup_key`] at the burst's clock.
    #[inline(always)]
    pub fn lookup(&self, k: MacKey) -> Option<PortId> {
        match self.buckets.get(k.slot as usize)?.read(k.key) {
            Ok(Some(v)) if fresh_at(v, self.clock) => Some(val_port(v)),
            _ => None,
        }
    }

    /// [`MacTable::learn_key`] at the burst's clock.
    #[inline(always)]
    pub fn learn(&self, k: MacKey, port: PortId) -> Learned {
        let Some(b) = self.buckets.get(k.slot as usize) else {
            return Learned::Skipped;
        };
        let now = self.clock.now;
        let new_val = pack_val(port, now);
        if b.read(k.key) == Ok(Some(new_val)) {
            return Learned::Unchanged;
        }
        let Some(s) = b.try_lock() else {
            return Learned::Skipped;
        };
        let r = self.table.learn_locked(b, k.key, new_val, now);
        b.unlock(s);
        // A new entry, or one refreshed after aging out, was a miss until
        // now: what was decided for its MAC was a flood, which no cache
        // keeps.
        if matches!(r, Learned::Moved { .. } | Learned::Evicted) {
            changed();
        }
        r
    }
}

pub struct MacTable {
    /// On huge pages.
    buckets: HugeSlice<Bucket>,
    /// 64 - log2(buckets): a key's bucket is the top bits of its hash.
    shift: u32,
    capacity: usize,
    aging: AtomicU32,
    now: AtomicU32,
    len: AtomicUsize,
    moves: AtomicU64,
    evictions: AtomicU64,
}

/// The packed (VLAN, MAC) key of the table's slots (never 0).
#[inline(always)]
pub fn pack_key(vlan: u16, mac: u64) -> u64 {
    OCCUPIED | ((vlan as u64 & 0x0fff) << 48) | (mac & 0xffff_ffff_ffff)
}

/// The (VLAN, MAC) a [`pack_key`] key holds.
pub fn unpack_key(key: u64) -> (u16, u64) {
    (((key >> 48) & 0x0fff) as u16, key & 0xffff_ffff_ffff)
}

#[inline(always)]
fn pack_val(port: PortId, seen: u32) -> u64 {
    ((seen as u64) << 32) | VALID | port.get() as u64
}

/// The port of a stored value (only ever a valid [`PortId`]).
#[inline(always)]
fn val_port(v: u64) -> PortId {
    PortId::from_index(v as usize)
}

#[inline(always)]
fn val_seen(v: u64) -> u32 {
    (v >> 32) as u32
}

/// A value that holds a port and was seen within the aging time.
#[inline(always)]
fn fresh_at(v: u64, clock: Clock) -> bool {
    v & VALID != 0 && clock.now.wrapping_sub(val_seen(v)) <= clock.aging
}

impl Bucket {
    /// The value stored for `key`, read without waiting: `None` for a miss,
    /// `Err(())` when a writer changed the bucket meanwhile.
    #[inline(always)]
    fn read(&self, key: u64) -> Result<Option<u64>, ()> {
        let s1 = self.seq.load(Ordering::Acquire);
        if s1 & 1 != 0 {
            return Err(());
        }
        let mut found = None;
        for i in 0..WAYS {
            if self.keys[i].load(Ordering::Relaxed) == key {
                found = Some(self.vals[i].load(Ordering::Relaxed));
                break;
            }
        }
        fence(Ordering::Acquire);
        if self.seq.load(Ordering::Relaxed) == s1 {
            Ok(found)
        } else {
            Err(())
        }
    }

    /// Makes the bucket this writer's, unless another writer has it.
    #[inline(always)]
    fn try_lock(&self) -> Option<u64> {
        let s = self.seq.load(Ordering::Relaxed);
        if s & 1 != 0
            || self
                .seq
                .compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        // The odd sequence is visible before any slot changes.
        fence(Ordering::Release);
        Some(s)
    }

    /// For the control thread: waits out a worker's write (a few ns).
    fn lock(&self) -> u64 {
        loop {
            if let Some(s) = self.try_lock() {
                return s;
            }
            std::hint::spin_loop();
        }
    }

    #[inline(always)]
    fn unlock(&self, s: u64) {
        self.seq.store(s + 2, Ordering::Release);
    }

    fn slot(&self, i: usize) -> (u64, u64) {
        (
            self.keys[i].load(Ordering::Relaxed),
            self.vals[i].load(Ordering::Relaxed),
        )
    }

    fn set(&self, i: usize, key: u64, val: u64) {
        self.keys[i].store(key, Ordering::Relaxed);
        self.vals[i].store(val, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for MacTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MacTable")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .field("aging_secs", &self.aging_secs())
            .finish()
    }
}

impl MacTable {
    /// A table bounded to `capacity` entries (8 to 2^28) with `aging_secs`.
    pub fn new(capacity: usize, aging_secs: u32) -> MacTable {
        // At most 2^28 entries: bucket indexes stay well within u32.
        let capacity = capacity.clamp(8, 1 << 28);
        // Twice the slots of the bound keeps buckets from filling early.
        let nbuckets = (capacity * 2).div_ceil(WAYS).next_power_of_two();
        // Huge pages where the kernel gives them: lookups land anywhere in
        // the table (see `cpu::huge`).
        let buckets = HugeSlice::new(nbuckets, |_| Bucket {
            keys: std::array::from_fn(|_| AtomicU64::new(0)),
            seq: AtomicU64::new(0),
            vals: std::array::from_fn(|_| AtomicU64::new(0)),
        });
        MacTable {
            buckets,
            shift: 64 - nbuckets.trailing_zeros(),
            capacity,
            aging: AtomicU32::new(aging_secs.max(1)),
            now: AtomicU32::new(1),
            len: AtomicUsize::new(0),
            moves: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        // A writer reserves before it inserts: the count may read one over
        // the bound for a moment.
        self.len.load(Ordering::Relaxed).min(self.capacity)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn moves(&self) -> u64 {
        self.moves.load(Ordering::Relaxed)
    }

    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    pub fn aging_secs(&self) -> u32 {
        self.aging.load(Ordering::Relaxed)
    }

    pub fn set_aging_secs(&self, secs: u32) {
        if self.aging.swap(secs.max(1), Ordering::Relaxed) != secs.max(1) {
            changed();
        }
    }

    /// The table's clock in seconds, advanced by the control thread (workers
    /// never read the time themselves).
    pub fn now(&self) -> u32 {
        self.now.load(Ordering::Relaxed)
    }

    pub fn set_now(&self, secs: u32) {
        if self.now.swap(secs.max(1), Ordering::Relaxed) != secs.max(1) {
            changed();
        }
    }

    /// The buckets in use.
    fn table(&self) -> &[Bucket] {
        &self.buckets
    }

    /// The key of `mac` in `vlan` and its bucket (no memory is touched).
    #[inline(always)]
    pub fn key(&self, vlan: u16, mac: u64) -> MacKey {
        key_in(self.shift, vlan, mac)
    }

    /// The clock and aging time, read once per burst.
    #[inline(always)]
    pub fn clock(&self) -> Clock {
        Clock {
            now: self.now(),
            aging: self.aging.load(Ordering::Relaxed),
        }
    }

    /// The table as one burst uses it: the buckets and the clock read once,
    /// so that learning and looking up frame after frame keep them in
    /// registers.
    #[inline(always)]
    pub fn for_burst(&self) -> BurstTable<'_> {
        BurstTable {
            table: self,
            buckets: &self.buckets,
            shift: self.shift,
            clock: self.clock(),
        }
    }

    #[inline(always)]
    fn fresh(&self, v: u64, now: u32) -> bool {
        fresh_at(
            v,
            Clock {
                now,
                aging: self.aging.load(Ordering::Relaxed),
            },
        )
    }

    /// The port `mac` was last seen on in `vlan`, if known and not aged out
    /// (a miss, too, while a writer changes its bucket).
    #[inline]
    pub fn lookup(&self, vlan: u16, mac: u64) -> Option<PortId> {
        self.lookup_key(self.key(vlan, mac))
    }

    /// [`Self::lookup`] of a key already worked out.
    #[inline(always)]
    pub fn lookup_key(&self, k: MacKey) -> Option<PortId> {
        self.for_burst().lookup(k)
    }

    /// Records that `mac` was seen on `port` in `vlan`. Writes only when
    /// something changed or a second passed, so steady traffic keeps the
    /// bucket's cache lines shared between workers.
    #[inline]
    pub fn learn(&self, vlan: u16, mac: u64, port: PortId) -> Learned {
        self.learn_key(self.key(vlan, mac), port)
    }

    /// [`Self::learn`] of a key already worked out.
    #[inline(always)]
    pub fn learn_key(&self, k: MacKey, port: PortId) -> Learned {
        self.for_burst().learn(k, port)
    }

    /// `learn` with the bucket held.
    #[cold]
    fn learn_locked(&self, b: &Bucket, key: u64, new_val: u64, now: u32) -> Learned {
        let port = val_port(new_val);
        let mut empty = None;
        for i in 0..WAYS {
            let (k, v) = b.slot(i);
            if k == key {
                if v == new_val {
                    return Learned::Unchanged;
                }
                b.set(i, key, new_val);
                if v & VALID != 0 && val_port(v) != port && self.fresh(v, now) {
                    self.moves.fetch_add(1, Ordering::Relaxed);
                    return Learned::Moved { from: val_port(v) };
                }
                return Learned::Refreshed;
            }
            if k == 0 && empty.is_none() {
                empty = Some(i);
            }
        }
        // Reserve a unit of the bound first: writers in other buckets race
        // for it too.
        if let Some(i) = empty {
            if self.len.fetch_add(1, Ordering::Relaxed) < self.capacity {
                b.set(i, key, new_val);
                return Learned::New;
            }
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        // Full table or full bucket: replace the bucket's stalest entry.
        let mut victim = None;
        let mut oldest_age = 0u32;
        for i in 0..WAYS {
            let (k, v) = b.slot(i);
            if k == 0 {
                continue;
            }
            let age = if v & VALID == 0 {
                u32::MAX
            } else {
                now.wrapping_sub(val_seen(v))
            };
            if victim.is_none() || age > oldest_age {
                victim = Some(i);
                oldest_age = age;
            }
        }
        let Some(i) = victim else {
            return Learned::Full;
        };
        b.set(i, key, new_val);
        self.evictions.fetch_add(1, Ordering::Relaxed);
        Learned::Evicted
    }

    fn remove_where(&self, mut pred: impl FnMut(u64, u64) -> bool) -> usize {
        let mut removed = 0;
        for b in self.table() {
            let s = b.lock();
            for i in 0..WAYS {
                let (k, v) = b.slot(i);
                if k != 0 && pred(k, v) {
                    b.set(i, 0, 0);
                    removed += 1;
                }
            }
            b.unlock(s);
        }
        self.len.fetch_sub(removed, Ordering::Relaxed);
        if removed > 0 {
            changed();
        }
        removed
    }

    /// Removes entries not seen for longer than the aging time; returns how many.
    pub fn expire(&self) -> usize {
        let now = self.now();
        self.remove_where(|_, v| !self.fresh(v, now))
    }

    /// Forgets every MAC learned on `port` (the port went away).
    pub fn flush_port(&self, port: PortId) -> usize {
        self.remove_where(|_, v| v & VALID != 0 && val_port(v) == port)
    }

    pub fn flush(&self) -> usize {
        self.remove_where(|_, _| true)
    }

    /// Every live entry, for `fdb show` (control path: allocates).
    pub fn entries(&self) -> Vec<MacEntry> {
        let now = self.now();
        let mut out = Vec::new();
        for b in self.table() {
            // Hold the bucket so the copy is consistent.
            let s = b.lock();
            let slots: [(u64, u64); WAYS] = std::array::from_fn(|i| b.slot(i));
            b.unlock(s);
            for (k, v) in slots {
                if k != 0 && self.fresh(v, now) {
                    let (vlan, mac) = unpack_key(k);
                    out.push(MacEntry {
                        vlan,
                        mac,
                        port: val_port(v),
                        age: now.wrapping_sub(val_seen(v)),
                    });
                }
            }
        }
        out.sort_by_key(|e| (e.vlan, e.mac));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn p(n: u16) -> PortId {
        PortId::new(n).unwrap()
    }

    #[test]
    fn learn_lookup_move() {
        let t = MacTable::new(1024, 300);
        assert_eq!(t.lookup(1, 0xaa), None);
        assert_eq!(t.learn(1, 0xaa, p(3)), Learned::New);
        assert_eq!(t.lookup(1, 0xaa), Some(p(3)));
        assert_eq!(t.lookup(2, 0xaa), None, "VLANs are separate");
        assert_eq!(t.learn(1, 0xaa, p(3)), Learned::Unchanged);
        assert_eq!(t.learn(1, 0xaa, p(5)), Learned::Moved { from: p(3) });
        assert_eq!(t.lookup(1, 0xaa), Some(p(5)));
        assert_eq!(t.moves(), 1);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn ages_out() {
        let t = MacTable::new(64, 10);
        t.set_now(100);
        t.learn(0, 1, p(1));
        t.set_now(110);
        assert_eq!(t.lookup(0, 1), Some(p(1)));
        t.set_now(111);
        assert_eq!(t.lookup(0, 1), None);
        assert_eq!(t.expire(), 1);
        assert!(t.is_empty());
        // Relearning an aged entry is a fresh learn, not a move.
        t.learn(0, 1, p(2));
        assert_eq!(t.moves(), 0);
    }

    #[test]
    fn bounded_with_eviction_of_stalest() {
        let t = MacTable::new(16, 300);
        for mac in 0..1000u64 {
            t.set_now(1 + mac as u32);
            t.learn(0, mac, p((mac % 7) as u16));
            assert!(t.len() <= 16);
        }
        assert_eq!(t.len(), 16);
        assert!(t.evictions() > 0);
        // The most recent MAC always survives.
        assert_eq!(t.lookup(0, 999), Some(p(999 % 7)));
    }

    #[test]
    fn flush_port_removes_only_that_port() {
        let t = MacTable::new(1024, 300);
        for mac in 0..100u64 {
            t.learn(0, mac, p((mac % 2) as u16));
        }
        assert_eq!(t.flush_port(p(1)), 50);
        assert_eq!(t.len(), 50);
        assert!((0..100u64).all(|m| t.lookup(0, m) == if m % 2 == 0 { Some(p(0)) } else { None }));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Learn { vlan: u16, mac: u64, port: u16 },
        Tick(u32),
        Expire,
        FlushPort(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0u16..4, 0u64..64, 0u16..6).prop_map(|(vlan, mac, port)| Op::Learn { vlan, mac, port }),
            2 => (0u32..5).prop_map(Op::Tick),
            1 => Just(Op::Expire),
            1 => (0u16..6).prop_map(Op::FlushPort),
        ]
    }

    proptest! {
        // Against a HashMap reference: with the bound never reached, the
        // table answers exactly as the reference for every key.
        #[test]
        fn matches_reference(ops in proptest::collection::vec(op(), 1..300)) {
            let aging = 6;
            let t = MacTable::new(4096, aging);
            let mut now = 1u32;
            t.set_now(now);
            let mut reference: HashMap<(u16, u64), (u16, u32)> = HashMap::new();
            for op in ops {
                match op {
                    Op::Learn { vlan, mac, port } => {
                        t.learn(vlan, mac, p(port));
                        reference.insert((vlan, mac), (port, now));
                    }
                    Op::Tick(d) => { now += d; t.set_now(now); }
                    Op::Expire => {
                        t.expire();
                        reference.retain(|_, (_, seen)| now - *seen <= aging);
                    }
                    Op::FlushPort(port) => {
                        t.flush_port(p(port));
                        reference.retain(|_, (q, _)| *q != port);
                    }
                }
                for vlan in 0..4u16 {
                    for mac in 0..64u64 {
                        let want = reference.get(&(vlan, mac))
                            .filter(|(_, seen)| now - *seen <= aging)
                            .map(|(q, _)| p(*q));
                        prop_assert_eq!(t.lookup(vlan, mac), want, "vlan {} mac {}", vlan, mac);
                    }
                }
            }
        }

        // Under pressure: never more than the bound, and a hit is never stale.
        #[test]
        fn bounded_and_never_stale(learns in proptest::collection::vec((0u16..2, 0u64..500, 0u16..8), 1..2000)) {
            let t = MacTable::new(32, 300);
            let mut latest = HashMap::new();
            for (vlan, mac, port) in learns {
                t.learn(vlan, mac, p(port));
                latest.insert((vlan, mac), p(port));
                prop_assert!(t.len() <= 32);
            }
            for ((vlan, mac), port) in latest {
                if let Some(q) = t.lookup(vlan, mac) {
                    prop_assert_eq!(q, port);
                }
            }
        }
    }

    #[test]
    fn concurrent_readers_never_see_a_foreign_port() {
        // Each MAC m is only ever learned on ports m%4 or m%4+4; readers on
        // other threads must never see any other port for it.
        let t = std::sync::Arc::new(MacTable::new(64, 300));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for round in 0..20_000u64 {
                        let mac = (round * 7 + w) % 200;
                        let port = (mac % 4) as u16 + if round % 2 == 0 { 0 } else { 4 };
                        t.learn(0, mac, p(port));
                    }
                })
            })
            .collect();
        let reader = {
            let (t, stop) = (t.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut hits = 0u64;
                // At least one full pass after the writers are done, however
                // the threads get scheduled.
                loop {
                    let last = stop.load(Ordering::Acquire);
                    for mac in 0..200u64 {
                        if let Some(q) = t.lookup(0, mac).map(PortId::get) {
                            assert!(
                                q == (mac % 4) as u16 || q == (mac % 4) as u16 + 4,
                                "mac {mac} port {q}"
                            );
                            hits += 1;
                        }
                    }
                    if last {
                        break;
                    }
                }
                hits
            })
        };
        for w in writers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Release);
        assert!(reader.join().unwrap() > 0);
        assert!(t.len() <= 64);
        // One slot per key, and the count matches the slots.
        let entries = t.entries();
        let mut keys: Vec<_> = entries.iter().map(|e| (e.vlan, e.mac)).collect();
        keys.dedup();
        assert_eq!(keys.len(), entries.len(), "duplicate keys");
        assert_eq!(entries.len(), t.len());
    }
}
