//! Stage 1 on the `l2-normal --macs N` traffic shape, in memory, for
//! counting its instructions: `valgrind --tool=cachegrind --cache-sim=no
//! target/release/examples/classify_count 4096 200` and divide `I refs` by
//! the frames it prints. Two trunk ports; port 0 receives A_k -> B_k and
//! port 1 B_k -> A_k for k = i mod N, in bursts of 32 that alternate between
//! the ports as the PMD's polls do.
use std::sync::Arc;
use switch_core::frame::mem::{MemBurst, MemFrame};
use switch_core::frame::{Burst, BURST};
use switch_core::mac_table::MacTable;
use switch_core::pipeline::{classify, Classified};
use switch_core::port::PortId;
use switch_core::view::{max_frame_len, PortView, SwitchView, DEFAULT_MTU};
use switch_core::vlan::PortVlan;

fn frame(dst: u64, src: u64) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&dst.to_be_bytes()[2..]);
    f.extend_from_slice(&src.to_be_bytes()[2..]);
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 46]);
    f.resize(60, 0);
    f
}

fn main() {
    let mut args = std::env::args().skip(1);
    let pairs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(4096);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let fdb = Arc::new(MacTable::new(65_536, 300));
    let mut view = SwitchView::default();
    let br = view.add_bridge("br0", Arc::clone(&fdb));
    let ports = [PortId::new(0).unwrap(), PortId::new(1).unwrap()];
    for (i, &id) in ports.iter().enumerate() {
        view.add_port(PortView {
            id,
            name: format!("p{i}"),
            bridge: br,
            vlan: PortVlan::new(None, None, &[]).unwrap(),
            acl: None,
            dhcp: None,
            max_frame: max_frame_len(DEFAULT_MTU),
        })
        .unwrap();
    }
    let a = |k: u64| 0xfa16_3e0a_0000 + k;
    let b = |k: u64| 0xfa16_3e0b_0000 + k;
    // Each port's bursts over one cycle of the pairs (whole bursts).
    let per_port = (pairs as usize).div_ceil(BURST) * BURST;
    let bursts = |fwd: bool| -> Vec<MemBurst> {
        (0..per_port)
            .map(|i| {
                let k = i as u64 % pairs;
                if fwd {
                    frame(b(k), a(k))
                } else {
                    frame(a(k), b(k))
                }
            })
            .collect::<Vec<_>>()
            .chunks(BURST)
            .map(|c| {
                let mut burst = MemBurst::default();
                for f in c {
                    let _ = burst.push(MemFrame::new(f));
                }
                burst
            })
            .collect()
    };
    let (rx0, rx1) = (bursts(true), bursts(false));
    let mut out = Classified::default();
    let mut outputs = 0usize;
    for _ in 0..rounds {
        for (b0, b1) in rx0.iter().zip(&rx1) {
            classify(&view, ports[0], b0, &mut out);
            outputs += out.actions().len();
            classify(&view, ports[1], b1, &mut out);
            outputs += out.actions().len();
        }
    }
    let (hits, misses) = out.take_cache_counts();
    println!(
        "{} frames classified ({pairs} MAC pairs, {rounds} rounds), {} MACs learned, \
         decision cache: {hits} hits, {misses} misses",
        outputs,
        fdb.len()
    );
}
