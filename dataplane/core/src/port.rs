//! Switch port numbers and sets of them.
//!
//! A [`PortId`] is the switch's own number for a port (not a DPDK ethdev id:
//! a vhost-user port has none), always below [`MAX_PORTS`]. That bound is
//! part of the type, so arrays of `MAX_PORTS` entries are indexed without a
//! check or a modulo anywhere on the fast path, and a [`PortMask`] of
//! four `u64` words holds any set of ports.

/// Ports per switch (over all bridges): VMs' ports, uplinks and the
/// tunnel ports to other hosts (one per remote host) share them.
pub const MAX_PORTS: usize = 256;

/// Of them, ports that are DPDK ethdevs (`dpdk`, `internal`, `afpacket`):
/// `RTE_MAX_ETHPORTS` of Debian's DPDK build (the daemon asserts they
/// agree). vhost-user ports are not ethdevs and do not count.
pub const MAX_ETHDEV_PORTS: usize = 32;

/// Queues per port and direction (workers claim them in 64-bit masks).
pub const MAX_QUEUES: u16 = 64;

/// Words of a [`PortMask`].
const MASK_WORDS: usize = MAX_PORTS / 64;

// A port set is whole 64-bit words, and a PortId's u8 holds every number.
const _: () = assert!(MAX_PORTS.is_multiple_of(64) && MAX_PORTS <= u8::MAX as usize + 1);
// PortId::index masks with MAX_PORTS - 1.
const _: () = assert!(MAX_PORTS.is_power_of_two());

/// A switch port number, `0..MAX_PORTS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PortId(u8);

impl PortId {
    /// `None` unless `n < MAX_PORTS`.
    #[inline(always)]
    pub const fn new(n: u16) -> Option<PortId> {
        if (n as usize) < MAX_PORTS {
            Some(PortId(n as u8))
        } else {
            None
        }
    }

    /// From a number the caller only ever stored from a valid id (the MAC
    /// table's packed values): masked into range, never a panic.
    #[inline(always)]
    pub(crate) const fn from_index(i: usize) -> PortId {
        PortId((i & (MAX_PORTS - 1)) as u8)
    }

    /// The number, for logs, the API and the MAC table.
    #[inline(always)]
    pub const fn get(self) -> u16 {
        self.0 as u16
    }

    /// An index into a `[T; MAX_PORTS]`; provably in range (the mask is a
    /// no-op on a valid id), so the compiler drops the bounds check.
    #[inline(always)]
    pub const fn index(self) -> usize {
        self.0 as usize & (MAX_PORTS - 1)
    }

    /// Its word in a [`PortMask`] and its bit there.
    #[inline(always)]
    const fn word_bit(self) -> (usize, u64) {
        let i = self.index();
        ((i >> 6) & (MASK_WORDS - 1), 1u64 << (i & 63))
    }

    /// Every port id, ascending.
    pub fn all() -> impl Iterator<Item = PortId> {
        (0..MAX_PORTS).map(|n| PortId(n as u8))
    }
}

impl std::fmt::Display for PortId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A set of ports: one bit per port number, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct PortMask([u64; MASK_WORDS]);

impl PortMask {
    pub const EMPTY: PortMask = PortMask([0; MASK_WORDS]);

    #[inline(always)]
    pub fn insert(&mut self, p: PortId) {
        let (w, b) = p.word_bit();
        self.0[w] |= b;
    }

    #[inline(always)]
    pub fn remove(&mut self, p: PortId) {
        let (w, b) = p.word_bit();
        self.0[w] &= !b;
    }

    #[inline(always)]
    pub const fn contains(&self, p: PortId) -> bool {
        let (w, b) = p.word_bit();
        self.0[w] & b != 0
    }

    #[inline(always)]
    pub fn without(mut self, p: PortId) -> PortMask {
        self.remove(p);
        self
    }

    /// The ports of `self` that are not in `other`.
    #[inline(always)]
    pub fn minus(self, other: PortMask) -> PortMask {
        let mut m = self;
        for (w, o) in m.0.iter_mut().zip(other.0) {
            *w &= !o;
        }
        m
    }

    #[inline(always)]
    pub fn is_empty(self) -> bool {
        self.0.iter().fold(0, |acc, w| acc | w) == 0
    }

    pub fn len(self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The set's only port; `None` for an empty set or one of more.
    #[inline(always)]
    pub fn single(self) -> Option<PortId> {
        let mut rest = self;
        rest.pop_first().filter(|_| rest.is_empty())
    }

    /// The lowest port not in the set, if any is left.
    pub fn first_free(self) -> Option<PortId> {
        let (w, word) = self.0.iter().enumerate().find(|(_, w)| **w != u64::MAX)?;
        PortId::new((w * 64) as u16 + (!word).trailing_zeros() as u16)
    }

    /// Removes and returns the lowest port of the set.
    #[inline(always)]
    pub fn pop_first(&mut self) -> Option<PortId> {
        // Ports below 64 (most switches' all) are in the first word: one
        // test finds them.
        for (w, word) in self.0.iter_mut().enumerate() {
            if *word != 0 {
                let p = PortId::from_index(w * 64 + word.trailing_zeros() as usize);
                *word &= *word - 1;
                return Some(p);
            }
        }
        None
    }

    /// The ports, ascending.
    #[inline(always)]
    pub fn iter(self) -> PortMaskIter {
        PortMaskIter(self)
    }
}

impl FromIterator<PortId> for PortMask {
    fn from_iter<I: IntoIterator<Item = PortId>>(iter: I) -> Self {
        let mut m = PortMask::EMPTY;
        iter.into_iter().for_each(|p| m.insert(p));
        m
    }
}

/// Iterator of [`PortMask::iter`].
pub struct PortMaskIter(PortMask);

impl Iterator for PortMaskIter {
    type Item = PortId;
    #[inline(always)]
    fn next(&mut self) -> Option<PortId> {
        self.0.pop_first()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn bounds() {
        assert_eq!(PortId::new(0).map(PortId::get), Some(0));
        assert_eq!(PortId::new(63).map(PortId::index), Some(63));
        assert_eq!(PortId::new(255).map(PortId::index), Some(255));
        assert_eq!(PortId::new(256), None);
        assert_eq!(PortId::new(u16::MAX), None);
        assert_eq!(PortId::all().count(), MAX_PORTS);
        let (p3, p9) = (PortId::new(3).unwrap(), PortId::new(9).unwrap());
        let mut m = PortMask::EMPTY;
        assert_eq!(m.single(), None);
        m.insert(p9);
        assert_eq!(m.single(), Some(p9));
        m.insert(p3);
        assert_eq!(m.single(), None);
        // Every word: a full set has no free number; ports come out in order.
        let full: PortMask = PortId::all().collect();
        assert_eq!((full.len(), full.first_free()), (MAX_PORTS, None));
        assert!(full.iter().map(PortId::index).eq(0..MAX_PORTS));
        let high = PortId::new(200).unwrap();
        assert_eq!(full.without(high).first_free(), Some(high));
        assert_eq!(
            PortMask::from_iter([high, p9]).minus(m),
            PortMask::from_iter([high])
        );
    }

    proptest! {
        /// PortMask against a BTreeSet of port numbers.
        #[test]
        fn mask_matches_a_set(ops in proptest::collection::vec((any::<bool>(), 0u16..256), 0..400)) {
            let mut m = PortMask::EMPTY;
            let mut s = BTreeSet::new();
            for (add, n) in ops {
                let p = PortId::new(n).unwrap();
                if add { m.insert(p); s.insert(n); } else { m.remove(p); s.remove(&n); }
                prop_assert_eq!(m.len(), s.len());
                prop_assert_eq!(m.contains(p), s.contains(&n));
            }
            let got: Vec<u16> = m.iter().map(PortId::get).collect();
            let want: Vec<u16> = s.iter().copied().collect();
            prop_assert_eq!(got, want);
            let free = (0..256u16).find(|n| !s.contains(n));
            prop_assert_eq!(m.first_free().map(PortId::get), free);
            let single = (s.len() == 1).then(|| *s.first().unwrap());
            prop_assert_eq!(m.single().map(PortId::get), single);
        }
    }
}
