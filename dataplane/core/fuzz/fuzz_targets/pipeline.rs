//! Arbitrary bursts through the pipeline's stages (classify, DHCP, the security
//! stage, execute, transmit) on in-memory frames, over a bridge with every
//! VLAN mode and two ports with port security and a security group: the
//! input is cut into up to 32 frames (a length byte, then the bytes; some
//! with a NIC-stripped tag). Nothing may panic, every frame must be
//! accounted for (sent, copied or dropped and counted), and nothing may be
//! left behind in a batch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use switch_core::acl::{AclRule, Direction, PortAcl, Prefix, Remote};
use switch_core::dhcp::{DhcpConfig, DhcpOptions};
use switch_core::conntrack::{ConnCache, ConnTable, Timeouts};
use switch_core::frame::mem::{MemBurst, MemFrame, MemPool};
use switch_core::frame::{Burst, Transmit};
use switch_core::mac_table::MacTable;
use switch_core::pipeline::{classify, execute, filter, serve, Classified, Outputs};
use switch_core::port::PortId;
use switch_core::view::{max_frame_len, PortView, SwitchView, DEFAULT_MTU};
use switch_core::vlan::{PortVlan, VlanMode};

#[derive(Default)]
struct Count {
    sent: usize,
    lost: u64,
}

impl Transmit<MemBurst> for Count {
    fn transmit(&mut self, _port: PortId, batch: &mut MemBurst, _bytes: u64) {
        self.sent += batch.frames().count();
        batch.clear();
    }
    fn lost(&mut self, _port: PortId, frames: u64) {
        self.lost += frames;
    }
}

fn view() -> SwitchView {
    let mut v = SwitchView::default();
    let b = v.add_bridge("br0", Arc::new(MacTable::new(64, 300)));
    let vlans = [
        PortVlan::new(None, Some(10), &[]).unwrap(),
        PortVlan::new(None, None, &[]).unwrap(),
        PortVlan::new(Some(VlanMode::NativeUntagged), Some(20), &[10, 0]).unwrap(),
        PortVlan::new(Some(VlanMode::NativeTagged), Some(30), &[10]).unwrap(),
        PortVlan::uplink(&[(3029, 10), (3030, 20)], Some(30)).unwrap(),
    ];
    for (i, vlan) in vlans.into_iter().enumerate() {
        v.add_port(PortView {
            id: PortId::new(i as u16).unwrap(),
            name: format!("p{i}"),
            bridge: b,
            vlan,
            // p0 and p2: VMs with port security, SSH in, anything out.
            acl: (i % 2 == 0 && i < 4).then(|| {
                let mut a = PortAcl {
                    port_security: true,
                    allowed_sources: vec![(
                        0xfa16_3e00_0000 | i as u64,
                        Prefix {
                            v6: false,
                            base: 0x0a00_0005 + i as u128,
                            len: 32,
                        },
                    )],
                    rules: vec![
                        AclRule {
                            direction: Direction::Egress,
                            v6: false,
                            protocol: None,
                            port_min: 0,
                            port_max: 65535,
                            remote: Remote::Any,
                        },
                        AclRule {
                            direction: Direction::Ingress,
                            v6: false,
                            protocol: Some(6),
                            port_min: 22,
                            port_max: 22,
                            remote: Remote::Any,
                        },
                    ],
                    ..PortAcl::default()
                };
                a.index_rules();
                Arc::new(a)
            }),
            // p0: served by the switch's DHCPv4 and DHCPv6 servers.
            dhcp: (i == 0).then(|| {
                Arc::new(switch_core::dhcp::DhcpServer {
                    v4: Some(DhcpConfig::new(
                    [0xfa, 0x16, 0x3e, 0, 0, 0],
                    [10, 0, 0, 5],
                    [10, 0, 0, 2],
                    [0xfa, 0x16, 0x3e, 0, 0, 2],
                    3600,
                    &DhcpOptions {
                        prefix_len: 24,
                        router: Some([10, 0, 0, 1]),
                        ..DhcpOptions::default()
                    },
                    )),
                    v6: Some(switch_core::dhcp6::Dhcp6Config::new(
                        [0xfa, 0x16, 0x3e, 0, 0, 0],
                        Some([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]),
                        [0xfa, 0x16, 0x3e, 0, 0, 2],
                        3600,
                        &[],
                        "example.test",
                    )),
                })
            }),
            max_frame: max_frame_len(DEFAULT_MTU),
        })
        .unwrap();
    }
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let v = view();
    let ct = ConnTable::new(64, Timeouts::default());
    let mut cache = ConnCache::new();
    let mut pool = MemPool {
        left: Some(usize::from(first >> 3)),
        copies: 0,
    };
    // Two bursts on different ports, so the second sees what the first learned.
    for in_port in [first % 5, (first / 5) % 5] {
        let mut frames = Vec::new();
        while frames.len() < 32 {
            let Some((&len, tail)) = rest.split_first() else {
                break;
            };
            let n = usize::from(len & 0x7f).min(tail.len());
            let (bytes, tail) = tail.split_at(n);
            rest = tail;
            frames.push(if len & 0x80 != 0 && n >= 2 {
                MemFrame::with_stripped(&bytes[2..], u16::from_be_bytes([bytes[0], bytes[1]]))
            } else {
                MemFrame::new(bytes)
            });
        }
        let n = frames.len();
        let mut rx = MemBurst::from_frames(frames);
        let mut classified = Classified::default();
        let mut out = Outputs::<MemBurst>::default();
        let mut tx = Count::default();
        let copies_before = pool.copies;
        let port = PortId::new(u16::from(in_port)).unwrap();
        classify(&v, port, &rx, &mut classified);
        serve(&v, port, &mut rx, &mut classified);
        filter(&v, &ct, &mut cache, port, &rx, &mut classified);
        assert_eq!(classified.actions().len(), n);
        let counts = execute(&v, &classified, &mut rx, &mut out, &mut pool, &mut tx);
        out.flush(&mut tx);
        assert!(rx.is_empty() && out.pending().is_empty());
        assert_eq!(counts.rx_packets as usize, n);
        // Each frame was sent (once) or dropped and counted; flood copies
        // add frames (a copy that could not be tagged is discarded).
        let kept = n - counts.rx_dropped as usize;
        let copies = pool.copies - copies_before;
        assert!(
            tx.sent >= kept && tx.sent <= kept + copies,
            "{} {kept} {copies}",
            tx.sent
        );
    }
});
