//! `fsw-tsogen`: a guest that streams TCP as a Linux guest with offloads
//! does, for the `vm-tso` benchmark and the offload tests.
//!
//! It is the frontend of one vhost-user socket (DPDK's `net_virtio_user`
//! in server mode, as `dpdk-testpmd` VMs are here) and sends one TCP/IPv4
//! stream, as fast as the ring takes it:
//! - when the switch offered checksum offload and TSO (and the port took
//!   them), segments of `--segment` payload bytes (64 KB by default) with a
//!   partial checksum and an MSS of `--mss`, as a guest kernel hands its
//!   virtio-net device TSO segments;
//! - otherwise MSS-sized frames with full checksums, as the same kernel
//!   does when its device offers no offloads.
//!
//! The stream is a ring of `--ring` segments with consecutive sequence
//! numbers, sent over and over (frames are copied into fresh buffers, as a
//! guest's kernel copies into its virtqueue; what the virtqueue has no room
//! for is kept and sent first next time, never copied again). At the end it prints one JSON
//! line: whether offloads were used, segments, frames and payload bytes
//! sent, and the rate.
use dpdk_sys::eal::Eal;
use dpdk_sys::ethdev::{EthPort, PortSetup};
use dpdk_sys::mbuf::{Mbuf, MbufBatch};
use dpdk_sys::mempool::Mempool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switch_core::offload::{self, Offload};
use switch_core::port::PortId;
use switch_core::wire::{fold, sum16};

/// Data room of the generator's buffers: a 64 KB segment in five.
const DATA_ROOM: u16 = 16 * 1024 + 128;

struct Args {
    socket: String,
    mac: [u8; 6],
    dst_mac: [u8; 6],
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    segment: usize,
    mss: u16,
    ring: usize,
    seconds: f64,
    count: u64,
    file_prefix: String,
    core: usize,
    queue_size: u16,
    no_offloads: bool,
}

fn usage(why: &str) -> ! {
    eprintln!(
        "fsw-tsogen: {why}\n\
         usage: fsw-tsogen --socket PATH --mac MAC --dst-mac MAC [--src-ip A.B.C.D] \
         [--dst-ip A.B.C.D] [--segment BYTES (65160)] [--mss BYTES (1448)] [--ring N (32)] \
         [--seconds S (10)] [--count N (what it sends: segments, or frames without offloads; 0: no limit)] [--file-prefix P] [--core N (0)] \
         [--queue-size N (1024)] [--no-offloads]"
    );
    std::process::exit(2)
}

fn parse_mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .split(':')
        .filter_map(|b| u8::from_str_radix(b, 16).ok())
        .collect();
    v.try_into()
        .unwrap_or_else(|_| usage(&format!("{s:?} is not a MAC address")))
}

fn parse_ip(s: &str) -> [u8; 4] {
    s.parse::<std::net::Ipv4Addr>()
        .map(|a| a.octets())
        .unwrap_or_else(|_| usage(&format!("{s:?} is not an IPv4 address")))
}

fn parse_args() -> Args {
    let mut a = Args {
        socket: String::new(),
        mac: [0xfa, 0x16, 0x3e, 0, 0, 1],
        dst_mac: [0xfa, 0x16, 0x3e, 0, 0, 2],
        src_ip: [10, 0, 0, 1],
        dst_ip: [10, 0, 0, 2],
        segment: 65_160,
        mss: 1448,
        ring: 32,
        seconds: 10.0,
        count: 0,
        file_prefix: format!("fsw-tsogen-{}", std::process::id()),
        core: 0,
        queue_size: 1024,
        no_offloads: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--no-offloads" {
            a.no_offloads = true;
            continue;
        }
        let v = it
            .next()
            .unwrap_or_else(|| usage(&format!("{k} needs a value")));
        let num = |v: &str| -> u64 {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{k}: {v:?} is not a number")))
        };
        match k.as_str() {
            "--socket" => a.socket = v,
            "--mac" => a.mac = parse_mac(&v),
            "--dst-mac" => a.dst_mac = parse_mac(&v),
            "--src-ip" => a.src_ip = parse_ip(&v),
            "--dst-ip" => a.dst_ip = parse_ip(&v),
            "--segment" => a.segment = num(&v) as usize,
            "--mss" => a.mss = num(&v) as u16,
            "--ring" => a.ring = num(&v).max(1) as usize,
            "--seconds" => {
                a.seconds = v
                    .parse()
                    .unwrap_or_else(|_| usage(&format!("--seconds: {v:?}")))
            }
            "--count" => a.count = num(&v),
            "--file-prefix" => a.file_prefix = v,
            "--core" => a.core = num(&v) as usize,
            "--queue-size" => a.queue_size = num(&v) as u16,
            _ => usage(&format!("unknown option {k}")),
        }
    }
    if a.socket.is_empty() {
        usage("--socket is required");
    }
    if a.mss < 64 || a.segment == 0 || a.segment + 54 > 65_535 {
        usage("--mss must be at least 64, --segment 1 to 65,481 bytes");
    }
    a
}

/// One TCP/IPv4 segment of `payload` bytes at `seq`: a whole frame whose
/// TCP checksum field holds the pseudo-header sum (Linux's
/// CHECKSUM_PARTIAL, what a guest hands its device with offloads).
fn tcp_segment(a: &Args, seq: u32, payload: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(54 + payload);
    f.extend_from_slice(&a.dst_mac);
    f.extend_from_slice(&a.mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 20 + payload) as u16;
    f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0]);
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&a.src_ip);
    f.extend_from_slice(&a.dst_ip);
    let ip_csum = !fold(sum16(&f[14..34]));
    f[24..26].copy_from_slice(&ip_csum.to_be_bytes());
    // Ports 40000 -> 5201, ACK|PSH, window 64 KB.
    f.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51]);
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend((0..payload).map(|i| (i % 251) as u8));
    let pseudo = sum16(&a.src_ip) + sum16(&a.dst_ip) + 6 + u64::from(total - 20);
    f[50..52].copy_from_slice(&fold(pseudo).to_be_bytes());
    f
}

/// `bytes` in fresh buffers of `pool` (chained past the first); `None`
/// when the pool is empty.
fn frame_of(pool: &Mempool, bytes: &[u8]) -> Option<Mbuf> {
    let mut chunks = bytes.chunks(usize::from(DATA_ROOM - 128));
    let mut head = Mbuf::alloc(pool)?;
    if !head.copy_from(chunks.next()?) {
        return None;
    }
    for c in chunks {
        let mut s = Mbuf::alloc(pool)?;
        if !s.copy_from(c) || !head.append_segment(s) {
            return None;
        }
    }
    Some(head)
}

fn main() {
    let a = parse_args();
    let eal = Arc::new(
        Eal::init(&[
            "--no-pci",
            "--in-memory",
            "--single-file-segments",
            "--iova-mode",
            "va",
            "-m",
            "512",
            "--file-prefix",
            &a.file_prefix,
            "--lcores",
            &format!("0@{}", a.core),
            "--log-level",
            "*:warning",
        ])
        .unwrap_or_else(|e| {
            eprintln!("fsw-tsogen: {e}");
            std::process::exit(1)
        }),
    );
    let pool = Arc::new(
        Mempool::new_pktmbuf(&eal, "tsogen", 16_383, 256, DATA_ROOM, -1).unwrap_or_else(|e| {
            eprintln!("fsw-tsogen: {e}");
            std::process::exit(1)
        }),
    );
    let mac = a
        .mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let devargs = format!(
        "net_virtio_user0,path={},server=1,queue_size={},mac={mac}",
        a.socket, a.queue_size
    );
    let setup = PortSetup {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: a.queue_size,
        tx_desc: a.queue_size,
        mtu: 1500,
        offloads: !a.no_offloads,
    };
    // Blocks until the switch connects to the socket.
    let port = EthPort::open(PortId::new(0).expect("port 0"), &devargs, setup, &pool)
        .unwrap_or_else(|e| {
            eprintln!("fsw-tsogen: {devargs}: {e}");
            std::process::exit(1)
        });
    let tso = port.queues().takes_offloads();
    eprintln!(
        "fsw-tsogen: connected on {}; offloads {}",
        a.socket,
        if tso {
            "on: TSO segments"
        } else {
            "off: MSS-sized frames"
        }
    );
    // The ring: one stream, consecutive sequence numbers.
    let mut templates: Vec<(Vec<u8>, Offload)> = Vec::new();
    let mut seq = 1u32;
    for _ in 0..a.ring {
        let seg = tcp_segment(&a, seq, a.segment);
        seq = seq.wrapping_add(a.segment as u32);
        if tso {
            let o = Offload {
                partial_checksum: true,
                tcp_mss: a.mss,
            };
            templates.push((seg, o));
        } else {
            offload::segment_tcp(&seg, a.mss, |h, p, _| {
                let mut f = h.to_vec();
                f.extend_from_slice(p);
                templates.push((f, Offload::NONE));
                true
            });
        }
    }
    let per_template: Vec<u64> = templates
        .iter()
        .map(|(f, o)| {
            if o.tcp_mss > 0 {
                (f.len() - 54).div_ceil(usize::from(o.tcp_mss)) as u64
            } else {
                1
            }
        })
        .collect();
    let mut rxq = port.queues().claim_rx(0).expect("rx queue 0");
    let mut txq = port.queues().claim_tx(0).expect("tx queue 0");
    let (mut segments, mut frames, mut payload) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(a.seconds);
    let mut next = 0usize;
    let mut batch = MbufBatch::new();
    let mut rx = MbufBatch::new();
    // The template each frame of the batch was made from.
    let mut made_from = [0usize; dpdk_sys::BURST];
    'send: while Instant::now() < deadline {
        // Nothing is expected back; what comes is dropped.
        rxq.rx_burst(&mut rx);
        rx.clear();
        // Fill the batch up (frames the ring did not take stay in it, in
        // order, and go first next time).
        while !batch.is_full() {
            if a.count > 0 && segments + batch.len() as u64 >= a.count {
                break;
            }
            let (bytes, o) = &templates[next];
            let Some(mut m) = frame_of(&pool, bytes) else {
                break;
            };
            m.set_offload(*o);
            made_from[batch.len()] = next;
            if batch.push(m).is_err() {
                break;
            }
            next = (next + 1) % templates.len();
        }
        txq.prepare_offloads(&mut batch);
        let sent = txq.tx_burst_keep(&mut batch);
        for &t in &made_from[..sent] {
            segments += 1;
            frames += per_template[t];
            payload += (templates[t].0.len() - 54) as u64;
        }
        made_from.copy_within(sent.., 0);
        if a.count > 0 && segments >= a.count {
            break 'send;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    // What is still in the ring goes to the switch before the device does
    // (a guest does not vanish the moment it has sent).
    std::thread::sleep(Duration::from_millis(500));
    drop((rxq, txq));
    println!(
        "{{\"offloads\": {tso}, \"segments\": {segments}, \"frames\": {frames}, \
         \"payload_bytes\": {payload}, \"seconds\": {secs:.3}, \"gbps\": {:.3}}}",
        payload as f64 * 8.0 / secs / 1e9
    );
    if let Err((_, e)) = port.close() {
        eprintln!("fsw-tsogen: closing: {e}");
    }
}
