//! Micro-benchmarks of connection tracking: `ct` on packets of established
//! UDP connections, 1,024 at a time, in tables holding 1,000 and 1,000,000
//! connections (the two shapes: a table that fits in cache and one
//! that does not), and the TCP window check alone.
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dataplane::conntrack::tcp::{flags, Dir, Segment, TcpConn};
use dataplane::conntrack::{ConnKey, ConnTable, CtPacket, CtSlot, Timeouts, L4};

fn key(i: u32) -> ConnKey {
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src[..4].copy_from_slice(&(0x0a00_0000 | i).to_be_bytes());
    dst[..4].copy_from_slice(&[10, 255, 0, 1]);
    ConnKey {
        zone: 2,
        v6: false,
        proto: 17,
        src,
        dst,
        sport: 1024 + (i % 50_000) as u16,
        dport: 53,
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("conntrack");
    g.throughput(Throughput::Elements(1024));
    for &n in &[1_000u32, 1_000_000] {
        let t = ConnTable::new(n as usize, Timeouts::default());
        for i in 0..n {
            let p = CtPacket {
                key: key(i),
                l4: L4::Udp,
            };
            t.commit(&p).unwrap();
            t.track(&CtPacket {
                key: key(i).reverse(),
                l4: L4::Udp,
            });
        }
        eprintln!(
            "conntrack: {n} connections, {} bytes per connection",
            t.bytes_per_connection()
        );
        // Spread over the table: a different connection each packet.
        let step = (n / 1024).max(1);
        g.bench_function(
            format!("track_established_{n}_connections_bursts_of_32"),
            |b| {
                b.iter(|| {
                    let mut est = 0u32;
                    for burst in 0..32u32 {
                        let pkts: [CtPacket; 32] = std::array::from_fn(|i| CtPacket {
                            key: key(((burst * 32 + i as u32) * step) % n),
                            l4: L4::Udp,
                        });
                        let slots: [CtSlot; 32] = std::array::from_fn(|i| t.slot(&pkts[i].key));
                        slots.iter().for_each(|&s| t.prefetch(s));
                        for (s, p) in slots.iter().zip(&pkts) {
                            let st = t.track_at(*s, black_box(p));
                            est += u32::from(st.has(dataplane::conntrack::CtState::EST));
                        }
                    }
                    est
                })
            },
        );
        g.bench_function(format!("track_established_{n}_connections"), |b| {
            b.iter(|| {
                let mut est = 0u32;
                for i in 0..1024u32 {
                    let k = key((i * step) % n);
                    let s = t.track(black_box(&CtPacket {
                        key: k,
                        l4: L4::Udp,
                    }));
                    est += u32::from(s.has(dataplane::conntrack::CtState::EST));
                }
                est
            })
        });
    }
    let syn = Segment {
        flags: flags::SYN,
        seq: 1,
        ack: 0,
        window: 65535,
        wscale: None,
        len: 0,
    };
    let mut conn = TcpConn::new(&syn).unwrap();
    conn.update(
        Dir::Reply,
        &Segment {
            flags: flags::SYN | flags::ACK,
            seq: 100,
            ack: 2,
            ..syn
        },
    );
    conn.update(
        Dir::Original,
        &Segment {
            flags: flags::ACK,
            seq: 2,
            ack: 101,
            ..syn
        },
    );
    g.bench_function("tcp_window_check_1024_segments", |b| {
        b.iter(|| {
            let mut c = conn.clone();
            let mut seq = 2u32;
            for _ in 0..1024 {
                let s = Segment {
                    flags: flags::ACK,
                    seq,
                    ack: 101,
                    len: 64,
                    ..syn
                };
                black_box(c.update(Dir::Original, black_box(&s)));
                seq = seq.wrapping_add(64);
                c.update(
                    Dir::Reply,
                    &Segment {
                        flags: flags::ACK,
                        seq: 101,
                        ack: seq,
                        ..syn
                    },
                );
            }
            c
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
