//! VXLAN tunnel ports: a burst from an uplink that holds a tunnel
//! endpoint has its tunnel packets taken out of their outer headers before
//! anything else ([`decapsulate`]), and each inner frame is then switched
//! as received on its tunnel port; a tunnel port's output batch gets its
//! outer headers just before it leaves by the uplink ([`encapsulate`]).
//!
//! What is a tunnel packet of this switch is decided as the Linux VXLAN
//! driver and Open vSwitch's tunnel pop decide it: an IPv4 or IPv6 UDP
//! packet to the VXLAN port, addressed to an endpoint's MAC and IP on the
//! uplink it arrived by. Anything else on the uplink is switched as usual
//! (the uplink is an ordinary port of its bridge). A tunnel packet that
//! fails the receive checks of [`vxlan::parse_tagged`], or that no tunnel
//! port takes (an unknown remote endpoint or VNI), is dropped and counted.
use super::execute::{apply_tag, push_tag};
use super::{BurstCounts, TagAction};
use crate::frame::{Burst, Frame, FramePool, BURST};
use crate::neighbour::{Neighbour, NeighbourTable, NextHop, Resolution};
use crate::offload::{self, Offload};
use crate::port::PortId;
use crate::view::{Endpoint, SwitchView, TunnelIn, TunnelKey, TunnelPort};
use crate::wire::arp::{self, ArpPacket};
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::ipv6::Ipv6Packet;
use crate::wire::ndisc;
use crate::wire::udp::UdpPacket;
use crate::wire::vlan::VlanStack;
use crate::wire::vxlan::{self, HeaderTemplate, OuterTemplate};
use crate::wire::{ethernet, EtherType, EthernetAddress, IpProtocol};
use std::net::IpAddr;
use std::sync::atomic::Ordering;

/// The uplink's burst after [`decapsulate`], sized once and reused.
pub struct Decapsulated<B: Burst> {
    /// The frames that were not tunnel packets of this switch, in order:
    /// the uplink's own traffic.
    pub rest: B,
    /// Inner frames, in order, and the tunnel port each came in by.
    inner: B,
    ports: [PortId; BURST],
    /// Tunnel packets dropped, and ARP replies to an endpoint consumed
    /// (released by the caller in one go).
    pub dropped: B,
    /// ARP requests for an endpoint's address, turned into their replies:
    /// to go back out of the uplink.
    pub answers: B,
}

impl<B: Burst> Default for Decapsulated<B> {
    fn default() -> Self {
        Decapsulated {
            rest: B::default(),
            inner: B::default(),
            ports: [PortId::default(); BURST],
            dropped: B::default(),
            answers: B::default(),
        }
    }
}

impl<B: Burst> Decapsulated<B> {
    /// Moves the inner frames of the first tunnel port still held into
    /// `into` (which must be empty), in their order, and returns that port;
    /// `None` when every inner frame has been moved out. A burst from one
    /// remote endpoint and VNI (the usual case) is one run.
    pub fn next_run(&mut self, into: &mut B) -> Option<PortId> {
        let n = self.inner.len().min(BURST);
        let first = (0..n).find(|&i| self.inner.get(i).is_some())?;
        let port = self.ports[first];
        for i in first..n {
            if self.ports[i] == port {
                if let Some(f) = self.inner.take(i) {
                    // `into` is as large as `inner`: there is always room.
                    let _ = into.push(f);
                }
            }
        }
        if (first..n).all(|i| self.inner.get(i).is_none()) {
            self.inner.clear();
        }
        Some(port)
    }
}

/// The endpoint of `in_port` that `data` (its tags `tags`) is addressed
/// to as a VXLAN packet (its MAC, its IPv4 or IPv6 address, UDP to the
/// VXLAN port), read without any checksum; `None` for the uplink's other
/// traffic.
#[inline(always)]
fn addressed_endpoint<'v>(
    endpoints: &'v [Endpoint],
    in_port: PortId,
    data: &[u8],
    tags: &VlanStack,
) -> Option<&'v Endpoint> {
    let l3 = data.get(ethernet::HEADER_LEN + tags.tags_len..)?;
    let udp_dst_port = |udp: &[u8]| Some(UdpPacket::new_checked(udp).ok()?.dst_port());
    let (dst_ip, port) = match tags.ethertype {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_checked(l3).ok()?;
            if ip.protocol() != IpProtocol::UDP || ip.is_fragment() {
                return None;
            }
            (IpAddr::from(ip.dst_addr()), udp_dst_port(ip.payload())?)
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(l3).ok()?;
            if ip.next_header() != IpProtocol::UDP {
                return None;
            }
            (IpAddr::from(ip.dst_addr()), udp_dst_port(ip.payload())?)
        }
        _ => return None,
    };
    if port != vxlan::UDP_PORT {
        return None;
    }
    let dst_mac = EthernetAddress::from_slice(data.get(..6)?)?;
    endpoints
        .iter()
        .find(|e| e.uplink == in_port && e.ip == dst_ip && e.mac == dst_mac)
}

/// What an ARP or neighbour discovery packet on an uplink was to the
/// tunnels.
enum ArpSeen {
    /// A request for an endpoint's address, made its reply in place.
    Answered,
    /// A reply to an endpoint: consumed (after teaching the next hops).
    Consumed,
    /// Anything else (switched as usual).
    Other,
}

/// Lets the next hops on `in_port` learn from `f` (its tags `tags`) if it
/// is an ARP packet or an IPv6 neighbour solicitation or advertisement,
/// then turns it, if it asks for the address of an endpoint on `in_port`,
/// into the endpoint's answer (as the kernel answers for the address
/// OVS's br-phy holds).
#[inline(always)]
fn arp_on_uplink<F: Frame>(
    view: &SwitchView,
    in_port: PortId,
    f: &mut F,
    tags: &VlanStack,
) -> ArpSeen {
    let l3 = ethernet::HEADER_LEN + tags.tags_len;
    if tags.ethertype == EtherType::IPV6 {
        return nd_on_uplink(view, in_port, f, l3);
    }
    if tags.ethertype != EtherType::ARP {
        return ArpSeen::Other;
    }
    let Ok(packet) = ArpPacket::new_checked(f.data().get(l3..).unwrap_or_default()) else {
        return ArpSeen::Other;
    };
    let reply_to_us = view.neighbours().snoop(in_port, &packet);
    let Some(data) = f.data_mut() else {
        return ArpSeen::Other;
    };
    let answered = view
        .endpoints()
        .iter()
        .filter(|e| e.uplink == in_port)
        .any(|e| match e.ip {
            IpAddr::V4(ip) => arp::reply_in_place(data, l3, e.mac, ip.octets()),
            IpAddr::V6(_) => false,
        });
    if answered {
        ArpSeen::Answered
    } else if reply_to_us {
        ArpSeen::Consumed
    } else {
        ArpSeen::Other
    }
}

/// [`arp_on_uplink`] for an IPv6 frame whose header is at `l3`.
#[inline(always)]
fn nd_on_uplink<F: Frame>(view: &SwitchView, in_port: PortId, f: &mut F, l3: usize) -> ArpSeen {
    let data = f.data();
    // ICMPv6 right after the fixed header, or not neighbour discovery.
    if data.get(l3 + 6) != Some(&IpProtocol::ICMPV6.0) {
        return ArpSeen::Other;
    }
    let Some(nd) = data.get(l3..).and_then(ndisc::parse) else {
        return ArpSeen::Other;
    };
    let Some(eth_src) = data.get(6..12).and_then(EthernetAddress::from_slice) else {
        return ArpSeen::Other;
    };
    let to_us = view.neighbours().snoop_nd(in_port, &nd, eth_src);
    if nd.kind == ndisc::ADVERTISEMENT {
        return if to_us {
            ArpSeen::Consumed
        } else {
            ArpSeen::Other
        };
    }
    // A solicitation for an endpoint's address (not duplicate address
    // detection, whose source is ::): answered to its sender.
    let target = IpAddr::from(nd.target);
    let Some(ep) = view
        .endpoints()
        .iter()
        .find(|e| e.uplink == in_port && e.ip == target)
    else {
        return ArpSeen::Other;
    };
    if nd.src == [0; 16] {
        return ArpSeen::Other;
    }
    let to_mac = nd.lladdr.unwrap_or(eth_src);
    let (mac, end) = (ep.mac, l3 + 40 + ndisc::MESSAGE_LEN);
    let written = f.resize(end).is_some_and(|d| {
        ndisc::write_advertisement(d, l3, nd.target, mac, nd.src, to_mac).is_some()
    });
    if written {
        ArpSeen::Answered
    } else {
        ArpSeen::Other
    }
}

/// Takes the tunnel packets of this switch out of `rx`, a burst received on
/// `in_port`, into `out` (emptied by the caller since the last burst): their inner frames (outer headers removed) with
/// the tunnel port of each, the rest of the burst in `out.rest` in order.
/// ARP packets teach the tunnels' next hops on `in_port` their MACs
/// ([`NeighbourTable::snoop`]); requests for an endpoint's address become
/// its replies in `out.answers`, for the caller to send back out of
/// `in_port`, and replies to an endpoint end here (in `out.dropped`).
/// Returns the counts to add to `in_port`'s: every tunnel packet and
/// ARP packet taken as received there, and those dropped (failed receive checks: malformed;
/// no tunnel port for the remote endpoint and VNI: no output). `rx` is
/// left empty.
///
/// A frame that came with its checksum left to an offload: if the inner
/// frame's own checksum holds (or it has none: not TCP/UDP), the partial
/// one was the outer UDP checksum and the offload state is cleared;
/// otherwise the partial checksum is the inner frame's and stays for the
/// output port to finish (a Linux sender fills the outer checksum around
/// an inner partial one, LCO).
pub fn decapsulate<B: Burst>(
    view: &SwitchView,
    in_port: PortId,
    rx: &mut B,
    out: &mut Decapsulated<B>,
) -> BurstCounts {
    let mut c = BurstCounts::default();
    let endpoints = view.endpoints();
    let n = rx.len().min(BURST);
    for i in 0..n {
        let Some(mut f) = rx.take(i) else { continue };
        // The tags are walked once; both checks and the receive checks
        // start from them.
        let Ok(tags) = VlanStack::from_frame(f.data(), None) else {
            let _ = out.rest.push(f);
            continue;
        };
        match arp_on_uplink(view, in_port, &mut f, &tags) {
            ArpSeen::Answered => {
                c.rx_packets += 1;
                c.rx_bytes += u64::from(f.pkt_len());
                let _ = out.answers.push(f);
                continue;
            }
            ArpSeen::Consumed => {
                c.rx_packets += 1;
                c.rx_bytes += u64::from(f.pkt_len());
                let _ = out.dropped.push(f);
                continue;
            }
            ArpSeen::Other => {}
        }
        let Some(ep) = addressed_endpoint(endpoints, in_port, f.data(), &tags) else {
            let _ = out.rest.push(f);
            continue;
        };
        c.rx_packets += 1;
        c.rx_bytes += u64::from(f.pkt_len());
        let o = f.offload();
        let partial = !o.is_none();
        let parsed = vxlan::parse_tagged(f.data(), &tags, vxlan::UDP_PORT, partial);
        let Ok(d) = parsed else {
            c.rx_dropped += 1;
            c.malformed += 1;
            let _ = out.dropped.push(f);
            continue;
        };
        let Some(&TunnelIn { port, vlan, .. }) = ep.tunnel(d.src_ip, d.vni) else {
            c.rx_dropped += 1;
            c.no_output += 1;
            let _ = out.dropped.push(f);
            continue;
        };
        // The outer header makes room for a tag: pushing it never fails
        // on a frame that was just received.
        let tagged = |f: &mut B::Frame| vlan.is_none_or(|v| push_tag(f, EtherType::VLAN, v));
        if !(f.adj(d.inner) && f.resize(d.inner_len).is_some() && tagged(&mut f)) {
            c.rx_dropped += 1;
            c.malformed += 1;
            let _ = out.dropped.push(f);
            continue;
        }
        // Whose partial checksum was it? The inner frame's if its own
        // TCP/UDP checksum does not hold yet (the sender's kernel filled
        // the outer one around it); else the outer's, gone with it.
        if partial
            && o.tcp_mss == 0
            && (offload::layers(f.data()).is_none() || offload::l4_checksum_ok(f.data()))
        {
            f.set_offload(Offload::NONE);
        }
        let at = out.inner.len();
        if out.inner.push(f).is_ok() {
            if let Some(p) = out.ports.get_mut(at) {
                *p = port;
            }
        }
    }
    rx.clear();
    c
}

/// A hash of the inner frame's flow, for the outer UDP source port: its
/// IPv4 or IPv6 addresses and TCP/UDP ports where it has them, else its
/// MAC addresses (the kernel's flow hash covers the same).
#[inline(always)]
fn flow_hash(inner: &[u8]) -> u32 {
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut mix = |bytes: &[u8]| {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0xff51_afd7_ed55_8ccd);
            h ^= h >> 29;
        }
    };
    match offload::layers(inner) {
        Some(at) => {
            let l3 = inner.get(at.l3..).unwrap_or_default();
            // IPv4: addresses at 12..20; IPv6: 8..40.
            mix(if at.v6 {
                l3.get(8..40).unwrap_or_default()
            } else {
                l3.get(12..20).unwrap_or_default()
            });
            mix(inner.get(at.l4..at.l4 + 4).unwrap_or_default());
        }
        None => mix(inner.get(..12).unwrap_or_default()),
    }
    (h >> 32) as u32
}

/// The source ports the kernel's VXLAN driver picks from by default (the
/// local ephemeral range).
pub const SOURCE_PORTS: (u16, u16) = (32768, 60999);

/// What [`encapsulate`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EncapCounts {
    /// Longer than the uplink's MTU allows once encapsulated.
    pub oversize: u64,
    /// No headroom for the outer headers (or a shared buffer), or an
    /// offload left that could not be finished.
    pub lost: u64,
    /// The next hop's MAC is not known: dropped while it is asked for.
    pub unresolved: u64,
    /// ARP requests for the next hop put in `requests` (broadcast, or a
    /// unicast probe of a MAC due to be confirmed).
    pub requests: u64,
    /// Bytes of the frames moved to `out`.
    pub bytes: u64,
}

/// Where [`encapsulate`] puts a tunnel port's batch, sized once and
/// reused (each emptied by the caller after every call).
pub struct Encapsulated<B: Burst> {
    /// The frames with their outer headers, in order: for the uplink.
    pub frames: B,
    /// ARP requests for the next hop: for the uplink too (their own batch,
    /// so a full one of frames still has room).
    pub requests: B,
    /// What could not go (released by the caller in one go).
    pub dropped: B,
}

impl<B: Burst> Default for Encapsulated<B> {
    fn default() -> Self {
        Encapsulated {
            frames: B::default(),
            requests: B::default(),
            dropped: B::default(),
        }
    }
}

/// Makes `f` an ARP request (IPv4) or neighbour solicitation (IPv6) from
/// `hop`'s endpoint for its address, sent to `to` (broadcast: to every
/// host, which over IPv6 is the address's solicited-node group); false
/// (`f` unusable as it is) when it is shared or chained, or the hop's
/// addresses are of two families.
pub fn make_request<F: Frame>(f: &mut F, hop: &NextHop, to: EthernetAddress) -> bool {
    let written = match (hop.src_ip, hop.ip) {
        (IpAddr::V4(src), IpAddr::V4(ip)) => f
            .resize(ethernet::MIN_FRAME_LEN)
            .is_some_and(|d| arp::write_request(d, to, hop.src_mac, src.octets(), ip.octets())),
        (IpAddr::V6(src), IpAddr::V6(ip)) => {
            let unicast = (to != EthernetAddress::BROADCAST).then_some(to);
            f.resize(ndisc::FRAME_LEN).is_some_and(|d| {
                ndisc::write_solicitation(d, unicast, hop.src_mac, src.octets(), ip.octets())
            })
        }
        _ => false,
    };
    if !written {
        return false;
    }
    f.set_offload(Offload::NONE);
    f.clear_stripped_tci();
    true
}

/// Moves every frame of `batch` (a tunnel port's output batch) into
/// `out.frames` with `tunnel`'s outer headers put in front of it in place,
/// ready to leave by `tunnel.uplink` to its next hop in `neighbours`, in
/// order; what cannot go goes to `out.dropped`: frames longer than `uplink_max_frame`
/// bytes once encapsulated, frames without headroom, and the whole batch
/// while the next hop's MAC is not known. In that case one of the frames
/// becomes the broadcast ARP request for it (if none went out this
/// second); when the MAC is due to be confirmed, a copy of one (from
/// `pool`) becomes a unicast probe; requests go to `out.requests`. A partial checksum is finished first
/// (the outer UDP checksum is zero and covers nothing); a TCP segment
/// still to cut is the caller's to cut before (dropped here). `batch` is
/// left empty.
pub fn encapsulate<B: Burst, P: FramePool<Frame = B::Frame>>(
    tunnel: &TunnelPort,
    neighbours: &NeighbourTable,
    uplink_max_frame: u32,
    batch: &mut B,
    out: &mut Encapsulated<B>,
    pool: &mut P,
) -> EncapCounts {
    let Encapsulated {
        frames: out,
        requests,
        dropped,
    } = out;
    let mut c = EncapCounts::default();
    let n = batch.len().min(BURST);
    let Some(hop) = neighbours.get(tunnel.next_hop) else {
        // A view never holds such a tunnel (`SwitchView::add_tunnel`).
        c.unresolved = n as u64 - batch_holes(batch, n);
        move_all(batch, n, dropped);
        return c;
    };
    let now = neighbours.now();
    let dst_mac = match hop.resolve(now, neighbours.aging()) {
        Resolution::Known(mac) => mac,
        Resolution::Probe(mac) => {
            if hop.claim_request(now) {
                let probe = (0..n)
                    .find_map(|i| batch.get(i))
                    .and_then(|f| pool.copy_of(f));
                if let Some(mut probe) = probe {
                    if make_request(&mut probe, &hop.hop, mac) {
                        push_request(requests, probe, hop, &mut c);
                    } else {
                        let _ = dropped.push(probe);
                    }
                }
            }
            mac
        }
        Resolution::Unknown => {
            let mut asking = hop.claim_request(now);
            for i in 0..n {
                let Some(mut f) = batch.take(i) else { continue };
                c.unresolved += 1;
                if asking && make_request(&mut f, &hop.hop, EthernetAddress::BROADCAST) {
                    asking = false;
                    push_request(requests, f, hop, &mut c);
                } else {
                    let _ = dropped.push(f);
                }
            }
            batch.clear();
            return c;
        }
    };
    // The next hop's MAC goes into the batch's copy of the template: each
    // frame then costs what it did with a fixed next hop. One loop per
    // family and key kind: a one-VNI tunnel's frames pay nothing for VNIs
    // by VLAN.
    let key = tunnel.key();
    let by_vlan = matches!(key, TunnelKey::ByVlan(_));
    let (max, c2) = (uplink_max_frame, &mut c);
    match (tunnel.header(), by_vlan) {
        (HeaderTemplate::V4(t), false) => {
            push_out::<_, _, false>(&t.to(dst_mac), key, max, batch, out, dropped, c2)
        }
        (HeaderTemplate::V4(t), true) => {
            push_out::<_, _, true>(&t.to(dst_mac), key, max, batch, out, dropped, c2)
        }
        (HeaderTemplate::V6(t), false) => {
            push_out::<_, _, false>(&t.to(dst_mac), key, max, batch, out, dropped, c2)
        }
        (HeaderTemplate::V6(t), true) => {
            push_out::<_, _, true>(&t.to(dst_mac), key, max, batch, out, dropped, c2)
        }
    }
    c
}

/// [`encapsulate`]'s loop over a batch whose next hop is known, for one
/// header family: `batch` moves to `out` with `header` in front of each
/// frame (or to `dropped`), and is left empty. `BY_VLAN`: `key` is
/// `ByVlan` (each frame's tag picks its VNI and goes).
#[inline(always)]
fn push_out<B: Burst, T: OuterTemplate, const BY_VLAN: bool>(
    header: &T,
    key: &TunnelKey,
    uplink_max_frame: u32,
    batch: &mut B,
    out: &mut B,
    dropped: &mut B,
    c: &mut EncapCounts,
) {
    let n = batch.len().min(BURST);
    let mut header = *header;
    // The VNI `header` holds: a by-VLAN port's first (as it was made).
    let mut vni_now = key.first();
    for i in 0..n {
        let Some(mut f) = batch.take(i) else { continue };
        if BY_VLAN {
            // The frame's local VLAN picks its VNI, and its tag goes.
            let vid = VlanStack::from_frame(f.data(), None)
                .ok()
                .and_then(|t| t.outer.map(|tci| tci.vid()));
            let Some(vni) = key.vni_of(vid) else {
                c.lost += 1;
                let _ = dropped.push(f);
                continue;
            };
            if !apply_tag(&mut f, TagAction::Pop) {
                c.lost += 1;
                let _ = dropped.push(f);
                continue;
            }
            if vni != vni_now {
                header = header.with_vni(vni);
                vni_now = vni;
            }
        }
        let inner_len = f.pkt_len() as usize;
        if (inner_len + T::OVERHEAD) as u64 > u64::from(uplink_max_frame) {
            c.oversize += 1;
            let _ = dropped.push(f);
            continue;
        }
        let o = f.offload();
        let finished =
            o.is_none() || (o.tcp_mss == 0 && f.data_mut().is_some_and(offload::finish_checksum));
        let sport = vxlan::source_port(flow_hash(f.data()), SOURCE_PORTS.0, SOURCE_PORTS.1);
        let written = finished
            && f.prepend(T::OVERHEAD)
                .is_some_and(|d| header.write(d, sport, inner_len).is_ok());
        if !written {
            c.lost += 1;
            let _ = dropped.push(f);
            continue;
        }
        f.set_offload(Offload::NONE);
        c.bytes += (inner_len + T::OVERHEAD) as u64;
        // `out` is as large as `batch`: there is always room.
        if let Err(f) = out.push(f) {
            c.lost += 1;
            let _ = dropped.push(f);
        }
    }
    batch.clear();
}

/// Puts the ARP request `f` for `hop` into `requests`, counted.
fn push_request<B: Burst>(requests: &mut B, f: B::Frame, hop: &Neighbour, c: &mut EncapCounts) {
    match requests.push(f) {
        Ok(()) => {
            c.requests += 1;
            hop.requests.fetch_add(1, Ordering::Relaxed);
        }
        // Dropped on the floor: the next batch asks again next second.
        Err(f) => drop(f),
    }
}

/// Empty slots among the first `n` of `batch`.
fn batch_holes<B: Burst>(batch: &B, n: usize) -> u64 {
    (0..n).filter(|&i| batch.get(i).is_none()).count() as u64
}

/// Moves the first `n` slots' frames of `batch` to `to` and empties it.
fn move_all<B: Burst>(batch: &mut B, n: usize, to: &mut B) {
    for i in 0..n {
        if let Some(f) = batch.take(i) {
            let _ = to.push(f);
        }
    }
    batch.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::mem::{MemBurst, MemFrame, MemPool};
    use crate::mac_table::MacTable;
    use crate::pipeline::{classify, Action, Classified, DropReason};
    use crate::port::PortMask;
    use crate::view::VlanVnis;
    use crate::view::{max_frame_len, PortView, DEFAULT_MTU};
    use crate::vlan::PortVlan;
    use crate::wire::vxlan::{Ipv4Tunnel, OuterHeader, Vni};
    use proptest::prelude::*;
    use std::sync::Arc;

    fn p(n: u16) -> PortId {
        PortId::new(n).unwrap()
    }

    const HERE_MAC: EthernetAddress = EthernetAddress::new(0x02, 0, 0, 0, 0, 1);
    const HERE: [u8; 4] = [192, 0, 2, 1];
    const THERE: [u8; 4] = [192, 0, 2, 2];
    const ELSEWHERE: [u8; 4] = [192, 0, 2, 3];

    fn outer(remote: [u8; 4]) -> Ipv4Tunnel {
        Ipv4Tunnel {
            src_mac: HERE_MAC,
            dst_mac: EthernetAddress::new(0x02, 0, 0, 0, 0, remote[3]),
            src_ip: HERE,
            dst_ip: remote,
            ttl: 64,
            tos: 0,
            dont_fragment: true,
        }
    }

    fn vni(n: u32) -> Vni {
        Vni::new(n).unwrap()
    }

    /// br-int: p0 a VM (access 10), p2 a tunnel to THERE (VNI 4242), p3 a
    /// tunnel to ELSEWHERE (VNI 4242), p4 a tunnel to THERE (VNI 7), all
    /// access 10; br-phy: p1 the uplink holding HERE, MTU 1500. The next
    /// hops (the remotes: one subnet) have static MACs.
    fn view() -> SwitchView {
        view_with(true)
    }

    /// The next hop of `remote` on the uplink.
    fn next_hop(remote: [u8; 4], fixed: bool) -> NextHop {
        NextHop {
            uplink: p(1),
            src_ip: HERE.into(),
            src_mac: HERE_MAC,
            ip: remote.into(),
            fixed: fixed.then_some(outer(remote).dst_mac),
        }
    }

    /// [`view`], its next hops static or learned by ARP.
    fn view_with(fixed: bool) -> SwitchView {
        let mut v = SwitchView::default();
        v.set_neighbours(Arc::new(NeighbourTable::new(
            vec![next_hop(THERE, fixed), next_hop(ELSEWHERE, fixed)],
            60,
            None,
        )));
        let int = v.add_bridge("br-int", Arc::new(MacTable::new(1024, 300)));
        let phy = v.add_bridge("br-phy", Arc::new(MacTable::new(1024, 300)));
        for (i, bridge) in [(0, int), (1, phy), (2, int), (3, int), (4, int)] {
            v.add_port(PortView {
                id: p(i),
                name: format!("p{i}"),
                bridge,
                vlan: if i == 1 {
                    PortVlan::new(None, None, &[]).unwrap()
                } else {
                    PortVlan::new(None, Some(10), &[]).unwrap()
                },
                acl: None,
                dhcp: None,
                max_frame: max_frame_len(DEFAULT_MTU),
            })
            .unwrap();
        }
        for (port, remote, n, hop) in [
            (2, THERE, 4242, 0),
            (3, ELSEWHERE, 4242, 1),
            (4, THERE, 7, 0),
        ] {
            v.add_tunnel(
                p(port),
                TunnelPort::new(
                    p(1),
                    OuterHeader::V4(outer(remote)),
                    TunnelKey::Fixed(vni(n)),
                    hop,
                ),
            )
            .unwrap();
        }
        v
    }

    /// An inner UDP/IPv4 frame from `src` to `dst` (last MAC bytes) with
    /// source port `sport`, `len` bytes.
    fn inner(dst: u8, src: u8, sport: u16, len: usize) -> Vec<u8> {
        let mut f = vec![
            0xfa, 0x16, 0x3e, 0, 0, dst, 0xfa, 0x16, 0x3e, 0, 0, src, 0x08, 0x00,
        ];
        let ip_len = (len - 14) as u16;
        f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0]);
        f[16..18].copy_from_slice(&ip_len.to_be_bytes());
        f.extend_from_slice(&[10, 0, 0, src, 10, 0, 0, dst]);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&5000u16.to_be_bytes());
        f.extend_from_slice(&(ip_len - 20).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.resize(len, 0xab);
        crate::wire::ipv4::Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
        f
    }

    /// What the remote endpoint `from` sends this switch for `frame`.
    fn from_remote(from: [u8; 4], n: u32, frame: &[u8]) -> Vec<u8> {
        let back = Ipv4Tunnel {
            src_mac: EthernetAddress::new(0x02, 0, 0, 0, 0, from[3]),
            dst_mac: HERE_MAC,
            src_ip: from,
            dst_ip: HERE,
            ..outer(from)
        };
        let mut out = vec![0u8; vxlan::IPV4_OVERHEAD + frame.len()];
        back.write_header(&mut out, vni(n), 50000, 1, frame.len())
            .unwrap();
        out[vxlan::IPV4_OVERHEAD..].copy_from_slice(frame);
        out
    }

    fn burst(frames: &[Vec<u8>]) -> MemBurst {
        MemBurst::from_frames(frames.iter().map(|f| MemFrame::new(f)))
    }

    fn bytes(b: &MemBurst) -> Vec<Vec<u8>> {
        b.frames().map(|f| f.bytes().to_vec()).collect()
    }

    #[test]
    fn the_uplink_burst_splits_into_its_own_traffic_and_each_tunnels_inner_frames() {
        let v = view();
        let (a, b, c) = (
            inner(2, 1, 1000, 60),
            inner(2, 1, 1001, 100),
            inner(3, 1, 9, 64),
        );
        let arp_to_us = {
            let mut f = inner(0xff, 9, 1, 60);
            f[12..14].copy_from_slice(&[0x08, 0x06]);
            f
        };
        let mut bad_csum = from_remote(THERE, 4242, &a);
        bad_csum[24] ^= 0xff;
        let mut other_mac = from_remote(THERE, 4242, &a);
        other_mac[5] = 0x77;
        let rx_frames = [
            from_remote(THERE, 4242, &a),
            arp_to_us.clone(),
            from_remote(ELSEWHERE, 4242, &c),
            from_remote(THERE, 999, &a),
            bad_csum,
            other_mac.clone(),
            from_remote(THERE, 4242, &b),
            from_remote(THERE, 7, &c),
        ];
        let mut rx = burst(&rx_frames);
        let mut out = Decapsulated::<MemBurst>::default();
        let c_ = decapsulate(&v, p(1), &mut rx, &mut out);
        assert!(rx.is_empty());
        assert_eq!(
            bytes(&out.rest),
            [arp_to_us, other_mac],
            "the uplink's own traffic, in order"
        );
        assert_eq!(out.dropped.len(), 2);
        assert_eq!(
            (c_.rx_packets, c_.rx_dropped, c_.malformed, c_.no_output),
            (6, 2, 1, 1)
        );
        let tunnel_bytes: u64 = [0, 2, 3, 4, 6, 7]
            .iter()
            .map(|&i| rx_frames[i].len() as u64)
            .sum();
        assert_eq!(c_.rx_bytes, tunnel_bytes);
        let mut runs = Vec::new();
        let mut run = MemBurst::default();
        while let Some(port) = out.next_run(&mut run) {
            runs.push((port.get(), bytes(&run)));
            run.clear();
        }
        assert_eq!(
            runs,
            [(2, vec![a, b]), (3, vec![c.clone()]), (4, vec![c])],
            "by tunnel port, each in arrival order"
        );
        // An ARP request for the endpoint is answered; one for another
        // address is the uplink's own traffic.
        let who_has = |ip: [u8; 4]| {
            let mut f = vec![0xff; 6];
            f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
            f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 192, 0, 2, 2, 0, 0, 0, 0, 0, 0]);
            f.extend_from_slice(&ip);
            f
        };
        let (ours, other) = (who_has(HERE), who_has([192, 0, 2, 77]));
        let mut rx = burst(&[ours, other.clone()]);
        let mut out = Decapsulated::<MemBurst>::default();
        let c_ = decapsulate(&v, p(1), &mut rx, &mut out);
        assert_eq!((c_.rx_packets, bytes(&out.rest)), (1, vec![other]));
        let reply = bytes(&out.answers).remove(0);
        assert_eq!(&reply[..12], &[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
        let arp = crate::wire::arp::ArpPacket::new_checked(&reply[14..]).unwrap();
        assert_eq!((arp.op().0, arp.sha(), arp.spa()), (2, HERE_MAC, HERE));
        // A burst from any other port is not looked at.
        let mut rx = burst(&[from_remote(THERE, 4242, &inner(2, 1, 1, 60))]);
        let mut out = Decapsulated::<MemBurst>::default();
        let c_ = decapsulate(&v, p(0), &mut rx, &mut out);
        assert_eq!((c_.rx_packets, out.rest.len()), (0, 1));
    }

    /// [`encapsulate`] with `v`'s next hops and unlimited copies; its ARP
    /// requests are put in `out` ahead of the encapsulated frames (the
    /// order they leave the uplink in).
    fn encap(
        v: &SwitchView,
        t: &TunnelPort,
        batch: &mut MemBurst,
        out: &mut MemBurst,
        dropped: &mut MemBurst,
    ) -> EncapCounts {
        let mut pool = MemPool::default();
        let max = v.max_frame(t.uplink);
        let mut e = Encapsulated::default();
        let c = encapsulate(t, v.neighbours(), max, batch, &mut e, &mut pool);
        for f in bytes(&e.requests).iter().chain(&bytes(&e.frames)) {
            out.push(MemFrame::new(f)).unwrap();
        }
        for f in bytes(&e.dropped) {
            dropped.push(MemFrame::new(&f)).unwrap();
        }
        c
    }

    /// `frame` with an 802.1Q tag of VLAN `vid` after its MACs.
    fn tagged(frame: &[u8], vid: u16) -> Vec<u8> {
        let mut f = vec![0u8; crate::wire::vlan::HEADER_LEN];
        f.extend_from_slice(frame);
        crate::wire::vlan::insert_tag(&mut f, crate::wire::vlan::Tci(vid)).unwrap();
        f
    }

    /// br-int: p0 a trunk, p2 a by-VLAN tunnel to THERE (VLAN 10 as VNI
    /// 100, VLAN 20 as VNI 200); br-phy: p1 the uplink holding HERE.
    fn view_by_vlan() -> SwitchView {
        let mut v = SwitchView::default();
        v.set_neighbours(Arc::new(NeighbourTable::new(
            vec![next_hop(THERE, true)],
            60,
            None,
        )));
        let int = v.add_bridge("br-int", Arc::new(MacTable::new(1024, 300)));
        let phy = v.add_bridge("br-phy", Arc::new(MacTable::new(1024, 300)));
        for (i, bridge, trunks) in [(0, int, &[][..]), (1, phy, &[]), (2, int, &[10, 20])] {
            v.add_port(PortView {
                id: p(i),
                name: format!("p{i}"),
                bridge,
                vlan: PortVlan::new(None, None, trunks).unwrap(),
                acl: None,
                dhcp: None,
                max_frame: max_frame_len(DEFAULT_MTU),
            })
            .unwrap();
        }
        let key = VlanVnis::new([(20, vni(200)), (10, vni(100))]).unwrap();
        let t = TunnelPort::new(
            p(1),
            OuterHeader::V4(outer(THERE)),
            TunnelKey::ByVlan(key),
            0,
        );
        v.add_tunnel(p(2), t).unwrap();
        v
    }

    #[test]
    fn a_by_vlan_tunnel_carries_each_local_vlan_as_its_vni_both_ways() {
        assert!(VlanVnis::new([]).is_none(), "no VLANs");
        assert!(
            VlanVnis::new([(1, vni(5)), (1, vni(6))]).is_none(),
            "a VLAN twice"
        );
        assert!(
            VlanVnis::new([(1, vni(5)), (2, vni(5))]).is_none(),
            "a VNI twice"
        );
        let v = view_by_vlan();
        let t = v.tunnel(p(2)).unwrap().clone();
        let (a, b, c) = (
            inner(2, 1, 1000, 60),
            inner(2, 1, 1001, 100),
            inner(3, 1, 9, 64),
        );
        // VLANs 10, 20, 10 go as VNIs 100, 200, 100, untagged; an untagged
        // frame and one of VLAN 30 have no VNI here.
        let frames = [
            tagged(&a, 10),
            tagged(&b, 20),
            c.clone(),
            tagged(&c, 10),
            tagged(&a, 30),
        ];
        let mut batch = burst(&frames);
        let (mut out, mut dropped) = (MemBurst::default(), MemBurst::default());
        let e = encap(&v, &t, &mut batch, &mut out, &mut dropped);
        assert_eq!((e.lost, dropped.len()), (2, 2));
        assert_eq!(e.bytes, (a.len() + b.len() + c.len() + 3 * 50) as u64);
        let sent: Vec<(u32, Vec<u8>)> = bytes(&out)
            .iter()
            .map(|f| {
                let d = vxlan::parse_ipv4(f, vxlan::UDP_PORT, false).unwrap();
                assert_eq!((d.src_ip, d.dst_ip), (HERE.into(), THERE.into()));
                (d.vni.get(), f[d.inner..].to_vec())
            })
            .collect();
        assert_eq!(sent, [(100, a.clone()), (200, b.clone()), (100, c.clone())]);
        // Received: VNI 200 and 100 get the tags of VLANs 20 and 10; an
        // unknown VNI has no output.
        let mut rx = burst(&[
            from_remote(THERE, 200, &b),
            from_remote(THERE, 100, &a),
            from_remote(THERE, 300, &c),
        ]);
        let mut dec = Decapsulated::<MemBurst>::default();
        let counts = decapsulate(&v, p(1), &mut rx, &mut dec);
        assert_eq!((counts.rx_packets, counts.no_output), (3, 1));
        let mut run = MemBurst::default();
        assert_eq!(dec.next_run(&mut run), Some(p(2)));
        assert_eq!(bytes(&run), [tagged(&b, 20), tagged(&a, 10)]);
        // Switched as received on the trunk: in their VLANs.
        let mut cls = Classified::default();
        classify(&v, p(2), &run, &mut cls);
        for (i, vlan) in [(0, 20), (1, 10)] {
            assert_eq!(cls.vlan_of(i), Some(vlan), "frame {i}");
        }
    }

    #[test]
    fn a_tunnel_asks_for_its_next_hop_by_arp_learns_it_and_confirms_it_in_time() {
        let v = view_with(false);
        let t = v.tunnel(p(2)).unwrap().clone();
        let table = v.neighbours();
        table.set_now(10);
        let frames = [inner(2, 1, 1000, 60), inner(2, 1, 1001, 60)];
        let send = |out: &mut MemBurst, dropped: &mut MemBurst| {
            let mut batch = burst(&frames);
            encap(&v, &t, &mut batch, out, dropped)
        };
        let (mut out, mut dropped) = (MemBurst::default(), MemBurst::default());
        // Unknown: the batch is dropped and one of its frames asks.
        let c = send(&mut out, &mut dropped);
        assert_eq!((c.unresolved, c.requests, dropped.len()), (2, 1, 1));
        let ask = bytes(&out).remove(0);
        assert_eq!(ask.len(), 60);
        assert_eq!(
            &ask[..12],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1]
        );
        let a = ArpPacket::new_checked(&ask[14..]).unwrap();
        assert_eq!(
            (a.op(), a.sha(), a.spa(), a.tpa()),
            (arp::ArpOperation::REQUEST, HERE_MAC, HERE, THERE)
        );
        // Once a second at most.
        let (mut out, mut dropped) = (MemBurst::default(), MemBurst::default());
        let c = send(&mut out, &mut dropped);
        assert_eq!((c.unresolved, c.requests, out.len()), (2, 0, 0));
        // The reply is consumed on the uplink and teaches the MAC.
        let there_mac = EthernetAddress::new(2, 0xaa, 0, 0, 0, 2);
        let mut reply = ask.clone();
        reply[..6].copy_from_slice(HERE_MAC.as_bytes());
        reply[6..12].copy_from_slice(there_mac.as_bytes());
        reply[14 + 7] = 2;
        reply[14 + 8..14 + 14].copy_from_slice(there_mac.as_bytes());
        reply[14 + 14..14 + 18].copy_from_slice(&THERE);
        reply[14 + 18..14 + 24].copy_from_slice(HERE_MAC.as_bytes());
        reply[14 + 24..14 + 28].copy_from_slice(&HERE);
        let mut rx = burst(&[reply]);
        let mut dec = Decapsulated::<MemBurst>::default();
        let rc = decapsulate(&v, p(1), &mut rx, &mut dec);
        assert_eq!(
            (rc.rx_packets, dec.rest.len(), dec.dropped.len()),
            (1, 0, 1)
        );
        let (mut out, mut dropped) = (MemBurst::default(), MemBurst::default());
        let c = send(&mut out, &mut dropped);
        assert_eq!((c.unresolved, c.requests, out.len()), (0, 0, 2));
        assert!(bytes(&out).iter().all(|f| f[..6] == *there_mac.as_bytes()));
        // Past half the aging time: the frames go, and a unicast probe.
        table.set_now(10 + 30);
        let (mut out, mut dropped) = (MemBurst::default(), MemBurst::default());
        let c = send(&mut out, &mut dropped);
        assert_eq!((c.unresolved, c.requests, out.len()), (0, 1, 3));
        let probe = bytes(&out).remove(0);
        assert_eq!(
            &probe[..6],
            there_mac.as_bytes(),
            "unicast to the MAC to confirm"
        );
        assert_eq!(ArpPacket::new_checked(&probe[14..]).unwrap().tpa(), THERE);
        // A full batch still sends its probe (beside it, not in it).
        table.set_now(10 + 31);
        let full: Vec<Vec<u8>> = (0..BURST).map(|i| inner(2, 1, i as u16, 60)).collect();
        let mut batch = burst(&full);
        let mut e = Encapsulated::<MemBurst>::default();
        let mut pool = MemPool::default();
        let c = encapsulate(&t, table, v.max_frame(p(1)), &mut batch, &mut e, &mut pool);
        assert_eq!((c.requests, c.lost), (1, 0));
        assert_eq!((e.frames.len(), e.requests.len()), (BURST, 1));
        // Unconfirmed for the whole aging time: forgotten, asked again.
        table.set_now(10 + 60);
        let (mut out, mut dropped) = (MemBurst::default(), MemBurst::default());
        let c = send(&mut out, &mut dropped);
        assert_eq!((c.unresolved, c.requests), (2, 1));
        assert_eq!(&bytes(&out)[0][..6], &[0xff; 6]);
        // The other tunnel to THERE shares the next hop; ELSEWHERE's is
        // still unknown.
        assert_eq!(v.tunnel(p(4)).unwrap().next_hop, t.next_hop);
        assert_eq!(
            table.get(1).unwrap().resolve(table.now(), 60),
            Resolution::Unknown
        );
    }

    const HERE6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const THERE6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    /// br-int: p0 a VM and p2 an IPv6 tunnel to THERE6 (VNI 4242), access
    /// 10; br-phy: p1 the uplink holding HERE6. The next hop is learned.
    fn view6() -> SwitchView {
        let mut v = SwitchView::default();
        v.set_neighbours(Arc::new(NeighbourTable::new(
            vec![NextHop {
                uplink: p(1),
                src_ip: HERE6.into(),
                src_mac: HERE_MAC,
                ip: THERE6.into(),
                fixed: None,
            }],
            60,
            None,
        )));
        let int = v.add_bridge("br-int", Arc::new(MacTable::new(1024, 300)));
        let phy = v.add_bridge("br-phy", Arc::new(MacTable::new(1024, 300)));
        for (i, bridge, access) in [(0, int, Some(10)), (1, phy, None), (2, int, Some(10))] {
            v.add_port(PortView {
                id: p(i),
                name: format!("p{i}"),
                bridge,
                vlan: PortVlan::new(None, access, &[]).unwrap(),
                acl: None,
                dhcp: None,
                max_frame: max_frame_len(DEFAULT_MTU),
            })
            .unwrap();
        }
        let outer = vxlan::Ipv6Tunnel {
            src_mac: HERE_MAC,
            dst_mac: EthernetAddress::ZERO,
            src_ip: HERE6,
            dst_ip: THERE6,
            hop_limit: 64,
            traffic_class: 0,
        };
        v.add_tunnel(
            p(2),
            TunnelPort::new(p(1), OuterHeader::V6(outer), TunnelKey::Fixed(vni(4242)), 0),
        )
        .unwrap();
        v
    }

    #[test]
    fn an_ipv6_tunnel_solicits_its_next_hop_learns_it_and_carries_frames_both_ways() {
        let v = view6();
        let t = v.tunnel(p(2)).unwrap().clone();
        let table = v.neighbours();
        table.set_now(10);
        let frames = [inner(2, 1, 1000, 60), inner(2, 1, 1001, 61)];
        let send = |out: &mut MemBurst, dropped: &mut MemBurst| {
            let mut batch = burst(&frames);
            encap(&v, &t, &mut batch, out, dropped)
        };
        // Unknown: a solicitation to THERE6's solicited-node group.
        let (mut out, mut dropped) = (MemBurst::default(), MemBurst::default());
        let c = send(&mut out, &mut dropped);
        assert_eq!((c.unresolved, c.requests, dropped.len()), (2, 1, 1));
        let ask = bytes(&out).remove(0);
        assert_eq!(ask.len(), ndisc::FRAME_LEN);
        assert_eq!(&ask[..6], &[0x33, 0x33, 0xff, 0, 0, 2]);
        let m = ndisc::parse(&ask[14..]).unwrap();
        assert_eq!(
            (m.kind, m.src, m.target, m.lladdr),
            (ndisc::SOLICITATION, HERE6, THERE6, Some(HERE_MAC))
        );
        // THERE6 answers it: consumed on the uplink, and learned.
        let there_mac = EthernetAddress::new(2, 0xaa, 0, 0, 0, 2);
        let mut answer = ask.clone();
        ndisc::write_advertisement(&mut answer, 14, THERE6, there_mac, HERE6, HERE_MAC).unwrap();
        // Before it, the remote's own solicitation for HERE6: answered.
        let mut theirs = vec![0u8; ndisc::FRAME_LEN];
        assert!(ndisc::write_solicitation(
            &mut theirs,
            None,
            there_mac,
            THERE6,
            HERE6
        ));
        let mut rx = burst(&[theirs, answer]);
        let mut dec = Decapsulated::<MemBurst>::default();
        let rc = decapsulate(&v, p(1), &mut rx, &mut dec);
        assert_eq!(
            (
                rc.rx_packets,
                dec.rest.len(),
                dec.dropped.len(),
                dec.answers.len()
            ),
            (2, 0, 1, 1)
        );
        let ours = bytes(&dec.answers).remove(0);
        assert_eq!(&ours[..12], &[2, 0xaa, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
        let a = ndisc::parse(&ours[14..]).unwrap();
        assert_eq!(
            (a.kind, a.src, a.dst, a.target, a.lladdr, a.solicited),
            (
                ndisc::ADVERTISEMENT,
                HERE6,
                THERE6,
                HERE6,
                Some(HERE_MAC),
                true
            )
        );
        // Known: the frames go in IPv6, their UDP checksum right.
        let (mut out, mut dropped) = (MemBurst::default(), MemBurst::default());
        let c = send(&mut out, &mut dropped);
        assert_eq!((c.unresolved, c.requests, out.len()), (0, 0, 2));
        for (f, sent) in bytes(&out).iter().zip(&frames) {
            assert_eq!(&f[..6], there_mac.as_bytes());
            assert_ne!(
                &f[vxlan::IPV6_OVERHEAD - 10..][..2],
                &[0, 0],
                "a UDP checksum"
            );
            let d = vxlan::parse_ipv6(f, vxlan::UDP_PORT, false).unwrap();
            assert_eq!(&f[d.inner..d.inner + d.inner_len], &sent[..]);
            assert_eq!(
                (d.src_ip, d.dst_ip, d.vni, d.ttl),
                (IpAddr::from(HERE6), IpAddr::from(THERE6), vni(4242), 64)
            );
        }
        assert_eq!(c.bytes, (2 * vxlan::IPV6_OVERHEAD + 121) as u64);
        // What THERE6 sends back decapsulates onto p2.
        let back = vxlan::Ipv6Tunnel {
            src_mac: there_mac,
            dst_mac: HERE_MAC,
            src_ip: THERE6,
            dst_ip: HERE6,
            hop_limit: 64,
            traffic_class: 0,
        };
        let f = inner(1, 2, 2000, 60);
        let mut packet = vec![0u8; vxlan::IPV6_OVERHEAD + f.len()];
        packet[vxlan::IPV6_OVERHEAD..].copy_from_slice(&f);
        back.write_header(&mut packet, vni(4242), 40000, f.len())
            .unwrap();
        let mut rx = burst(&[packet]);
        let mut dec = Decapsulated::<MemBurst>::default();
        decapsulate(&v, p(1), &mut rx, &mut dec);
        let mut run = MemBurst::default();
        assert_eq!(dec.next_run(&mut run), Some(p(2)));
        assert_eq!(bytes(&run), vec![f]);
        // Past half the aging time: a unicast solicitation to confirm it.
        table.set_now(10 + 30);
        let (mut out, mut dropped) = (MemBurst::default(), MemBurst::default());
        let c = send(&mut out, &mut dropped);
        assert_eq!((c.requests, out.len()), (1, 3));
        let probe = bytes(&out).remove(0);
        assert_eq!(&probe[..6], there_mac.as_bytes());
        assert_eq!(ndisc::parse(&probe[14..]).unwrap().dst, THERE6);
    }

    #[test]
    fn encapsulation_writes_the_tunnels_outer_headers_and_keeps_the_flows_source_port() {
        let v = view();
        let t = v.tunnel(p(2)).unwrap().clone();
        let frames = [
            inner(2, 1, 1000, 60),
            inner(2, 1, 1000, 200),
            inner(2, 1, 1001, 60),
        ];
        let mut batch = burst(&frames);
        let (mut out, mut dropped) = (MemBurst::default(), MemBurst::default());
        let c = encap(&v, &t, &mut batch, &mut out, &mut dropped);
        assert!(batch.is_empty() && dropped.is_empty());
        assert_eq!(
            c.bytes,
            frames.iter().map(|f| (f.len() + 50) as u64).sum::<u64>()
        );
        let sent = bytes(&out);
        let mut sports = Vec::new();
        for (f, want) in sent.iter().zip(&frames) {
            let d = vxlan::parse_ipv4(f, vxlan::UDP_PORT, false).unwrap();
            assert_eq!(
                (d.src_ip, d.dst_ip, d.vni, d.ttl),
                (HERE.into(), THERE.into(), vni(4242), 64)
            );
            assert_eq!(&f[d.inner..], &want[..]);
            assert_eq!(&f[..6], &[2, 0, 0, 0, 0, 2], "to the next hop");
            assert_eq!(&f[6..12], HERE_MAC.as_bytes());
            assert_eq!(f[20] & 0x40, 0x40, "DF");
            assert!((SOURCE_PORTS.0..=SOURCE_PORTS.1).contains(&d.src_port));
            sports.push(d.src_port);
        }
        assert_eq!(sports[0], sports[1], "one flow, one source port");
        // And the uplink takes it back in.
        let back: Vec<Vec<u8>> = sent
            .iter()
            .map(|f| {
                let d = vxlan::parse_ipv4(f, vxlan::UDP_PORT, false).unwrap();
                from_remote(THERE, 4242, &f[d.inner..])
            })
            .collect();
        let mut rx = burst(&back);
        let mut dec = Decapsulated::<MemBurst>::default();
        decapsulate(&v, p(1), &mut rx, &mut dec);
        let mut run = MemBurst::default();
        assert_eq!(dec.next_run(&mut run), Some(p(2)));
        assert_eq!(bytes(&run), frames);
    }

    #[test]
    fn encapsulation_drops_what_cannot_go_and_finishes_partial_checksums() {
        let v = view();
        let t = v.tunnel(p(2)).unwrap().clone();
        // 1450 bytes of IP: the largest inner frame a 1500-byte uplink takes
        // (1464 + 50 = 1514, untagged).
        let fits = inner(2, 1, 1, 1464 + 4);
        let too_long = inner(2, 1, 1, 1464 + 5);
        let mut partial = MemFrame::new(&inner(2, 1, 7, 80));
        partial.offload = Offload {
            partial_checksum: true,
            tcp_mss: 0,
        };
        let mut to_cut = MemFrame::new(&inner(2, 1, 8, 80));
        to_cut.offload = Offload {
            partial_checksum: true,
            tcp_mss: 1000,
        };
        let mut shared = MemFrame::new(&inner(2, 1, 9, 60));
        shared.shared = true;
        let mut batch = MemBurst::from_frames([
            MemFrame::new(&fits),
            MemFrame::new(&too_long),
            partial,
            to_cut,
            shared,
        ]);
        let (mut out, mut dropped) = (MemBurst::default(), MemBurst::default());
        let c = encap(&v, &t, &mut batch, &mut out, &mut dropped);
        assert_eq!((c.oversize, c.lost, out.len(), dropped.len()), (1, 2, 2, 3));
        let sent = bytes(&out);
        let d = vxlan::parse_ipv4(&sent[1], vxlan::UDP_PORT, false).unwrap();
        let l4 = &sent[1][d.inner + 34..];
        assert!(
            crate::wire::ipv4_l4_checksum_holds([10, 0, 0, 1], [10, 0, 0, 2], IpProtocol::UDP, l4),
            "the inner checksum is finished before it is covered by the tunnel"
        );
        assert!(out.frames().all(|f| f.offload.is_none()));
    }

    #[test]
    fn a_tunnels_frame_never_goes_to_another_tunnel() {
        let v = view();
        let mut cl = Classified::default();
        // A broadcast from the VM goes to every tunnel (head-end
        // replication)...
        let rx = burst(&[inner(0xff, 1, 1, 60)]);
        classify(&v, p(0), &rx, &mut cl);
        let Action::Flood(n) = cl.actions()[0] else {
            panic!("{:?}", cl.actions())
        };
        let to: PortMask = cl
            .floods
            .get(n)
            .unwrap()
            .targets()
            .iter()
            .map(|t| t.0)
            .collect();
        assert_eq!(to, [p(2), p(3), p(4)].into_iter().collect());
        // ...one from a tunnel only to the VM.
        let rx = burst(&[inner(0xff, 5, 1, 60)]);
        classify(&v, p(2), &rx, &mut cl);
        assert_eq!(
            cl.actions(),
            [Action::Output(p(0), crate::pipeline::TagAction::Keep)]
        );
        // A MAC learned on one tunnel is not reached from another.
        let rx = burst(&[inner(5, 6, 1, 60)]);
        classify(&v, p(3), &rx, &mut cl);
        assert_eq!(cl.actions(), [Action::Drop(DropReason::NoOutput)]);
    }

    proptest! {
        // Whatever the uplink receives: nothing is lost or duplicated (every
        // frame ends in exactly one of rest, dropped or a run), the rest
        // keeps its order, and no run holds anything but a tunnel port's.
        #[test]
        fn decapsulation_accounts_for_every_frame(
            picks in proptest::collection::vec((0u8..5, any::<u16>(), 14usize..300, any::<u8>()), 1..32)
        ) {
            let v = view();
            let frames: Vec<Vec<u8>> = picks.iter().map(|&(kind, sport, len, flip)| {
                let f = inner(2, 1, sport, len.max(34));
                match kind {
                    0 => from_remote(THERE, 4242, &f),
                    1 => from_remote(ELSEWHERE, 4242, &f),
                    2 => from_remote(THERE, 5, &f),
                    3 => { let mut t = from_remote(THERE, 4242, &f); let i = usize::from(flip) % t.len(); t[i] ^= 0x10; t }
                    _ => f,
                }
            }).collect();
            let mut rx = burst(&frames);
            let mut out = Decapsulated::<MemBurst>::default();
            let c = decapsulate(&v, p(1), &mut rx, &mut out);
            let mut inner_count = 0;
            let mut run = MemBurst::default();
            while let Some(port) = out.next_run(&mut run) {
                prop_assert!(v.tunnel(port).is_some());
                inner_count += run.len();
                run.clear();
            }
            prop_assert_eq!(out.rest.len() + out.dropped.len() + inner_count, frames.len());
            prop_assert_eq!(c.rx_packets as usize, out.dropped.len() + inner_count);
            let rest = bytes(&out.rest);
            let mut it = frames.iter();
            for r in &rest {
                prop_assert!(it.any(|f| f == r), "rest keeps its order");
            }
        }
    }
}
