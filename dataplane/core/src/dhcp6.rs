//! The switch's own DHCPv6 server (RFC 8415), as OVN's native DHCPv6
//! answers for a Neutron port on a subnet whose `ipv6_address_mode` is
//! `dhcpv6-stateful` (the port's fixed address, and the options) or
//! `dhcpv6-stateless` (the options only: DNS servers and the domain). Like
//! the DHCPv4 server it keeps no state: each port has one address to give,
//! and a request from the port is turned into the answer in place. The
//! server is the network's `network:dhcp` port: its MAC, its link-local
//! address (EUI-64 of the MAC) and a DUID-LL of the MAC as server id.

use crate::dhcp::Unanswered;
use crate::wire::dhcpv6::{
    msg, opt, status, Dhcpv6Packet, Options, CLIENT_PORT, MAX_DUID_LEN, SERVER_PORT,
};
use crate::wire::{ipv6_l4_checksum, EtherType, IpProtocol};

/// What a port's DHCPv6 server knows: fixed per snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dhcp6Config {
    /// The only client answered: the Neutron port's MAC.
    pub client_mac: [u8; 6],
    /// Its address on a stateful subnet; `None` on a stateless one.
    pub address: Option<[u8; 16]>,
    pub server_mac: [u8; 6],
    /// fe80::/64 with the EUI-64 of `server_mac`.
    pub server_ip: [u8; 16],
    /// DUID-LL (type 3, hardware type 1) of `server_mac`.
    pub server_duid: [u8; 10],
    pub lease_secs: u32,
    /// DNS servers and domain search list, encoded once.
    options: Vec<u8>,
}

/// The IPv6 link-local address a MAC makes (modified EUI-64, RFC 4291).
pub fn link_local(mac: [u8; 6]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0xfe;
    a[1] = 0x80;
    a[8] = mac[0] ^ 0x02;
    a[9] = mac[1];
    a[10] = mac[2];
    a[11] = 0xff;
    a[12] = 0xfe;
    a[13] = mac[3];
    a[14] = mac[4];
    a[15] = mac[5];
    a
}

fn push_option(out: &mut Vec<u8>, code: u16, data: &[u8]) {
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&(data.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    out.extend_from_slice(&data[..data.len().min(usize::from(u16::MAX))]);
}

/// `domain` in DNS wire format (RFC 1035 3.1), as option 24 carries it;
/// empty for an empty name or one with a label over 63 bytes.
fn dns_name(domain: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in domain.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Vec::new();
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

impl Dhcp6Config {
    pub fn new(
        client_mac: [u8; 6],
        address: Option<[u8; 16]>,
        server_mac: [u8; 6],
        lease_secs: u32,
        dns: &[[u8; 16]],
        domain: &str,
    ) -> Dhcp6Config {
        let mut options = Vec::new();
        if !dns.is_empty() {
            push_option(&mut options, opt::DNS_SERVERS, &dns.concat());
        }
        let name = dns_name(domain);
        if !name.is_empty() {
            push_option(&mut options, opt::DOMAIN_LIST, &name);
        }
        let mut server_duid = [0u8, 3, 0, 1, 0, 0, 0, 0, 0, 0];
        server_duid[4..].copy_from_slice(&server_mac);
        Dhcp6Config {
            client_mac,
            address,
            server_mac,
            server_ip: link_local(server_mac),
            server_duid,
            lease_secs,
            options,
        }
    }

    /// Bytes of the longest answer from the IPv6 header on.
    pub fn max_reply_len(&self) -> usize {
        IPV6_HEADER
            + UDP_HEADER
            + 4
            + (4 + MAX_DUID_LEN)
            + (4 + self.server_duid.len())
            + (4 + 12 + 2 * (4 + 24))
            + (4 + 2)
            + 4
            + (4 + 1)
            + self.options.len()
    }
}

const IPV6_HEADER: usize = 40;
const UDP_HEADER: usize = 8;

/// A request, copied out of the frame (the answer overwrites it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request6 {
    pub src_mac: [u8; 6],
    pub src_ip: [u8; 16],
    pub kind: u8,
    pub xid: [u8; 3],
    client_id: [u8; MAX_DUID_LEN],
    client_id_len: usize,
    /// Its server id option: `None` when it has none.
    pub server_id_ours: Option<bool>,
    /// The IAID of its (first) IA_NA, and the address it asked for there.
    pub ia_na: Option<([u8; 4], Option<[u8; 16]>)>,
    pub rapid_commit: bool,
}

impl Request6 {
    pub fn client_id(&self) -> &[u8] {
        &self.client_id[..self.client_id_len]
    }
}

/// Sorts a frame: an IPv6 UDP datagram to port 547 whose IPv6 header starts
/// at the returned offset (14, or 18 behind one tag), or `None`.
#[inline(always)]
pub fn to_server(frame: &[u8]) -> Option<usize> {
    let at = |i: usize| frame.get(i).copied();
    let (l3, ethertype) = crate::dhcp::l3_behind_one_tag(frame)?;
    if ethertype != EtherType::IPV6 || IpProtocol(at(l3 + 6)?) != IpProtocol::UDP {
        return None;
    }
    let dport = u16::from_be_bytes([at(l3 + 42)?, at(l3 + 43)?]);
    (dport == SERVER_PORT).then_some(l3)
}

/// Reads the request of a frame [`to_server`] accepted.
pub fn parse(cfg: &Dhcp6Config, frame: &[u8], l3: usize) -> Result<Request6, Unanswered> {
    let ip = frame.get(l3..).ok_or(Unanswered::Malformed)?;
    if ip.len() < IPV6_HEADER + UDP_HEADER || ip[0] >> 4 != 6 {
        return Err(Unanswered::Malformed);
    }
    let payload_len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let udp = ip
        .get(IPV6_HEADER..IPV6_HEADER + payload_len)
        .ok_or(Unanswered::Malformed)?;
    let udp_len = usize::from(u16::from_be_bytes([
        *udp.get(4).ok_or(Unanswered::Malformed)?,
        *udp.get(5).ok_or(Unanswered::Malformed)?,
    ]));
    let body = udp.get(UDP_HEADER..udp_len).ok_or(Unanswered::Malformed)?;
    let m = Dhcpv6Packet::new_checked(body).map_err(|_| Unanswered::Malformed)?;
    let mut src_mac = [0u8; 6];
    src_mac.copy_from_slice(&frame[6..12]);
    let mut src_ip = [0u8; 16];
    src_ip.copy_from_slice(&ip[8..24]);
    let mut r = Request6 {
        src_mac,
        src_ip,
        kind: m.msg_type(),
        xid: m.transaction_id(),
        client_id: [0; MAX_DUID_LEN],
        client_id_len: 0,
        server_id_ours: None,
        ia_na: None,
        rapid_commit: false,
    };
    for (code, data) in m.options() {
        match code {
            opt::CLIENTID if r.client_id_len == 0 => {
                if data.is_empty() || data.len() > MAX_DUID_LEN {
                    return Err(Unanswered::Malformed);
                }
                r.client_id[..data.len()].copy_from_slice(data);
                r.client_id_len = data.len();
            }
            opt::SERVERID => r.server_id_ours = Some(data == cfg.server_duid),
            opt::IA_NA if r.ia_na.is_none() && data.len() >= 12 => {
                let iaid = [data[0], data[1], data[2], data[3]];
                let asked = Options::new(&data[12..])
                    .find(|&(c, d)| c == opt::IAADDR && d.len() >= 24)
                    .map(|(_, d)| std::array::from_fn(|i| d[i]));
                r.ia_na = Some((iaid, asked));
            }
            opt::RAPID_COMMIT => r.rapid_commit = true,
            _ => {}
        }
    }
    Ok(r)
}

/// The type of the answer `cfg`'s server gives `req` (ADVERTISE or REPLY).
pub fn decide(cfg: &Dhcp6Config, req: &Request6) -> Result<u8, Unanswered> {
    if req.src_mac != cfg.client_mac {
        return Err(Unanswered::ForeignMac);
    }
    if req.client_id().is_empty() && req.kind != msg::INFORMATION_REQUEST {
        return Err(Unanswered::Malformed);
    }
    match req.kind {
        msg::SOLICIT => {
            if req.server_id_ours.is_some() {
                return Err(Unanswered::Unexpected);
            }
            Ok(if req.rapid_commit && cfg.address.is_some() {
                msg::REPLY
            } else {
                msg::ADVERTISE
            })
        }
        // These name the server they are for (REBIND and CONFIRM go to any).
        msg::REQUEST | msg::RENEW | msg::RELEASE | msg::DECLINE
            if req.server_id_ours != Some(true) =>
        {
            Err(Unanswered::OtherServer)
        }
        msg::REQUEST | msg::RENEW | msg::REBIND | msg::CONFIRM | msg::INFORMATION_REQUEST => {
            Ok(msg::REPLY)
        }
        // Acknowledged with a status (RFC 8415 18.3.7-8): nothing to forget.
        msg::RELEASE | msg::DECLINE => Ok(msg::REPLY),
        _ => Err(Unanswered::Unexpected),
    }
}

/// Writes the answer of type `kind` to `req` into `frame`, whose first `l2`
/// bytes are the request's Ethernet header (and tag, kept as it is), and
/// returns the answer frame's length; `frame` must hold `l2 +
/// cfg.max_reply_len()` bytes.
pub fn write_reply(
    cfg: &Dhcp6Config,
    req: &Request6,
    kind: u8,
    frame: &mut [u8],
    l2: usize,
) -> Result<usize, Unanswered> {
    let body = frame
        .get_mut(l2..l2 + cfg.max_reply_len())
        .ok_or(Unanswered::Malformed)?;
    body.fill(0);
    let (ip, rest) = body.split_at_mut(IPV6_HEADER);
    let (udp, m) = rest.split_at_mut(UDP_HEADER);
    m[0] = kind;
    m[1..4].copy_from_slice(&req.xid);
    let mut at = 4;
    let mut put = |code: u16, parts: &[&[u8]]| {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        m[at..at + 2].copy_from_slice(&code.to_be_bytes());
        m[at + 2..at + 4].copy_from_slice(&(len as u16).to_be_bytes());
        at += 4;
        for p in parts {
            m[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
    };
    if !req.client_id().is_empty() {
        put(opt::CLIENTID, &[req.client_id()]);
    }
    put(opt::SERVERID, &[&cfg.server_duid]);
    let status_only = matches!(req.kind, msg::RELEASE | msg::DECLINE | msg::CONFIRM);
    if status_only {
        put(opt::STATUS_CODE, &[&status::SUCCESS.to_be_bytes()]);
    } else if let (Some((iaid, asked)), false) = (req.ia_na, req.kind == msg::INFORMATION_REQUEST) {
        let l = cfg.lease_secs;
        let (t1, t2) = (l / 2, (u64::from(l) * 4 / 5) as u32);
        match cfg.address {
            Some(addr) => {
                let lives = [l.to_be_bytes(), l.to_be_bytes()].concat();
                // An address the client holds that is not the port's any
                // more goes with lifetimes 0 (RFC 8415 18.3.4): how a
                // changed fixed IP reaches it at its next renewal.
                let stale = asked.filter(|a| *a != addr);
                let mut iaaddr = [0u8; 2 * (4 + 24)];
                let mut n = 0;
                for (a, lifetimes) in [(Some(addr), &lives[..]), (stale, &[0u8; 8][..])] {
                    let Some(a) = a else { continue };
                    iaaddr[n..n + 2].copy_from_slice(&opt::IAADDR.to_be_bytes());
                    iaaddr[n + 2..n + 4].copy_from_slice(&24u16.to_be_bytes());
                    iaaddr[n + 4..n + 20].copy_from_slice(&a);
                    iaaddr[n + 20..n + 28].copy_from_slice(lifetimes);
                    n += 28;
                }
                put(
                    opt::IA_NA,
                    &[&iaid, &t1.to_be_bytes(), &t2.to_be_bytes(), &iaaddr[..n]],
                );
            }
            None => {
                // A stateless subnet has no address to give.
                let mut st = [0u8; 6];
                st[0..2].copy_from_slice(&opt::STATUS_CODE.to_be_bytes());
                st[2..4].copy_from_slice(&2u16.to_be_bytes());
                st[4..6].copy_from_slice(&status::NO_ADDRS_AVAIL.to_be_bytes());
                put(opt::IA_NA, &[&iaid, &[0u8; 8], &st]);
            }
        }
    }
    if kind == msg::REPLY && req.kind == msg::SOLICIT {
        put(opt::RAPID_COMMIT, &[]);
    }
    if kind == msg::ADVERTISE {
        // The only server a port has: the highest preference, so the client
        // requests at once instead of waiting a second for others (RFC 8415
        // 18.2.1).
        put(opt::PREFERENCE, &[&[255]]);
    }
    if !status_only {
        m[at..at + cfg.options.len()].copy_from_slice(&cfg.options);
        at += cfg.options.len();
    }
    // UDP, its checksum over the IPv6 pseudo-header.
    let udp_len = (UDP_HEADER + at) as u16;
    udp[0..2].copy_from_slice(&SERVER_PORT.to_be_bytes());
    udp[2..4].copy_from_slice(&CLIENT_PORT.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    // IPv6: from the server's link-local address to the client's source.
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&udp_len.to_be_bytes());
    ip[6] = IpProtocol::UDP.0;
    ip[7] = 255;
    ip[8..24].copy_from_slice(&cfg.server_ip);
    ip[24..40].copy_from_slice(&req.src_ip);
    let segment = &mut body[IPV6_HEADER..IPV6_HEADER + usize::from(udp_len)];
    let c = ipv6_l4_checksum(cfg.server_ip, req.src_ip, IpProtocol::UDP, segment);
    segment[6..8].copy_from_slice(&c.to_be_bytes());
    frame[0..6].copy_from_slice(&req.src_mac);
    frame[6..12].copy_from_slice(&cfg.server_mac);
    Ok(l2 + IPV6_HEADER + usize::from(udp_len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv6_l4_checksum;
    use proptest::prelude::*;

    const CLIENT: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 1];
    const SERVER: [u8; 6] = [0xfa, 0x16, 0x3e, 0, 0, 9];
    const ADDR: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];

    fn cfg(stateful: bool) -> Dhcp6Config {
        let dns = [[
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53,
        ]];
        Dhcp6Config::new(
            CLIENT,
            stateful.then_some(ADDR),
            SERVER,
            86_400,
            &dns,
            "openstacklocal",
        )
    }

    /// A client message from CLIENT's link-local address to ff02::1:2.
    fn request(kind: u8, options: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut m = vec![kind, 1, 2, 3];
        for (c, d) in options {
            m.extend_from_slice(&c.to_be_bytes());
            m.extend_from_slice(&(d.len() as u16).to_be_bytes());
            m.extend_from_slice(d);
        }
        let src = link_local(CLIENT);
        let dst = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2];
        let mut udp = vec![0x02, 0x22, 0x02, 0x23, 0, 0, 0, 0];
        udp.extend_from_slice(&m);
        let ul = udp.len() as u16;
        udp[4..6].copy_from_slice(&ul.to_be_bytes());
        let c = ipv6_l4_checksum(src, dst, IpProtocol::UDP, &udp);
        udp[6..8].copy_from_slice(&c.to_be_bytes());
        let mut f = vec![0x33, 0x33, 0, 1, 0, 2];
        f.extend_from_slice(&CLIENT);
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&ul.to_be_bytes());
        f.extend_from_slice(&[17, 1]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&udp);
        f
    }

    fn duid() -> Vec<u8> {
        vec![0, 3, 0, 1, 0xfa, 0x16, 0x3e, 0, 0, 1]
    }

    /// SOLICIT for an address.
    fn solicit() -> Vec<u8> {
        request(
            msg::SOLICIT,
            &[(opt::CLIENTID, duid()), (opt::IA_NA, ia_na(None))],
        )
    }

    fn ia_na(asked: Option<[u8; 16]>) -> Vec<u8> {
        let mut d = vec![0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0];
        if let Some(a) = asked {
            d.extend_from_slice(&[0, 5, 0, 24]);
            d.extend_from_slice(&a);
            d.extend_from_slice(&[0; 8]);
        }
        d
    }

    /// An answer's options, in order.
    type Opts = Vec<(u16, Vec<u8>)>;

    /// Serves `frame` as the pipeline does; the answer's type and options.
    fn answer(c: &Dhcp6Config, mut frame: Vec<u8>) -> Result<(u8, Opts), Unanswered> {
        let l3 = to_server(&frame).expect("to the server");
        let req = parse(c, &frame, l3)?;
        let kind = decide(c, &req)?;
        frame.resize(l3 + c.max_reply_len(), 0);
        let len = write_reply(c, &req, kind, &mut frame, l3)?;
        frame.truncate(len);
        assert_eq!(frame[0..6], CLIENT);
        assert_eq!(frame[6..12], SERVER);
        let ip = &frame[14..];
        assert_eq!(ip[8..24], link_local(SERVER));
        assert_eq!(ip[24..40], link_local(CLIENT));
        let udp = &ip[40..];
        assert_eq!(
            crate::wire::fold(
                crate::wire::sum16(&ip[8..40]) + 17 + udp.len() as u64 + crate::wire::sum16(udp)
            ),
            0,
            "UDP checksum"
        );
        let m = Dhcpv6Packet::new_checked(&udp[8..]).unwrap();
        assert_eq!(m.transaction_id(), [1, 2, 3]);
        Ok((
            m.msg_type(),
            m.options().map(|(c, d)| (c, d.to_vec())).collect(),
        ))
    }

    fn find(opts: &[(u16, Vec<u8>)], code: u16) -> Option<&Vec<u8>> {
        opts.iter().find(|(c, _)| *c == code).map(|(_, d)| d)
    }

    #[test]
    fn stateful_solicit_request_renew_release() {
        let c = cfg(true);
        let (t, o) = answer(&c, solicit()).unwrap();
        assert_eq!(t, msg::ADVERTISE);
        assert_eq!(find(&o, opt::PREFERENCE), Some(&vec![255]));
        assert_eq!(find(&o, opt::CLIENTID), Some(&duid()));
        let sid = find(&o, opt::SERVERID).unwrap().clone();
        let ia = find(&o, opt::IA_NA).unwrap();
        assert_eq!(ia[0..4], [0, 0, 0, 7]);
        assert_eq!(ia[4..12], [0, 0, 0xa8, 0xc0, 0, 1, 0x0e, 0x00]); // T1 43200, T2 69120
        assert_eq!(ia[12..16], [0, 5, 0, 24]);
        assert_eq!(ia[16..32], ADDR);
        assert!(find(&o, opt::DNS_SERVERS).is_some());
        assert_eq!(
            find(&o, opt::DOMAIN_LIST).unwrap()[..],
            b"\x0eopenstacklocal\x00"[..]
        );
        // REQUEST naming this server: REPLY; another server: nothing.
        let req = |k, s: Vec<u8>| {
            request(
                k,
                &[
                    (opt::CLIENTID, duid()),
                    (opt::SERVERID, s),
                    (opt::IA_NA, ia_na(Some(ADDR))),
                ],
            )
        };
        assert_eq!(
            answer(&c, req(msg::REQUEST, sid.clone())).unwrap().0,
            msg::REPLY
        );
        assert_eq!(
            answer(&c, req(msg::REQUEST, vec![0, 3, 0, 1, 1, 2, 3, 4, 5, 6])),
            Err(Unanswered::OtherServer)
        );
        assert_eq!(
            answer(&c, req(msg::RENEW, sid.clone())).unwrap().0,
            msg::REPLY
        );
        let (t, o) = answer(&c, req(msg::RELEASE, sid)).unwrap();
        assert_eq!(t, msg::REPLY);
        assert_eq!(find(&o, opt::STATUS_CODE), Some(&vec![0, 0]));
        assert!(find(&o, opt::IA_NA).is_none());
        // Rapid commit: REPLY at once.
        let (t, o) = answer(
            &c,
            request(
                msg::SOLICIT,
                &[
                    (opt::CLIENTID, duid()),
                    (opt::IA_NA, ia_na(None)),
                    (opt::RAPID_COMMIT, vec![]),
                ],
            ),
        )
        .unwrap();
        assert_eq!(t, msg::REPLY);
        assert!(find(&o, opt::RAPID_COMMIT).is_some());
    }

    #[test]
    fn a_stale_address_is_returned_with_lifetimes_zero() {
        let c = cfg(true);
        let mut old = ADDR;
        old[15] = 99;
        let (_, o) = answer(
            &c,
            request(
                msg::REBIND,
                &[(opt::CLIENTID, duid()), (opt::IA_NA, ia_na(Some(old)))],
            ),
        )
        .unwrap();
        let ia = find(&o, opt::IA_NA).unwrap();
        assert_eq!(ia[16..32], ADDR);
        assert_eq!(ia[32..40], [0, 1, 0x51, 0x80, 0, 1, 0x51, 0x80]);
        assert_eq!(ia[44..60], old);
        assert_eq!(ia[60..68], [0; 8]);
    }

    #[test]
    fn stateless_gives_options_and_no_address() {
        let c = cfg(false);
        let (t, o) = answer(
            &c,
            request(msg::INFORMATION_REQUEST, &[(opt::CLIENTID, duid())]),
        )
        .unwrap();
        assert_eq!(t, msg::REPLY);
        assert!(find(&o, opt::IA_NA).is_none());
        assert!(find(&o, opt::DNS_SERVERS).is_some());
        let (t, o) = answer(&c, solicit()).unwrap();
        assert_eq!(t, msg::ADVERTISE);
        let ia = find(&o, opt::IA_NA).unwrap();
        assert_eq!(ia[12..18], [0, 13, 0, 2, 0, status::NO_ADDRS_AVAIL as u8]);
    }

    #[test]
    fn another_mac_gets_nothing() {
        let c = cfg(true);
        let mut f = request(
            msg::SOLICIT,
            &[(opt::CLIENTID, duid()), (opt::IA_NA, ia_na(None))],
        );
        f[11] = 0x77;
        let l3 = to_server(&f).unwrap();
        let req = parse(&c, &f, l3).unwrap();
        assert_eq!(decide(&c, &req), Err(Unanswered::ForeignMac));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]
        /// Any bytes after a valid head: no panic, and an answer fits.
        #[test]
        fn arbitrary_messages_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400), stateful in any::<bool>()) {
            let c = cfg(stateful);
            let mut f = request(msg::SOLICIT, &[]);
            f.truncate(14 + 48);
            f.extend_from_slice(&body);
            let n = (8 + body.len()) as u16;
            f[18..20].copy_from_slice(&n.to_be_bytes());
            f[58..60].copy_from_slice(&n.to_be_bytes());
            if let Some(l3) = to_server(&f) {
                if let Ok(req) = parse(&c, &f, l3) {
                    if let Ok(kind) = decide(&c, &req) {
                        let mut out = f.clone();
                        out.resize(l3 + c.max_reply_len(), 0);
                        let len = write_reply(&c, &req, kind, &mut out, l3).unwrap();
                        prop_assert!(len <= out.len());
                    }
                }
            }
        }
    }
}
