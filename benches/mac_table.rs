//! Micro-benchmarks of the MAC-learning table: hit lookups one at a time
//! and a burst at a time (keys hashed and buckets prefetched first, as the
//! pipeline does), steady-state learning (no write), and lookups while the
//! table is full.
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dataplane::mac_table::{MacKey, MacTable};
use dataplane::port::PortId;

fn mac(i: u64) -> u64 {
    0xfa16_3e00_0000 | i
}

fn port(i: u64) -> PortId {
    PortId::new((i % 8) as u16).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("mac_table");
    g.throughput(Throughput::Elements(1024));
    for &entries in &[1_024u64, 65_536] {
        let t = MacTable::new(65_536, 300);
        for i in 0..entries {
            t.learn(10, mac(i), port(i));
        }
        let stride = entries / 1024;
        g.bench_function(format!("lookup_hit_{entries}_entries"), |b| {
            b.iter(|| {
                let mut acc = 0u32;
                for i in 0..1024u64 {
                    acc += t
                        .lookup(10, black_box(mac(i * stride)))
                        .map_or(0, |p| p.get() as u32);
                }
                acc
            })
        });
        g.bench_function(format!("lookup_hit_{entries}_entries_bursts_of_32"), |b| {
            b.iter(|| {
                let mut acc = 0u32;
                for burst in 0..32u64 {
                    let keys: [MacKey; 32] = std::array::from_fn(|j| {
                        t.key(10, black_box(mac((burst * 32 + j as u64) * stride)))
                    });
                    let fdb = t.for_burst();
                    for &k in &keys {
                        fdb.prefetch(k);
                    }
                    for &k in &keys {
                        acc += fdb.lookup(k).map_or(0, |p| p.get() as u32);
                    }
                }
                acc
            })
        });
        g.bench_function(format!("learn_known_{entries}_entries"), |b| {
            b.iter(|| {
                for i in 0..1024u64 {
                    black_box(t.learn(10, black_box(mac(i * stride)), port(i * stride)));
                }
            })
        });
    }
    let t = MacTable::new(4096, 300);
    let one = PortId::new(1).unwrap();
    g.bench_function("learn_new_with_eviction_full_table", |b| {
        let mut next = 0u64;
        b.iter(|| {
            for _ in 0..1024 {
                next += 1;
                black_box(t.learn(1, mac(next), one));
            }
        })
    });
    g.bench_function("lookup_miss", |b| {
        b.iter(|| {
            let mut n = 0;
            for i in 0..1024u64 {
                n += t.lookup(2, black_box(mac(i))).is_none() as u32;
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
