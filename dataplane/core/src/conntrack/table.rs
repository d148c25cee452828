//! The connection table every worker shares.
//!
//! * **Index**: one-cache-line buckets of seven (tag, entry) pairs, each
//!   connection indexed twice, under its original key and under the
//!   reversed one, so either direction finds it in one line; a key whose
//!   home bucket is full goes to one of the next three, which a lookup reads
//!   only when keys passed through the home bucket (rare: about two keys
//!   per bucket when the table is full). Readers never wait: a bucket's sequence word tells
//!   them when a writer was inside, and they read again. Writers (new
//!   connections, expiry) take the buckets they change, in index order, by
//!   setting that word odd.
//! * **Connections**: a fixed slab, allocated once; free slots on a
//!   lock-free stack. Each connection has its own small lock, held only
//!   while one packet updates it: the two directions of a connection may
//!   arrive on two workers at once. There is no table-wide lock.
//! * **Bounded**: at most `max_connections`; when full, a new connection is
//!   refused and counted, and established ones are never disturbed.
//! * **Per-worker cache**: a [`ConnCache`] remembers, per worker, which
//!   slab slot the keys it saw last live in. A hit goes straight to the
//!   connection (its key compared under its lock) and never touches the
//!   index, whose lines for a million connections spread over hundreds of
//!   megabytes: a TLB miss each, and under virtualisation a two-level
//!   page walk. A stale entry only costs a miss.
//! * **Time**: the control thread drives the table's clock (seconds) and
//!   sweeps a slice of the slab at a time, expiring what outlived its
//!   state's timeout; workers never read the time.
use super::tcp::{Dir, TcpConn, TcpState};
use cpu::HugeSlice;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// What identifies a connection, in its original direction: zone (one per
/// network), IP protocol, addresses (IPv4 in the first four bytes) and
/// ports (ICMP: the echo identifier both ways).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConnKey {
    pub zone: u16,
    /// IPv6 (else IPv4, in the first four bytes of the addresses).
    pub v6: bool,
    pub proto: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
}

impl ConnKey {
    /// The key of the other direction.
    pub fn reverse(&self) -> ConnKey {
        ConnKey {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            ..*self
        }
    }

    #[inline]
    fn hash(&self) -> u64 {
        // Five 64-bit words, each mixed in with a multiply (FxHash's step),
        // then a final avalanche: a handful of cycles, where hashing byte
        // by byte cost more than the rest of a lookup. Good enough for a
        // table whose keys an attacker only partly controls: a bucket path
        // that fills refuses new connections, counted.
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let word = |b: &[u8; 16], half: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[half * 8..half * 8 + 8]);
            u64::from_le_bytes(w)
        };
        let head = u64::from(self.zone)
            | u64::from(self.proto) << 16
            | u64::from(self.sport) << 24
            | u64::from(self.dport) << 40
            | u64::from(self.v6) << 56;
        let mut h = 0u64;
        for w in [
            head,
            word(&self.src, 0),
            word(&self.src, 1),
            word(&self.dst, 0),
            word(&self.dst, 1),
        ] {
            h = (h.rotate_left(5) ^ w).wrapping_mul(K);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 33)
    }
}

/// A connection's protocol state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    Tcp(TcpConn),
    /// UDP, and anything else tracked by addresses and ports alone.
    Udp {
        replied: bool,
    },
    /// ICMP or ICMPv6 echo.
    Icmp {
        replied: bool,
    },
}

impl ConnState {
    /// Seconds without traffic after which the connection expires.
    pub fn timeout(&self, t: &Timeouts) -> u32 {
        match self {
            ConnState::Tcp(c) => t.tcp(c.state()),
            ConnState::Udp { replied: false } => t.udp_first,
            ConnState::Udp { replied: true } => t.udp_multiple,
            ConnState::Icmp { replied: false } => t.icmp_first,
            ConnState::Icmp { replied: true } => t.icmp_reply,
        }
    }

    /// Replies are expected (`ct_state=+est` for them).
    pub fn is_established(&self) -> bool {
        match self {
            ConnState::Tcp(c) => c.state().is_established(),
            ConnState::Udp { replied } | ConnState::Icmp { replied } => *replied,
        }
    }
}

/// Per-state timeouts in seconds; the defaults are Open vSwitch's
/// (`tcp_closing` covers FIN_WAIT, CLOSE_WAIT and LAST_ACK). As the
/// config's `[conntrack.timeouts]`, where a key left out keeps its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    pub tcp_syn_sent: u32,
    pub tcp_syn_recv: u32,
    pub tcp_established: u32,
    pub tcp_closing: u32,
    pub tcp_time_wait: u32,
    pub tcp_closed: u32,
    pub udp_first: u32,
    pub udp_multiple: u32,
    pub icmp_first: u32,
    pub icmp_reply: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_syn_sent: TcpState::SynSent.default_timeout_secs(),
            tcp_syn_recv: TcpState::SynRecv.default_timeout_secs(),
            tcp_established: TcpState::Established.default_timeout_secs(),
            tcp_closing: TcpState::FinWait.default_timeout_secs(),
            tcp_time_wait: TcpState::TimeWait.default_timeout_secs(),
            tcp_closed: TcpState::Closed.default_timeout_secs(),
            udp_first: 60,
            udp_multiple: 30,
            icmp_first: 60,
            icmp_reply: 30,
        }
    }
}

impl Timeouts {
    /// Every timeout with its name, for checking and messages.
    pub fn named(&self) -> [(&'static str, u32); 10] {
        [
            ("tcp_syn_sent", self.tcp_syn_sent),
            ("tcp_syn_recv", self.tcp_syn_recv),
            ("tcp_established", self.tcp_established),
            ("tcp_closing", self.tcp_closing),
            ("tcp_time_wait", self.tcp_time_wait),
            ("tcp_closed", self.tcp_closed),
            ("udp_first", self.udp_first),
            ("udp_multiple", self.udp_multiple),
            ("icmp_first", self.icmp_first),
            ("icmp_reply", self.icmp_reply),
        ]
    }

    fn tcp(&self, s: TcpState) -> u32 {
        match s {
            TcpState::SynSent => self.tcp_syn_sent,
            TcpState::SynRecv => self.tcp_syn_recv,
            TcpState::Established => self.tcp_established,
            TcpState::FinWait | TcpState::CloseWait | TcpState::LastAck => self.tcp_closing,
            TcpState::TimeWait => self.tcp_time_wait,
            TcpState::Closed => self.tcp_closed,
        }
    }
}

/// A tracked connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    /// The key of its first packet.
    pub key: ConnKey,
    pub state: ConnState,
    /// The table's clock at its last packet.
    pub last_seen: u32,
    /// OVS's `ct_mark`: set by `ct(commit,exec(...))` flows, 0 at first.
    pub mark: u32,
}

/// A key's place in one table's index (from [`ConnTable::slot`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtSlot {
    bucket: u32,
    tag: u32,
}

/// A worker's cache of where the connections it saw last live: direct
/// mapped by a key's hash, each entry the key's tag and its index entry
/// (slab slot and direction). Small enough to stay in the worker's L2 and
/// TLB. Never trusted: a hit is checked against the connection's key.
pub struct ConnCache {
    entries: Box<[u64]>,
}

impl ConnCache {
    /// Entries (a power of two): 8,192 is 64 KiB, enough for the busy
    /// connections of a burst stream without crowding the worker's L2.
    pub const ENTRIES: usize = 8192;

    pub fn new() -> ConnCache {
        ConnCache {
            entries: vec![0; Self::ENTRIES].into_boxed_slice(),
        }
    }

    fn index(s: CtSlot) -> usize {
        s.bucket as usize & (Self::ENTRIES - 1)
    }

    /// The index entry cached for `s` (tag checked), if any.
    #[inline]
    fn get(&self, s: CtSlot) -> Option<u32> {
        let e = *self.entries.get(Self::index(s))?;
        (e >> 32 == u64::from(s.tag)).then_some(e as u32)
    }

    #[inline]
    fn put(&mut self, s: CtSlot, entry: u32) {
        if let Some(e) = self.entries.get_mut(Self::index(s)) {
            *e = u64::from(s.tag) << 32 | u64::from(entry);
        }
    }
}

impl Default for ConnCache {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ConnCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let used = self.entries.iter().filter(|&&e| e != 0).count();
        f.debug_struct("ConnCache").field("used", &used).finish()
    }
}

/// Why a connection could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    /// `max_connections` reached, or the key's bucket is full.
    #[error("connection table full")]
    Full,
    /// Another worker added it first: look it up again.
    #[error("connection already tracked")]
    Exists,
    /// The packet cannot open a connection (not a SYN, an echo reply, an
    /// ICMP error).
    #[error("this packet opens no connection")]
    NotNew,
}

const WAYS: usize = 7;
/// Buckets after its home where a key may be kept when its home is full.
const PROBE: usize = 3;
/// Buckets a writer of one connection may touch: both keys' probe paths.
const HELD: usize = 2 * (PROBE + 1);
/// An empty index slot's tag.
const NO_TAG: u32 = 0;
const NIL: u32 = u32::MAX;

/// One cache line of the index.
#[repr(align(64))]
#[derive(Default)]
struct Bucket {
    /// Odd while a writer is inside.
    seq: AtomicU32,
    /// Hash tags (never 0 for a used slot).
    tags: [AtomicU32; WAYS],
    /// `slab index << 1 | direction` (1: the reversed key).
    entries: [AtomicU32; WAYS],
    /// Keys kept past this bucket whose home is this one or one before it
    /// (their probe path runs through here): a lookup goes on past a
    /// bucket only while this is not 0.
    overflow: AtomicU32,
}

/// Held while a writer is inside a bucket; leaving makes the word even.
struct BucketWrite<'a>(&'a Bucket);

impl Drop for BucketWrite<'_> {
    fn drop(&mut self) {
        self.0.seq.fetch_add(1, Ordering::Release);
    }
}

impl Bucket {
    fn write(&self) -> BucketWrite<'_> {
        loop {
            let s = self.seq.load(Ordering::Relaxed);
            if s & 1 == 0
                && self
                    .seq
                    .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return BucketWrite(self);
            }
            std::hint::spin_loop();
        }
    }

    /// The entries whose tag is `tag`, as one consistent read, and
    /// whether some of this bucket's keys are in the next one.
    fn candidates(&self, tag: u32, out: &mut [u32; WAYS]) -> (usize, bool) {
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let mut n = 0;
            for (t, e) in self.tags.iter().zip(&self.entries) {
                if t.load(Ordering::Relaxed) == tag {
                    out[n] = e.load(Ordering::Relaxed);
                    n += 1;
                }
            }
            let overflow = self.overflow.load(Ordering::Relaxed) != 0;
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return (n, overflow);
            }
        }
    }

    fn free_way(&self, skip: Option<usize>) -> Option<usize> {
        self.tags
            .iter()
            .enumerate()
            .position(|(i, t)| Some(i) != skip && t.load(Ordering::Relaxed) == NO_TAG)
    }
}

/// Counters of the table (all since it was made).
#[derive(Debug, Default)]
pub struct TableCounters {
    pub created: AtomicU64,
    pub expired: AtomicU64,
    /// New connections refused because the table or a bucket was full.
    pub refused_full: AtomicU64,
}

/// The shared connection table.
pub struct ConnTable {
    /// Index and slab on huge pages: every packet touches a random bucket
    /// and a random slot of tables of hundreds of megabytes.
    buckets: HugeSlice<Bucket>,
    slab: HugeSlice<Mutex<Option<Conn>>>,
    /// Free slab slots: a stack, its head `index | tag << 32` (the tag
    /// defeats ABA), `next` links per slot.
    free_head: AtomicU64,
    free_next: HugeSlice<AtomicU32>,
    live: AtomicUsize,
    max: usize,
    clock: AtomicU32,
    /// Where the next sweep starts.
    sweep_at: AtomicUsize,
    pub timeouts: Timeouts,
    pub counters: TableCounters,
}

impl std::fmt::Debug for ConnTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnTable")
            .field("connections", &self.len())
            .field("capacity", &self.max)
            .field("buckets", &self.buckets.len())
            .finish()
    }
}

fn lock(m: &Mutex<Option<Conn>>) -> MutexGuard<'_, Option<Conn>> {
    // A worker that panicked while holding one leaves valid data behind.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ConnTable {
    /// A table for `max_connections` (at least 1): a bucket per connection
    /// (two keys each, seven ways: 64 bytes of index per connection).
    pub fn new(max_connections: usize, timeouts: Timeouts) -> ConnTable {
        let max = max_connections.clamp(1, (u32::MAX >> 2) as usize);
        Self::with_buckets(max, max.next_power_of_two(), timeouts)
    }

    /// With `nbuckets` index buckets (a power of two, at least 2).
    fn with_buckets(max: usize, nbuckets: usize, timeouts: Timeouts) -> ConnTable {
        let max = max.clamp(1, (u32::MAX >> 2) as usize);
        let nbuckets = nbuckets.next_power_of_two().max(2);
        let free_next = HugeSlice::new(max, |i| {
            AtomicU32::new(if i + 1 < max { i as u32 + 1 } else { NIL })
        });
        ConnTable {
            buckets: HugeSlice::new(nbuckets, |_| Bucket::default()),
            slab: HugeSlice::new(max, |_| Mutex::new(None)),
            free_head: AtomicU64::new(0),
            free_next,
            live: AtomicUsize::new(0),
            max,
            clock: AtomicU32::new(0),
            sweep_at: AtomicUsize::new(0),
            timeouts,
            counters: TableCounters::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.max
    }

    /// Memory the table holds per connection it can track: its slab slot,
    /// its share of the index, its free-list link (allocated up front).
    pub fn bytes_per_connection(&self) -> usize {
        let index = self.buckets.len() * std::mem::size_of::<Bucket>();
        std::mem::size_of::<Mutex<Option<Conn>>>()
            + index.div_ceil(self.max)
            + std::mem::size_of::<AtomicU32>()
    }

    /// Connections tracked now.
    pub fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The table's clock, in seconds (set by the control thread).
    pub fn now(&self) -> u32 {
        self.clock.load(Ordering::Relaxed)
    }

    pub fn set_now(&self, secs: u32) {
        self.clock.store(secs, Ordering::Relaxed);
    }

    #[inline]
    fn place(&self, key: &ConnKey) -> (usize, u32) {
        let h = key.hash();
        let b = (h as usize) & (self.buckets.len() - 1);
        // Never NO_TAG.
        let tag = ((h >> 32) as u32) | 1;
        (b, tag)
    }

    /// Where `key` lives in the index: hash once per packet, then
    /// [`prefetch`](Self::prefetch) a whole burst's before looking any up.
    #[inline]
    pub fn slot(&self, key: &ConnKey) -> CtSlot {
        let (b, tag) = self.place(key);
        CtSlot {
            bucket: b as u32,
            tag,
        }
    }

    /// Hints the CPU to fetch `s`'s index bucket.
    #[inline]
    pub fn prefetch(&self, s: CtSlot) {
        if let Some(b) = self.buckets.get(s.bucket as usize) {
            cpu::prefetch(b);
        }
    }

    /// Hints the CPU to fetch what a lookup of `s` through `cache` reads
    /// first: the connection when the cache knows it, else the bucket.
    #[inline]
    pub fn prefetch_cached(&self, cache: &ConnCache, s: CtSlot) {
        match cache.get(s).and_then(|e| self.slab.get((e >> 1) as usize)) {
            Some(conn) => cpu::prefetch(conn),
            None => self.prefetch(s),
        }
    }

    /// The second step of a burst's lookups, once `s`'s bucket has had time
    /// to arrive ([`prefetch_cached`](Self::prefetch_cached) asked for it):
    /// prefetches the connection its first key with `s`'s tag points to,
    /// so the two memory accesses of a lookup overlap across the burst
    /// instead of following each other per packet. Nothing to do when the
    /// cache knew the connection (prefetched already).
    #[inline]
    pub fn prefetch_conn(&self, cache: &ConnCache, s: CtSlot) {
        if cache.get(s).is_some() {
            return;
        }
        let b = s.bucket as usize & (self.buckets.len() - 1);
        let mut found = [0u32; WAYS];
        let (n, _) = self.buckets[b].candidates(s.tag, &mut found);
        if n > 0 {
            if let Some(conn) = self.slab.get((found[0] >> 1) as usize) {
                cpu::prefetch(conn);
            }
        }
    }

    /// Runs `f` on the connection `key` belongs to (in either direction),
    /// with the direction `key` is, under the connection's lock; its
    /// `last_seen` is brought to now first. `None`: not tracked.
    pub fn with_conn<R>(&self, key: &ConnKey, f: impl FnOnce(Dir, &mut Conn) -> R) -> Option<R> {
        self.find(key, |dir, c| {
            c.last_seen = self.now();
            f(dir, c)
        })
    }

    /// Whether `key` is tracked (in either direction); touches nothing.
    pub fn contains(&self, key: &ConnKey) -> bool {
        self.find(key, |_, _| ()).is_some()
    }

    pub(super) fn find<R>(&self, key: &ConnKey, f: impl FnOnce(Dir, &mut Conn) -> R) -> Option<R> {
        self.find_at(self.slot(key), key, f)
    }

    /// [`with_conn`](Self::with_conn) for a key already placed.
    pub(super) fn find_at<R>(
        &self,
        slot: CtSlot,
        key: &ConnKey,
        f: impl FnOnce(Dir, &mut Conn) -> R,
    ) -> Option<R> {
        self.find_cached(None, slot, key, f)
    }

    /// The connection of index entry `e` (slab slot and direction), locked,
    /// if it is `key`'s.
    #[inline(always)]
    fn lock_entry(&self, e: u32, key: &ConnKey) -> Option<(Dir, MutexGuard<'_, Option<Conn>>)> {
        let dir = if e & 1 == 0 {
            Dir::Original
        } else {
            Dir::Reply
        };
        let g = lock(self.slab.get((e >> 1) as usize)?);
        let matches = g.as_ref().is_some_and(|c| match dir {
            Dir::Original => c.key == *key,
            Dir::Reply => c.key.reverse() == *key,
        });
        matches.then_some((dir, g))
    }

    /// [`find_at`](Self::find_at) through a worker's `cache`: a hit skips
    /// the index; what the index finds is remembered.
    #[inline]
    pub(super) fn find_cached<R>(
        &self,
        mut cache: Option<&mut ConnCache>,
        slot: CtSlot,
        key: &ConnKey,
        f: impl FnOnce(Dir, &mut Conn) -> R,
    ) -> Option<R> {
        if let Some(e) = cache.as_deref().and_then(|c| c.get(slot)) {
            if let Some((dir, mut g)) = self.lock_entry(e, key) {
                return g.as_mut().map(|c| f(dir, c));
            }
        }
        let (b, tag) = (slot.bucket as usize & (self.buckets.len() - 1), slot.tag);
        for d in 0..=PROBE {
            let bucket = self.at(b, d);
            let mut found = [0u32; WAYS];
            let (n, overflow) = self.buckets[bucket].candidates(tag, &mut found);
            for &e in &found[..n] {
                if let Some((dir, mut g)) = self.lock_entry(e, key) {
                    if let Some(c) = cache.as_deref_mut() {
                        c.put(slot, e);
                    }
                    return g.as_mut().map(|c| f(dir, c));
                }
            }
            if !overflow {
                break;
            }
        }
        None
    }

    /// The bucket `d` after `b`.
    fn at(&self, b: usize, d: usize) -> usize {
        (b + d) & (self.buckets.len() - 1)
    }

    /// The buckets a connection's two keys may be in, sorted, unique.
    fn buckets_of(&self, b0: usize, b1: usize) -> ([usize; HELD], usize) {
        let mut all: [usize; HELD] =
            std::array::from_fn(|i| self.at(if i <= PROBE { b0 } else { b1 }, i % (PROBE + 1)));
        all.sort_unstable();
        let mut n = 0;
        for i in 0..HELD {
            if i == 0 || all[i] != all[n - 1] {
                all[n] = all[i];
                n += 1;
            }
        }
        (all, n)
    }

    /// Starts tracking `state` under `key` (its original direction).
    pub fn insert(&self, key: ConnKey, state: ConnState) -> Result<(), InsertError> {
        self.insert_at(self.slot(&key), key, state)
    }

    /// [`insert`](Self::insert) for a key already placed (`slot` is
    /// `self.slot(&key)`), so a packet's key is hashed once.
    pub(super) fn insert_at(
        &self,
        slot: CtSlot,
        key: ConnKey,
        state: ConnState,
    ) -> Result<(), InsertError> {
        if self.live.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.live.fetch_sub(1, Ordering::Relaxed);
            if self.contains(&key) {
                return Err(InsertError::Exists);
            }
            self.counters.refused_full.fetch_add(1, Ordering::Relaxed);
            return Err(InsertError::Full);
        }
        let Some(idx) = self.pop_free() else {
            self.live.fetch_sub(1, Ordering::Relaxed);
            self.counters.refused_full.fetch_add(1, Ordering::Relaxed);
            return Err(InsertError::Full);
        };
        let undo = |t: &ConnTable| {
            t.push_free(idx);
            t.live.fetch_sub(1, Ordering::Relaxed);
        };
        let rev = key.reverse();
        let (b0, t0) = (slot.bucket as usize & (self.buckets.len() - 1), slot.tag);
        let (b1, t1) = self.place(&rev);
        let (held, n) = self.buckets_of(b0, b1);
        let guards: [Option<BucketWrite<'_>>; HELD] =
            std::array::from_fn(|i| (i < n).then(|| self.buckets[held[i]].write()));
        // Under the buckets' locks: nobody else can add this key now.
        if self.indexed(b0, t0, &key) || self.indexed(b1, t1, &rev) {
            drop(guards);
            undo(self);
            return Err(InsertError::Exists);
        }
        // Home bucket, else the first of the next ones with room.
        let way = |b: usize, taken: Option<(usize, usize)>| {
            (0..=PROBE).find_map(|d| {
                let bk = self.at(b, d);
                let skip = taken.filter(|&(tb, _)| tb == bk).map(|(_, w)| w);
                self.buckets[bk].free_way(skip).map(|w| (bk, w))
            })
        };
        let w0 = way(b0, None);
        let w1 = way(b1, w0);
        let (h0, h1) = (b0, b1);
        let (Some((b0, s0)), Some((b1, s1))) = (w0, w1) else {
            drop(guards);
            undo(self);
            self.counters.refused_full.fetch_add(1, Ordering::Relaxed);
            return Err(InsertError::Full);
        };
        // The slot is filled while the buckets are held, so a second insert
        // of the key sees it; a reader that finds the index first meets an
        // empty slot and misses. Sweeps and flushes skip empty slots, so
        // nothing frees a slot an insert still holds.
        *lock(&self.slab[idx as usize]) = Some(Conn {
            key,
            state,
            last_seen: self.now(),
            mark: 0,
        });
        for (home, b, s, t, dir) in [(h0, b0, s0, t0, 0), (h1, b1, s1, t1, 1)] {
            self.buckets[b].entries[s].store(idx << 1 | dir, Ordering::Relaxed);
            self.buckets[b].tags[s].store(t, Ordering::Relaxed);
            self.pass_through(home, b, true);
        }
        drop(guards);
        self.counters.created.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// `key` is in bucket `b` or its overflow already (checked under the
    /// buckets' locks).
    fn indexed(&self, b: usize, tag: u32, key: &ConnKey) -> bool {
        (0..=PROBE).any(|d| self.indexed_in(self.at(b, d), tag, key))
    }

    /// A key homed at `home` and kept in `kept` passes through the buckets
    /// from `home` up to `kept` (excluded): count it there, or no more.
    fn pass_through(&self, home: usize, kept: usize, add: bool) {
        let mut b = home;
        while b != kept {
            let o = &self.buckets[b].overflow;
            if add {
                o.fetch_add(1, Ordering::Relaxed);
            } else {
                o.fetch_sub(1, Ordering::Relaxed);
            }
            b = self.at(b, 1);
        }
    }

    fn indexed_in(&self, b: usize, tag: u32, key: &ConnKey) -> bool {
        let bk = &self.buckets[b];
        bk.tags.iter().zip(&bk.entries).any(|(t, e)| {
            if t.load(Ordering::Relaxed) != tag {
                return false;
            }
            let e = e.load(Ordering::Relaxed);
            let g = lock(&self.slab[(e >> 1) as usize]);
            g.as_ref().is_some_and(|c| {
                if e & 1 == 0 {
                    c.key == *key
                } else {
                    c.key.reverse() == *key
                }
            })
        })
    }

    /// Removes the connection in slot `idx` if `expired` says so, under its
    /// lock; returns whether it went.
    fn remove_if(&self, idx: u32, expired: impl FnOnce(&Conn) -> bool) -> bool {
        let key = {
            let mut g = lock(&self.slab[idx as usize]);
            match g.as_ref() {
                Some(c) if expired(c) => {
                    let k = c.key;
                    *g = None;
                    k
                }
                _ => return false,
            }
        };
        // Unindex, then free the slot: a reader that found the old index
        // meets an empty or different connection and misses.
        let (b0, _) = self.place(&key);
        let (b1, _) = self.place(&key.reverse());
        let (held, n) = self.buckets_of(b0, b1);
        {
            let _guards: [Option<BucketWrite<'_>>; HELD] =
                std::array::from_fn(|i| (i < n).then(|| self.buckets[held[i]].write()));
            for &b in &held[..n] {
                let bk = &self.buckets[b];
                for (t, e) in bk.tags.iter().zip(&bk.entries) {
                    let e = e.load(Ordering::Relaxed);
                    if t.load(Ordering::Relaxed) != NO_TAG && e >> 1 == idx {
                        t.store(NO_TAG, Ordering::Relaxed);
                        let home = if e & 1 == 0 { b0 } else { b1 };
                        self.pass_through(home, b, false);
                    }
                }
            }
        }
        self.push_free(idx);
        self.live.fetch_sub(1, Ordering::Relaxed);
        true
    }

    /// Expires what outlived its timeout in the next `budget` slots of the
    /// slab (round robin, so a sweep never holds anything long); returns how
    /// many connections went.
    pub fn sweep(&self, budget: usize) -> usize {
        let now = self.now();
        let start = self.sweep_at.fetch_add(budget, Ordering::Relaxed);
        let mut gone = 0;
        for i in 0..budget.min(self.max) {
            let idx = ((start + i) % self.max) as u32;
            if self.remove_if(idx, |c| {
                now.wrapping_sub(c.last_seen) > c.state.timeout(&self.timeouts)
            }) {
                gone += 1;
            }
        }
        self.counters
            .expired
            .fetch_add(gone as u64, Ordering::Relaxed);
        gone
    }

    /// Removes every connection `gone` says should go; returns how many
    /// (control path: walks the slab).
    pub fn remove_where(&self, mut gone: impl FnMut(&Conn) -> bool) -> usize {
        (0..self.max as u32)
            .filter(|&i| self.remove_if(i, &mut gone))
            .count()
    }

    /// Removes every connection (of `zone`, if given); returns how many.
    pub fn flush(&self, zone: Option<u16>) -> usize {
        self.remove_where(|c| zone.is_none_or(|z| c.key.zone == z))
    }

    /// A copy of every connection (of `zone`, if given), for dumps and
    /// statistics (control path: walks the slab).
    pub fn snapshot(&self, zone: Option<u16>) -> Vec<Conn> {
        self.slab
            .iter()
            .filter_map(|s| lock(s).clone())
            .filter(|c| zone.is_none_or(|z| c.key.zone == z))
            .collect()
    }

    fn pop_free(&self) -> Option<u32> {
        let mut head = self.free_head.load(Ordering::Acquire);
        loop {
            let idx = head as u32;
            if idx == NIL {
                return None;
            }
            let next = self.free_next[idx as usize].load(Ordering::Relaxed);
            let new = u64::from(next) | ((head >> 32).wrapping_add(1) << 32);
            match self.free_head.compare_exchange_weak(
                head,
                new,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(idx),
                Err(h) => head = h,
            }
        }
    }

    fn push_free(&self, idx: u32) {
        let mut head = self.free_head.load(Ordering::Acquire);
        loop {
            self.free_next[idx as usize].store(head as u32, Ordering::Relaxed);
            let new = u64::from(idx) | ((head >> 32).wrapping_add(1) << 32);
            match self.free_head.compare_exchange_weak(
                head,
                new,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::sync::Arc;

    fn key(zone: u16, n: u16) -> ConnKey {
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src[..4].copy_from_slice(&[10, 0, (n >> 8) as u8, n as u8]);
        dst[..4].copy_from_slice(&[10, 1, 0, 1]);
        ConnKey {
            zone,
            v6: false,
            proto: 17,
            src,
            dst,
            sport: 1000 + n,
            dport: 53,
        }
    }

    fn udp() -> ConnState {
        ConnState::Udp { replied: false }
    }

    #[test]
    fn both_directions_find_one_connection() {
        let t = ConnTable::new(16, Timeouts::default());
        let k = key(1, 7);
        assert_eq!(t.with_conn(&k, |_, _| ()), None);
        t.insert(k, udp()).unwrap();
        assert_eq!(t.insert(k, udp()), Err(InsertError::Exists));
        assert_eq!(
            t.insert(k.reverse(), udp()),
            Err(InsertError::Exists),
            "the reply's key is taken too"
        );
        assert_eq!(t.with_conn(&k, |d, _| d), Some(Dir::Original));
        let replied = t.with_conn(&k.reverse(), |d, c| {
            c.state = ConnState::Udp { replied: true };
            d
        });
        assert_eq!(replied, Some(Dir::Reply));
        assert!(t.with_conn(&k, |_, c| c.state.is_established()).unwrap());
        assert_eq!(t.with_conn(&key(2, 7), |_, _| ()), None, "zones are apart");
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_full_table_refuses_new_connections_and_keeps_the_others() {
        let t = ConnTable::new(4, Timeouts::default());
        for n in 0..4 {
            t.insert(key(0, n), udp()).unwrap();
        }
        assert_eq!(t.insert(key(0, 99), udp()), Err(InsertError::Full));
        assert_eq!(t.counters.refused_full.load(Ordering::Relaxed), 1);
        for n in 0..4 {
            assert!(t.with_conn(&key(0, n).reverse(), |_, _| ()).is_some());
        }
        assert_eq!(t.flush(None), 4);
        assert!(t.is_empty());
        for n in 10..14 {
            t.insert(key(0, n), udp()).unwrap();
        }
    }

    #[test]
    fn connections_expire_by_their_state_timeout() {
        let t = ConnTable::new(8, Timeouts::default());
        t.insert(key(0, 1), udp()).unwrap();
        t.insert(key(0, 2), udp()).unwrap();
        t.with_conn(&key(0, 2).reverse(), |_, c| {
            c.state = ConnState::Udp { replied: true }
        });
        t.set_now(31);
        assert_eq!(t.sweep(8), 1, "a replied UDP flow lives 30 s");
        t.set_now(61);
        assert_eq!(t.sweep(8), 1, "a one-way one 60 s");
        assert!(t.is_empty());
        assert_eq!(t.counters.expired.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn flush_and_snapshot_by_zone() {
        let t = ConnTable::new(8, Timeouts::default());
        for (z, n) in [(1, 1), (1, 2), (2, 1)] {
            t.insert(key(z, n), udp()).unwrap();
        }
        assert_eq!(t.snapshot(Some(1)).len(), 2);
        assert_eq!(t.flush(Some(1)), 2);
        assert_eq!(
            t.snapshot(None).iter().map(|c| c.key).collect::<Vec<_>>(),
            [key(2, 1)]
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u16),
        /// Zone, key, reply direction, through the worker cache.
        Touch(u16, u16, bool, bool),
        Advance(u32),
        Sweep,
        Flush(Option<u16>),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        let k = (0u16..3, 0u16..24);
        proptest::collection::vec(
            prop_oneof![
                4 => k.clone().prop_map(|(z, n)| Op::Insert(z, n)),
                4 => (k, any::<bool>(), any::<bool>())
                    .prop_map(|((z, n), r, c)| Op::Touch(z, n, r, c)),
                2 => (0u32..40).prop_map(Op::Advance),
                1 => Just(Op::Sweep),
                1 => proptest::option::of(0u16..3).prop_map(Op::Flush),
            ],
            1..200,
        )
    }

    proptest! {
        /// The table against a map of the same connections: lookups in
        /// either direction, refusals when full, expiry and flushes agree;
        /// lookups through a worker's cache, which outlives the connections
        /// it remembers (their slots reused by others), agree too.
        #[test]
        fn table_equals_a_map(ops in ops(), cap in 1usize..40, nbuckets in prop_oneof![Just(2usize), Just(4), Just(64)]) {
            // Few buckets: keys overflow into the next bucket, and come back.
            let t = ConnTable::with_buckets(cap, nbuckets, Timeouts::default());
            // original key -> (last seen, replied)
            let mut m: HashMap<ConnKey, (u32, bool)> = HashMap::new();
            let mut now = 0u32;
            let mut cache = ConnCache::new();
            let timeout = |replied: bool| if replied { 30 } else { 60 };
            for op in ops {
                match op {
                    Op::Insert(z, n) => {
                        let k = key(z, n);
                        let known = m.contains_key(&k) || m.contains_key(&k.reverse());
                        let got = t.insert(k, udp());
                        if known {
                            prop_assert_eq!(got, Err(InsertError::Exists));
                        } else if m.len() >= t.capacity() {
                            prop_assert_eq!(got, Err(InsertError::Full));
                        } else if got.is_ok() {
                            m.insert(k, (now, false));
                        } else {
                            // A full bucket: allowed, counted.
                            prop_assert_eq!(got, Err(InsertError::Full));
                        }
                    }
                    Op::Touch(z, n, reverse, cached) => {
                        let k = if reverse { key(z, n).reverse() } else { key(z, n) };
                        let want = if let Some(e) = m.get_mut(&k) {
                            e.0 = now;
                            Some(Dir::Original)
                        } else if let Some(e) = m.get_mut(&k.reverse()) {
                            e.0 = now;
                            e.1 = true;
                            Some(Dir::Reply)
                        } else {
                            None
                        };
                        let touch = |d, c: &mut Conn| {
                            c.last_seen = now;
                            if d == Dir::Reply {
                                c.state = ConnState::Udp { replied: true };
                            }
                            d
                        };
                        let got = if cached {
                            t.find_cached(Some(&mut cache), t.slot(&k), &k, touch)
                        } else {
                            t.find(&k, touch)
                        };
                        prop_assert_eq!(got, want);
                    }
                    Op::Advance(s) => {
                        now += s;
                        t.set_now(now);
                    }
                    Op::Sweep => {
                        let before = m.len();
                        m.retain(|_, (seen, replied)| now - *seen <= timeout(*replied));
                        prop_assert_eq!(t.sweep(t.capacity()), before - m.len());
                    }
                    Op::Flush(zone) => {
                        let before = m.len();
                        m.retain(|k, _| zone.is_some_and(|z| k.zone != z));
                        prop_assert_eq!(t.flush(zone), before - m.len());
                    }
                }
                prop_assert_eq!(t.len(), m.len());
            }
            let mut got: Vec<ConnKey> = t.snapshot(None).into_iter().map(|c| c.key).collect();
            let mut want: Vec<ConnKey> = m.keys().copied().collect();
            got.sort_by_key(|k| (k.zone, k.src));
            want.sort_by_key(|k| (k.zone, k.src));
            prop_assert_eq!(got, want);
        }
    }

    /// Two workers race on the same connections from both ends while the
    /// control thread sweeps and flushes: no connection is tracked twice,
    /// the count matches, and every slot comes back.
    #[test]
    fn workers_and_the_sweeper_share_the_table() {
        let t = Arc::new(ConnTable::new(512, Timeouts::default()));
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    let mut x: u32 = 0x9e37_79b9 ^ w;
                    for _ in 0..40_000 {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        let k = key((x % 2) as u16, (x >> 8) as u16 % 300);
                        // Worker 0 sees original keys, worker 1 replies.
                        let k = if w == 0 { k } else { k.reverse() };
                        if t.with_conn(&k, |_, c| c.state = ConnState::Udp { replied: true })
                            .is_none()
                        {
                            let _ = t.insert(k, udp());
                        }
                    }
                })
            })
            .collect();
        let sweeper = {
            let t = Arc::clone(&t);
            std::thread::spawn(move || {
                for i in 0..200u32 {
                    t.set_now(i);
                    t.sweep(64);
                    if i % 50 == 0 {
                        t.flush(Some(1));
                    }
                }
            })
        };
        for h in workers {
            h.join().unwrap();
        }
        sweeper.join().unwrap();
        let conns = t.snapshot(None);
        assert_eq!(conns.len(), t.len());
        let mut keys: Vec<ConnKey> = conns.iter().map(|c| c.key).collect();
        keys.extend(conns.iter().map(|c| c.key.reverse()));
        let n = keys.len();
        keys.sort_by_key(|k| (k.zone, k.src, k.dst, k.sport, k.dport));
        keys.dedup();
        assert_eq!(
            keys.len(),
            n,
            "a connection is tracked once, in one direction"
        );
        // Every lookup finds what the snapshot holds; every slot comes back.
        for c in &conns {
            assert_eq!(t.with_conn(&c.key.reverse(), |d, _| d), Some(Dir::Reply));
        }
        t.flush(None);
        assert_eq!(t.len(), 0);
        let mut free = 0;
        while t.pop_free().is_some() {
            free += 1;
        }
        assert_eq!(free, 512, "every slot is free again");
        for i in 0..512 {
            t.push_free(i);
        }
        for n in 0..512 {
            t.insert(key(3, n), udp())
                .unwrap_or_else(|e| panic!("slot {n}: {e}"));
        }
        assert_eq!(t.insert(key(3, 999), udp()), Err(InsertError::Full));
    }
}
