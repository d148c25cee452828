//! Micro-benchmark of the security stage (`classify` then `filter`) on
//! the `neutron` benchmark's kind of traffic, without DPDK: a VM port with
//! port security and the group "egress any, ingress TCP 22 and ICMP", an
//! uplink, and 1,024 established UDP connections whose packets alternate
//! direction burst by burst, in a tracker sized for 1,000,000 (the
//! default). Per iteration 32 bursts of 32 frames: the figure per element
//! is the stage's cost per packet.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::acl::{AclRule, Direction, PortAcl, Prefix, Remote};
use dataplane::conntrack::{ConnCache, ConnTable, Timeouts};
use dataplane::frame::mem::{MemBurst, MemFrame};
use dataplane::mac_table::MacTable;
use dataplane::pipeline::{classify, filter, Classified};
use dataplane::port::PortId;
use dataplane::view::{max_frame_len, PortView, SwitchView, DEFAULT_MTU};
use dataplane::vlan::PortVlan;
use dataplane::wire::EthernetAddress;
use std::sync::Arc;

const VM_MAC: u64 = 0xfa16_3e11_0001;
const GW_MAC: u64 = 0xfa16_3e22_0001;
const VM_IP: u32 = 0x0a00_000a;
const SERVER_IP: u32 = 0xac10_0001;

fn mac(m: u64) -> [u8; 6] {
    EthernetAddress::from_u64(m).0
}

fn udp_frame(dst: u64, src: u64, sip: u32, dip: u32, sport: u16, dport: u16) -> Vec<u8> {
    let mut f = mac(dst).to_vec();
    f.extend_from_slice(&mac(src));
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&sip.to_be_bytes());
    f.extend_from_slice(&dip.to_be_bytes());
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0, 26, 0, 0]);
    f.resize(60, 0);
    f
}

fn rule(direction: Direction, protocol: Option<u8>, ports: (u16, u16)) -> AclRule {
    AclRule {
        direction,
        v6: false,
        protocol,
        port_min: ports.0,
        port_max: ports.1,
        remote: Remote::Any,
    }
}

/// p0: the VM (port security, the group), p1: the uplink; access VLAN 1.
fn view() -> SwitchView {
    let mut acl = PortAcl {
        port_security: true,
        allowed_sources: vec![(
            VM_MAC,
            Prefix {
                v6: false,
                base: u128::from(VM_IP),
                len: 32,
            },
        )],
        rules: vec![
            rule(Direction::Egress, None, (0, 65535)),
            rule(Direction::Ingress, Some(6), (22, 22)),
            rule(Direction::Ingress, Some(1), (255, 255)),
        ],
        ..PortAcl::default()
    };
    acl.index_rules();
    let mut v = SwitchView::default();
    let b = v.add_bridge("br-int", Arc::new(MacTable::new(65536, 300)));
    for (i, acl) in [Some(Arc::new(acl)), None].into_iter().enumerate() {
        v.add_port(PortView {
            id: PortId::new(i as u16).unwrap(),
            name: format!("p{i}"),
            bridge: b,
            vlan: PortVlan::new(None, Some(1), &[]).unwrap(),
            acl,
            dhcp: None,
            max_frame: max_frame_len(DEFAULT_MTU),
        })
        .unwrap();
    }
    v
}

fn bench(c: &mut Criterion) {
    let v = view();
    let ct = ConnTable::new(1_000_000, Timeouts::default());
    let mut cache = ConnCache::new();
    let (vm, uplink) = (PortId::new(0).unwrap(), PortId::new(1).unwrap());
    // 32 bursts each way: burst k holds connections 32k .. 32k+31.
    let burst = |k: u16, reply: bool| {
        MemBurst::from_frames((0..32).map(|i| {
            let sport = 1024 + k * 32 + i;
            MemFrame::new(&if reply {
                udp_frame(VM_MAC, GW_MAC, SERVER_IP, VM_IP, 5001, sport)
            } else {
                udp_frame(GW_MAC, VM_MAC, VM_IP, SERVER_IP, sport, 5001)
            })
        }))
    };
    let bursts: Vec<(PortId, MemBurst)> = (0..32)
        .flat_map(|k| [(vm, burst(k, false)), (uplink, burst(k, true))])
        .collect();
    let mut classified = Classified::default();
    // Learn both MACs, commit the connections, see the replies.
    for _ in 0..2 {
        for (port, rx) in &bursts {
            classify(&v, *port, rx, &mut classified);
            filter(&v, &ct, &mut cache, *port, rx, &mut classified);
        }
    }
    assert_eq!(ct.len(), 1024);
    let mut g = c.benchmark_group("security");
    g.throughput(Throughput::Elements(bursts.len() as u64 * 32));
    g.bench_function("neutron_udp_1024_connections_table_1m", |b| {
        b.iter(|| {
            for (port, rx) in &bursts {
                classify(&v, *port, rx, &mut classified);
                let counts = filter(&v, &ct, &mut cache, *port, rx, &mut classified);
                assert_eq!(counts.spoofed, [0; 8]);
            }
        })
    });
    // What classify alone costs on the same bursts: the rest is the stage.
    g.bench_function("neutron_udp_classify_only", |b| {
        b.iter(|| {
            for (port, rx) in &bursts {
                classify(&v, *port, rx, &mut classified);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
