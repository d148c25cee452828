//! Arbitrary bursts received on a tunnel uplink (`pipeline::decapsulate`:
//! VXLAN receive checks, the endpoint's ARP answers, next-hop learning
//! from ARP) and the inner frames sent back out through their tunnels
//! (`pipeline::encapsulate`, with a next hop learned by ARP and a static
//! one). The input is cut into up to 32 frames (a length byte, then the
//! bytes); a frame that is IPv4 gets its header checksum made right, so
//! the fuzzer reaches the VXLAN paths. Nothing may panic; every frame ends
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
use switch_core::view::{max_frame_len, PortView, SwitchView, TunnelPort, DEFAULT_MTU};
use switch_core::vlan::PortVlan;
use switch_core::wire::vxlan::{self, Ipv4Tunnel, Vni};
use switch_core::wire::EthernetAddress;

const HERE: [u8; 4] = [192, 0, 2, 1];
const HERE_MAC: EthernetAddress = EthernetAddress::new(2, 0, 0, 0, 0, 1);

fn p(n: u16) -> PortId {
    PortId::new(n).unwrap()
}

/// br-int: p0 a VM, p2 a tunnel to 192.0.2.2 VNI 7 (next hop learned by
/// ARP), p3 a tunnel to 203.0.113.9 VNI 7 through the gateway 192.0.2.254
/// (static); br-phy: p1, the uplink holding HERE.
fn view() -> SwitchView {
    let mut v = SwitchView::default();
    let hop = |ip: [u8; 4], fixed| NextHop {
        uplink: p(1),
        src_ip: HERE,
        src_mac: HERE_MAC,
        ip,
        fixed,
    };
    v.set_neighbours(Arc::new(NeighbourTable::new(
        vec![
            hop([192, 0, 2, 2], None),
            hop([192, 0, 2, 254], Some(EthernetAddress::new(2, 0, 0, 0, 0, 0xfe))),
        ],
        60,
        None,
    )));
    let int = v.add_bridge("br-int", Arc::new(MacTable::new(64, 300)));
    let phy = v.add_bridge("br-phy", Arc::new(MacTable::new(64, 300)));
    for (i, bridge) in [(0, int), (1, phy), (2, int), (3, int)] {
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
        let t = TunnelPort::new(p(1), outer, Vni::new(7).unwrap(), hop);
        v.add_tunnel(p(port), t).unwrap();
    }
    v
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
        let tunnel = *v.tunnel(port).expect("a run is a tunnel port's");
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
        // What went out as VXLAN parses back to the inner frames, in order.
        let back: Vec<Vec<u8>> = sent
            .frames()
            .filter_map(|f| {
                let d = vxlan::parse_ipv4(f.bytes(), vxlan::UDP_PORT, false).ok()?;
                assert_eq!(d.vni, tunnel.vni());
                assert_eq!(d.dst_ip, tunnel.outer().dst_ip);
                Some(f.bytes()[d.inner..].to_vec())
            })
            .collect();
        if c.unresolved == 0 && c.lost == 0 && c.oversize == 0 {
            assert_eq!(back, inner);
        }
    }
    assert_eq!(accounted, total, "every frame ends in exactly one place");
});
