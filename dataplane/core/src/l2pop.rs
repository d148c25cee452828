//! What the control plane knows of a bridge's ports in tunnelled networks
//! (Neutron's l2population): each remote port's MAC and the tunnel port
//! that reaches its host, and every known port's IPv4 address with its MAC
//! for the ARP responder. Built by the control thread from the Neutron
//! model with each snapshot, never changed after: the workers only read.
//!
//! * A frame to a remote MAC goes to its tunnel port even before anything
//!   was learned, and a MAC that moved hosts is followed at once (the
//!   table is consulted before the learned MACs).
//! * An ARP request for a known address is answered by the switch (see
//!   `pipeline::serve`), so it never crosses a tunnel; so is an IPv6
//!   neighbour solicitation for a known address (RFC 4861's neighbour
//!   advertisement, built in place).
use crate::port::PortId;
use crate::wire::arp::{ArpOperation, ArpPacket};
use crate::wire::{ndisc, EthernetAddress};

/// An immutable open-addressing table from a 64-bit key (never 0) to a
/// small value: a power-of-two array at most half full, linear probing.
/// A lookup hashes once and reads one or two cache lines; nothing
/// allocates after construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactTable<V> {
    slots: Box<[(u64, V)]>,
    mask: usize,
    len: usize,
}

#[inline(always)]
fn slot_of(key: u64, mask: usize) -> usize {
    // Fibonacci hashing: the high bits of the product mix every key bit.
    (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & mask
}

impl<V: Copy + Default> ExactTable<V> {
    /// A table of `entries`; a key given twice keeps its last value. Keys
    /// of 0 are left out (0 marks an empty slot).
    pub fn new(entries: impl IntoIterator<Item = (u64, V)>) -> ExactTable<V> {
        let entries: Vec<(u64, V)> = entries.into_iter().filter(|(k, _)| *k != 0).collect();
        let size = (entries.len() * 2).next_power_of_two().max(8);
        let mut t = ExactTable {
            slots: vec![(0, V::default()); size].into_boxed_slice(),
            mask: size - 1,
            len: 0,
        };
        for (k, v) in entries {
            let mut i = slot_of(k, t.mask);
            loop {
                let s = &mut t.slots[i];
                if s.0 == 0 {
                    *s = (k, v);
                    t.len += 1;
                    break;
                }
                if s.0 == k {
                    s.1 = v;
                    break;
                }
                i = (i + 1) & t.mask;
            }
        }
        t
    }

    #[inline(always)]
    pub fn get(&self, key: u64) -> Option<V> {
        let mut i = slot_of(key, self.mask);
        // At most half full: an empty slot always ends the probe.
        loop {
            let (k, v) = *self.slots.get(i)?;
            // Empty first: key 0 is never in the table.
            if k == 0 {
                return None;
            }
            if k == key {
                return Some(v);
            }
            i = (i + 1) & self.mask;
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every (key, value), in slot order (control path).
    pub fn iter(&self) -> impl Iterator<Item = (u64, V)> + '_ {
        self.slots.iter().copied().filter(|(k, _)| *k != 0)
    }
}

/// The key of (VLAN, MAC): the MAC table's packing (see
/// `MacKey::packed`), so a worker reuses the key it hashed for learning.
#[inline(always)]
pub fn mac_key(vlan: u16, mac: u64) -> u64 {
    crate::mac_table::pack_key(vlan, mac)
}

/// The key of (VLAN, IPv4 address).
#[inline(always)]
pub fn ipv4_key(vlan: u16, ip: [u8; 4]) -> u64 {
    (1 << 63) | ((vlan as u64 & 0x0fff) << 32) | u32::from_be_bytes(ip) as u64
}

/// One bridge's known ports; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownPorts {
    /// (local VLAN, remote port's MAC) -> the tunnel port to its host.
    remote_macs: ExactTable<PortId>,
    /// (local VLAN, IPv4 address) -> the MAC of the port that holds it.
    addresses: ExactTable<[u8; 6]>,
    /// (local VLAN, IPv6 address, MAC), sorted: binary-searched for the
    /// rare neighbour solicitation.
    addresses6: Box<[Address6]>,
}

/// (local VLAN, IPv6 address, MAC of the port that holds it).
pub type Address6 = (u16, [u8; 16], [u8; 6]);

/// The IPv6 payload of the neighbour advertisement the responder writes:
/// the ICMPv6 header, flags, the target, and its link-layer address option.
pub const NA_LEN: usize = ndisc::MESSAGE_LEN;

/// A neighbour advertisement to write (see [`KnownPorts::neighbour_answer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdAnswer {
    target: [u8; 16],
    target_mac: [u8; 6],
    to_ip: [u8; 16],
    to_mac: [u8; 6],
}

impl NdAnswer {
    /// Writes the advertisement over the solicitation whose IPv6 header
    /// is at `l3` in `frame` (at least `l3 + 40 + NA_LEN` long; any VLAN
    /// tag before `l3` kept); returns the frame's new length.
    pub fn write(&self, frame: &mut [u8], l3: usize) -> Option<usize> {
        ndisc::write_advertisement(
            frame,
            l3,
            self.target,
            EthernetAddress(self.target_mac),
            self.to_ip,
            EthernetAddress(self.to_mac),
        )
    }
}

impl KnownPorts {
    pub fn new(
        remote_macs: impl IntoIterator<Item = (u16, u64, PortId)>,
        addresses: impl IntoIterator<Item = (u16, [u8; 4], [u8; 6])>,
        addresses6: impl IntoIterator<Item = Address6>,
    ) -> KnownPorts {
        let mut v6: Vec<Address6> = addresses6.into_iter().collect();
        v6.sort();
        v6.dedup_by_key(|e| (e.0, e.1));
        KnownPorts {
            addresses6: v6.into_boxed_slice(),
            remote_macs: ExactTable::new(
                remote_macs
                    .into_iter()
                    .map(|(vlan, mac, port)| (mac_key(vlan, mac), port)),
            ),
            addresses: ExactTable::new(
                addresses
                    .into_iter()
                    .map(|(vlan, ip, mac)| (ipv4_key(vlan, ip), mac)),
            ),
        }
    }

    /// The tunnel port of a remote MAC, by its packed (VLAN, MAC) key.
    #[inline(always)]
    pub fn remote_port(&self, packed: u64) -> Option<PortId> {
        if self.remote_macs.is_empty() {
            return None;
        }
        self.remote_macs.get(packed)
    }

    /// The MAC of the port holding `ip` in `vlan`.
    #[inline(always)]
    pub fn mac_of(&self, vlan: u16, ip: [u8; 4]) -> Option<[u8; 6]> {
        if self.addresses.is_empty() {
            return None;
        }
        self.addresses.get(ipv4_key(vlan, ip))
    }

    /// Answers, in place, the ARP request at `l3` of `frame` (received in
    /// `vlan`) if it asks for a known address: true when `frame` now holds
    /// the reply. Not answered: a request from the address's own port (a
    /// probe for its own address, RFC 5227) and a gratuitous one (sender
    /// and target the same): those are the port's to announce, and flood.
    pub fn answer_arp(&self, vlan: u16, frame: &mut [u8], l3: usize) -> bool {
        let Some(arp) = frame.get(l3..).and_then(|b| ArpPacket::new_checked(b).ok()) else {
            return false;
        };
        let (tpa, spa, sha) = (arp.tpa(), arp.spa(), arp.sha());
        if arp.op() != ArpOperation::REQUEST || spa == tpa {
            return false;
        }
        match self.mac_of(vlan, tpa) {
            Some(mac) if mac != sha.0 => {
                crate::wire::arp::reply_in_place(frame, l3, EthernetAddress(mac), tpa)
            }
            _ => false,
        }
    }

    /// The MAC of the port holding `ip` in `vlan`.
    pub fn mac_of6(&self, vlan: u16, ip: [u8; 16]) -> Option<[u8; 6]> {
        self.addresses6
            .binary_search_by(|e| (e.0, e.1).cmp(&(vlan, ip)))
            .ok()
            .map(|i| self.addresses6[i].2)
    }

    /// Whether there are addresses to answer for.
    pub fn answers(&self) -> bool {
        !self.addresses.is_empty() || !self.addresses6.is_empty()
    }

    /// The advertisement answering the IPv6 neighbour solicitation whose
    /// IPv6 header is at `l3` of `frame` (received in `vlan`), if it asks
    /// for a known address: RFC 4861's checks (hop limit 255, code 0, the
    /// ICMPv6 checksum, no extension header, a unicast target), and not
    /// from the address's own port nor for duplicate address detection
    /// (source ::): those flood.
    pub fn neighbour_answer(&self, vlan: u16, frame: &[u8], l3: usize) -> Option<NdAnswer> {
        if self.addresses6.is_empty() {
            return None;
        }
        let m = ndisc::parse(frame.get(l3..)?)?;
        if m.kind != ndisc::SOLICITATION || m.src == [0; 16] {
            return None;
        }
        let (src, target) = (m.src, m.target);
        let to_mac: [u8; 6] = frame.get(6..12)?.try_into().ok()?;
        let target_mac = self.mac_of6(vlan, target)?;
        (target_mac != to_mac).then_some(NdAnswer {
            target,
            target_mac,
            to_ip: src,
            to_mac,
        })
    }

    /// The (VLAN, MAC)s sent through tunnel port `port` (control path).
    pub fn remote_macs_via(&self, port: PortId) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.remote_macs
            .iter()
            .filter(move |&(_, p)| p == port)
            .map(|(key, _)| crate::mac_table::unpack_key(key))
    }

    pub fn addresses(&self) -> &ExactTable<[u8; 6]> {
        &self.addresses
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ipv6_l4_checksum, IpProtocol};
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// The table answers as a HashMap of the same entries (the last
        /// value of a repeated key), for keys in it and keys not in it.
        #[test]
        fn the_table_answers_as_a_map(
            entries in proptest::collection::vec((1u64..64, any::<u16>()), 0..200),
            probes in proptest::collection::vec(0u64..80, 0..100),
            spread in any::<u64>(),
        ) {
            // Spread the small keys over the whole range, colliding often.
            let key = |k: u64| if k == 0 { 0 } else { k.wrapping_mul(spread | 1) | 1 };
            let reference: HashMap<u64, u16> = entries.iter().map(|&(k, v)| (key(k), v)).collect();
            let t = ExactTable::new(entries.iter().map(|&(k, v)| (key(k), v)));
            prop_assert_eq!(t.len(), reference.len());
            for p in probes {
                prop_assert_eq!(t.get(key(p)), reference.get(&key(p)).copied());
            }
            let mut listed: Vec<_> = t.iter().collect();
            listed.sort();
            let mut expected: Vec<_> = reference.into_iter().collect();
            expected.sort();
            prop_assert_eq!(listed, expected);
        }
    }

    #[test]
    fn a_request_for_a_known_address_is_answered_unless_it_is_the_owners() {
        const OWNER: [u8; 6] = [2, 0, 0, 0, 0, 2];
        const ASKER: [u8; 6] = [2, 0, 0, 0, 0, 1];
        let k = KnownPorts::new([], [(10, [10, 0, 0, 2], OWNER)], []);
        let request = |sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]| {
            let mut f = vec![0xff; 6];
            f.extend_from_slice(&sha);
            f.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, 1]);
            f.extend_from_slice(&sha);
            f.extend_from_slice(&spa);
            f.extend_from_slice(&[0; 6]);
            f.extend_from_slice(&tpa);
            f
        };
        let mut f = request(ASKER, [10, 0, 0, 1], [10, 0, 0, 2]);
        assert!(k.answer_arp(10, &mut f, 14));
        assert_eq!(&f[0..6], &ASKER, "back to the asker");
        assert_eq!(&f[6..12], &OWNER);
        assert_eq!(&f[20..22], &[0, 2], "a reply");
        assert_eq!(&f[22..28], &OWNER);
        assert_eq!(&f[28..32], &[10, 0, 0, 2]);
        assert_eq!(&f[32..38], &ASKER);
        assert_eq!(&f[38..42], &[10, 0, 0, 1]);
        for (vlan, mut other) in [
            (11, request(ASKER, [10, 0, 0, 1], [10, 0, 0, 2])),
            (10, request(ASKER, [10, 0, 0, 1], [10, 0, 0, 3])),
            (10, request(OWNER, [0, 0, 0, 0], [10, 0, 0, 2])),
            (10, request(ASKER, [10, 0, 0, 2], [10, 0, 0, 2])),
            (
                10,
                request(ASKER, [10, 0, 0, 1], [10, 0, 0, 2])[..40].to_vec(),
            ),
        ] {
            let before = other.clone();
            assert!(!k.answer_arp(vlan, &mut other, 14));
            assert_eq!(other, before);
        }
    }

    /// A neighbour solicitation from `mac`/`src` for `target`, to its
    /// solicited-node multicast address, with a source link-layer option.
    fn solicitation(mac: [u8; 6], src: [u8; 16], target: [u8; 16]) -> Vec<u8> {
        let mut dst = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
        dst[13..].copy_from_slice(&target[13..]);
        let mut icmp = vec![ndisc::SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&target);
        icmp.extend_from_slice(&[1, 1]);
        icmp.extend_from_slice(&mac);
        let sum = ipv6_l4_checksum(src, dst, IpProtocol::ICMPV6, &icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut f = vec![0x33, 0x33, 0xff, target[13], target[14], target[15]];
        f.extend_from_slice(&mac);
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, icmp.len() as u8, 58, 255]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&icmp);
        f
    }

    #[test]
    fn a_solicitation_for_a_known_address_gets_an_advertisement() {
        const OWNER: [u8; 6] = [2, 0, 0, 0, 0, 2];
        const ASKER: [u8; 6] = [2, 0, 0, 0, 0, 1];
        let ip = |n: u8| {
            let mut a = [0u8; 16];
            a[0] = 0xfd;
            a[15] = n;
            a
        };
        let k = KnownPorts::new([], [], [(10, ip(2), OWNER)]);
        let mut f = solicitation(ASKER, ip(1), ip(2));
        let a = k.neighbour_answer(10, &f, 14).expect("answered");
        let end = a.write(&mut f, 14).unwrap();
        f.truncate(end);
        assert_eq!(f.len(), 14 + 40 + NA_LEN);
        assert_eq!(&f[0..6], &ASKER);
        assert_eq!(&f[6..12], &OWNER);
        let ip6 = crate::wire::ipv6::Ipv6Packet::new_checked(&f[14..]).unwrap();
        assert_eq!((ip6.hop_limit(), ip6.payload_len()), (255, NA_LEN as u16));
        assert_eq!((ip6.src_addr(), ip6.dst_addr()), (ip(2), ip(1)));
        let icmp = &f[54..];
        assert_eq!(
            (icmp[0], icmp[1], icmp[4]),
            (ndisc::ADVERTISEMENT, 0, 0x60),
            "solicited, override"
        );
        assert_eq!(&icmp[8..24], &ip(2));
        assert_eq!(
            &icmp[24..32],
            &[2, 1, 2, 0, 0, 0, 0, 2],
            "target link-layer address"
        );
        assert_eq!(
            ipv6_l4_checksum(ip(2), ip(1), IpProtocol::ICMPV6, icmp),
            0,
            "checksum"
        );
        // Not answered: another VLAN, an unknown target, the owner asking,
        // duplicate address detection, a bad checksum, a hop limit < 255.
        let mut bad_sum = solicitation(ASKER, ip(1), ip(2));
        bad_sum[60] ^= 1;
        let mut hops = solicitation(ASKER, ip(1), ip(2));
        hops[21] = 64;
        for (vlan, f) in [
            (11, solicitation(ASKER, ip(1), ip(2))),
            (10, solicitation(ASKER, ip(1), ip(3))),
            (10, solicitation(OWNER, ip(1), ip(2))),
            (10, solicitation(ASKER, [0; 16], ip(2))),
            (10, bad_sum),
            (10, hops),
            (10, solicitation(ASKER, ip(1), ip(2))[..70].to_vec()),
        ] {
            assert_eq!(k.neighbour_answer(vlan, &f, 14), None);
        }
    }

    #[test]
    fn macs_and_addresses_are_per_vlan() {
        let p = PortId::from_index(5);
        let k = KnownPorts::new(
            [(10, 0x02_00_00_00_00_01, p)],
            [(10, [10, 0, 0, 1], [2, 0, 0, 0, 0, 1])],
            [],
        );
        assert_eq!(k.remote_port(mac_key(10, 0x02_00_00_00_00_01)), Some(p));
        assert_eq!(k.remote_port(mac_key(11, 0x02_00_00_00_00_01)), None);
        assert_eq!(k.mac_of(10, [10, 0, 0, 1]), Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(k.mac_of(11, [10, 0, 0, 1]), None);
        assert_eq!(k.mac_of(10, [10, 0, 0, 2]), None);
    }
}
