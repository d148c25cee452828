//! Micro-benchmarks of the flow classifier (tuple space search) without
//! caches, the baseline issue 15's caches and staged lookup must beat:
//! 1, 100, 10,000 and 100,000 rules of a realistic mix (ACL-like TCP/UDP
//! 5-tuple rules with source and destination prefixes of a few lengths,
//! MAC rules, a default), looked up by 1,024 packets of distinct flows.
//! Prints the subtable count of each rule set (the lookup's work grows
//! with it, not with the number of rules). The same lookups through a warm
//! exact-match cache too.
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dataplane::flow_key::FlowKey;
use dataplane::wire::EthernetAddress;
use switch_core::flow_table::classifier::{Classifier, FlowCache};
use switch_core::flow_table::{Action, Flow, Masked, Match, PortRef, Registers};

/// A small deterministic generator (xorshift), so every run has the same
/// rules and packets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn prefix(len: u32) -> [u8; 4] {
    if len == 0 {
        [0; 4]
    } else {
        (u32::MAX << (32 - len)).to_be_bytes()
    }
}

/// `n` rules: 90% ACL-like (TCP or UDP, source /16 or /24, destination /24
/// or /32, destination port exact or any), 10% MAC rules, and the default.
fn rules(n: usize, rng: &mut Rng) -> Vec<Flow> {
    let mut out = Vec::with_capacity(n + 1);
    for i in 0..n.saturating_sub(1) {
        let r = rng.next();
        let m = if i % 10 == 9 {
            Match {
                dl_src: Some(Masked {
                    value: EthernetAddress([0xfa, 0x16, 0x3e, 0, (r >> 8) as u8, r as u8]),
                    mask: EthernetAddress([0xff; 6]),
                }),
                ..Match::default()
            }
        } else {
            let (sl, dl) = ([16, 24][(r & 1) as usize], [24, 32][(r >> 1 & 1) as usize]);
            let src = ((r >> 8) as u32 | 0x0a00_0000) & u32::from_be_bytes(prefix(sl));
            let dst = ((r >> 32) as u32 | 0xac10_0000) & u32::from_be_bytes(prefix(dl));
            Match {
                dl_type: Some(0x0800),
                nw_proto: Some(if r >> 2 & 1 == 0 { 6 } else { 17 }),
                nw_src: Some(Masked {
                    value: src.to_be_bytes(),
                    mask: prefix(sl),
                }),
                nw_dst: Some(Masked {
                    value: dst.to_be_bytes(),
                    mask: prefix(dl),
                }),
                tp_dst: (r >> 3 & 1 == 0).then_some(Masked {
                    value: (r >> 48) as u16 % 1024,
                    mask: 0xffff,
                }),
                ..Match::default()
            }
        };
        out.push(Flow {
            priority: 100 + (r % 1000) as u16,
            m,
            actions: vec![Action::Output(PortRef::Number(2))],
            ..Flow::default()
        });
    }
    out.push(Flow::default_normal());
    out
}

/// `n` packets of distinct flows, TCP and UDP within the rules' ranges.
fn packets(n: usize, rng: &mut Rng) -> Vec<FlowKey> {
    (0..n)
        .map(|_| {
            let r = rng.next();
            let mut k = FlowKey {
                dl_src: EthernetAddress([0xfa, 0x16, 0x3e, 0, (r >> 8) as u8, r as u8]),
                dl_dst: EthernetAddress([0xfa, 0x16, 0x3e, 0, 0, 1]),
                dl_type: 0x0800,
                ip_version: 4,
                nw_proto: if r & 1 == 0 { 6 } else { 17 },
                tp_src: (r >> 16) as u16,
                tp_dst: (r >> 48) as u16 % 1024,
                ..FlowKey::default()
            };
            k.nw_src[..4].copy_from_slice(&(((r >> 8) as u32) | 0x0a00_0000).to_be_bytes());
            k.nw_dst[..4].copy_from_slice(&(((r >> 32) as u32) | 0xac10_0000).to_be_bytes());
            k
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("classifier");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let pkts = packets(1024, &mut rng);
    g.throughput(Throughput::Elements(pkts.len() as u64));
    for &n in &[1usize, 100, 10_000, 100_000] {
        let flows = rules(n, &mut rng);
        let cls = Classifier::new(&flows);
        eprintln!("classifier: {n} rules in {} subtables", cls.subtables(0));
        g.bench_function(format!("lookup_{n}_rules_1024_flows"), |b| {
            b.iter(|| {
                let mut acc = 0usize;
                for k in &pkts {
                    acc += cls
                        .lookup(0, 1, black_box(k), &Registers::default())
                        .unwrap_or(0);
                }
                acc
            })
        });
        // The same packets again and again: every lookup an exact-match hit.
        let mut cache = FlowCache::default();
        g.bench_function(format!("lookup_cached_{n}_rules_1024_flows"), |b| {
            b.iter(|| {
                let mut acc = 0usize;
                for k in &pkts {
                    acc += cls
                        .lookup_cached(&mut cache, 0, 1, black_box(k), &Registers::default())
                        .unwrap_or(0);
                }
                acc
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
