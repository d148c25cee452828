//! From a frame's L3 bytes to what connection tracking needs of it
//! ([`CtPacket`]): the key in the packet's own direction and its transport
//! part (TCP's sequence space and window scale, ICMP echo identifiers, the
//! packet an ICMP error quotes). Never panics; does not allocate.
use super::table::ConnKey;
use super::tcp::Segment;
use super::track::{CtPacket, L4};
use crate::flow_key::ipv4_in_16;
use crate::wire::{EtherType, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};

/// Why a packet is not tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Untracked {
    /// Not IPv4 or IPv6 (ARP, ...): the firewall handles it without state.
    #[error("not IP")]
    NotIp,
    /// IPv6 neighbour discovery, router solicitation and advertisement,
    /// and other ICMP informational messages: allowed or refused by rule,
    /// never a connection.
    #[error("ICMP message without a connection")]
    IcmpInfo,
    /// A fragment after the first: its ports are in the first one.
    #[error("non-first fragment")]
    Fragment,
    /// A header is cut short or malformed.
    #[error("malformed {0} header")]
    Malformed(&'static str),
}

const ICMP4_ECHO_REPLY: u8 = 0;
const ICMP4_ECHO_REQUEST: u8 = 8;
/// Destination unreachable, source quench, redirect, time exceeded,
/// parameter problem: they quote the packet they are about.
const ICMP4_ERRORS: [u8; 5] = [3, 4, 5, 11, 12];
const ICMP6_ECHO_REQUEST: u8 = 128;
const ICMP6_ECHO_REPLY: u8 = 129;
/// Destination unreachable, packet too big, time exceeded, parameter problem.
const ICMP6_ERRORS: [u8; 4] = [1, 2, 3, 4];

/// The TCP window-scale option (kind 3), if the options hold one.
fn wscale(mut opts: &[u8]) -> Option<u8> {
    while let Some((&kind, rest)) = opts.split_first() {
        match kind {
            0 => return None,
            1 => opts = rest,
            _ => {
                let len = usize::from(*rest.first()?);
                if len < 2 || opts.len() < len {
                    return None;
                }
                if kind == 3 && len == 3 {
                    return opts.get(2).copied();
                }
                opts = &opts[len..];
            }
        }
    }
    None
}

impl CtPacket {
    /// Parses the L3 packet `l3` (of EtherType `ethertype`) seen in `zone`.
    pub fn parse(zone: u16, ethertype: EtherType, l3: &[u8]) -> Result<CtPacket, Untracked> {
        Self::parse_prefix(zone, ethertype, l3, l3.len())
    }

    /// [`parse`](Self::parse) of a packet of `whole` bytes whose first are
    /// `l3` (the rest in chained buffers): lengths, and a TCP segment's
    /// length, are the whole packet's.
    pub fn parse_prefix(
        zone: u16,
        ethertype: EtherType,
        l3: &[u8],
        whole: usize,
    ) -> Result<CtPacket, Untracked> {
        // The L4 bytes in `l3`, and how many the L4 packet has in all.
        let (proto, src, dst, l4, l4_whole) = match ethertype {
            EtherType::IPV4 => {
                let ip = Ipv4Packet::new_unchecked(l3);
                ip.check_prefix_len(whole)
                    .map_err(|_| Untracked::Malformed("IPv4"))?;
                if ip.is_later_fragment() {
                    return Err(Untracked::Fragment);
                }
                let total = usize::from(ip.total_len());
                let l4 = l3
                    .get(ip.header_len()..total.min(l3.len()))
                    .unwrap_or_default();
                (
                    ip.protocol(),
                    ipv4_in_16(ip.src_addr()),
                    ipv4_in_16(ip.dst_addr()),
                    l4,
                    total - ip.header_len(),
                )
            }
            EtherType::IPV6 => {
                let ip = Ipv6Packet::new_unchecked(l3);
                ip.check_prefix_len(whole)
                    .map_err(|_| Untracked::Malformed("IPv6"))?;
                let upper = ip.upper_layer().map_err(|_| Untracked::Malformed("IPv6"))?;
                if upper.is_later_fragment() {
                    return Err(Untracked::Fragment);
                }
                let end = crate::wire::ipv6::HEADER_LEN + usize::from(ip.payload_len());
                let l4 = l3.get(upper.offset..end.min(l3.len())).unwrap_or_default();
                (
                    upper.protocol,
                    ip.src_addr(),
                    ip.dst_addr(),
                    l4,
                    end.saturating_sub(upper.offset),
                )
            }
            _ => return Err(Untracked::NotIp),
        };
        let mut key = ConnKey {
            zone,
            v6: ethertype == EtherType::IPV6,
            proto: proto.0,
            src,
            dst,
            sport: 0,
            dport: 0,
        };
        let v6 = ethertype == EtherType::IPV6;
        let l4 = match proto {
            IpProtocol::TCP => {
                let tcp = TcpPacket::new_checked(l4).map_err(|_| Untracked::Malformed("TCP"))?;
                key.sport = tcp.src_port();
                key.dport = tcp.dst_port();
                L4::Tcp(Segment {
                    flags: tcp.flags().0,
                    seq: tcp.seq_number(),
                    ack: tcp.ack_number(),
                    window: tcp.window_len(),
                    wscale: wscale(tcp.options()),
                    len: l4_whole.saturating_sub(tcp.header_len()) as u32,
                })
            }
            IpProtocol::UDP => {
                let udp =
                    UdpPacket::new_checked_header(l4).map_err(|_| Untracked::Malformed("UDP"))?;
                key.sport = udp.src_port();
                key.dport = udp.dst_port();
                L4::Udp
            }
            IpProtocol::ICMP if !v6 => icmp(
                &mut key,
                l4,
                (ICMP4_ECHO_REQUEST, ICMP4_ECHO_REPLY),
                &ICMP4_ERRORS,
                false,
            )?,
            IpProtocol::ICMPV6 if v6 => icmp(
                &mut key,
                l4,
                (ICMP6_ECHO_REQUEST, ICMP6_ECHO_REPLY),
                &ICMP6_ERRORS,
                true,
            )?,
            // Any other protocol: tracked by its addresses.
            _ => L4::Udp,
        };
        Ok(CtPacket { key, l4 })
    }
}

/// ICMP (v4 or v6, by `echo` and `errors`) into `key` and its L4 part.
fn icmp(
    key: &mut ConnKey,
    l4: &[u8],
    (request, reply): (u8, u8),
    errors: &[u8],
    v6: bool,
) -> Result<L4, Untracked> {
    let what = if v6 { "ICMPv6" } else { "ICMP" };
    let [ty, _code, _c0, _c1, i0, i1, ..] = *l4 else {
        return Err(Untracked::Malformed(what));
    };
    let id = u16::from_be_bytes([i0, i1]);
    if ty == request || ty == reply {
        (key.sport, key.dport) = echo_ports(ty == request, id);
        return Ok(if ty == request {
            L4::IcmpEchoRequest
        } else {
            L4::IcmpEchoReply
        });
    }
    if !errors.contains(&ty) {
        return Err(Untracked::IcmpInfo);
    }
    let quoted = l4.get(8..).unwrap_or_default();
    quoted_key(key.zone, quoted, v6)
        .map(L4::IcmpError)
        .ok_or(Untracked::Malformed(what))
}

/// An echo's identifier where a key has ports: a request's as its source
/// port, a reply's as its destination, so a reply's key is its request's
/// reversed, and a request the other way with the same identifier (two
/// hosts pinging each other with one id) is a connection of its own, not
/// the first one's reply direction (the type is part of Linux's and OVS's
/// ICMP tuple for the same reason).
fn echo_ports(request: bool, id: u16) -> (u16, u16) {
    if request {
        (id, 0)
    } else {
        (0, id)
    }
}

/// The key of the packet an ICMP error quotes (its IP header and at least
/// the first 8 bytes of its transport header, as sent).
fn quoted_key(zone: u16, q: &[u8], v6: bool) -> Option<ConnKey> {
    let (proto, src, dst, l4) = if v6 {
        let h = q.get(..40)?;
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&h[8..24]);
        dst.copy_from_slice(&h[24..40]);
        (h[6], src, dst, &q[40..])
    } else {
        let h = q.get(..20)?;
        let ihl = usize::from(h[0] & 0x0f) * 4;
        if h[0] >> 4 != 4 || ihl < 20 {
            return None;
        }
        let mut src = [0u8; 4];
        let mut dst = [0u8; 4];
        src.copy_from_slice(&h[12..16]);
        dst.copy_from_slice(&h[16..20]);
        (h[9], ipv4_in_16(src), ipv4_in_16(dst), q.get(ihl..)?)
    };
    let (sport, dport) = match IpProtocol(proto) {
        IpProtocol::TCP | IpProtocol::UDP => {
            let p = l4.get(..4)?;
            (
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
            )
        }
        IpProtocol::ICMP | IpProtocol::ICMPV6 => {
            let p = l4.get(..6)?;
            let id = u16::from_be_bytes([p[4], p[5]]);
            // Echo request 8 / 128, reply 0 / 129.
            match (v6, p[0]) {
                (false, 8) | (true, 128) => echo_ports(true, id),
                (false, 0) | (true, 129) => echo_ports(false, id),
                _ => (id, id),
            }
        }
        _ => (0, 0),
    };
    Some(ConnKey {
        zone,
        v6,
        proto,
        src,
        dst,
        sport,
        dport,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::tcp::flags::{ACK, SYN};

    fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
        let total = 20 + l4.len();
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            proto,
            0,
            0,
        ];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(l4);
        p
    }

    fn ipv6(next: u8, src: [u8; 16], dst: [u8; 16], l4: &[u8]) -> Vec<u8> {
        let len = l4.len();
        let mut p = vec![0x60, 0, 0, 0, (len >> 8) as u8, len as u8, next, 64];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(l4);
        p
    }

    const A: [u8; 4] = [10, 0, 0, 1];
    const B: [u8; 4] = [10, 0, 0, 2];

    /// A 64 KB TSO segment arrives in chained buffers: its first holds the
    /// headers; its length is the whole segment's.
    #[test]
    fn a_chained_segment_is_as_long_as_the_whole() {
        let mut tcp = vec![
            0x9c, 0x40, 0, 22, 0, 0, 0, 100, 0, 0, 0, 0, 0x50, ACK, 0xff, 0xff, 0, 0, 0, 0,
        ];
        tcp.resize(20 + 60_000, 0xab);
        for whole in [ipv4(6, A, B, &tcp), ipv6(6, [1; 16], [2; 16], &tcp)] {
            let t = if whole[0] >> 4 == 4 {
                EtherType::IPV4
            } else {
                EtherType::IPV6
            };
            let full = CtPacket::parse(5, t, &whole).unwrap();
            let first = CtPacket::parse_prefix(5, t, &whole[..2000], whole.len()).unwrap();
            assert_eq!(first.key, full.key);
            let (L4::Tcp(a), L4::Tcp(b)) = (full.l4, first.l4) else {
                panic!()
            };
            assert_eq!((a.len, b.len), (60_000, 60_000));
            // Without the rest, the same bytes are a truncated packet.
            assert!(CtPacket::parse(5, t, &whole[..2000]).is_err());
        }
    }

    #[test]
    fn tcp_with_window_scale_and_payload() {
        let mut tcp = vec![
            0x9c, 0x40, 0, 22, 0, 0, 0, 100, 0, 0, 0, 0, 0x60, SYN, 0xff, 0xff, 0, 0, 0, 0,
        ];
        tcp.extend_from_slice(&[1, 3, 3, 7]); // NOP, window scale 7
        tcp.extend_from_slice(b"hello");
        let p = CtPacket::parse(5, EtherType::IPV4, &ipv4(6, A, B, &tcp)).unwrap();
        assert_eq!(
            (p.key.zone, p.key.proto, p.key.sport, p.key.dport),
            (5, 6, 40000, 22)
        );
        assert_eq!(p.key.src[..4], A);
        let L4::Tcp(s) = p.l4 else { panic!("{p:?}") };
        assert_eq!(
            (s.flags, s.seq, s.window, s.wscale, s.len),
            (SYN, 100, 0xffff, Some(7), 5)
        );
        // Ethernet padding after the IP packet is not payload.
        let mut bare = tcp[..20].to_vec();
        bare[12] = 0x50;
        let mut padded = ipv4(6, A, B, &bare);
        padded.extend_from_slice(&[0; 6]);
        let L4::Tcp(s) = CtPacket::parse(5, EtherType::IPV4, &padded).unwrap().l4 else {
            panic!()
        };
        assert_eq!((s.len, s.wscale, s.flags & ACK), (0, None, 0));
    }

    #[test]
    fn a_reply_is_its_request_reversed_and_a_request_back_is_another_echo() {
        let key = |ty: u8, from, to| {
            let echo = [ty, 0, 0, 0, 0, 101, 0, 1];
            CtPacket::parse(1, EtherType::IPV4, &ipv4(1, from, to, &echo))
                .unwrap()
                .key
        };
        let a_to_b = key(8, A, B);
        assert_eq!(key(0, B, A).reverse(), a_to_b, "B's reply");
        // B pings A with the same identifier (two busybox guests whose
        // ping both ran as PID 101): not A's echo's reply direction.
        assert_ne!(key(8, B, A), a_to_b.reverse());
        assert_ne!(key(8, B, A), a_to_b);
    }

    #[test]
    fn icmp_echo_and_errors_quote_their_packet() {
        let echo = [8, 0, 0, 0, 0x12, 0x34, 0, 1];
        let p = CtPacket::parse(1, EtherType::IPV4, &ipv4(1, A, B, &echo)).unwrap();
        assert_eq!(
            (p.key.sport, p.key.dport, p.l4),
            (0x1234, 0, L4::IcmpEchoRequest)
        );
        // B's router: port unreachable about A's UDP to B:53.
        let udp = ipv4(17, A, B, &[0x13, 0x88, 0, 53, 0, 8, 0, 0]);
        let mut err = vec![3, 3, 0, 0, 0, 0, 0, 0];
        err.extend_from_slice(&udp);
        let p = CtPacket::parse(1, EtherType::IPV4, &ipv4(1, B, A, &err)).unwrap();
        let L4::IcmpError(q) = p.l4 else {
            panic!("{p:?}")
        };
        assert_eq!(
            (q.proto, q.src[..4].to_vec(), q.sport, q.dport),
            (17, A.to_vec(), 5000, 53)
        );
        let ts = [13, 0, 0, 0, 0, 0, 0, 0]; // timestamp request
        assert_eq!(
            CtPacket::parse(1, EtherType::IPV4, &ipv4(1, A, B, &ts)),
            Err(Untracked::IcmpInfo)
        );
    }

    #[test]
    fn ipv6_tcp_icmpv6_and_neighbour_discovery() {
        let (a, b) = ([0xfd; 16], [0xfe; 16]);
        let tcp = [
            0, 80, 0x1f, 0x90, 0, 0, 0, 1, 0, 0, 0, 2, 0x50, ACK, 1, 0, 0, 0, 0, 0,
        ];
        let p = CtPacket::parse(3, EtherType::IPV6, &ipv6(6, a, b, &tcp)).unwrap();
        assert_eq!((p.key.src, p.key.sport, p.key.dport), (a, 80, 8080));
        let echo = [129, 0, 0, 0, 0, 9, 0, 1];
        let p = CtPacket::parse(3, EtherType::IPV6, &ipv6(58, a, b, &echo)).unwrap();
        assert_eq!((p.key.dport, p.l4), (9, L4::IcmpEchoReply));
        let ns = [135, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            CtPacket::parse(3, EtherType::IPV6, &ipv6(58, a, b, &ns)),
            Err(Untracked::IcmpInfo)
        );
        let mut too_big = vec![2, 0, 0, 0, 0, 0, 5, 0xdc];
        too_big.extend_from_slice(&ipv6(6, b, a, &tcp));
        let L4::IcmpError(q) = CtPacket::parse(3, EtherType::IPV6, &ipv6(58, a, b, &too_big))
            .unwrap()
            .l4
        else {
            panic!()
        };
        assert_eq!((q.src, q.dst, q.sport, q.dport), (b, a, 80, 8080));
    }

    #[test]
    fn what_is_not_tracked() {
        assert_eq!(
            CtPacket::parse(0, EtherType::ARP, &[0; 28]),
            Err(Untracked::NotIp)
        );
        assert!(matches!(
            CtPacket::parse(0, EtherType::IPV4, &[0x45; 10]),
            Err(Untracked::Malformed(_))
        ));
        let mut frag = ipv4(17, A, B, &[0; 8]);
        frag[6] = 0x00;
        frag[7] = 0x10; // offset 16 * 8
        assert_eq!(
            CtPacket::parse(0, EtherType::IPV4, &frag),
            Err(Untracked::Fragment)
        );
        let p = CtPacket::parse(0, EtherType::IPV4, &ipv4(47, A, B, &[0; 4])).unwrap();
        assert_eq!(
            (p.key.proto, p.key.sport, p.l4),
            (47, 0, L4::Udp),
            "GRE: by addresses"
        );
    }
}
