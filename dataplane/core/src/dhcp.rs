//! The switch's own DHCPv4 server, as OVN's native DHCP answers for a
//! Neutron port: each port on a subnet with DHCP enabled gets a
//! [`DhcpConfig`] (its MAC, its fixed address and the subnet's options,
//! compiled from the Neutron model), and a request from that port is turned
//! into the answer in place (`pipeline::serve`): no state, no lease table.
//! A port has exactly one address to give, so a DISCOVER is offered it, a
//! REQUEST for it is acknowledged and one for anything else refused, and a
//! RELEASE changes nothing (the next DISCOVER gets the same address).

use crate::wire::arp::{ArpOperation, ArpPacket};
use crate::wire::dhcpv4::{
    opt, DhcpPacket, MessageType, BOOTREPLY, BOOTREQUEST, CLIENT_PORT, FLAG_BROADCAST,
    MAGIC_COOKIE, MIN_MESSAGE_LEN, OPTIONS_OFFSET, SERVER_PORT,
};
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::{ipv4_l4_checksum, EtherType, IpProtocol};

/// What a port's DHCP server knows: fixed per snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpConfig {
    /// The only client answered: the Neutron port's MAC.
    pub client_mac: [u8; 6],
    /// The address it gets (the port's fixed IPv4 address on the subnet).
    pub client_ip: [u8; 4],
    /// The server's address and MAC: the network's `network:dhcp` port.
    pub server_ip: [u8; 4],
    pub server_mac: [u8; 6],
    pub lease_secs: u32,
    /// Every option but the message type, the server identifier and the
    /// lease times, encoded once (see [`DhcpConfig::new`]), with END.
    options: Vec<u8>,
}

/// A port's DHCP servers: DHCPv4 on its IPv4 subnet with DHCP, DHCPv6 on
/// its `dhcpv6-stateful` or `dhcpv6-stateless` IPv6 subnet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DhcpServer {
    pub v4: Option<DhcpConfig>,
    pub v6: Option<crate::dhcp6::Dhcp6Config>,
}

/// A subnet's and a port's options, as the Neutron model has them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DhcpOptions {
    pub prefix_len: u8,
    pub router: Option<[u8; 4]>,
    pub dns: Vec<[u8; 4]>,
    pub domain: String,
    /// The network's MTU (option 26; 0: not sent).
    pub mtu: u16,
    /// Host routes: destination, prefix length, next hop.
    pub routes: Vec<([u8; 4], u8, [u8; 4])>,
    pub hostname: Option<String>,
}

/// Why a DHCP message to the server gets no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// Not from the port's own MAC (frame source or `chaddr`).
    ForeignMac,
    /// RELEASE or DECLINE: nothing to answer, nothing to forget.
    Release,
    /// A REQUEST that names another server.
    OtherServer,
    /// Relayed (`giaddr` set), a reply, or a type a server never answers.
    Unexpected,
    /// Not a well-formed DHCP message, or no room for the answer.
    Malformed,
}

/// Per-port DHCP counters, by index into `PortCounters::dhcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpCounter {
    /// Every DHCP message from the port to the server.
    Requests = 0,
    Offers = 1,
    Acks = 2,
    Naks = 3,
    /// Messages that got no answer.
    Unanswered = 4,
}

impl DhcpCounter {
    pub const COUNT: usize = 5;
    pub const ALL: [DhcpCounter; DhcpCounter::COUNT] = [
        DhcpCounter::Requests,
        DhcpCounter::Offers,
        DhcpCounter::Acks,
        DhcpCounter::Naks,
        DhcpCounter::Unanswered,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The counter of an answer of kind `kind` (OFFER, NAK, else ACK).
    pub fn answered(kind: MessageType) -> DhcpCounter {
        match kind {
            MessageType::Offer => DhcpCounter::Offers,
            MessageType::Nak => DhcpCounter::Naks,
            _ => DhcpCounter::Acks,
        }
    }

    /// The counter of a DHCPv6 answer of type `kind` (ADVERTISE an offer,
    /// REPLY an ack).
    pub fn answered6(kind: u8) -> DhcpCounter {
        if kind == crate::wire::dhcpv6::msg::ADVERTISE {
            DhcpCounter::Offers
        } else {
            DhcpCounter::Acks
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DhcpCounter::Requests => "requests",
            DhcpCounter::Offers => "offers",
            DhcpCounter::Acks => "acks",
            DhcpCounter::Naks => "naks",
            DhcpCounter::Unanswered => "unanswered",
        }
    }
}

fn push_option(out: &mut Vec<u8>, code: u8, data: &[u8]) {
    // Options longer than 255 bytes are cut into consecutive ones (RFC 3396).
    for chunk in data.chunks(255) {
        out.push(code);
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
}

fn mask(prefix_len: u8) -> [u8; 4] {
    let bits = u32::from(prefix_len.min(32));
    let m = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    m.to_be_bytes()
}

impl DhcpConfig {
    pub fn new(
        client_mac: [u8; 6],
        client_ip: [u8; 4],
        server_ip: [u8; 4],
        server_mac: [u8; 6],
        lease_secs: u32,
        o: &DhcpOptions,
    ) -> DhcpConfig {
        let mut options = Vec::with_capacity(128);
        push_option(&mut options, opt::SUBNET_MASK, &mask(o.prefix_len));
        let bcast = u32::from_be_bytes(client_ip) | !u32::from_be_bytes(mask(o.prefix_len));
        push_option(&mut options, opt::BROADCAST, &bcast.to_be_bytes());
        if let Some(r) = o.router {
            push_option(&mut options, opt::ROUTER, &r);
        }
        if !o.dns.is_empty() {
            push_option(&mut options, opt::DNS, &o.dns.concat());
        }
        if !o.domain.is_empty() {
            push_option(&mut options, opt::DOMAIN_NAME, o.domain.as_bytes());
        }
        if let Some(h) = o.hostname.as_deref().filter(|h| !h.is_empty()) {
            push_option(&mut options, opt::HOSTNAME, h.as_bytes());
        }
        if o.mtu > 0 {
            push_option(&mut options, opt::INTERFACE_MTU, &o.mtu.to_be_bytes());
        }
        if !o.routes.is_empty() {
            // A client that takes option 121 ignores option 3: the default
            // route goes in too (RFC 3442).
            let mut data = Vec::new();
            let default = o.router.map(|r| ([0u8; 4], 0u8, r));
            for (dst, len, hop) in o.routes.iter().copied().chain(default) {
                let len = len.min(32);
                data.push(len);
                data.extend_from_slice(&dst[..usize::from(len).div_ceil(8)]);
                data.extend_from_slice(&hop);
            }
            push_option(&mut options, opt::CLASSLESS_ROUTES, &data);
        }
        options.push(opt::END);
        DhcpConfig {
            client_mac,
            client_ip,
            server_ip,
            server_mac,
            lease_secs,
            options,
        }
    }

    /// Bytes of the longest answer from the IP header on (an ACK: header,
    /// cookie, type, server id, three lease times, the options).
    pub fn max_reply_len(&self) -> usize {
        let dhcp = (OPTIONS_OFFSET + 3 + 6 + 3 * 6 + self.options.len()).max(MIN_MESSAGE_LEN);
        IPV4_HEADER + UDP_HEADER + dhcp
    }
}

const IPV4_HEADER: usize = 20;
const UDP_HEADER: usize = 8;

/// A request, copied out of the frame (the answer overwrites it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub src_mac: [u8; 6],
    pub kind: MessageType,
    pub xid: u32,
    pub flags: u16,
    pub ciaddr: [u8; 4],
    pub chaddr: [u8; 6],
    pub requested: Option<[u8; 4]>,
    pub server_id: Option<[u8; 4]>,
}

/// What a frame from a served port is to the server, from a few bytes read
/// once per frame (the only per-frame cost of a served port's bursts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToServer {
    /// A whole IPv4 UDP datagram to port 67 whose IPv4 header starts here
    /// (14, or 18 behind one tag).
    Dhcp(usize),
    /// An ARP packet starting here: maybe a question about the server.
    Arp(usize),
}

/// Where a frame's L3 header starts (14, or 18 behind one tag: a DHCP
/// client's frames carry at most the tag of an access port's trunk), and
/// its EtherType.
#[inline(always)]
pub(crate) fn l3_behind_one_tag(frame: &[u8]) -> Option<(usize, EtherType)> {
    let at = |i: usize| frame.get(i).copied();
    let ethertype = EtherType(u16::from_be_bytes([at(12)?, at(13)?]));
    if ethertype.is_vlan_tpid() {
        return Some((18, EtherType(u16::from_be_bytes([at(16)?, at(17)?]))));
    }
    Some((14, ethertype))
}

/// Sorts a frame: DHCP to a server, ARP, or neither (`None`).
#[inline(always)]
pub fn to_server(frame: &[u8]) -> Option<ToServer> {
    let at = |i: usize| frame.get(i).copied();
    let (l3, ethertype) = l3_behind_one_tag(frame)?;
    match ethertype {
        EtherType::ARP => Some(ToServer::Arp(l3)),
        EtherType::IPV4 if IpProtocol(at(l3 + 9)?) == IpProtocol::UDP => {
            let ihl = usize::from(at(l3)? & 0x0f) * 4;
            // Fragment offset or more fragments: not a whole datagram.
            if u16::from_be_bytes([at(l3 + 6)?, at(l3 + 7)?]) & 0x3fff != 0 {
                return None;
            }
            let dport = u16::from_be_bytes([at(l3 + ihl + 2)?, at(l3 + ihl + 3)?]);
            (dport == SERVER_PORT).then_some(ToServer::Dhcp(l3))
        }
        _ => None,
    }
}

/// Answers, in place, the ARP packet at `l3` (as [`to_server`] found it) if
/// it is a request from the port's own MAC for the server's address (a
/// client renewing its lease unicasts to the server, as it would to a DHCP
/// agent's port): true when `frame` now holds the reply, false (frame
/// untouched) otherwise.
pub fn answer_arp(cfg: &DhcpConfig, frame: &mut [u8], l3: usize) -> bool {
    let Some(arp) = frame.get(l3..).and_then(|b| ArpPacket::new_checked(b).ok()) else {
        return false;
    };
    if arp.op() != ArpOperation::REQUEST
        || arp.sha().0 != cfg.client_mac
        || frame[6..12] != cfg.client_mac
        || arp.tpa() != cfg.server_ip
    {
        return false;
    }
    crate::wire::arp::reply_in_place(
        frame,
        l3,
        crate::wire::EthernetAddress(cfg.server_mac),
        cfg.server_ip,
    )
}

/// Reads the request of a frame `to_server` accepted (its IPv4 header at `l3`).
pub fn parse(frame: &[u8], l3: usize) -> Result<Request, Unanswered> {
    let ip = frame.get(l3..).ok_or(Unanswered::Malformed)?;
    let ihl = usize::from(ip.first().ok_or(Unanswered::Malformed)? & 0x0f) * 4;
    let total = ip
        .get(2..4)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        .ok_or(Unanswered::Malformed)?;
    if ihl < IPV4_HEADER || total < ihl + UDP_HEADER || total > ip.len() {
        return Err(Unanswered::Malformed);
    }
    let udp = &ip[ihl..total];
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    let payload = udp.get(UDP_HEADER..udp_len).ok_or(Unanswered::Malformed)?;
    let m = DhcpPacket::new_checked(payload).map_err(|_| Unanswered::Malformed)?;
    let kind = m.message_type().ok_or(Unanswered::Malformed)?;
    if m.op() != BOOTREQUEST || m.giaddr() != [0; 4] {
        return Err(Unanswered::Unexpected);
    }
    let mut src_mac = [0u8; 6];
    src_mac.copy_from_slice(frame.get(6..12).ok_or(Unanswered::Malformed)?);
    Ok(Request {
        src_mac,
        kind,
        xid: m.xid(),
        flags: m.flags(),
        ciaddr: m.ciaddr(),
        chaddr: m.chaddr(),
        requested: m.address_option(opt::REQUESTED_IP),
        server_id: m.address_option(opt::SERVER_ID),
    })
}

/// The answer `cfg`'s server gives `req`: OFFER, ACK or NAK.
pub fn decide(cfg: &DhcpConfig, req: &Request) -> Result<MessageType, Unanswered> {
    if req.src_mac != cfg.client_mac || req.chaddr != cfg.client_mac {
        return Err(Unanswered::ForeignMac);
    }
    match req.kind {
        MessageType::Discover => Ok(MessageType::Offer),
        MessageType::Request => {
            if req.server_id.is_some_and(|s| s != cfg.server_ip) {
                return Err(Unanswered::OtherServer);
            }
            // SELECTING and INIT-REBOOT name the address in option 50;
            // RENEWING and REBINDING in ciaddr.
            let asked = req.requested.unwrap_or(req.ciaddr);
            Ok(if asked == cfg.client_ip {
                MessageType::Ack
            } else {
                MessageType::Nak
            })
        }
        MessageType::Inform => Ok(MessageType::Ack),
        MessageType::Release | MessageType::Decline => Err(Unanswered::Release),
        _ => Err(Unanswered::Unexpected),
    }
}

/// Writes the answer of kind `kind` to `req` into `frame`, whose first `l2`
/// bytes are the request's Ethernet header (and tag, kept as it is), and
/// returns the answer frame's length; `frame` must hold `l2 +
/// cfg.max_reply_len()` bytes.
pub fn write_reply(
    cfg: &DhcpConfig,
    req: &Request,
    kind: MessageType,
    frame: &mut [u8],
    l2: usize,
) -> Result<usize, Unanswered> {
    let inform = req.kind == MessageType::Inform;
    let nak = kind == MessageType::Nak;
    // Where the answer goes (RFC 2131 4.1): a NAK to everyone, a client
    // with an address to it, one that asked for broadcast to everyone,
    // else to the address it is being given.
    let broadcast = nak || (req.ciaddr == [0; 4] && req.flags & FLAG_BROADCAST != 0);
    let (dst_mac, dst_ip) = if broadcast {
        ([0xff; 6], [0xff; 4])
    } else if req.ciaddr != [0; 4] {
        (req.chaddr, req.ciaddr)
    } else {
        (req.chaddr, cfg.client_ip)
    };
    let yiaddr = if nak || inform { [0; 4] } else { cfg.client_ip };
    let body = frame
        .get_mut(l2..l2 + cfg.max_reply_len())
        .ok_or(Unanswered::Malformed)?;
    body.fill(0);
    let (ip, rest) = body.split_at_mut(IPV4_HEADER);
    let (udp, m) = rest.split_at_mut(UDP_HEADER);
    // The DHCP message.
    m[0] = BOOTREPLY;
    m[1] = 1;
    m[2] = 6;
    m[4..8].copy_from_slice(&req.xid.to_be_bytes());
    m[10..12].copy_from_slice(&req.flags.to_be_bytes());
    if !nak {
        m[12..16].copy_from_slice(&req.ciaddr);
    }
    m[16..20].copy_from_slice(&yiaddr);
    m[28..34].copy_from_slice(&req.chaddr);
    m[236..240].copy_from_slice(&MAGIC_COOKIE);
    let mut at = OPTIONS_OFFSET;
    let mut put = |bytes: &[u8]| {
        m[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(&[opt::MESSAGE_TYPE, 1, kind.code()]);
    put(&[opt::SERVER_ID, 4]);
    put(&cfg.server_ip);
    if nak {
        put(&[opt::END]);
    } else {
        if !inform {
            // Renew at half the lease, rebind at seven eighths (RFC 2131).
            let l = cfg.lease_secs;
            for (code, secs) in [
                (opt::LEASE_TIME, l),
                (opt::RENEWAL_TIME, l / 2),
                (opt::REBINDING_TIME, (u64::from(l) * 7 / 8) as u32),
            ] {
                put(&[code, 4]);
                put(&secs.to_be_bytes());
            }
        }
        put(&cfg.options);
    }
    let dhcp_len = at.max(MIN_MESSAGE_LEN);
    // UDP (its checksum last, over the pseudo-header).
    let udp_len = (UDP_HEADER + dhcp_len) as u16;
    udp[0..2].copy_from_slice(&SERVER_PORT.to_be_bytes());
    udp[2..4].copy_from_slice(&CLIENT_PORT.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    // IPv4.
    let total = IPV4_HEADER as u16 + udp_len;
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = 64;
    ip[9] = IpProtocol::UDP.0;
    ip[12..16].copy_from_slice(&cfg.server_ip);
    ip[16..20].copy_from_slice(&dst_ip);
    Ipv4Packet::new_unchecked(&mut *ip).fill_checksum();
    let segment = &mut body[IPV4_HEADER..IPV4_HEADER + usize::from(udp_len)];
    let c = ipv4_l4_checksum(cfg.server_ip, dst_ip, IpProtocol::UDP, segment);
    segment[6..8].copy_from_slice(&c.to_be_bytes());
    // Ethernet: to the client from the DHCP port; a tag stays as it came.
    frame[0..6].copy_from_slice(&dst_mac);
    frame[6..12].copy_from_slice(&cfg.server_mac);
    Ok(l2 + usize::from(total))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::checksum;
    use crate::wire::dhcpv4::DhcpPacket;

    const VM: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 1];
    const DHCP_MAC: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 2];

    fn cfg() -> DhcpConfig {
        DhcpConfig::new(
            VM,
            [10, 0, 0, 5],
            [10, 0, 0, 2],
            DHCP_MAC,
            600,
            &DhcpOptions {
                prefix_len: 24,
                router: Some([10, 0, 0, 1]),
                dns: vec![[8, 8, 8, 8], [1, 1, 1, 1]],
                domain: "openstacklocal".into(),
                mtu: 1450,
                routes: vec![([192, 168, 0, 0], 16, [10, 0, 0, 254])],
                hostname: Some("vm-1".into()),
            },
        )
    }

    /// A client's frame: `kind` with `options` from `mac`.
    pub(crate) fn request(mac: [u8; 6], kind: u8, ciaddr: [u8; 4], options: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; OPTIONS_OFFSET];
        m[0] = BOOTREQUEST;
        m[1] = 1;
        m[2] = 6;
        m[4..8].copy_from_slice(&7u32.to_be_bytes());
        m[12..16].copy_from_slice(&ciaddr);
        m[28..34].copy_from_slice(&mac);
        m[236..240].copy_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[opt::MESSAGE_TYPE, 1, kind]);
        m.extend_from_slice(options);
        m.push(opt::END);
        m.resize(300, 0);
        let udp_len = (8 + m.len()) as u16;
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&mac);
        f.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0];
        ip.extend_from_slice(&ciaddr);
        ip.extend_from_slice(&[255; 4]);
        ip[2..4].copy_from_slice(&(20 + udp_len).to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&68u16.to_be_bytes());
        f.extend_from_slice(&67u16.to_be_bytes());
        f.extend_from_slice(&udp_len.to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&m);
        f
    }

    fn answer(cfg: &DhcpConfig, mut f: Vec<u8>) -> Result<Vec<u8>, Unanswered> {
        let Some(ToServer::Dhcp(l3)) = to_server(&f) else {
            return Err(Unanswered::Unexpected);
        };
        let req = parse(&f, l3)?;
        let kind = decide(cfg, &req)?;
        f.resize(l3 + cfg.max_reply_len(), 0);
        let len = write_reply(cfg, &req, kind, &mut f, l3)?;
        f.truncate(len);
        Ok(f)
    }

    /// The answer's DHCP message, its IP and UDP checksums checked.
    fn message(f: &[u8]) -> DhcpPacket<&[u8]> {
        let ip = &f[14..];
        assert_eq!(checksum(&ip[..20]), 0, "IPv4 header checksum");
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let udp = &ip[20..total];
        let mut pseudo = Vec::from(&ip[12..20]);
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
        pseudo.extend_from_slice(udp);
        assert_eq!(checksum(&pseudo), 0, "UDP checksum");
        assert_eq!(&udp[0..4], &[0, 67, 0, 68]);
        DhcpPacket::new_checked(&udp[8..]).unwrap()
    }

    #[test]
    fn a_discover_is_offered_the_ports_address_with_every_option() {
        let c = cfg();
        let f = answer(&c, request(VM, 1, [0; 4], &[55, 3, 1, 3, 121])).unwrap();
        assert_eq!(&f[0..6], &VM, "unicast to the client");
        assert_eq!(&f[6..12], &DHCP_MAC);
        assert_eq!(&f[30..34], &[10, 0, 0, 5], "to the address offered");
        let m = message(&f);
        assert_eq!(m.op(), BOOTREPLY);
        assert_eq!(m.xid(), 7);
        assert_eq!(m.message_type(), Some(MessageType::Offer));
        assert_eq!(m.address_option(opt::SERVER_ID), Some([10, 0, 0, 2]));
        assert_eq!(m.option(opt::SUBNET_MASK), Some(&[255u8, 255, 255, 0][..]));
        assert_eq!(m.option(opt::ROUTER), Some(&[10u8, 0, 0, 1][..]));
        assert_eq!(m.option(opt::DNS), Some(&[8u8, 8, 8, 8, 1, 1, 1, 1][..]));
        assert_eq!(m.option(opt::DOMAIN_NAME), Some(&b"openstacklocal"[..]));
        assert_eq!(m.option(opt::HOSTNAME), Some(&b"vm-1"[..]));
        assert_eq!(
            m.option(opt::INTERFACE_MTU),
            Some(&1450u16.to_be_bytes()[..])
        );
        assert_eq!(m.option(opt::LEASE_TIME), Some(&600u32.to_be_bytes()[..]));
        assert_eq!(m.option(opt::RENEWAL_TIME), Some(&300u32.to_be_bytes()[..]));
        assert_eq!(
            m.option(opt::CLASSLESS_ROUTES),
            Some(&[16u8, 192, 168, 10, 0, 0, 254, 0, 10, 0, 0, 1][..]),
            "the host route, then the default route"
        );
        let yiaddr = &f[14 + 28 + 16..14 + 28 + 20];
        assert_eq!(yiaddr, &[10, 0, 0, 5]);
    }

    #[test]
    fn requests_are_acked_or_refused_and_the_rest_unanswered() {
        let c = cfg();
        // SELECTING: option 50 and our server id.
        let f = answer(
            &c,
            request(VM, 3, [0; 4], &[50, 4, 10, 0, 0, 5, 54, 4, 10, 0, 0, 2]),
        )
        .unwrap();
        assert_eq!(message(&f).message_type(), Some(MessageType::Ack));
        // RENEWING: ciaddr, answered to it.
        let f = answer(&c, request(VM, 3, [10, 0, 0, 5], &[])).unwrap();
        assert_eq!(message(&f).message_type(), Some(MessageType::Ack));
        assert_eq!(&f[30..34], &[10, 0, 0, 5]);
        // An address that is not the port's (it changed): NAK, broadcast.
        let f = answer(&c, request(VM, 3, [0; 4], &[50, 4, 10, 0, 0, 9])).unwrap();
        let m = message(&f);
        assert_eq!(m.message_type(), Some(MessageType::Nak));
        assert_eq!(m.option(opt::LEASE_TIME), None);
        assert_eq!(&f[0..6], &[0xff; 6]);
        // Another server chosen, another MAC, a release.
        assert_eq!(
            answer(&c, request(VM, 3, [0; 4], &[54, 4, 10, 0, 0, 3])),
            Err(Unanswered::OtherServer)
        );
        assert_eq!(
            answer(&c, request([2, 0, 0, 0, 0, 9], 1, [0; 4], &[])),
            Err(Unanswered::ForeignMac)
        );
        assert_eq!(
            answer(&c, request(VM, 7, [10, 0, 0, 5], &[])),
            Err(Unanswered::Release)
        );
        // INFORM: options, no address, no lease.
        let f = answer(&c, request(VM, 8, [10, 0, 0, 5], &[])).unwrap();
        let m = message(&f);
        assert_eq!(m.message_type(), Some(MessageType::Ack));
        assert_eq!(m.option(opt::LEASE_TIME), None);
        assert_eq!(m.option(opt::DNS), Some(&[8u8, 8, 8, 8, 1, 1, 1, 1][..]));
    }

    #[test]
    fn arp_for_the_server_from_the_port_is_answered() {
        let c = cfg();
        let request = |sender: [u8; 6], target: [u8; 4]| {
            let mut f = vec![0xff; 6];
            f.extend_from_slice(&sender);
            f.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, 1]);
            f.extend_from_slice(&sender);
            f.extend_from_slice(&[10, 0, 0, 5]);
            f.extend_from_slice(&[0; 6]);
            f.extend_from_slice(&target);
            f
        };
        let mut f = request(VM, [10, 0, 0, 2]);
        assert_eq!(to_server(&f), Some(ToServer::Arp(14)));
        assert!(answer_arp(&c, &mut f, 14));
        assert_eq!(&f[0..6], &VM);
        assert_eq!(&f[6..12], &DHCP_MAC);
        assert_eq!(&f[20..22], &[0, 2], "a reply");
        assert_eq!(&f[22..28], &DHCP_MAC);
        assert_eq!(&f[28..32], &[10, 0, 0, 2]);
        assert_eq!(&f[32..38], &VM);
        assert_eq!(&f[38..42], &[10, 0, 0, 5]);
        for mut other in [
            request(VM, [10, 0, 0, 1]),
            request([2, 0, 0, 0, 0, 9], [10, 0, 0, 2]),
            request(VM, [10, 0, 0, 2])[..30].to_vec(),
        ] {
            let before = other.clone();
            assert!(!answer_arp(&c, &mut other, 14));
            assert_eq!(other, before);
        }
    }

    #[test]
    fn only_whole_udp_datagrams_to_port_67_go_to_the_server() {
        let f = request(VM, 1, [0; 4], &[]);
        assert_eq!(to_server(&f), Some(ToServer::Dhcp(14)));
        let mut other = f.clone();
        other[14 + 20 + 3] = 53;
        assert_eq!(to_server(&other), None);
        let mut frag = f.clone();
        frag[14 + 6] = 0x20;
        assert_eq!(to_server(&frag), None);
        let mut tagged = f[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0, 0, 5]);
        tagged.extend_from_slice(&f[12..]);
        assert_eq!(to_server(&tagged), Some(ToServer::Dhcp(18)));
        for n in 0..f.len() {
            if let Some(ToServer::Dhcp(l3)) = to_server(&f[..n]) {
                let _ = parse(&f[..n], l3);
            }
        }
    }

    proptest::proptest! {
        /// Whatever the bytes, parsing never panics, and whatever a parse
        /// accepts gets an answer that fits the room promised.
        #[test]
        fn any_frame_is_answered_or_refused_without_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            kind in 1u8..9,
        ) {
            let c = cfg();
            let mut f = request(VM, kind, [0; 4], &[]);
            let n = bytes.len().min(f.len() - 42);
            f[42..42 + n].copy_from_slice(&bytes[..n]);
            f[42] = BOOTREQUEST;
            let _ = answer(&c, f);
            if let Some(ToServer::Dhcp(l3)) = to_server(&bytes) {
                let _ = parse(&bytes, l3);
            }
        }
    }
}
