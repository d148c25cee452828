//! Micro-benchmarks of the per-packet flow-key extraction, and of the
//! checksum sum and VXLAN outer headers the tunnels write per packet.
//!
//! `cargo bench --bench parser` (needs a `[[bench]] name = "parser"`,
//! `harness = false` entry in the root Cargo.toml).

use std::time::Instant;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dataplane::flow_key::{FlowKey, ParseDepth};

/// Writes the IPv4 header checksum of `ip` (20 bytes, no options).
fn fill_ipv4_checksum(ip: &mut [u8]) {
    ip[10] = 0;
    ip[11] = 0;
    let mut sum: u32 = ip
        .chunks_exact(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let sum = !(sum as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
}

/// Ethernet header with `tags` (TPID, TCI) then `ethertype`.
fn ethernet(tags: &[(u16, u16)], ethertype: u16) -> Vec<u8> {
    let mut f = vec![
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    ];
    for &(tpid, tci) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// A 64-byte IPv4/UDP frame (10.0.0.1:1234 -> 10.0.0.2:4789) after `tags`.
fn ipv4_udp_64(tags: &[(u16, u16)]) -> Vec<u8> {
    let mut f = ethernet(tags, 0x0800);
    let ip_len = 64 - f.len();
    let udp_len = ip_len - 20;
    let mut ip = vec![0x45, 0x00];
    ip.extend_from_slice(&(ip_len as u16).to_be_bytes());
    ip.extend_from_slice(&[
        0x00, 0x01, 0x40, 0x00, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    fill_ipv4_checksum(&mut ip);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&1234u16.to_be_bytes());
    f.extend_from_slice(&4789u16.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.resize(64, 0xab);
    f
}

/// A 78-byte IPv6/TCP frame (2001:db8::1:49152 -> 2001:db8::2:443, ACK|PSH,
/// 4 bytes of data).
fn ipv6_tcp() -> Vec<u8> {
    let mut f = ethernet(&[], 0x86dd);
    f.extend_from_slice(&[0x60, 0, 0, 0, 0, 24, 6, 64]);
    f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    f.extend_from_slice(&49152u16.to_be_bytes());
    f.extend_from_slice(&443u16.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(b"data");
    f
}

fn bench_extract(c: &mut Criterion) {
    let frames: [(&str, Vec<u8>); 3] = [
        ("ipv4_udp_64", ipv4_udp_64(&[])),
        ("vlan_ipv4_udp_64", ipv4_udp_64(&[(0x8100, 100)])),
        ("ipv6_tcp_78", ipv6_tcp()),
    ];
    // Sanity: every frame parses fully, so the benchmark measures the
    // success path.
    for (name, frame) in &frames {
        assert!(
            FlowKey::extract(frame, None, ParseDepth::L4).is_ok(),
            "{name} does not parse"
        );
    }

    let mut group = c.benchmark_group("flow_key_extract");
    group.throughput(Throughput::Elements(1));
    for (depth_name, depth) in [("L2", ParseDepth::L2), ("L4", ParseDepth::L4)] {
        for (name, frame) in &frames {
            group.bench_function(format!("{depth_name}/{name}"), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let key = FlowKey::extract(black_box(frame), black_box(None), depth);
                        // Inputs go through criterion's black_box; the key is
                        // kept alive through a reference with std's. Criterion
                        // 0.5 without its `real_blackbox` feature implements
                        // black_box as a volatile *copy*, and `Bencher::iter`
                        // applies it to the routine's result: copying the
                        // freshly written 64-byte key with wide loads stalls
                        // on store forwarding and costs more than the parse.
                        std::hint::black_box(&key);
                    }
                    start.elapsed()
                })
            });
        }
    }
    group.finish();
}

/// RFC 1071's word-by-word sum, as `wire::sum16` was written before it
/// took eight bytes a step: the reference it is measured against.
fn sum16_words(data: &[u8]) -> u64 {
    let mut sum: u64 = 0;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

fn bench_checksum(c: &mut Criterion) {
    use dataplane::wire::vxlan::{Ipv4Tunnel, Ipv6Tunnel, OuterTemplate, Vni};
    use dataplane::wire::{fold, sum16, EthernetAddress};
    let mut group = c.benchmark_group("checksum");
    group.throughput(Throughput::Elements(1));
    for len in [20usize, 64, 1500] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(fold(sum16(&data)), fold(sum16_words(&data)));
        group.bench_function(format!("sum16/{len}"), |b| {
            b.iter(|| sum16(black_box(&data)))
        });
        group.bench_function(format!("word_by_word/{len}"), |b| {
            b.iter(|| sum16_words(black_box(&data)))
        });
    }
    // One outer header in front of a 64-byte inner frame, per family (the
    // IPv6 one sums the inner frame for its UDP checksum).
    let mac = |n| EthernetAddress::new(2, 0, 0, 0, 0, n);
    let vni = Vni::new(4242).unwrap();
    let v4 = Ipv4Tunnel {
        src_mac: mac(1),
        dst_mac: mac(2),
        src_ip: [198, 18, 0, 1],
        dst_ip: [198, 18, 0, 2],
        ttl: 64,
        tos: 0,
        dont_fragment: true,
    }
    .template(vni);
    let v6 = Ipv6Tunnel {
        src_mac: mac(1),
        dst_mac: mac(2),
        src_ip: [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        dst_ip: [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        hop_limit: 64,
        traffic_class: 0,
    }
    .template(vni);
    let mut f4 = vec![0xabu8; 50 + 64];
    let mut f6 = vec![0xabu8; 70 + 64];
    group.bench_function("vxlan_header/ipv4", |b| {
        b.iter(|| v4.write(black_box(&mut f4), black_box(40000), 64))
    });
    group.bench_function("vxlan_header/ipv6", |b| {
        b.iter(|| v6.write(black_box(&mut f6), black_box(40000), 64))
    });
    group.finish();
}

/// A burst of 32 64-byte frames through `pipeline::encapsulate` (in-memory
/// frames, a static next hop): a tunnel with one VNI, and one with a VNI
/// per local VLAN whose frames come tagged in two VLANs, alternately (the
/// tag popped and the VNI looked up per frame, the template patched at
/// every change: its worst case).
fn bench_tunnel(c: &mut Criterion) {
    use criterion::BatchSize;
    use dataplane::frame::mem::{MemBurst, MemFrame, MemPool};
    use dataplane::frame::Burst;
    use dataplane::mac_table::MacTable;
    use dataplane::neighbour::{NeighbourTable, NextHop};
    use dataplane::pipeline::{encapsulate, Encapsulated};
    use dataplane::port::PortId;
    use dataplane::view::{
        max_frame_len, PortView, SwitchView, TunnelKey, TunnelPort, VlanVnis, DEFAULT_MTU,
    };
    use dataplane::vlan::PortVlan;
    use dataplane::wire::vxlan::{Ipv4Tunnel, OuterHeader, Vni};
    use dataplane::wire::EthernetAddress;
    use std::sync::Arc;
    let p = |n| PortId::new(n).unwrap();
    let mac = |n| EthernetAddress::new(2, 0, 0, 0, 0, n);
    let vni = |n| Vni::new(n).unwrap();
    let view = |key: TunnelKey| {
        let mut v = SwitchView::default();
        v.set_neighbours(Arc::new(NeighbourTable::new(
            vec![NextHop {
                uplink: p(1),
                src_ip: [198, 18, 0, 1].into(),
                src_mac: mac(1),
                ip: [198, 18, 0, 2].into(),
                fixed: Some(mac(2)),
            }],
            60,
            None,
        )));
        let int = v.add_bridge("br-int", Arc::new(MacTable::new(64, 300)));
        let phy = v.add_bridge("br-phy", Arc::new(MacTable::new(64, 300)));
        for (i, bridge) in [(0, int), (1, phy), (2, int)] {
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
        let outer = Ipv4Tunnel {
            src_mac: mac(1),
            dst_mac: EthernetAddress::BROADCAST,
            src_ip: [198, 18, 0, 1],
            dst_ip: [198, 18, 0, 2],
            ttl: 64,
            tos: 0,
            dont_fragment: true,
        };
        v.add_tunnel(p(2), TunnelPort::new(p(1), OuterHeader::V4(outer), key, 0))
            .unwrap();
        v
    };
    let frame = |i: usize, vlan: Option<u16>| {
        let mut f = ethernet(
            &vlan.map(|v| (0x8100, v)).into_iter().collect::<Vec<_>>(),
            0x0800,
        );
        f.extend_from_slice(&[
            0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        f.extend_from_slice(&(1000 + i as u16).to_be_bytes());
        f.extend_from_slice(&[0x13, 0x89, 0, 26, 0, 0]);
        f.resize(64 + if vlan.is_some() { 4 } else { 0 }, 0);
        f
    };
    let fixed = view(TunnelKey::Fixed(vni(4242)));
    let by_vlan = view(TunnelKey::ByVlan(
        VlanVnis::new([(10, vni(4242)), (20, vni(4243))]).unwrap(),
    ));
    let untagged: Vec<Vec<u8>> = (0..32).map(|i| frame(i, None)).collect();
    let tagged: Vec<Vec<u8>> = (0..32)
        .map(|i| frame(i, Some(if i % 2 == 0 { 10 } else { 20 })))
        .collect();
    let mut group = c.benchmark_group("tunnel");
    group.throughput(Throughput::Elements(32));
    for (name, v, frames) in [
        ("encapsulate/fixed_vni", &fixed, &untagged),
        ("encapsulate/vni_by_vlan", &by_vlan, &tagged),
    ] {
        let t = v.tunnel(p(2)).unwrap().clone();
        let burst = || MemBurst::from_frames(frames.iter().map(|f| MemFrame::new(f)));
        let mut check = (burst(), Encapsulated::default(), MemPool::default());
        encapsulate(
            &t,
            v.neighbours(),
            1518,
            &mut check.0,
            &mut check.1,
            &mut check.2,
        );
        assert_eq!(check.1.frames.len(), 32, "{name}");
        // Frames are made and freed, and the output batch's room is
        // allocated, outside the timed part.
        let output = || {
            let mut e = Encapsulated::<MemBurst>::default();
            for _ in 0..32 {
                let _ = e.frames.push(MemFrame::new(&[]));
            }
            e.frames.clear();
            e
        };
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || (burst(), output(), MemPool::default()),
                |(batch, out, pool)| encapsulate(&t, v.neighbours(), 1518, batch, out, pool),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_extract, bench_checksum, bench_tunnel);
criterion_main!(benches);
