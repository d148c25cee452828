//! Feeds arbitrary frames to the switch's DHCP server as `pipeline::serve`
//! does: the DHCP message view and its options, the request parser, the
//! decision, the answer written in place, and the ARP responder. Nothing may
//! panic, and every answer must be a DHCP reply that parses back, of the
//! length the server promised at most. The DHCPv6 server gets the same
//! bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switch_core::dhcp::{self, DhcpConfig, DhcpOptions};
use switch_core::wire::dhcpv4::DhcpPacket;

fuzz_target!(|data: &[u8]| {
    // The first six bytes double as the port's MAC, so requests can match.
    let Some(mac) = data.first_chunk::<6>().copied() else {
        return;
    };
    let frame = &data[6..];
    if let Ok(m) = DhcpPacket::new_checked(frame) {
        let _ = (m.xid(), m.flags(), m.chaddr(), m.message_type());
        for (_, d) in m.options() {
            assert!(d.len() <= frame.len());
        }
    }
    let cfg = DhcpConfig::new(
        mac,
        [10, 0, 0, 5],
        [10, 0, 0, 2],
        [2, 0, 0, 0, 0, 2],
        3600,
        &DhcpOptions {
            prefix_len: 24,
            router: Some([10, 0, 0, 1]),
            dns: vec![[10, 0, 0, 53]],
            domain: "example.test".into(),
            mtu: 1500,
            routes: vec![([192, 168, 0, 0], 16, [10, 0, 0, 254])],
            hostname: Some("vm".into()),
        },
    );
    let cfg6 = switch_core::dhcp6::Dhcp6Config::new(
        mac,
        (mac[0] & 1 == 0).then_some([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]),
        [2, 0, 0, 0, 0, 2],
        3600,
        &[[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53]],
        "example.test",
    );
    if let Some(l3) = switch_core::dhcp6::to_server(frame) {
        use switch_core::dhcp6;
        if let Ok(req) = dhcp6::parse(&cfg6, frame, l3) {
            if let Ok(kind) = dhcp6::decide(&cfg6, &req) {
                let mut buf = frame.to_vec();
                buf.resize(l3 + cfg6.max_reply_len(), 0);
                let len = dhcp6::write_reply(&cfg6, &req, kind, &mut buf, l3).expect("room was made");
                assert!(len <= l3 + cfg6.max_reply_len());
                let m = switch_core::wire::dhcpv6::Dhcpv6Packet::new_checked(&buf[l3 + 48..len])
                    .expect("the answer parses");
                assert_eq!(m.msg_type(), kind);
                assert_eq!(m.transaction_id(), req.xid);
            }
        }
        return;
    }
    let l3 = match dhcp::to_server(frame) {
        Some(dhcp::ToServer::Dhcp(l3)) => l3,
        Some(dhcp::ToServer::Arp(l3)) => {
            let mut buf = frame.to_vec();
            let _ = dhcp::answer_arp(&cfg, &mut buf, l3);
            assert_eq!(buf.len(), frame.len(), "ARP is answered in place");
            return;
        }
        None => return,
    };
    let Ok(req) = dhcp::parse(frame, l3) else {
        return;
    };
    let Ok(kind) = dhcp::decide(&cfg, &req) else {
        return;
    };
    let mut buf = frame.to_vec();
    buf.resize(l3 + cfg.max_reply_len(), 0);
    let len = dhcp::write_reply(&cfg, &req, kind, &mut buf, l3).expect("room was made");
    assert!(len <= l3 + cfg.max_reply_len());
    let udp = &buf[l3 + 20..len];
    let m = DhcpPacket::new_checked(&udp[8..]).expect("the answer parses");
    assert_eq!(m.message_type(), Some(kind));
    assert_eq!(m.xid(), req.xid);
});
