//! One burst of 32 frames through the worker pipeline, for real: the EAL,
//! mbufs from a DPDK mempool, `net_null` ports that free what they transmit.
//! Measures switching (parse, VLAN rules, learning, lookup, tagging,
//! batching) plus the tx burst; mbuf allocation and filling are set-up, not
//! timed. Throughput is per frame. Shapes: one flow, 32 sources, 4096 MAC
//! pairs (every frame its own pair), broadcast.
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dataplane::mac_table::MacTable;
use dataplane::pipeline::{classify, Classified};
use dataplane::port::PortId;
use dataplane::snapshot::{Snapshot, SnapshotCell};
use dataplane::stats::WorkerStats;
use dataplane::view::{max_frame_len, PortView, SwitchView, DEFAULT_MTU};
use dataplane::vlan::PortVlan;
use dataplane::worker::Worker;
use dpdk_sys::eal::Eal;
use dpdk_sys::ethdev::{EthPort, PortSetup};
use dpdk_sys::mbuf::MbufBatch;
use dpdk_sys::mempool::Mempool;
use dpdk_sys::BURST;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

const A: u64 = 0xfa16_3e00_000a;
const B: u64 = 0xfa16_3e00_000b;

fn frame(dst: u64, src: u64, vlan: Option<u16>) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst.to_be_bytes()[2..]);
    f.extend_from_slice(&src.to_be_bytes()[2..]);
    if let Some(v) = vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&[
        0x08, 0x00, 0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 1, 1,
    ]);
    f.extend_from_slice(&[0x04, 0x00, 0x13, 0x89, 0, 26, 0, 0]);
    f.resize(60, 0);
    f
}

fn bench(c: &mut Criterion) {
    let eal = Arc::new(
        Eal::init(&[
            "-l0",
            "--no-pci",
            "--no-huge",
            "-m",
            "256",
            "--no-shconf",
            "--file-prefix",
            "fsw-bench-pipeline",
        ])
        .expect("EAL"),
    );
    let pool = Arc::new(Mempool::new_pktmbuf(&eal, "bench", 8191, 256, 2176, -1).unwrap());
    let setup = PortSetup {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: 512,
        tx_desc: 512,
        mtu: 1500,
        offloads: false,
    };
    let ports: Vec<EthPort> = (0..3)
        .map(|i| {
            let id = PortId::new(i as u16).unwrap();
            EthPort::open(id, &format!("net_null{i}"), setup, &pool).unwrap()
        })
        .collect();
    let fdb = Arc::new(MacTable::new(65_536, 300));
    let vlans = [
        PortVlan::new(None, Some(10), &[]).unwrap(), // access 10: the input
        PortVlan::new(None, None, &[10]).unwrap(),   // trunk: B lives here
        PortVlan::new(None, Some(10), &[]).unwrap(), // access 10
    ];
    let mut view = SwitchView::default();
    let br = view.add_bridge("br0", Arc::clone(&fdb));
    for (i, p) in ports.iter().enumerate() {
        view.add_port(PortView {
            id: p.port_id(),
            name: format!("p{i}"),
            bridge: br,
            vlan: vlans[i].clone(),
            acl: None,
            dhcp: None,
            max_frame: max_frame_len(DEFAULT_MTU),
        })
        .unwrap();
    }
    let mut snap = Snapshot::new(1, view, vec![Vec::new()]);
    for p in &ports {
        snap.set_queues(p.port_id(), Arc::clone(p.queues()));
    }
    let (in_port, b_port) = (ports[0].port_id(), ports[1].port_id());
    let snap = Arc::new(snap);
    let worker = Worker {
        index: 0,
        cell: Arc::new(SnapshotCell::new(Snapshot::empty(1), 1)),
        stats: Arc::new(WorkerStats::new(0)),
        pool: Arc::clone(&pool),
        stop: Arc::new(AtomicBool::new(false)),
    };
    let mut state = worker.new_state();
    worker.adopt(&snap, &mut state);

    let burst = |frames: &[Vec<u8>]| {
        let mut b = MbufBatch::new();
        assert!(b.alloc_bulk_from(&pool, BURST));
        for i in 0..BURST {
            let m = b.get_mut(i).unwrap();
            assert!(m.copy_from(&frames[i % frames.len()]));
        }
        b
    };
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST as u64));

    fdb.learn(10, B, b_port);
    let one_flow = vec![frame(B, A, None)];
    g.bench_function("unicast_one_flow_push_vlan", |b| {
        b.iter_batched_ref(
            || burst(&one_flow),
            |rx| worker.process_burst(&snap, in_port, rx, &mut state),
            BatchSize::NumIterations(64),
        )
    });
    // 32 sources and 2 destinations interleaved: every frame parsed, learned, looked up.
    let srcs: Vec<u64> = (0..32).map(|i| 0xfa16_3e01_0000 + i).collect();
    let many: Vec<Vec<u8>> = srcs
        .iter()
        .enumerate()
        .map(|(i, &s)| frame(if i % 2 == 0 { B } else { A }, s, None))
        .collect();
    fdb.learn(10, A, ports[2].port_id());
    g.bench_function("unicast_32_sources_2_destinations", |b| {
        b.iter_batched_ref(
            || burst(&many),
            |rx| worker.process_burst(&snap, in_port, rx, &mut state),
            BatchSize::NumIterations(64),
        )
    });
    // 4096 MAC pairs (8192 learned MACs), every frame of a burst a pair of
    // its own, as with many VMs: the MAC table's buckets are spread over
    // megabytes and no decision can be reused within a burst.
    let pairs = 4096u64;
    let many_macs: Vec<Vec<u8>> = (0..pairs)
        .map(|k| frame(0xfa16_3e0b_0000 + k, 0xfa16_3e0a_0000 + k, None))
        .collect();
    for k in 0..pairs {
        let at = if k % 2 == 0 {
            b_port
        } else {
            ports[2].port_id()
        };
        fdb.learn(10, 0xfa16_3e0b_0000 + k, at);
    }
    let next = std::cell::Cell::new(0usize);
    g.bench_function("unicast_4096_mac_pairs", |b| {
        b.iter_batched_ref(
            || {
                let at = next.get();
                next.set((at + BURST) % many_macs.len());
                burst(&many_macs[at..at + BURST])
            },
            |rx| worker.process_burst(&snap, in_port, rx, &mut state),
            BatchSize::NumIterations(64),
        )
    });
    let bcast = vec![frame(0xffff_ffff_ffff, A, None)];
    g.bench_function("broadcast_flood_2_ports", |b| {
        b.iter_batched_ref(
            || burst(&bcast),
            |rx| worker.process_burst(&snap, in_port, rx, &mut state),
            BatchSize::NumIterations(64),
        )
    });
    // Stage 1 alone on bursts kept in mbufs, every frame a pair of its
    // own: what parsing, learning, looking up and resolving cost without
    // the transmit. Over 8 bursts (256 pairs) everything stays in the
    // caches: the instructions; over all 128 (4096 pairs) the frames and
    // buckets are spread as in the l2-normal --macs 4096 benchmark.
    let held: Vec<MbufBatch> = many_macs.chunks(BURST).map(burst).collect();
    let mut classified = Classified::default();
    for (name, bursts) in [
        ("classify_256_mac_pairs", &held[..8]),
        ("classify_4096_mac_pairs", &held[..]),
    ] {
        let at = std::cell::Cell::new(0usize);
        g.bench_function(name, |b| {
            b.iter(|| {
                let k = at.get();
                at.set((k + 1) % bursts.len());
                classify(&snap.view, in_port, &bursts[k], &mut classified);
                classified.actions().len()
            })
        });
    }
    drop(held);
    g.finish();
    // Release in dependency order: queue claims, ports, mbufs' pool, EAL.
    drop(state);
    drop(worker);
    drop(snap);
    for p in ports {
        let _ = p.close();
    }
    drop(pool);
    drop(eal);
}

criterion_group!(benches, bench);
criterion_main!(benches);
