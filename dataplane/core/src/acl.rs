//! Security-group rule sets as the snapshot carries them for one port,
//! compiled from Neutron's model: remote groups already expanded to the
//! member ports' addresses, protocols as numbers, ranges as integers.
//! The stateful enforcement that reads them comes with its own issue; this
//! is the compiled form it starts from.

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Towards the port (the VM receives).
    Ingress,
    /// From the port (the VM sends).
    Egress,
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
    /// The peer's address must fall in this prefix; `None` = anywhere.
    pub remote: Option<Prefix>,
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
}
