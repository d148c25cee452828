//! IPv6 neighbour discovery (RFC 4861) as far as the switch speaks it:
//! reading neighbour solicitations and advertisements with the receive
//! checks of RFC 4861 7.1.1 and 7.1.2 (hop limit 255, code 0, a valid
//! ICMPv6 checksum, no extension header), and writing the two messages
//! with their link-layer address options. The ARP of IPv6: the ARP and
//! neighbour responders answer with [`write_advertisement`], tunnel
//! endpoints resolve their next hops with [`write_solicitation`].
use super::{ipv6_l4_checksum, EtherType, EthernetAddress, IpProtocol};

/// Neighbour solicitation and advertisement ICMPv6 types.
pub const SOLICITATION: u8 = 135;
pub const ADVERTISEMENT: u8 = 136;
const IPV6_HEADER: usize = 40;
/// The ICMPv6 part of either message with one link-layer address option:
/// type, code, checksum, flags/reserved, target, option (8 bytes).
pub const MESSAGE_LEN: usize = 32;
/// An untagged solicitation or advertisement with its option, as written
/// here: Ethernet, IPv6, message.
pub const FRAME_LEN: usize = super::ethernet::HEADER_LEN + IPV6_HEADER + MESSAGE_LEN;
/// Option types: source and target link-layer address.
const OPT_SOURCE_LLADDR: u8 = 1;
const OPT_TARGET_LLADDR: u8 = 2;
/// Advertisement flags (first byte): solicited, override.
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;

/// A neighbour discovery message that passed the receive checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdMessage {
    /// [`SOLICITATION`] or [`ADVERTISEMENT`].
    pub kind: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub target: [u8; 16],
    /// The link-layer address option: the source's in a solicitation, the
    /// target's in an advertisement.
    pub lladdr: Option<EthernetAddress>,
    /// An advertisement's solicited flag.
    pub solicited: bool,
}

/// Reads the neighbour solicitation or advertisement whose IPv6 header
/// starts `ip` (RFC 4861's receive checks; a multicast target refused);
/// `None` for anything else. Never panics.
pub fn parse(ip: &[u8]) -> Option<NdMessage> {
    let header = ip.get(..IPV6_HEADER)?;
    let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let icmp = ip.get(IPV6_HEADER..IPV6_HEADER + len)?;
    if header[0] >> 4 != 6 || header[6] != IpProtocol::ICMPV6.0 || header[7] != 255 || len < 24 {
        return None;
    }
    let kind = icmp[0];
    if (kind != SOLICITATION && kind != ADVERTISEMENT) || icmp[1] != 0 {
        return None;
    }
    let src: [u8; 16] = header[8..24].try_into().ok()?;
    let dst: [u8; 16] = header[24..40].try_into().ok()?;
    let target: [u8; 16] = icmp[8..24].try_into().ok()?;
    if target[0] == 0xff || ipv6_l4_checksum(src, dst, IpProtocol::ICMPV6, icmp) != 0 {
        return None;
    }
    let wanted = if kind == SOLICITATION {
        OPT_SOURCE_LLADDR
    } else {
        OPT_TARGET_LLADDR
    };
    // Options: (type, length in 8-byte units, ...); a zero length is
    // invalid and ends the walk.
    let mut lladdr = None;
    let mut opts = &icmp[24..];
    while let [t, l, ..] = *opts {
        let n = usize::from(l) * 8;
        if n == 0 || n > opts.len() {
            return None;
        }
        if t == wanted && n == 8 {
            lladdr = EthernetAddress::from_slice(&opts[2..8]);
        }
        opts = &opts[n..];
    }
    Some(NdMessage {
        kind,
        src,
        dst,
        target,
        lladdr,
        solicited: kind == ADVERTISEMENT && icmp[4] & FLAG_SOLICITED != 0,
    })
}

/// The solicited-node multicast address of `ip` (ff02::1:ffXX:XXXX).
pub fn solicited_node(ip: [u8; 16]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0xff;
    a[1] = 0x02;
    a[11] = 0x01;
    a[12] = 0xff;
    a[13..].copy_from_slice(&ip[13..]);
    a
}

/// The Ethernet address an IPv6 multicast `ip` maps to (RFC 2464:
/// 33:33 and its last four bytes).
pub fn multicast_mac(ip: [u8; 16]) -> EthernetAddress {
    EthernetAddress::new(0x33, 0x33, ip[12], ip[13], ip[14], ip[15])
}

/// Writes the untagged IPv6 header and message of `kind` at the start of
/// `frame` (after its Ethernet header, written by the caller): from `src`
/// to `dst` about `target`, with the link-layer option `lladdr`.
fn write_message(
    l3: &mut [u8],
    kind: u8,
    flags: u8,
    (src, dst): ([u8; 16], [u8; 16]),
    target: [u8; 16],
    lladdr: EthernetAddress,
) {
    l3[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
    l3[4..6].copy_from_slice(&(MESSAGE_LEN as u16).to_be_bytes());
    l3[6] = IpProtocol::ICMPV6.0;
    l3[7] = 255;
    l3[8..24].copy_from_slice(&src);
    l3[24..40].copy_from_slice(&dst);
    let icmp = &mut l3[IPV6_HEADER..IPV6_HEADER + MESSAGE_LEN];
    icmp[0] = kind;
    icmp[1] = 0;
    icmp[2..4].fill(0);
    icmp[4..8].copy_from_slice(&[flags, 0, 0, 0]);
    icmp[8..24].copy_from_slice(&target);
    icmp[24] = if kind == SOLICITATION {
        OPT_SOURCE_LLADDR
    } else {
        OPT_TARGET_LLADDR
    };
    icmp[25] = 1;
    icmp[26..32].copy_from_slice(lladdr.as_bytes());
    let sum = ipv6_l4_checksum(src, dst, IpProtocol::ICMPV6, icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
}

/// Writes over the frame whose IPv6 header is at `l3` (any VLAN tag before
/// it kept) the solicited, override advertisement of `target` owned by
/// `target_mac`, sent to `to_ip` at `to_mac`; returns the frame's new
/// length, `None` (nothing written) when `frame` is shorter than that.
pub fn write_advertisement(
    frame: &mut [u8],
    l3: usize,
    target: [u8; 16],
    target_mac: EthernetAddress,
    to_ip: [u8; 16],
    to_mac: EthernetAddress,
) -> Option<usize> {
    let end = l3 + IPV6_HEADER + MESSAGE_LEN;
    let buf = frame.get_mut(..end)?;
    buf[0..6].copy_from_slice(to_mac.as_bytes());
    buf[6..12].copy_from_slice(target_mac.as_bytes());
    write_message(
        &mut buf[l3..],
        ADVERTISEMENT,
        FLAG_SOLICITED | FLAG_OVERRIDE,
        (target, to_ip),
        target,
        target_mac,
    );
    Some(end)
}

/// Writes into `frame` (at least [`FRAME_LEN`] bytes; the rest zeroed) an
/// untagged neighbour solicitation from `mac` owning `ip` for `target`:
/// to `target`'s solicited-node group, or, given the MAC last known for
/// it (`unicast`), to `target` itself at that MAC (a unicast probe, as
/// Linux sends to confirm an entry). False, `frame` untouched, when it is
/// too short.
pub fn write_solicitation(
    frame: &mut [u8],
    unicast: Option<EthernetAddress>,
    mac: EthernetAddress,
    ip: [u8; 16],
    target: [u8; 16],
) -> bool {
    let Some((head, padding)) = frame.split_at_mut_checked(FRAME_LEN) else {
        return false;
    };
    let (dst_ip, dst_mac) = match unicast {
        Some(m) => (target, m),
        None => {
            let group = solicited_node(target);
            (group, multicast_mac(group))
        }
    };
    head[0..6].copy_from_slice(dst_mac.as_bytes());
    head[6..12].copy_from_slice(mac.as_bytes());
    head[12..14].copy_from_slice(&EtherType::IPV6.0.to_be_bytes());
    write_message(
        &mut head[super::ethernet::HEADER_LEN..],
        SOLICITATION,
        0,
        (ip, dst_ip),
        target,
        mac,
    );
    padding.fill(0);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const B: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd, 2,
    ];
    const MA: EthernetAddress = EthernetAddress::new(2, 0, 0, 0, 0, 1);
    const MB: EthernetAddress = EthernetAddress::new(2, 0, 0, 0, 0, 2);

    #[test]
    fn a_solicitation_goes_to_the_solicited_node_group_and_reads_back() {
        let mut f = [0xeeu8; 90];
        assert!(write_solicitation(&mut f, None, MA, A, B));
        // 33:33:ff:ab:cd:02 and ff02::1:ffab:cd02 (RFC 4861 / RFC 2464).
        assert_eq!(&f[..6], &[0x33, 0x33, 0xff, 0xab, 0xcd, 0x02]);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        assert_eq!(
            f[38..54],
            [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xab, 0xcd, 2]
        );
        assert_eq!(&f[FRAME_LEN..], &[0u8; 4]);
        let m = parse(&f[14..]).unwrap();
        assert_eq!(
            (m.kind, m.src, m.target, m.lladdr, m.solicited),
            (SOLICITATION, A, B, Some(MA), false)
        );
        // A unicast probe: to the target at the MAC known for it.
        assert!(write_solicitation(&mut f, Some(MB), MA, A, B));
        assert_eq!(&f[..6], MB.as_bytes());
        assert_eq!(parse(&f[14..]).unwrap().dst, B);
        assert!(!write_solicitation(&mut f[..FRAME_LEN - 1], None, MA, A, B));
    }

    #[test]
    fn an_advertisement_answers_in_place_and_reads_back() {
        let mut f = [0u8; 90];
        assert!(write_solicitation(&mut f, None, MA, A, B));
        let m = parse(&f[14..]).unwrap();
        let end = write_advertisement(&mut f, 14, m.target, MB, m.src, m.lladdr.unwrap());
        assert_eq!(end, Some(FRAME_LEN));
        assert_eq!((&f[..6], &f[6..12]), (&MA.0[..], &MB.0[..]));
        let a = parse(&f[14..]).unwrap();
        assert_eq!(
            (a.kind, a.src, a.dst, a.target, a.lladdr, a.solicited),
            (ADVERTISEMENT, B, A, B, Some(MB), true)
        );
        assert_eq!(
            write_advertisement(&mut f[..FRAME_LEN - 1], 14, B, MB, A, MA),
            None
        );
    }

    #[test]
    fn what_rfc_4861_refuses_is_not_read() {
        let mut good = [0u8; FRAME_LEN];
        assert!(write_solicitation(&mut good, None, MA, A, B));
        // Each change with the checksum made to hold again, so that only
        // the check named fails.
        let bad = |at: usize, v: u8| {
            let mut f = good;
            f[at] = v;
            f[56..58].fill(0);
            let (src, dst) = (f[22..38].try_into().unwrap(), f[38..54].try_into().unwrap());
            let sum = ipv6_l4_checksum(src, dst, IpProtocol::ICMPV6, &f[54..FRAME_LEN]);
            f[56..58].copy_from_slice(&sum.to_be_bytes());
            parse(&f[14..])
        };
        assert!(parse(&good[14..]).is_some());
        assert!(bad(58, 0).is_some(), "the checksum is made to hold");
        // Hop limit, code, type, an option of length zero, a multicast
        // target; a next header that is not ICMPv6.
        for (at, v) in [(21, 64), (55, 1), (54, 128), (79, 0), (62, 0xff), (20, 17)] {
            assert_eq!(bad(at, v), None, "byte {at} = {v}");
        }
        // A checksum that does not hold.
        let mut f = good;
        f[56] ^= 1;
        assert_eq!(parse(&f[14..]), None);
    }

    proptest! {
        /// Any bytes: read or refused, never a panic.
        #[test]
        fn any_bytes_are_read_or_refused(f in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Some(m) = parse(&f) {
                prop_assert!(m.kind == SOLICITATION || m.kind == ADVERTISEMENT);
            }
        }
    }
}
