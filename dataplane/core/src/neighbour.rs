//! The tunnels' next hops: which MAC an encapsulated frame is sent to on
//! its uplink. The switch resolves them itself, by ARP (IPv4) or neighbour
//! discovery (IPv6) on the uplink, as Open vSwitch's userspace tunnels do
//! with their neighbour cache and as the Linux VXLAN driver does through
//! the kernel's neighbour table:
//!
//! * A next hop (the remote endpoint when it is on the endpoint's subnet,
//!   else the endpoint's gateway) has one [`Neighbour`] slot, set up by the
//!   control thread with the snapshot; the workers only ever write its
//!   atomics (no lock, no allocation).
//! * Learning: an ARP request or reply from the next hop's address to the
//!   endpoint's, and a gratuitous ARP from it, set its MAC and confirm it
//!   ([`NeighbourTable::snoop`], on the uplink's receive path); over IPv6,
//!   an advertisement for the next hop's address, or its solicitation for
//!   the endpoint's ([`NeighbourTable::snoop_nd`]).
//! * Resolving: a MAC confirmed less than `aging` seconds ago is used;
//!   past half of that, a unicast ARP probe to it goes out at most once a
//!   second (a reply confirms it; traffic keeps flowing meanwhile); past
//!   `aging`, it is forgotten: frames for it are dropped and a broadcast
//!   request goes out at most once a second, as OVS drops a tunnel's
//!   packets while its ARP is outstanding.
//! * A next hop given by the operator (`remote_mac`, OVS's `tnl/arp/set`)
//!   is static: never aged, never overwritten.
use crate::port::PortId;
use crate::wire::arp::{ArpOperation, ArpPacket};
use crate::wire::ndisc::{self, NdMessage};
use crate::wire::EthernetAddress;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// One next hop as the control thread defines it: who is asked, through
/// which uplink, on behalf of which endpoint, and a MAC the operator fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NextHop {
    pub uplink: PortId,
    /// The endpoint asking: its address and MAC (the requests' sender).
    pub src_ip: IpAddr,
    pub src_mac: EthernetAddress,
    /// The address to resolve (of the endpoint's family).
    pub ip: IpAddr,
    /// A static MAC: no ARP for this next hop.
    pub fixed: Option<EthernetAddress>,
}

/// The packed state word: a MAC in the low 48 bits, this bit when it holds
/// one.
const VALID: u64 = 1 << 48;

/// How a next hop stands for a frame to be sent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Send to this MAC.
    Known(EthernetAddress),
    /// Send to this MAC, and confirm it: a unicast probe is due.
    Probe(EthernetAddress),
    /// Not known (never, or aged out): the frames cannot go; a broadcast
    /// request is due if none went out this second.
    Unknown,
}

/// One next hop and what is known of it.
#[derive(Debug)]
pub struct Neighbour {
    pub hop: NextHop,
    /// `VALID | mac`, or 0.
    state: AtomicU64,
    /// The clock second it was last confirmed.
    confirmed: AtomicU32,
    /// The clock second a request last went out (0: never).
    requested: AtomicU32,
    /// Requests sent, and ARP packets that confirmed it.
    pub requests: AtomicU64,
    pub confirmations: AtomicU64,
}

impl Neighbour {
    fn new(hop: NextHop) -> Neighbour {
        Neighbour {
            hop,
            state: AtomicU64::new(hop.fixed.map_or(0, |m| VALID | m.to_u64())),
            confirmed: AtomicU32::new(0),
            requested: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            confirmations: AtomicU64::new(0),
        }
    }

    /// The MAC last learned (or fixed), however old.
    pub fn mac(&self) -> Option<EthernetAddress> {
        let s = self.state.load(Ordering::Relaxed);
        (s & VALID != 0).then(|| EthernetAddress::from_u64(s))
    }

    /// Seconds since it was last confirmed at clock second `now`; `None`
    /// when never (or static).
    pub fn age(&self, now: u32) -> Option<u32> {
        if self.hop.fixed.is_some() || self.mac().is_none() {
            return None;
        }
        Some(now.saturating_sub(self.confirmed.load(Ordering::Relaxed)))
    }

    /// Where a frame to this next hop goes at clock second `now`, with
    /// entries kept `aging` seconds.
    #[inline(always)]
    pub fn resolve(&self, now: u32, aging: u32) -> Resolution {
        let s = self.state.load(Ordering::Relaxed);
        if s & VALID == 0 {
            return Resolution::Unknown;
        }
        let mac = EthernetAddress::from_u64(s);
        if self.hop.fixed.is_some() {
            return Resolution::Known(mac);
        }
        let age = now.saturating_sub(self.confirmed.load(Ordering::Relaxed));
        if age >= aging {
            Resolution::Unknown
        } else if age >= aging / 2 {
            Resolution::Probe(mac)
        } else {
            Resolution::Known(mac)
        }
    }

    /// Claims the right to send a request at clock second `now`: true for
    /// one caller per second (of any worker).
    #[inline]
    pub fn claim_request(&self, now: u32) -> bool {
        let last = self.requested.load(Ordering::Relaxed);
        last != now
            && self
                .requested
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// `mac` answers for this next hop at clock second `now`.
    fn confirm(&self, mac: EthernetAddress, now: u32) {
        if self.hop.fixed.is_some() {
            return;
        }
        self.confirmed.store(now, Ordering::Relaxed);
        self.state.store(VALID | mac.to_u64(), Ordering::Relaxed);
        self.confirmations.fetch_add(1, Ordering::Relaxed);
    }
}

/// The next hops of every tunnel of a snapshot, by index
/// (`view::TunnelPort::next_hop`), with the clock they age by.
#[derive(Debug)]
pub struct NeighbourTable {
    entries: Box<[Neighbour]>,
    /// Seconds a learned MAC is used without being confirmed.
    aging: u32,
    /// The control thread's clock, in seconds from 1.
    now: AtomicU32,
}

impl Default for NeighbourTable {
    fn default() -> Self {
        NeighbourTable::new(Vec::new(), DEFAULT_AGING, None)
    }
}

/// Seconds a learned next hop lasts unconfirmed by default. Linux keeps a
/// neighbour reachable for 15-45 s before it probes; OVS's tunnel cache
/// keeps an entry 15 minutes and never probes. Probing at half of a
/// minute finds a moved or replaced next hop within 30 s for one ARP per
/// next hop and 30 s.
pub const DEFAULT_AGING: u32 = 60;

impl NeighbourTable {
    /// A table of `hops` (their indices are the order given) aging after
    /// `aging` seconds (at least 2). What `previous` learned of a next hop
    /// with the same definition carries over, and its clock.
    pub fn new(hops: Vec<NextHop>, aging: u32, previous: Option<&NeighbourTable>) -> Self {
        let entries: Box<[Neighbour]> = hops
            .into_iter()
            .map(|hop| {
                let n = Neighbour::new(hop);
                if let Some(old) = previous.and_then(|p| p.entries.iter().find(|o| o.hop == hop)) {
                    let ord = Ordering::Relaxed;
                    n.state.store(old.state.load(ord), ord);
                    n.confirmed.store(old.confirmed.load(ord), ord);
                    n.requested.store(old.requested.load(ord), ord);
                    n.requests.store(old.requests.load(ord), ord);
                    n.confirmations.store(old.confirmations.load(ord), ord);
                }
                n
            })
            .collect();
        NeighbourTable {
            entries,
            aging: aging.max(2),
            now: AtomicU32::new(previous.map_or(1, |p| p.now())),
        }
    }

    /// The same next hops as `hops`, in the same order, aging the same.
    pub fn holds(&self, hops: &[NextHop], aging: u32) -> bool {
        self.aging == aging.max(2)
            && self.entries.len() == hops.len()
            && self.entries.iter().zip(hops).all(|(e, h)| e.hop == *h)
    }

    #[inline(always)]
    pub fn get(&self, index: usize) -> Option<&Neighbour> {
        self.entries.get(index)
    }

    pub fn entries(&self) -> &[Neighbour] {
        &self.entries
    }

    pub fn aging(&self) -> u32 {
        self.aging
    }

    #[inline(always)]
    pub fn now(&self) -> u32 {
        self.now.load(Ordering::Relaxed)
    }

    /// Sets the clock (seconds, from 1).
    pub fn set_now(&self, secs: u32) {
        self.now.store(secs.max(1), Ordering::Relaxed);
    }

    /// Learns from `arp`, an ARP packet received on `uplink`: a request or
    /// reply from a next hop's address to its endpoint's address, or a
    /// gratuitous ARP from a next hop (sender and target address the
    /// same), confirms that next hop's MAC (the sender's hardware address,
    /// if unicast). Returns true when the packet was a reply to an
    /// endpoint (the endpoint's own: the caller consumes it).
    pub fn snoop<T: AsRef<[u8]>>(&self, uplink: PortId, arp: &ArpPacket<T>) -> bool {
        let op = arp.op();
        if op != ArpOperation::REQUEST && op != ArpOperation::REPLY {
            return false;
        }
        let (spa, tpa) = (IpAddr::from(arp.spa()), IpAddr::from(arp.tpa()));
        self.learn(uplink, spa, tpa, arp.sha(), op == ArpOperation::REPLY)
    }

    /// [`snoop`](Self::snoop) for IPv6: `nd`, a neighbour discovery message
    /// received on `uplink` in a frame from `eth_src`. An advertisement for
    /// a next hop's address (its target link-layer option, else the
    /// frame's source), a solicitation from it for its endpoint's address
    /// (its source link-layer option) confirm that next hop's MAC. Returns
    /// true when `nd` was an advertisement to an endpoint (the caller
    /// consumes it).
    pub fn snoop_nd(&self, uplink: PortId, nd: &NdMessage, eth_src: EthernetAddress) -> bool {
        let (target, src) = (IpAddr::from(nd.target), IpAddr::from(nd.src));
        if nd.kind == ndisc::ADVERTISEMENT {
            // An unsolicited advertisement (to all nodes) is the next
            // hop's gratuitous ARP: learned, not the endpoint's own.
            let mac = nd.lladdr.unwrap_or(eth_src);
            let ours = self.learn(uplink, target, target, mac, false);
            let to_endpoint = self
                .entries
                .iter()
                .any(|n| n.hop.uplink == uplink && n.hop.src_ip == IpAddr::from(nd.dst));
            return ours || to_endpoint;
        }
        // A solicitation without a source option (a unicast probe) teaches
        // nothing: the sender's MAC is only implied.
        match nd.lladdr {
            Some(mac) => self.learn(uplink, src, target, mac, false),
            None => false,
        }
    }

    /// Confirms `mac` for every next hop on `uplink` whose address is
    /// `sender`, when `sender` speaks to its endpoint's address `about` or
    /// announces itself (`about == sender`); true when `reply_to_endpoint`
    /// and `about` is an endpoint's address on `uplink`.
    fn learn(
        &self,
        uplink: PortId,
        sender: IpAddr,
        about: IpAddr,
        mac: EthernetAddress,
        reply_to_endpoint: bool,
    ) -> bool {
        let now = self.now();
        let mut ours = false;
        for n in self.entries.iter().filter(|n| n.hop.uplink == uplink) {
            let to_endpoint = about == n.hop.src_ip;
            ours |= to_endpoint && reply_to_endpoint;
            if n.hop.ip == sender && (to_endpoint || sender == about) && mac.is_unicast() {
                n.confirm(mac, now);
            }
        }
        ours
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::arp::{write_request, REQUEST_FRAME_LEN};
    use proptest::prelude::*;

    fn p(n: u16) -> PortId {
        PortId::new(n).unwrap()
    }

    const ME: EthernetAddress = EthernetAddress::new(2, 0, 0, 0, 0, 1);
    const HOP: EthernetAddress = EthernetAddress::new(2, 0, 0, 0, 0, 9);

    fn hop(ip: u8, fixed: Option<EthernetAddress>) -> NextHop {
        NextHop {
            uplink: p(1),
            src_ip: [10, 0, 0, 1].into(),
            src_mac: ME,
            ip: [10, 0, 0, ip].into(),
            fixed,
        }
    }

    /// An ARP packet (no Ethernet header) of `op` from `sha`/`spa` about
    /// `tpa`.
    fn arp(op: ArpOperation, sha: EthernetAddress, spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        assert!(write_request(
            &mut f,
            EthernetAddress::BROADCAST,
            sha,
            spa,
            tpa
        ));
        f[14 + 6..14 + 8].copy_from_slice(&op.0.to_be_bytes());
        f[14..REQUEST_FRAME_LEN].to_vec()
    }

    fn snoop(t: &NeighbourTable, uplink: u16, packet: &[u8]) -> bool {
        t.snoop(p(uplink), &ArpPacket::new_checked(packet).unwrap())
    }

    #[test]
    fn over_ipv6_advertisements_and_solicitations_teach_the_next_hop() {
        let (me, gw, other): ([u8; 16], [u8; 16], [u8; 16]) = (
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe],
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7],
        );
        let hop6 = NextHop {
            uplink: p(1),
            src_ip: me.into(),
            src_mac: ME,
            ip: gw.into(),
            fixed: None,
        };
        let t = NeighbourTable::new(vec![hop6], 60, None);
        let n = t.get(0).unwrap();
        let nd = |f: &[u8]| ndisc::parse(&f[14..]).unwrap();
        let mut f = vec![0u8; ndisc::FRAME_LEN];
        // Another host's solicitation for the endpoint: nothing learned.
        assert!(ndisc::write_solicitation(&mut f, None, HOP, other, me));
        assert!(!t.snoop_nd(p(1), &nd(&f), HOP));
        assert_eq!(n.mac(), None);
        // The gateway's solicitation for the endpoint: its source option.
        assert!(ndisc::write_solicitation(&mut f, None, HOP, gw, me));
        assert!(!t.snoop_nd(p(2), &nd(&f), HOP), "another uplink");
        assert_eq!(n.mac(), None);
        assert!(
            !t.snoop_nd(p(1), &nd(&f), HOP),
            "a solicitation is not consumed"
        );
        assert_eq!(n.resolve(t.now(), 60), Resolution::Known(HOP));
        // Its advertisement to the endpoint: consumed, the target option
        // wins over the frame's source.
        let moved = EthernetAddress::new(2, 0, 0, 0, 0, 0x77);
        ndisc::write_advertisement(&mut f, 14, gw, moved, me, ME).unwrap();
        assert!(t.snoop_nd(p(1), &nd(&f), HOP));
        assert_eq!(n.mac(), Some(moved));
        // Another address's advertisement teaches nothing.
        ndisc::write_advertisement(&mut f, 14, other, HOP, me, ME).unwrap();
        assert!(t.snoop_nd(p(1), &nd(&f), HOP), "still to the endpoint");
        assert_eq!(n.mac(), Some(moved));
    }

    #[test]
    fn a_reply_to_the_endpoint_resolves_and_ages_with_a_probe_between() {
        let t = NeighbourTable::new(vec![hop(9, None)], 60, None);
        let n = t.get(0).unwrap();
        assert_eq!(n.resolve(t.now(), 60), Resolution::Unknown);
        let reply = arp(ArpOperation::REPLY, HOP, [10, 0, 0, 9], [10, 0, 0, 1]);
        assert!(snoop(&t, 1, &reply), "a reply to the endpoint is its own");
        assert_eq!(n.resolve(1, 60), Resolution::Known(HOP));
        assert_eq!(n.resolve(30, 60), Resolution::Known(HOP));
        assert_eq!(n.resolve(31, 60), Resolution::Probe(HOP));
        assert_eq!(n.resolve(61, 60), Resolution::Unknown);
        t.set_now(50);
        assert!(snoop(&t, 1, &reply));
        assert_eq!(n.resolve(61, 60), Resolution::Known(HOP));
        assert_eq!(n.age(61), Some(11));
        assert_eq!(n.confirmations.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn only_the_next_hop_on_its_uplink_about_the_endpoint_is_learned() {
        let t = NeighbourTable::new(vec![hop(9, None)], 60, None);
        let n = t.get(0).unwrap();
        // Another uplink; another sender; about another address; a
        // multicast sender MAC: none of them.
        let cases = [
            (
                2,
                arp(ArpOperation::REPLY, HOP, [10, 0, 0, 9], [10, 0, 0, 1]),
            ),
            (
                1,
                arp(ArpOperation::REPLY, HOP, [10, 0, 0, 8], [10, 0, 0, 1]),
            ),
            (
                1,
                arp(ArpOperation::REQUEST, HOP, [10, 0, 0, 9], [10, 0, 0, 7]),
            ),
            (
                1,
                arp(
                    ArpOperation::REPLY,
                    EthernetAddress::BROADCAST,
                    [10, 0, 0, 9],
                    [10, 0, 0, 1],
                ),
            ),
            (1, arp(ArpOperation(3), HOP, [10, 0, 0, 9], [10, 0, 0, 1])),
        ];
        for (uplink, packet) in &cases {
            snoop(&t, *uplink, packet);
            assert_eq!(n.mac(), None, "{packet:?} on {uplink}");
        }
        // Its request for the endpoint, and its gratuitous ARP, teach.
        let req = arp(ArpOperation::REQUEST, HOP, [10, 0, 0, 9], [10, 0, 0, 1]);
        assert!(!snoop(&t, 1, &req), "a request is answered, not consumed");
        assert_eq!(n.mac(), Some(HOP));
        let moved = EthernetAddress::new(2, 0, 0, 0, 0, 0x99);
        snoop(
            &t,
            1,
            &arp(ArpOperation::REQUEST, moved, [10, 0, 0, 9], [10, 0, 0, 9]),
        );
        assert_eq!(n.mac(), Some(moved));
    }

    #[test]
    fn a_static_next_hop_never_ages_nor_moves() {
        let t = NeighbourTable::new(vec![hop(9, Some(HOP))], 60, None);
        let n = t.get(0).unwrap();
        assert_eq!(n.resolve(1_000_000, 60), Resolution::Known(HOP));
        let other = EthernetAddress::new(2, 0, 0, 0, 0, 0x77);
        snoop(
            &t,
            1,
            &arp(ArpOperation::REPLY, other, [10, 0, 0, 9], [10, 0, 0, 1]),
        );
        assert_eq!(n.mac(), Some(HOP));
        assert_eq!(n.age(5), None);
    }

    #[test]
    fn one_request_per_second_whoever_asks() {
        let t = NeighbourTable::new(vec![hop(9, None)], 60, None);
        let n = t.get(0).unwrap();
        assert!(n.claim_request(5));
        assert!(!n.claim_request(5));
        assert!(n.claim_request(6));
    }

    #[test]
    fn a_new_table_keeps_what_the_old_one_learned_of_the_same_next_hops() {
        let old = NeighbourTable::new(vec![hop(9, None), hop(8, None)], 60, None);
        old.set_now(7);
        snoop(
            &old,
            1,
            &arp(ArpOperation::REPLY, HOP, [10, 0, 0, 9], [10, 0, 0, 1]),
        );
        let hops = vec![hop(7, None), hop(9, None)];
        assert!(!old.holds(&hops, 60));
        let new = NeighbourTable::new(hops.clone(), 60, Some(&old));
        assert!(new.holds(&hops, 60));
        assert_eq!(new.now(), 7);
        assert_eq!(new.get(1).unwrap().resolve(8, 60), Resolution::Known(HOP));
        assert_eq!(new.get(0).unwrap().resolve(8, 60), Resolution::Unknown);
    }

    /// What the table should say, worked out from the history of events
    /// alone: the last confirmation's time and MAC.
    #[derive(Debug, Clone)]
    enum Event {
        Tick(u8),
        Reply { from: u8, to: u8, mac: u8 },
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            (1u8..40).prop_map(Event::Tick),
            (8u8..11, 0u8..3, 0u8..4).prop_map(|(from, to, mac)| Event::Reply { from, to, mac }),
        ]
    }

    proptest! {
        #[test]
        fn resolution_matches_the_last_confirmation(events in prop::collection::vec(event(), 0..60)) {
            let aging = 20;
            let t = NeighbourTable::new(vec![hop(9, None), hop(10, None)], aging, None);
            let mut now = 1u32;
            // Per next hop: (second confirmed, MAC).
            let mut reference: [Option<(u32, EthernetAddress)>; 2] = [None, None];
            for e in &events {
                match *e {
                    Event::Tick(s) => {
                        now += u32::from(s);
                        t.set_now(now);
                    }
                    Event::Reply { from, to, mac } => {
                        let mac = EthernetAddress::new(2, 0, 0, 0, 1, mac);
                        let tpa = [10, 0, 0, to];
                        snoop(&t, 1, &arp(ArpOperation::REPLY, mac, [10, 0, 0, from], tpa));
                        let i = usize::from(from).wrapping_sub(9);
                        if to == 1 && i < 2 {
                            reference[i] = Some((now, mac));
                        }
                    }
                }
                for (i, r) in reference.iter().enumerate() {
                    let want = match *r {
                        None => Resolution::Unknown,
                        Some((at, _)) if now - at >= aging => Resolution::Unknown,
                        Some((at, mac)) if now - at >= aging / 2 => Resolution::Probe(mac),
                        Some((_, mac)) => Resolution::Known(mac),
                    };
                    prop_assert_eq!(t.get(i).unwrap().resolve(now, aging), want);
                }
            }
        }
    }
}
