//! Arbitrary bursts received on a tunnel uplink (`pipeline::decapsulate`:
//! VXLAN receive checks over IPv4 and IPv6, the endpoints' ARP and
//! neighbour answers, next-hop learning from ARP and neighbour discovery)
//! and the inner frames sent back out through their tunnels
//! (`pipeline::encapsulate`, with next hops learned by ARP and by neighbour
//! discovery and a static one). The input is cut into up to 32 frames (a
//! length byte, then the bytes); a frame that is IPv4 gets its header
//! checksum made right, and an ICMPv6 one its checksum, so the fuzzer
//! reaches the VXLAN and neighbour paths. Nothing may panic; every frame ends
//! in exactly one place; an inner frame sent back through its tunnel comes
//! back in by the same tunnel, byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use switch_core::frame::mem::{MemBurst, MemFrame, MemPool};
use switch_core::frame::Burst;
use switch_core::mac_table::MacTable;
use switch_core::neighbour::{NeighbourTable, NextHop};
use switch_core::pipeline::{decapsulate, encapsulate, Decapsulated, Encapsulated};
use switch_core::port::PortId;
use switch_core::view::{
    max_frame_len, PortView, SwitchView, TunnelKey, TunnelPort, VlanVnis, DEFAULT_MTU,
};
use switch_core::vlan::PortVlan;
use switch_core::wire::vxlan::{self, Ipv4Tunnel, Ipv6Tunnel, OuterHeader, Vni};
use std::net::IpAddr;
use switch_core::wire::EthernetAddress;

const HERE: [u8; 4] = [192, 0, 2, 1];
const HERE6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const THERE6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const HERE_MAC: EthernetAddress = EthernetAddress::new(2, 0, 0, 0, 0, 1);

fn p(n: u16) -> PortId {
    PortId::new(n).unwrap()
}

/// br-int: p0 a VM, p2 a tunnel to 192.0.2.2 VNI 7 (next hop learned by
/// ARP), p3 a tunnel to 203.0.113.9 VNI 7 through the gateway 192.0.2.254
/// (static), p4 a tunnel to 2001:db8::2 VNI 7 (next hop learned by
/// neighbour discovery); br-phy: p1, the uplink holding HERE and HERE6.
fn view() -> SwitchView {
    let mut v = SwitchView::default();
    let hop = |src: IpAddr, ip: IpAddr, fixed| NextHop {
        uplink: p(1),
        src_ip: src,
        src_mac: HERE_MAC,
        ip,
        fixed,
    };
    let here = IpAddr::from(HERE);
    v.set_neighbours(Arc::new(NeighbourTable::new(
        vec![
            hop(here, [192, 0, 2, 2].into(), None),
            hop(
                here,
                [192, 0, 2, 254].into(),
                Some(EthernetAddress::new(2, 0, 0, 0, 0, 0xfe)),
            ),
            hop(HERE6.into(), THERE6.into(), None),
        ],
        60,
        None,
    )));
    let int = v.add_bridge("br-int", Arc::new(MacTable::new(64, 300)));
    let phy = v.add_bridge("br-phy", Arc::new(MacTable::new(64, 300)));
    for (i, bridge) in [(0, int), (1, phy), (2, int), (3, int), (4, int)] {
        v.add_port(PortView {
            id: p(i),
            name: format!("p{i}"),
            bridge,
            vlan: PortVlan::new(None, None, &[]).unwrap(),
            acl: None,
            dhcp: None,
            max_frame: max_frame_len(DEFAULT_MTU),
        })
        .unwrap();
    }
    for (port, remote, hop) in [(2, [192, 0, 2, 2], 0), (3, [203, 0, 113, 9], 1)] {
        let outer = Ipv4Tunnel {
            src_mac: HERE_MAC,
            dst_mac: EthernetAddress::BROADCAST,
            src_ip: HERE,
            dst_ip: remote,
            ttl: 64,
            tos: 0,
            dont_fragment: true,
        };
        // p3 carries a VNI per local VLAN (10 as 7, 20 as 8).
        let key = if port == 3 {
            TunnelKey::ByVlan(VlanVnis::new([(10, vni(7)), (20, vni(8))]).unwrap())
        } else {
            TunnelKey::Fixed(vni(7))
        };
        let t = TunnelPort::new(p(1), OuterHeader::V4(outer), key, hop);
        v.add_tunnel(p(port), t).unwrap();
    }
    let outer = Ipv6Tunnel {
        src_mac: HERE_MAC,
        dst_mac: EthernetAddress::BROADCAST,
        src_ip: HERE6,
        dst_ip: THERE6,
        hop_limit: 64,
        traffic_class: 0,
    };
    let t = TunnelPort::new(p(1), OuterHeader::V6(outer), TunnelKey::Fixed(vni(7)), 2);
    v.add_tunnel(p(4), t).unwrap();
    v
}

fn vni(n: u32) -> Vni {
    Vni::new(n).unwrap()
}

/// What `tunnel` sends of inner frame `f`: its VNI and the frame (a
/// by-VLAN tunnel's without its 802.1Q tag); `None` when it has no VNI.
fn expected(tunnel: &TunnelPort, f: &[u8]) -> Option<(Vni, Vec<u8>)> {
    match tunnel.key() {
        TunnelKey::Fixed(v) => Some((*v, f.to_vec())),
        key @ TunnelKey::ByVlan(_) => {
            if f.get(12..14)? != [0x81, 0x00] {
                return None;
            }
            let vid = u16::from_be_bytes([*f.get(14)?, *f.get(15)?]) & 0x0fff;
            let mut untagged = f[..12].to_vec();
            untagged.extend_from_slice(f.get(16..)?);
            Some((key.vni_of(Some(vid))?, untagged))
        }
    }
}

/// Makes the ICMPv6 checksum right when `f` looks like an untagged IPv6
/// packet carrying ICMPv6 right after its fixed header.
fn fix_icmpv6(f: &mut [u8]) {
    if f.get(12..14) != Some(&[0x86, 0xdd]) || f.len() < 58 || f[20] != 58 {
        return;
    }
    let len = usize::from(u16::from_be_bytes([f[18], f[19]]));
    if len < 4 || f.len() < 54 + len {
        return;
    }
    let (src, dst): ([u8; 16], [u8; 16]) = (f[22..38].try_into().unwrap(), f[38..54].try_into().unwrap());
    f[56..58].copy_from_slice(&[0, 0]);
    let sum = switch_core::wire::ipv6_l4_checksum(
        src,
        dst,
        switch_core::wire::IpProtocol::ICMPV6,
        &f[54..54 + len],
    );
    f[56..58].copy_from_slice(&sum.to_be_bytes());
}

/// Makes the IPv4 header checksum right when `f` looks like IPv4 (an
/// untagged EtherType 0x0800 and a plausible header length).
fn fix_ipv4(f: &mut [u8]) {
    if f.get(12..14) != Some(&[0x08, 0x00]) {
        return;
    }
    let ihl = usize::from(f.get(14).copied().unwrap_or(0) & 0x0f) * 4;
    if ihl < 20 || f.len() < 14 + ihl {
        return;
    }
    f[24..26].copy_from_slice(&[0, 0]);
    let sum = switch_core::wire::checksum(&f[14..14 + ihl]);
    f[24..26].copy_from_slice(&sum.to_be_bytes());
}

fuzz_target!(|data: &[u8]| {
    let v = view();
    v.neighbours().set_now(5);
    let mut frames = Vec::new();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        if frames.len() == 32 {
            break;
        }
        let n = usize::from(len).min(tail.len());
        let mut f = tail[..n].to_vec();
        fix_ipv4(&mut f);
        fix_icmpv6(&mut f);
        frames.push(f);
        rest = &tail[n..];
    }
    let total = frames.len();
    let mut rx = MemBurst::from_frames(frames.iter().map(|f| MemFrame::new(f)));
    let mut out = Decapsulated::<MemBurst>::default();
    decapsulate(&v, p(1), &mut rx, &mut out);
    assert!(rx.is_empty());
    let mut accounted = out.rest.len() + out.dropped.len() + out.answers.len();
    let mut run = MemBurst::default();
    let mut pool = MemPool::default();
    while let Some(port) = out.next_run(&mut run) {
        let tunnel = v.tunnel(port).expect("a run is a tunnel port's").clone();
        accounted += run.len();
        let inner: Vec<Vec<u8>> = run.frames().map(|f| f.bytes().to_vec()).collect();
        let mut e = Encapsulated::<MemBurst>::default();
        let max = v.max_frame(p(1));
        let c = encapsulate(&tunnel, v.neighbours(), max, &mut run, &mut e, &mut pool);
        assert!(run.is_empty());
        assert_eq!(e.requests.len() as u64, c.requests);
        let (sent, requests) = (&e.frames, &e.requests);
        let got = sent.len() + e.dropped.len() + requests.len();
        assert!(
            got == inner.len() || got == inner.len() + c.requests as usize,
            "encapsulate keeps every frame: {got} of {}",
            inner.len()
        );
        // What went out as VXLAN parses back to the inner frames, in
        // order, each with its VNI (a by-VLAN tunnel's by the frame's tag,
        // the tag gone).
        let back: Vec<(Vni, Vec<u8>)> = sent
            .frames()
            .filter_map(|f| {
                let b = f.bytes();
                let tags = switch_core::wire::VlanStack::from_frame(b, None).ok()?;
                let d = vxlan::parse_tagged(b, &tags, vxlan::UDP_PORT, false).ok()?;
                assert_eq!(d.dst_ip, tunnel.outer().dst_ip());
                Some((d.vni, f.bytes()[d.inner..].to_vec()))
            })
            .collect();
        if c.unresolved == 0 && c.lost == 0 && c.oversize == 0 {
            let want: Vec<(Vni, Vec<u8>)> =
                inner.iter().filter_map(|f| expected(&tunnel, f)).collect();
            assert_eq!(back, want);
            assert_eq!(want.len(), inner.len(), "every inner frame had its VNI");
        }
    }
    assert_eq!(accounted, total, "every frame ends in exactly one place");
});
