//! Security-group rule sets as the snapshot carries them for one port,
//! compiled from Neutron's model: protocols as numbers, ranges as
//! integers, a remote group as a shared set of its members' addresses.
//! The stateful enforcement that reads them comes with its own issue; this
//! is the compiled form it starts from.
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
}

impl PortAcl {
    pub fn count(&self, d: Direction) -> usize {
        self.rules.iter().filter(|r| r.direction == d).count()
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
}
