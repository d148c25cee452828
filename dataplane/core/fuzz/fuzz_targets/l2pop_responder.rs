//! Feeds arbitrary frames to l2population's ARP and neighbour responders
//! as `pipeline::serve` does, with a table that knows the addresses the
//! frame asks for (so the answering paths run, not only the refusals).
//! Nothing may panic; an ARP answer keeps the frame's length; a neighbour
//! advertisement is a whole IPv6 packet whose ICMPv6 checksum holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switch_core::l2pop::{KnownPorts, NA_LEN};
use switch_core::wire::{ipv6_l4_checksum, IpProtocol};

fuzz_target!(|data: &[u8]| {
    let Some((&vlan, frame)) = data.split_first() else {
        return;
    };
    let vlan = u16::from(vlan);
    let l3 = if frame.get(12..14) == Some(&[0x81, 0x00]) { 18 } else { 14 };
    // Whatever the frame asks for is known (ARP's target at 24, an NS's at 48).
    let at = |o: usize, n: usize| frame.get(l3 + o..l3 + o + n);
    let v4: Option<[u8; 4]> = at(24, 4).and_then(|b| b.try_into().ok());
    let v6: Option<[u8; 16]> = at(48, 16).and_then(|b| b.try_into().ok());
    let mac = [2, 0, 0, 0, 0, vlan as u8];
    let k = KnownPorts::new(
        [],
        v4.map(|ip| (vlan, ip, mac)),
        v6.map(|ip| (vlan, ip, mac)),
    );
    let mut buf = frame.to_vec();
    if k.answer_arp(vlan, &mut buf, l3) {
        assert_eq!(buf.len(), frame.len(), "ARP is answered in place");
    }
    // The fuzzer cannot forge an ICMPv6 checksum: the frame is tried as
    // it came and with its checksum made right, so the answering path runs.
    let mut fixed = frame.to_vec();
    if let Some(len) = at(4, 2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]]))) {
        if fixed.len() >= l3 + 40 + len && len >= 4 {
            fixed[l3 + 42..l3 + 44].copy_from_slice(&[0, 0]);
            let sum = icmpv6_checksum(&fixed[l3..l3 + 40 + len]);
            fixed[l3 + 42..l3 + 44].copy_from_slice(&sum.to_be_bytes());
        }
    }
    for frame in [frame, &fixed[..]] {
        respond6(&k, vlan, frame, l3);
    }
});

fn respond6(k: &KnownPorts, vlan: u16, frame: &[u8], l3: usize) {
    if let Some(a) = k.neighbour_answer(vlan, frame, l3) {
        let mut buf = frame.to_vec();
        buf.resize(l3 + 40 + NA_LEN, 0);
        let end = a.write(&mut buf, l3).expect("room was made");
        assert_eq!(end, l3 + 40 + NA_LEN);
        assert_eq!(
            icmpv6_checksum(&buf[l3..end]),
            0,
            "the advertisement's checksum holds"
        );
    }
}

/// The ICMPv6 checksum over the message after the IPv6 header `ip`
/// starts with (0 when the message's own checksum holds).
fn icmpv6_checksum(ip: &[u8]) -> u16 {
    let addr = |at: usize| <[u8; 16]>::try_from(&ip[at..at + 16]).unwrap();
    ipv6_l4_checksum(addr(8), addr(24), IpProtocol::ICMPV6, &ip[40..])
}
