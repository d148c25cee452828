//! Parsing of the values the API accepts: IP addresses, CIDRs, MACs, PCI
//! addresses, UUIDs. Each parser returns a reason without the field name;
//! the caller knows the field and builds the error.
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP version, as Neutron numbers them; serialised as a rule's
/// `ethertype` ("IPv4", "IPv6").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum IpVersion {
    #[serde(rename = "IPv4")]
    V4,
    #[serde(rename = "IPv6")]
    V6,
}

impl IpVersion {
    pub fn number(self) -> u8 {
        match self {
            IpVersion::V4 => 4,
            IpVersion::V6 => 6,
        }
    }
    pub fn bits(self) -> u8 {
        match self {
            IpVersion::V4 => 32,
            IpVersion::V6 => 128,
        }
    }
    pub fn ethertype(self) -> &'static str {
        match self {
            IpVersion::V4 => "IPv4",
            IpVersion::V6 => "IPv6",
        }
    }
    pub fn of(ip: IpAddr) -> IpVersion {
        match ip {
            IpAddr::V4(_) => IpVersion::V4,
            IpAddr::V6(_) => IpVersion::V6,
        }
    }
}

/// An address as an integer, so ranges and arithmetic are the same code for
/// both versions.
pub fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

pub fn u128_to_ip(v: u128, version: IpVersion) -> IpAddr {
    match version {
        IpVersion::V4 => IpAddr::V4(Ipv4Addr::from(v as u32)),
        IpVersion::V6 => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

/// Parses one IP address (dotted quad or RFC 4291 text; no zone, no prefix).
pub fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.parse::<IpAddr>()
        .map_err(|_| format!("'{s}' is not a valid IP address"))
}

/// A network: `addr` has no host bits set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub version: IpVersion,
    /// Network address as an integer.
    pub base: u128,
    pub prefix: u8,
}

impl Cidr {
    /// The host route of one address (/32, /128).
    pub fn host(ip: IpAddr) -> Cidr {
        let version = IpVersion::of(ip);
        Cidr {
            version,
            base: ip_to_u128(ip),
            prefix: version.bits(),
        }
    }

    /// Parses `addr/prefix`, zeroing host bits (security group rules: Neutron
    /// normalises `10.0.0.5/24` to `10.0.0.0/24`). A bare address is a host
    /// route (/32, /128).
    pub fn parse_lenient(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let ip = addr
            .parse::<IpAddr>()
            .map_err(|_| format!("'{s}' is not a valid CIDR: bad address"))?;
        let version = IpVersion::of(ip);
        let prefix = match prefix {
            None => version.bits(),
            Some(p) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 3 {
                    return Err(format!("'{s}' is not a valid CIDR: bad prefix length"));
                }
                let n: u8 = p
                    .parse()
                    .map_err(|_| format!("'{s}' is not a valid CIDR: bad prefix length"))?;
                if n > version.bits() {
                    return Err(format!(
                        "'{s}' is not a valid CIDR: prefix length {n} is over {}",
                        version.bits()
                    ));
                }
                n
            }
        };
        Ok(Cidr {
            version,
            base: ip_to_u128(ip) & mask(version, prefix),
            prefix,
        })
    }

    /// Parses a subnet CIDR the way Neutron does: the prefix is required and
    /// host bits must be zero (`10.0.0.5/24` is refused, naming the network
    /// that was probably meant).
    pub fn parse_strict(s: &str) -> Result<Cidr, String> {
        if !s.contains('/') {
            return Err(format!(
                "'{s}' is not a valid CIDR: the prefix length is missing (e.g. 10.0.0.0/24)"
            ));
        }
        let c = Cidr::parse_lenient(s)?;
        let given = s.split_once('/').map(|(a, _)| a).unwrap_or(s);
        let ip: IpAddr = given
            .parse()
            .map_err(|_| format!("'{s}' is not a valid CIDR"))?;
        if ip_to_u128(ip) != c.base {
            return Err(format!(
                "'{s}' is not a valid subnet CIDR: host bits are set, '{c}' is recommended"
            ));
        }
        Ok(c)
    }

    pub fn last(&self) -> u128 {
        self.base | !mask(self.version, self.prefix) & full(self.version)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        IpVersion::of(ip) == self.version && {
            let v = ip_to_u128(ip);
            v >= self.base && v <= self.last()
        }
    }

    pub fn contains_u128(&self, v: u128) -> bool {
        v >= self.base && v <= self.last()
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.version == other.version && self.base <= other.last() && other.base <= self.last()
    }

    pub fn ip(&self, v: u128) -> IpAddr {
        u128_to_ip(v, self.version)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", u128_to_ip(self.base, self.version), self.prefix)
    }
}

fn full(v: IpVersion) -> u128 {
    match v {
        IpVersion::V4 => u32::MAX as u128,
        IpVersion::V6 => u128::MAX,
    }
}

fn mask(v: IpVersion, prefix: u8) -> u128 {
    let bits = v.bits() as u32;
    let host = bits - prefix as u32;
    if host >= 128 {
        0
    } else {
        (full(v) >> host << host) & full(v)
    }
}

/// Parses a MAC address in `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` form.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = || format!("'{s}' is not a valid MAC address (expected aa:bb:cc:dd:ee:ff)");
    let sep = if s.contains('-') { '-' } else { ':' };
    let parts: Vec<&str> = s.split(sep).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        mac[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    Ok(mac)
}

/// A MAC that can be a port's own address: not zero, not multicast or
/// broadcast (the I/G bit would make every frame to it a flood).
pub fn parse_unicast_mac(s: &str) -> Result<[u8; 6], String> {
    let mac = parse_mac(s)?;
    if mac == [0; 6] {
        return Err(format!("'{s}' is the all-zero MAC address"));
    }
    if mac[0] & 1 == 1 {
        return Err(format!("'{s}' is a multicast/broadcast MAC address"));
    }
    Ok(mac)
}

pub fn format_mac(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Checks a PCI address as Nova writes `binding:profile.pci_slot`:
/// `dddd:bb:dd.f` (domain, bus, device 0-1f, function 0-7).
pub fn check_pci_slot(s: &str) -> Result<(), String> {
    let bad = || format!("'{s}' is not a PCI address (expected dddd:bb:dd.f, e.g. 0000:3b:02.1)");
    let (dbd, func) = s.split_once('.').ok_or_else(bad)?;
    let parts: Vec<&str> = dbd.split(':').collect();
    if parts.len() != 3 {
        return Err(bad());
    }
    let hex = |p: &str, len: usize| p.len() == len && p.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex(parts[0], 4) || !hex(parts[1], 2) || !hex(parts[2], 2) {
        return Err(bad());
    }
    let dev = u8::from_str_radix(parts[2], 16).map_err(|_| bad())?;
    if dev > 0x1f {
        return Err(format!("'{s}': PCI device number {dev:#x} is over 0x1f"));
    }
    if func.len() != 1 || !matches!(func.as_bytes()[0], b'0'..=b'7') {
        return Err(format!("'{s}': PCI function must be 0-7"));
    }
    Ok(())
}

/// Neutron ids are UUIDs; references to other resources must look like one
/// (a 400, before looking the id up and answering 404).
pub fn check_uuid(s: &str) -> Result<(), String> {
    uuid::Uuid::parse_str(s)
        .map(|_| ())
        .map_err(|_| format!("'{s}' is not a valid UUID"))
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A DNS domain as DHCP hands it out: dot-separated labels of 1-63 letters,
/// digits and hyphens (not at either end), 253 characters at most; a
/// trailing dot is allowed. Empty: none.
pub fn check_domain(d: &str) -> Result<(), String> {
    let name = d.strip_suffix('.').unwrap_or(d);
    if d.is_empty() {
        return Ok(());
    }
    if name.len() > 253 {
        return Err(format!("'{d}' is longer than 253 characters"));
    }
    for label in name.split('.') {
        let ok = (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "'{d}' is not a domain name: label '{label}' must be 1-63 letters, digits or inner hyphens"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn strict_cidr_requires_prefix_and_clean_host_bits() {
        let c = Cidr::parse_strict("10.0.0.0/24").unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/24");
        assert_eq!(c.last(), ip_to_u128("10.0.0.255".parse().unwrap()));
        assert!(Cidr::parse_strict("10.0.0.5/24")
            .unwrap_err()
            .contains("10.0.0.0/24"));
        assert!(Cidr::parse_strict("10.0.0.0").is_err());
        assert!(Cidr::parse_strict("10.0.0.0/33").is_err());
        assert!(Cidr::parse_strict("10.0.0.0/").is_err());
        assert!(Cidr::parse_strict("10.0.0.0/+8").is_err());
        assert!(Cidr::parse_strict("10.0.0/24").is_err());
        assert!(Cidr::parse_strict("300.0.0.0/8").is_err());
        let v6 = Cidr::parse_strict("2001:DB8::/64").unwrap();
        assert_eq!(v6.to_string(), "2001:db8::/64");
        assert_eq!(v6.version, IpVersion::V6);
        assert!(Cidr::parse_strict("2001:db8::1/64").is_err());
        assert!(Cidr::parse_strict("::/0").is_ok());
        assert!(Cidr::parse_strict("0.0.0.0/0").is_ok());
    }

    #[test]
    fn lenient_cidr_normalises() {
        assert_eq!(
            Cidr::parse_lenient("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            Cidr::parse_lenient("192.168.1.7").unwrap().to_string(),
            "192.168.1.7/32"
        );
        assert_eq!(
            Cidr::parse_lenient("2001:db8::7/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert!(Cidr::parse_lenient("bogus/8").is_err());
    }

    #[test]
    fn containment_and_overlap() {
        let a = Cidr::parse_strict("10.0.0.0/24").unwrap();
        let b = Cidr::parse_strict("10.0.0.128/25").unwrap();
        let c = Cidr::parse_strict("10.0.1.0/24").unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
        assert!(a.contains("10.0.0.255".parse().unwrap()));
        assert!(!a.contains("10.0.1.0".parse().unwrap()));
        assert!(!a.contains("::1".parse().unwrap()));
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("FA:16:3E:00:00:01").unwrap(),
            [0xfa, 0x16, 0x3e, 0, 0, 1]
        );
        assert_eq!(
            parse_mac("fa-16-3e-00-00-01").unwrap(),
            [0xfa, 0x16, 0x3e, 0, 0, 1]
        );
        for bad in [
            "fa:16:3e:00:00",
            "fa:16:3e:00:00:001",
            "fa:16:3e:00:00:zz",
            "",
            "fa16.3e00.0001",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
        assert!(parse_unicast_mac("01:00:5e:00:00:01").is_err());
        assert!(parse_unicast_mac("ff:ff:ff:ff:ff:ff").is_err());
        assert!(parse_unicast_mac("00:00:00:00:00:00").is_err());
        assert_eq!(
            format_mac(&[0xfa, 0x16, 0x3e, 0xa, 0xb, 0xc]),
            "fa:16:3e:0a:0b:0c"
        );
    }

    #[test]
    fn pci_slots() {
        check_pci_slot("0000:3b:02.1").unwrap();
        check_pci_slot("ffff:ff:1f.7").unwrap();
        for bad in [
            "0000:3b:02",
            "3b:02.1",
            "0000:3b:20.1",
            "0000:3b:02.8",
            "000g:3b:02.1",
            "0000:3b:02.10",
        ] {
            assert!(check_pci_slot(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn cidr_display_round_trips(a in any::<u32>(), p in 0u8..=32) {
            let c = Cidr::parse_lenient(&format!("{}/{p}", Ipv4Addr::from(a))).unwrap();
            let again = Cidr::parse_strict(&c.to_string()).unwrap();
            prop_assert_eq!(c, again);
            prop_assert!(c.contains_u128(c.base) && c.contains_u128(c.last()));
            prop_assert_eq!(c.last() - c.base + 1, 1u128 << (32 - p));
        }

        #[test]
        fn v6_cidr_size(a in any::<u128>(), p in 0u8..=128) {
            let c = Cidr::parse_lenient(&format!("{}/{p}", Ipv6Addr::from(a))).unwrap();
            prop_assert!(c.contains_u128(a));
            if p > 0 {
                prop_assert_eq!(c.last() - c.base, (1u128 << (128 - p as u32)) - 1);
            }
        }

        #[test]
        fn mac_round_trips(m in any::<[u8; 6]>()) {
            prop_assert_eq!(parse_mac(&format_mac(&m)).unwrap(), m);
        }
    }
}
