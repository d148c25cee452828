//! `vswitchctl trace`'s flow: OVS's `ofproto/trace` syntax
//! (`in_port=vm1,tcp,nw_src=10.0.0.5,tp_dst=22`) turned into the frame it
//! describes. Fields left out are zero, as OVS has them, except a TCP
//! segment's flags: SYN (a new connection's first packet) unless
//! `tcp_flags` says otherwise. Errors name the field and why.
use std::net::{Ipv4Addr, Ipv6Addr};
use switch_core::wire::EthernetAddress;

/// A parsed flow: the input port and the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub in_port: String,
    pub frame: Vec<u8>,
}

#[derive(Default)]
struct Fields {
    in_port: Option<String>,
    dl_src: [u8; 6],
    dl_dst: [u8; 6],
    dl_vlan: Option<u16>,
    /// ip, ipv6 or arp (by keyword or dl_type).
    dl_type: Option<u16>,
    nw_proto: Option<u8>,
    nw_src: Option<Ipv4Addr>,
    nw_dst: Option<Ipv4Addr>,
    ipv6_src: Option<Ipv6Addr>,
    ipv6_dst: Option<Ipv6Addr>,
    tp_src: u16,
    tp_dst: u16,
    icmp_type: Option<u8>,
    icmp_code: u8,
    icmp_id: u16,
    tcp_flags: Option<u8>,
    arp_op: u16,
    arp_sha: Option<[u8; 6]>,
    arp_tha: [u8; 6],
}

const IPV4: u16 = 0x0800;
const IPV6: u16 = 0x86dd;
const ARP: u16 = 0x0806;

fn bad(field: &str, why: impl std::fmt::Display) -> String {
    format!("{field}: {why}")
}

fn mac(field: &str, v: &str) -> Result<[u8; 6], String> {
    v.parse::<EthernetAddress>()
        .map(|m| m.0)
        .map_err(|_| bad(field, format!("{v:?} is not a MAC address")))
}

fn number<T: TryFrom<u64>>(field: &str, v: &str) -> Result<T, String> {
    let n = match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    };
    n.and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| bad(field, format!("{v:?} is not a number in range")))
}

fn tcp_flags(v: &str) -> Result<u8, String> {
    if v.starts_with(|c: char| c.is_ascii_digit()) {
        return number("tcp_flags", v);
    }
    let mut flags = 0;
    for name in v.split(['+', '|']).filter(|n| !n.is_empty()) {
        flags |= match name {
            "fin" => 0x01,
            "syn" => 0x02,
            "rst" => 0x04,
            "psh" => 0x08,
            "ack" => 0x10,
            "urg" => 0x20,
            _ => {
                return Err(bad(
                    "tcp_flags",
                    format!("{name:?} is not one of fin, syn, rst, psh, ack, urg"),
                ))
            }
        };
    }
    Ok(flags)
}

/// Parses `spec` into the frame it describes.
pub fn parse(spec: &str) -> Result<Flow, String> {
    let mut f = Fields::default();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = match item.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (item, ""),
        };
        match (k, v) {
            ("ip", "") => f.dl_type = Some(IPV4),
            ("ipv6", "") => f.dl_type = Some(IPV6),
            ("arp", "") => f.dl_type = Some(ARP),
            ("tcp" | "udp" | "icmp", "") => {
                f.dl_type = Some(IPV4);
                f.nw_proto = Some(match k {
                    "tcp" => 6,
                    "udp" => 17,
                    _ => 1,
                });
            }
            ("tcp6" | "udp6" | "icmp6", "") => {
                f.dl_type = Some(IPV6);
                f.nw_proto = Some(match k {
                    "tcp6" => 6,
                    "udp6" => 17,
                    _ => 58,
                });
            }
            ("in_port", v) if !v.is_empty() => f.in_port = Some(v.to_owned()),
            ("dl_src", v) => f.dl_src = mac(k, v)?,
            ("dl_dst", v) => f.dl_dst = mac(k, v)?,
            ("dl_vlan", v) => {
                let vid: u16 = number(k, v)?;
                if !(1..=4094).contains(&vid) {
                    return Err(bad(k, format!("{vid} is not a VLAN id (1-4094)")));
                }
                f.dl_vlan = Some(vid);
            }
            ("dl_type", v) => f.dl_type = Some(number(k, v)?),
            ("nw_proto", v) => f.nw_proto = Some(number(k, v)?),
            ("nw_src" | "arp_spa", v) => {
                f.nw_src = Some(v.parse().map_err(|_| bad(k, "not an IPv4 address"))?)
            }
            ("nw_dst" | "arp_tpa", v) => {
                f.nw_dst = Some(v.parse().map_err(|_| bad(k, "not an IPv4 address"))?)
            }
            ("ipv6_src", v) => {
                f.ipv6_src = Some(v.parse().map_err(|_| bad(k, "not an IPv6 address"))?)
            }
            ("ipv6_dst", v) => {
                f.ipv6_dst = Some(v.parse().map_err(|_| bad(k, "not an IPv6 address"))?)
            }
            ("tp_src", v) => f.tp_src = number(k, v)?,
            ("tp_dst", v) => f.tp_dst = number(k, v)?,
            ("icmp_type" | "icmpv6_type", v) => f.icmp_type = Some(number(k, v)?),
            ("icmp_code" | "icmpv6_code", v) => f.icmp_code = number(k, v)?,
            ("icmp_id", v) => f.icmp_id = number(k, v)?,
            ("tcp_flags", v) => f.tcp_flags = Some(tcp_flags(v)?),
            ("arp_op", v) => f.arp_op = number(k, v)?,
            ("arp_sha", v) => f.arp_sha = Some(mac(k, v)?),
            ("arp_tha", v) => f.arp_tha = mac(k, v)?,
            _ => {
                return Err(bad(
                    k,
                    "not a field trace knows (see `vswitchctl trace --help`)",
                ))
            }
        }
    }
    let in_port = f
        .in_port
        .clone()
        .ok_or_else(|| bad("in_port", "required: the port the frame arrives on"))?;
    Ok(Flow {
        in_port,
        frame: build(&f),
    })
}

/// The frame `f` describes, padded to 60 bytes (64 with the FCS).
fn build(f: &Fields) -> Vec<u8> {
    let mut out = f.dl_dst.to_vec();
    out.extend_from_slice(&f.dl_src);
    if let Some(vid) = f.dl_vlan {
        out.extend_from_slice(&[0x81, 0x00]);
        out.extend_from_slice(&vid.to_be_bytes());
    }
    let dl_type = f.dl_type.unwrap_or(0);
    out.extend_from_slice(&dl_type.to_be_bytes());
    let proto = f.nw_proto.unwrap_or(0);
    let v6 = dl_type == IPV6;
    let l4 = match proto {
        6 => {
            let flags = f.tcp_flags.unwrap_or(0x02);
            let ack: u32 = if flags & 0x10 != 0 { 1 } else { 0 };
            let mut t = f.tp_src.to_be_bytes().to_vec();
            t.extend_from_slice(&f.tp_dst.to_be_bytes());
            t.extend_from_slice(&1u32.to_be_bytes());
            t.extend_from_slice(&ack.to_be_bytes());
            t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
            t
        }
        17 => {
            let mut u = f.tp_src.to_be_bytes().to_vec();
            u.extend_from_slice(&f.tp_dst.to_be_bytes());
            u.extend_from_slice(&[0, 8, 0, 0]);
            u
        }
        1 | 58 => {
            let echo = if proto == 1 { 8 } else { 128 };
            let mut i = vec![f.icmp_type.unwrap_or(echo), f.icmp_code, 0, 0];
            i.extend_from_slice(&f.icmp_id.to_be_bytes());
            i.extend_from_slice(&[0, 1]);
            i
        }
        _ => Vec::new(),
    };
    match dl_type {
        IPV4 => {
            let total = (20 + l4.len()) as u16;
            out.extend_from_slice(&[0x45, 0]);
            out.extend_from_slice(&total.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0, 64, proto, 0, 0]);
            out.extend_from_slice(&f.nw_src.unwrap_or(Ipv4Addr::UNSPECIFIED).octets());
            out.extend_from_slice(&f.nw_dst.unwrap_or(Ipv4Addr::UNSPECIFIED).octets());
            out.extend_from_slice(&l4);
        }
        IPV6 if v6 => {
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            out.extend_from_slice(&[proto, 64]);
            out.extend_from_slice(&f.ipv6_src.unwrap_or(Ipv6Addr::UNSPECIFIED).octets());
            out.extend_from_slice(&f.ipv6_dst.unwrap_or(Ipv6Addr::UNSPECIFIED).octets());
            out.extend_from_slice(&l4);
        }
        ARP => {
            out.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
            out.extend_from_slice(&f.arp_op.max(1).to_be_bytes());
            out.extend_from_slice(&f.arp_sha.unwrap_or(f.dl_src));
            out.extend_from_slice(&f.nw_src.unwrap_or(Ipv4Addr::UNSPECIFIED).octets());
            out.extend_from_slice(&f.arp_tha);
            out.extend_from_slice(&f.nw_dst.unwrap_or(Ipv4Addr::UNSPECIFIED).octets());
        }
        _ => {}
    }
    if out.len() < 60 {
        out.resize(60, 0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tcp_flow_becomes_a_syn() {
        let f = parse(
            "in_port=vm1,tcp,dl_src=fa:16:3e:00:00:01,dl_dst=fa:16:3e:00:00:02,\
             nw_src=10.0.0.5,nw_dst=10.0.0.6,tp_src=40000,tp_dst=22",
        )
        .unwrap();
        assert_eq!(f.in_port, "vm1");
        let b = &f.frame;
        assert_eq!(&b[12..14], &[0x08, 0x00]);
        assert_eq!(b[23], 6);
        assert_eq!(&b[26..30], &[10, 0, 0, 5]);
        assert_eq!(&b[36..38], &22u16.to_be_bytes());
        assert_eq!(b[47], 0x02, "SYN by default");
        assert_eq!(b.len(), 60);
    }

    #[test]
    fn vlan_ipv6_icmp_and_arp() {
        let f = parse("in_port=p,dl_vlan=100,icmp6,ipv6_src=2001:db8::1").unwrap();
        assert_eq!(&f.frame[12..18], &[0x81, 0, 0, 100, 0x86, 0xdd]);
        assert_eq!(f.frame[18 + 6], 58);
        assert_eq!(f.frame[18 + 40], 128, "echo request by default");
        let a = parse("in_port=p,arp,dl_src=02:00:00:00:00:01,arp_spa=10.0.0.1").unwrap();
        assert_eq!(&a.frame[12..14], &[0x08, 0x06]);
        assert_eq!(&a.frame[22..28], &[2, 0, 0, 0, 0, 1], "sender MAC = dl_src");
        assert_eq!(&a.frame[28..32], &[10, 0, 0, 1]);
    }

    #[test]
    fn errors_name_the_field() {
        for (spec, field) in [
            ("tcp,tp_dst=22", "in_port"),
            ("in_port=a,dl_src=zz", "dl_src"),
            ("in_port=a,dl_vlan=5000", "dl_vlan"),
            ("in_port=a,tp_dst=70000", "tp_dst"),
            ("in_port=a,tcp_flags=syn+bogus", "tcp_flags"),
            ("in_port=a,nw_src=1.2.3", "nw_src"),
            ("in_port=a,colour=blue", "colour"),
        ] {
            let e = parse(spec).unwrap_err();
            assert!(e.starts_with(&format!("{field}:")), "{spec}: {e}");
        }
    }
}
