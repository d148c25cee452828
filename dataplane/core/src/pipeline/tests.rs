//! The stages on in-memory frames: hand-picked cases, then property tests
//! against a reference that decides and edits each frame alone with plain
//! byte operations.
use super::*;
use crate::frame::mem::{MemBurst, MemFrame, MemPool};
use crate::frame::{Burst, Frame, Transmit};
use crate::mac_table::MacTable;
use crate::port::{PortId, PortMask};
use crate::view::{max_frame_len, PortView, SwitchView, DEFAULT_MTU};
use crate::vlan::{PortVlan, VlanMode};
use crate::wire::ethernet::SwitchingHeader;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

fn p(n: u16) -> PortId {
    PortId::new(n).unwrap()
}

const A: u64 = 0xfa16_3e00_000a;
const B: u64 = 0xfa16_3e00_000b;
const C: u64 = 0xfa16_3e00_000c;
const BCAST: u64 = 0xffff_ffff_ffff;

fn mac(m: u64) -> [u8; 6] {
    let b = m.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// `dst src [tags] 0x0800 payload`, padded to `len` (at least the header).
fn frame(dst: u64, src: u64, tags: &[(u16, u16)], len: usize) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&mac(dst));
    f.extend_from_slice(&mac(src));
    for &(tpid, tci) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let mut i = 0u8;
    while f.len() < len {
        f.push(i);
        i = i.wrapping_add(1);
    }
    f
}

/// Port `id` of bridge `bridge`, access VLAN 10, the default MTU, no
/// security group or DHCP.
fn access_port(id: u16, bridge: usize) -> PortView {
    PortView {
        id: p(id),
        name: format!("p{id}"),
        bridge,
        vlan: PortVlan::new(None, Some(10), &[]).unwrap(),
        acl: None,
        dhcp: None,
        max_frame: max_frame_len(DEFAULT_MTU),
    }
}

/// One bridge: p0 access 10, p1 trunk (10, 20), p2 native-untagged 20 with
/// trunk 10 and room for 70-byte frames only, p3 access 20, p4 a trunk
/// translating external 3029 <-> 10.
fn view() -> SwitchView {
    let mut v = SwitchView::default();
    let b = v.add_bridge("br0", Arc::new(MacTable::new(4096, 300)));
    let vlans = [
        PortVlan::new(None, Some(10), &[]).unwrap(),
        PortVlan::new(None, None, &[10, 20]).unwrap(),
        PortVlan::new(Some(VlanMode::NativeUntagged), Some(20), &[10]).unwrap(),
        PortVlan::new(None, Some(20), &[]).unwrap(),
        PortVlan::uplink(&[(3029, 10)], None).unwrap(),
    ];
    for (i, vlan) in vlans.into_iter().enumerate() {
        v.add_port(PortView {
            id: p(i as u16),
            name: format!("p{i}"),
            bridge: b,
            vlan,
            acl: None,
            dhcp: None,
            max_frame: if i == 2 {
                70
            } else {
                max_frame_len(DEFAULT_MTU)
            },
        })
        .unwrap();
    }
    v
}

/// Records every transmitted frame per port, in order.
#[derive(Default)]
struct Capture {
    sent: BTreeMap<u16, Vec<Vec<u8>>>,
    calls: usize,
    bytes: u64,
    lost: u64,
}

impl Transmit<MemBurst> for Capture {
    fn transmit(&mut self, port: PortId, batch: &mut MemBurst, bytes: u64) {
        self.calls += 1;
        self.bytes += bytes;
        let v = self.sent.entry(port.get()).or_default();
        v.extend(batch.frames().map(|f| f.bytes().to_vec()));
        batch.clear();
    }
    fn lost(&mut self, _port: PortId, frames: u64) {
        self.lost += frames;
    }
}

/// All three stages on one burst, as the PMD worker runs them.
fn run(
    view: &SwitchView,
    in_port: u16,
    frames: Vec<MemFrame>,
    pool: &mut MemPool,
    cap: &mut Capture,
) -> (Vec<Action>, BurstCounts) {
    let mut rx = MemBurst::from_frames(frames);
    let mut classified = Classified::default();
    let mut out = Outputs::<MemBurst>::default();
    classify(view, p(in_port), &rx, &mut classified);
    serve(view, p(in_port), &mut rx, &mut classified);
    let counts = execute(view, &classified, &mut rx, &mut out, pool, cap);
    out.flush(cap);
    assert!(rx.is_empty(), "execute consumes the burst");
    assert!(out.pending().is_empty());
    (classified.actions().to_vec(), counts)
}

#[test]
fn the_dhcp_server_answers_its_port_and_nothing_leaves_the_switch() {
    use crate::dhcp::tests::request;
    use crate::dhcp::{DhcpConfig, DhcpOptions};
    use crate::wire::dhcpv4::{DhcpPacket, MessageType};
    let server_mac = [0xfa, 0x16, 0x3e, 0, 0, 0x99];
    let cfg = DhcpConfig::new(
        mac(A),
        [10, 0, 0, 5],
        [10, 0, 0, 2],
        server_mac,
        3600,
        &DhcpOptions {
            prefix_len: 24,
            router: Some([10, 0, 0, 1]),
            mtu: 1500,
            ..DhcpOptions::default()
        },
    );
    let mut v = SwitchView::default();
    let b = v.add_bridge("br0", Arc::new(MacTable::new(4096, 300)));
    for i in 0..3u16 {
        v.add_port(PortView {
            dhcp: (i == 0).then(|| {
                Arc::new(crate::dhcp::DhcpServer {
                    v4: Some(cfg.clone()),
                    v6: None,
                })
            }),
            ..access_port(i, b)
        })
        .unwrap();
    }
    let mut pool = MemPool::default();
    let mut cap = Capture::default();
    let discover = request(mac(A), 1, [0; 4], &[]);
    let foreign = request(mac(C), 1, [0; 4], &[]);
    let release = request(mac(A), 7, [10, 0, 0, 5], &[]);
    let plain = frame(BCAST, A, &[], 64);
    let burst = [&discover, &foreign, &plain, &release, &discover]
        .map(|f| MemFrame::new(f))
        .to_vec();
    let mut rx = MemBurst::from_frames(burst);
    let mut classified = Classified::default();
    classify(&v, p(0), &rx, &mut classified);
    let counts = serve(&v, p(0), &mut rx, &mut classified).expect("p0 has a server");
    assert_eq!(
        counts.dhcp,
        [4, 2, 0, 0, 2],
        "requests offers acks naks unanswered"
    );
    let mut out = Outputs::<MemBurst>::default();
    execute(&v, &classified, &mut rx, &mut out, &mut pool, &mut cap);
    out.flush(&mut cap);
    // Two offers back to p0; the plain broadcast floods; nothing else leaves.
    let to_p0 = &cap.sent[&0];
    assert_eq!(to_p0.len(), 2);
    for f in to_p0 {
        assert_eq!(&f[0..12], &[mac(A), server_mac].concat()[..]);
        let m = DhcpPacket::new_checked(&f[42..]).unwrap();
        assert_eq!(m.message_type(), Some(MessageType::Offer));
    }
    assert_eq!(cap.sent[&1], vec![plain.clone()]);
    assert_eq!(cap.sent[&2], vec![plain.clone()]);
    // A port without a server: its DHCP floods like any broadcast.
    let mut rx = MemBurst::from_frames([MemFrame::new(&discover)]);
    let mut classified = Classified::default();
    classify(&v, p(1), &rx, &mut classified);
    assert_eq!(serve(&v, p(1), &mut rx, &mut classified), None);
    assert!(matches!(classified.actions()[0], Action::Flood(_)));
}

/// The decision cache answers a repeated (port, header) from the second
/// burst on; a MAC that moves, and a new view of the same bridge, are
/// decided afresh, never from what was cached.
#[test]
fn decision_cache_hits_and_is_never_stale() {
    let fdb = Arc::new(MacTable::new(4096, 300));
    // p0, p1, p2 access 10 on one bridge; `p1_in` decides p1's VLAN.
    let build = |p1_vlan: u16| {
        let mut v = SwitchView::default();
        let b = v.add_bridge("br0", Arc::clone(&fdb));
        for i in 0..3u16 {
            let vlan = if i == 1 { p1_vlan } else { 10 };
            v.add_port(PortView {
                vlan: PortVlan::new(None, Some(vlan), &[]).unwrap(),
                ..access_port(i, b)
            })
            .unwrap();
        }
        v
    };
    let v = build(10);
    let mut c = Classified::default();
    let mut decide = |v: &SwitchView, from: u16, dst: u64, src: u64| {
        let rx = MemBurst::from_frames([MemFrame::new(&frame(dst, src, &[], 64))]);
        classify(v, p(from), &rx, &mut c);
        (c.actions()[0], c.take_cache_counts())
    };
    // B speaks from p1; then A -> B twice: decided (A learned anew, which
    // changes no cached decision), then from the cache.
    decide(&v, 1, A, B);
    let to_b = Action::Output(p(1), TagAction::Keep);
    assert_eq!(decide(&v, 0, B, A), (to_b, (0, 1)));
    assert_eq!(decide(&v, 0, B, A), (to_b, (1, 0)));
    // B moves to p2: A -> B follows it at once.
    decide(&v, 2, A, B);
    assert_eq!(
        decide(&v, 0, B, A),
        (Action::Output(p(2), TagAction::Keep), (0, 1))
    );
    // Back to p1, and a new view where p1 is in VLAN 20: B's entry (VLAN
    // 10, p1) is still in the table, but the new view's p1 cannot take
    // VLAN 10 frames.
    decide(&v, 1, A, B);
    assert_eq!(decide(&v, 0, B, A).0, to_b);
    assert_eq!(decide(&v, 0, B, A), (to_b, (1, 0)));
    let w = build(20);
    assert_eq!(
        decide(&w, 0, B, A),
        (Action::Drop(DropReason::NoOutput), (0, 1))
    );
    // The clock's next second: decided afresh once (learning A again).
    fdb.set_now(fdb.now() + 1);
    assert_eq!(decide(&v, 0, B, A), (to_b, (0, 1)));
    assert_eq!(decide(&v, 0, B, A), (to_b, (1, 0)));
}

#[test]
fn ports_in_every_word_of_the_port_mask_flood_learn_and_forward() {
    // One bridge whose ports sit in all four 64-bit words of a PortMask,
    // the highest number included.
    let mut v = SwitchView::default();
    let b = v.add_bridge("br0", Arc::new(MacTable::new(4096, 300)));
    let ids = [3u16, 70, 130, 255];
    for &i in &ids {
        v.add_port(access_port(i, b)).unwrap();
    }
    let (mut pool, mut cap) = (MemPool::default(), Capture::default());
    // A broadcast from 255 reaches the three others; A is learned there.
    run(
        &v,
        255,
        vec![MemFrame::new(&frame(BCAST, A, &[], 60))],
        &mut pool,
        &mut cap,
    );
    let got: Vec<u16> = cap.sent.keys().copied().collect();
    assert_eq!(got, [3, 70, 130]);
    // B from 130 to A: straight to 255; then A to B: straight to 130.
    cap = Capture::default();
    let (actions, _) = run(
        &v,
        130,
        vec![MemFrame::new(&frame(A, B, &[], 60))],
        &mut pool,
        &mut cap,
    );
    assert_eq!(actions, [Action::Output(p(255), TagAction::Keep)]);
    cap = Capture::default();
    let (actions, _) = run(
        &v,
        255,
        vec![MemFrame::new(&frame(B, A, &[], 60))],
        &mut pool,
        &mut cap,
    );
    assert_eq!(actions, [Action::Output(p(130), TagAction::Keep)]);
    assert_eq!(cap.sent[&130], [frame(B, A, &[], 60)]);
}

#[test]
fn access_to_trunk_pushes_and_back_pops() {
    let v = view();
    let (mut pool, mut cap) = (MemPool::default(), Capture::default());
    // A (on p0, access 10) learns; B is learned on p1 by a tagged frame.
    run(
        &v,
        1,
        vec![MemFrame::new(&frame(A, B, &[(0x8100, 10)], 60))],
        &mut pool,
        &mut cap,
    );
    cap = Capture::default();
    let (actions, counts) = run(
        &v,
        0,
        vec![MemFrame::new(&frame(B, A, &[], 60))],
        &mut pool,
        &mut cap,
    );
    assert_eq!(actions, [Action::Output(p(1), TagAction::Push(10))]);
    assert_eq!(counts.rx_packets, 1);
    assert_eq!(cap.sent[&1], [frame(B, A, &[(0x8100, 10)], 64)]);
    // And back: PCP kept on the way in, the tag popped on the way out.
    cap = Capture::default();
    let (actions, _) = run(
        &v,
        1,
        vec![MemFrame::new(&frame(A, B, &[(0x8100, 0xa00a)], 64))],
        &mut pool,
        &mut cap,
    );
    assert_eq!(actions, [Action::Output(p(0), TagAction::Pop)]);
    assert_eq!(cap.sent[&0], [frame(A, B, &[], 60)]);
}

#[test]
fn translation_rewrites_the_outer_tag_and_keeps_pcp() {
    let v = view();
    let (mut pool, mut cap) = (MemPool::default(), Capture::default());
    run(
        &v,
        1,
        vec![MemFrame::new(&frame(BCAST, B, &[(0x8100, 10)], 64))],
        &mut pool,
        &mut cap,
    );
    cap = Capture::default();
    // From the uplink, external 3029 is local VLAN 10: to B on the trunk.
    let (actions, _) = run(
        &v,
        4,
        vec![MemFrame::new(&frame(B, C, &[(0x8100, 0xebd5)], 64))],
        &mut pool,
        &mut cap,
    );
    assert_eq!(actions, [Action::Output(p(1), TagAction::Set(0xe00a))]);
    assert_eq!(cap.sent[&1], [frame(B, C, &[(0x8100, 0xe00a)], 64)]);
    assert_eq!(v.bridge(0).unwrap().fdb.lookup(10, C), Some(p(4)));
}

#[test]
fn flood_copies_to_every_member_with_its_tag() {
    let v = view();
    let (mut pool, mut cap) = (MemPool::default(), Capture::default());
    let (actions, counts) = run(
        &v,
        0,
        vec![MemFrame::new(&frame(BCAST, A, &[], 60))],
        &mut pool,
        &mut cap,
    );
    assert!(matches!(actions[..], [Action::Flood(0)]));
    // VLAN 10 members but p0: p1 tagged, p2 tagged (10 is its trunk), p4 as 3029.
    assert_eq!(cap.sent[&1], [frame(BCAST, A, &[(0x8100, 10)], 64)]);
    assert_eq!(cap.sent[&2], [frame(BCAST, A, &[(0x8100, 10)], 64)]);
    assert_eq!(cap.sent[&4], [frame(BCAST, A, &[(0x8100, 3029)], 64)]);
    assert!(!cap.sent.contains_key(&3) && !cap.sent.contains_key(&0));
    assert_eq!(pool.copies, 2, "the original goes to the last port");
    assert_eq!(counts.rx_dropped, 0);
}

#[test]
fn a_flood_to_one_port_is_an_output_and_to_none_a_drop() {
    let mut v = SwitchView::default();
    let b = v.add_bridge("br0", Arc::new(MacTable::new(64, 300)));
    for (i, tag) in [(0u16, 7u16), (1, 7), (2, 8)] {
        v.add_port(PortView {
            id: p(i),
            name: format!("p{i}"),
            bridge: b,
            vlan: PortVlan::new(None, Some(tag), &[]).unwrap(),
            acl: None,
            dhcp: None,
            max_frame: max_frame_len(DEFAULT_MTU),
        })
        .unwrap();
    }
    let (mut pool, mut cap) = (MemPool::default(), Capture::default());
    let (actions, _) = run(
        &v,
        0,
        vec![MemFrame::new(&frame(BCAST, A, &[], 60))],
        &mut pool,
        &mut cap,
    );
    assert_eq!(actions, [Action::Output(p(1), TagAction::Keep)]);
    let (actions, counts) = run(
        &v,
        2,
        vec![MemFrame::new(&frame(BCAST, C, &[], 60))],
        &mut pool,
        &mut cap,
    );
    assert_eq!(actions, [Action::Drop(DropReason::NoOutput)]);
    assert_eq!((counts.rx_dropped, counts.no_output), (1, 1));
    assert_eq!(pool.copies, 0);
}

#[test]
fn drops_are_counted_by_reason() {
    let v = view();
    let (mut pool, mut cap) = (MemPool::default(), Capture::default());
    let frames = vec![
        MemFrame::new(&frame(B, A, &[(0x8100, 30)], 64)), // p1 does not trunk 30
        MemFrame::new(&[1, 2, 3]),                        // runt
        MemFrame::new(&frame(B, A, &[(0x8100, 10)], 64)[..17]), // partial tag
        MemFrame::new(&frame(0x0180_c200_0000, A, &[(0x8100, 10)], 64)), // STP
        MemFrame::new(&frame(A, A, &[(0x8100, 10)], 64)), // to itself: learned on p1
    ];
    let (actions, counts) = run(&v, 1, frames, &mut pool, &mut cap);
    assert_eq!(
        actions,
        [
            Action::Drop(DropReason::VlanViolation),
            Action::Drop(DropReason::Malformed),
            Action::Drop(DropReason::Malformed),
            Action::Drop(DropReason::LinkLocal),
            Action::Drop(DropReason::NoOutput),
        ]
    );
    assert_eq!(
        counts,
        BurstCounts {
            rx_packets: 5,
            rx_bytes: 64 + 3 + 17 + 64 + 64,
            rx_dropped: 5,
            malformed: 2,
            vlan_violation: 1,
            link_local: 1,
            no_output: 1,
            oversize: 0,
            no_mbuf: 0,
            ..BurstCounts::default()
        }
    );
    assert!(cap.sent.is_empty());
}

#[test]
fn inner_tags_are_payload_and_only_the_outer_one_is_edited() {
    let v = view();
    let (mut pool, mut cap) = (MemPool::default(), Capture::default());
    // Learn B on p0 (access 10).
    run(
        &v,
        0,
        vec![MemFrame::new(&frame(BCAST, B, &[], 60))],
        &mut pool,
        &mut cap,
    );
    cap = Capture::default();
    // S-tag 10 over two C-tags from the trunk: the outer tag goes, the rest
    // stays as it came.
    let three = frame(B, A, &[(0x88a8, 10), (0x8100, 7), (0x88a8, 9)], 64);
    let (actions, _) = run(&v, 1, vec![MemFrame::new(&three)], &mut pool, &mut cap);
    assert_eq!(actions, [Action::Output(p(0), TagAction::Pop)]);
    assert_eq!(cap.sent[&0], [frame(B, A, &[(0x8100, 7), (0x88a8, 9)], 60)]);
}

#[test]
fn frames_over_the_mtu_are_dropped_per_port_and_never_cut() {
    let v = view();
    let (mut pool, mut cap) = (MemPool::default(), Capture::default());
    // A 68-byte broadcast from p0 (VLAN 10): p2 takes 70 bytes, the tag it
    // needs makes 72.
    let (_, counts) = run(
        &v,
        0,
        vec![MemFrame::new(&frame(BCAST, A, &[], 68))],
        &mut pool,
        &mut cap,
    );
    assert_eq!(cap.sent[&1].len(), 1);
    assert_eq!(cap.sent[&4].len(), 1);
    assert!(!cap.sent.contains_key(&2));
    assert_eq!((counts.oversize, counts.rx_dropped, cap.lost), (1, 0, 1));
    // Unicast to p2 only: the frame is dropped, counted once.
    run(
        &v,
        2,
        vec![MemFrame::new(&frame(BCAST, C, &[], 60))],
        &mut pool,
        &mut cap,
    );
    cap = Capture::default();
    let (actions, counts) = run(
        &v,
        1,
        vec![MemFrame::new(&frame(C, A, &[(0x8100, 20)], 76))],
        &mut pool,
        &mut cap,
    );
    assert_eq!(actions, [Action::Output(p(2), TagAction::Pop)]);
    assert!(cap.sent.is_empty());
    assert_eq!((counts.oversize, counts.rx_dropped, cap.lost), (1, 1, 1));
    // 72 bytes with the tag, 68 without: fits once popped.
    run(
        &v,
        1,
        vec![MemFrame::new(&frame(C, A, &[(0x8100, 20)], 72))],
        &mut pool,
        &mut cap,
    );
    assert_eq!(cap.sent[&2].len(), 1);
}

#[test]
fn a_uniform_burst_moves_whole_and_a_full_batch_goes_at_once() {
    let v = view();
    let (mut pool, mut cap) = (MemPool::default(), Capture::default());
    run(
        &v,
        3,
        vec![MemFrame::new(&frame(BCAST, C, &[], 60))],
        &mut pool,
        &mut cap,
    );
    let mut rx = MemBurst::from_frames((0..32).map(|i| {
        let mut f = frame(C, A + (i % 2), &[(0x8100, 20)], 64);
        f[40] = i as u8;
        MemFrame::new(&f)
    }));
    let mut classified = Classified::default();
    let mut out = Outputs::<MemBurst>::default();
    classify(&v, p(1), &rx, &mut classified);
    // Every frame to p3, but each needs its tag popped: not a whole move.
    assert!(classified
        .actions()
        .iter()
        .all(|a| *a == Action::Output(p(3), TagAction::Pop)));
    assert_eq!(classified.moves_whole(), None);
    cap = Capture::default();
    execute(&v, &classified, &mut rx, &mut out, &mut pool, &mut cap);
    // Popping touches every frame; 32 to one port fill its batch: sent at once.
    assert_eq!(cap.calls, 1);
    assert_eq!(cap.sent[&3].len(), 32);
    assert_eq!(cap.bytes, 32 * 60);

    // Untagged to untagged: the burst itself becomes the output batch.
    run(
        &v,
        2,
        vec![MemFrame::new(&frame(BCAST, B, &[], 60))],
        &mut pool,
        &mut cap,
    );
    let mut rx = MemBurst::from_frames((0..5).map(|_| MemFrame::new(&frame(B, C, &[], 60))));
    classify(&v, p(3), &rx, &mut classified);
    assert_eq!(classified.moves_whole(), Some(p(2)));
    cap = Capture::default();
    execute(&v, &classified, &mut rx, &mut out, &mut pool, &mut cap);
    assert_eq!(cap.calls, 0, "pending until the flush");
    assert_eq!(out.pending(), PortMask::from_iter([p(2)]));
    out.flush(&mut cap);
    assert_eq!((cap.calls, cap.sent[&2].len(), cap.bytes), (1, 5, 300));

    // A whole burst of 32 is a full batch: sent at once, nothing pending.
    let mut rx = MemBurst::from_frames((0..32).map(|_| MemFrame::new(&frame(B, C, &[], 60))));
    classify(&v, p(3), &rx, &mut classified);
    assert_eq!(classified.moves_whole(), Some(p(2)));
    cap = Capture::default();
    execute(&v, &classified, &mut rx, &mut out, &mut pool, &mut cap);
    assert!(rx.is_empty());
    assert_eq!(out.pending(), PortMask::EMPTY);
    assert_eq!((cap.calls, cap.sent[&2].len(), cap.bytes), (1, 32, 32 * 60));
}

#[test]
fn a_stripped_tag_counts_as_part_of_the_frame() {
    let v = view();
    let (mut pool, mut cap) = (MemPool::default(), Capture::default());
    run(
        &v,
        2,
        vec![MemFrame::new(&frame(BCAST, B, &[(0x8100, 10)], 64))],
        &mut pool,
        &mut cap,
    );
    cap = Capture::default();
    // From the trunk p1, VLAN 10 with the tag in metadata, to B on p2 (tagged 10): kept.
    let (actions, _) = run(
        &v,
        1,
        vec![MemFrame::with_stripped(&frame(B, A, &[], 60), 0x200a)],
        &mut pool,
        &mut cap,
    );
    assert_eq!(actions, [Action::Output(p(2), TagAction::Keep)]);
    assert_eq!(cap.sent[&2], [frame(B, A, &[(0x8100, 0x200a)], 64)]);
    // Flooded: each copy gets the tag its port wants; p0 untagged.
    cap = Capture::default();
    run(
        &v,
        1,
        vec![MemFrame::with_stripped(&frame(BCAST, A, &[], 60), 0x000a)],
        &mut pool,
        &mut cap,
    );
    assert_eq!(cap.sent[&0], [frame(BCAST, A, &[], 60)]);
    assert_eq!(cap.sent[&2], [frame(BCAST, A, &[(0x8100, 10)], 64)]);
    assert_eq!(cap.sent[&4], [frame(BCAST, A, &[(0x8100, 3029)], 64)]);
}

#[test]
fn no_buffer_for_a_copy_is_counted_and_the_rest_still_goes() {
    let v = view();
    let mut pool = MemPool {
        left: Some(1),
        copies: 0,
    };
    let mut cap = Capture::default();
    let (_, counts) = run(
        &v,
        0,
        vec![MemFrame::new(&frame(BCAST, A, &[], 60))],
        &mut pool,
        &mut cap,
    );
    assert_eq!((counts.no_mbuf, cap.lost), (1, 1));
    assert_eq!(cap.sent.values().map(Vec::len).sum::<usize>(), 2);
}

// ---- property tests against a reference ------------------------------------

/// The fate of one frame as the reference sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fate {
    To(Vec<(PortId, TagAction)>),
    Dropped(DropReason),
}

/// NORMAL for one frame, alone: parse, VLAN rules, learn, look up, flood
/// over every other member in port order.
fn reference_fate(v: &SwitchView, in_port: PortId, f: &MemFrame) -> Fate {
    let Ok(h) = SwitchingHeader::parse(f.bytes(), f.stripped) else {
        return Fate::Dropped(DropReason::Malformed);
    };
    let port = v.port(in_port).unwrap();
    let bridge = v.bridge(port.bridge).unwrap();
    let fdb = &bridge.fdb;
    let in_tci = h.outer_tci;
    let Some(vlan) = port.vlan.ingress(in_tci.map(|t| t & 0xfff)) else {
        return Fate::Dropped(DropReason::VlanViolation);
    };
    if h.dst.is_reserved() && !bridge.forward_bpdu {
        return Fate::Dropped(DropReason::LinkLocal);
    }
    if h.src.is_unicast() {
        fdb.learn(vlan, h.src.to_u64(), in_port);
    }
    let known = h
        .dst
        .is_unicast()
        .then(|| fdb.lookup(vlan, h.dst.to_u64()))
        .flatten();
    let targets: Vec<(PortId, TagAction)> = match known {
        Some(q) if q == in_port => vec![],
        Some(q) => v
            .port(q)
            .and_then(|o| o.vlan.egress(vlan))
            .map(|eg| vec![(q, TagAction::for_egress(in_tci, eg))])
            .unwrap_or_default(),
        None => v
            .ports()
            .filter(|o| o.id != in_port)
            .filter_map(|o| Some((o.id, TagAction::for_egress(in_tci, o.vlan.egress(vlan)?))))
            .collect(),
    };
    if targets.is_empty() {
        Fate::Dropped(DropReason::NoOutput)
    } else {
        Fate::To(targets)
    }
}

/// The bytes a frame leaves with, by plain byte splicing (the stripped tag
/// first put back where it was).
fn reference_bytes(f: &MemFrame, action: TagAction) -> Option<Vec<u8>> {
    let mut b = f.bytes().to_vec();
    if let Some(t) = f.stripped {
        b.splice(12..12, [0x81, 0x00, (t >> 8) as u8, t as u8]);
    }
    match action {
        TagAction::Keep => {}
        TagAction::Pop => {
            b.drain(12..16);
        }
        TagAction::Push(t) => {
            b.splice(12..12, [0x81, 0x00, (t >> 8) as u8, t as u8]);
        }
        TagAction::Set(t) => b.splice(14..16, [(t >> 8) as u8, t as u8]).for_each(drop),
    }
    Some(b)
}

/// One frame of a family: the family fixes the addresses and the outer tag
/// (the first 16 bytes of a tagged frame), the frame picks what follows
/// (more tags or none, an EtherType), its length and its payload, so frames
/// of a burst differ exactly where a decision cache could be fooled.
fn family_frame(
    (dst, src, outer): (u64, u64, Option<(u16, u16)>),
    inner: Vec<(u16, u16)>,
    len: usize,
    fill: u8,
    strip: Option<u16>,
) -> MemFrame {
    let mut tags: Vec<(u16, u16)> = outer.into_iter().collect();
    tags.extend(inner);
    let mut f = frame(dst, src, &tags, 80);
    // Runts: cut anywhere, even inside the addresses.
    f.truncate(len);
    if let Some(b) = f.get_mut(30) {
        *b = fill;
    }
    match strip {
        Some(tci) => MemFrame::with_stripped(&f, tci),
        None => MemFrame::new(&f),
    }
}

fn tag_spec() -> impl Strategy<Value = (u16, u16)> {
    let tpid = prop_oneof![Just(0x8100u16), Just(0x88a8u16), Just(0x9100u16)];
    let vid = prop_oneof![
        Just(0u16),
        Just(10),
        Just(20),
        Just(30),
        Just(3029),
        Just(4095)
    ];
    (tpid, vid, 0u16..8).prop_map(|(t, v, pcp)| (t, (pcp << 13) | v))
}

fn family_spec() -> impl Strategy<Value = (u64, u64, Option<(u16, u16)>)> {
    let macs = prop_oneof![
        Just(A),
        Just(B),
        Just(C),
        Just(BCAST),
        Just(0x0180_c200_0000),
        Just(0)
    ];
    (macs.clone(), macs, proptest::option::of(tag_spec()))
}

fn burst_spec() -> impl Strategy<Value = (u16, Vec<MemFrame>)> {
    let frame_of = |fams: usize| {
        (
            0..fams,
            proptest::collection::vec(tag_spec(), 0..3),
            prop_oneof![1 => 0usize..24, 4 => 60usize..80],
            prop_oneof![Just(0u8), any::<u8>()],
            proptest::option::weighted(0.1, prop_oneof![Just(10u16), Just(0x2014), Just(3029)]),
            1usize..4,
        )
    };
    (0u16..5, proptest::collection::vec(family_spec(), 1..4))
        .prop_flat_map(move |(port, fams)| {
            let n = fams.len();
            (
                Just(port),
                Just(fams),
                proptest::collection::vec(frame_of(n), 1..16),
            )
        })
        .prop_map(|(port, fams, picks)| {
            let mut frames = Vec::new();
            for (fam, inner, len, fill, strip, repeat) in picks {
                let f = family_frame(fams[fam], inner, len, fill, strip);
                frames.extend(std::iter::repeat_n(f, repeat));
            }
            frames.truncate(crate::frame::BURST);
            (port, frames)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// classify + execute on whole bursts == the reference deciding and
    /// editing frame by frame, per port, byte for byte, in order; and both
    /// tables learn the same. One `Classified` for all the bursts, as a
    /// worker has: what its decision cache answers must be what deciding
    /// afresh gives, across MAC moves and the tables' clock ticking.
    #[test]
    fn bursts_equal_frame_by_frame(
        bursts in proptest::collection::vec((burst_spec(), any::<bool>()), 1..8),
    ) {
        let v = view();
        let r = view();
        let mut pool = MemPool::default();
        let mut classified = Classified::default();
        for ((in_port, frames), tick) in bursts {
            if tick {
                for t in [&v.bridge(0).unwrap().fdb, &r.bridge(0).unwrap().fdb] {
                    t.set_now(t.now() + 1);
                }
            }
            let mut want: BTreeMap<u16, Vec<Vec<u8>>> = BTreeMap::new();
            let mut fates = Vec::new();
            let mut sent_nowhere = 0;
            for f in &frames {
                let fate = reference_fate(&r, p(in_port), f);
                match &fate {
                    Fate::To(targets) => {
                        let mut sent = false;
                        for &(q, tag) in targets {
                            if let Some(b) = reference_bytes(f, tag) {
                                // Longer than the port's MTU allows: not sent.
                                if b.len() as u32 <= r.max_frame(q) {
                                    want.entry(q.get()).or_default().push(b);
                                    sent = true;
                                }
                            }
                        }
                        sent_nowhere += usize::from(!sent);
                    }
                    Fate::Dropped(_) => sent_nowhere += 1,
                }
                fates.push(fate);
            }
            let mut cap = Capture::default();
            let mut rx = MemBurst::from_frames(frames);
            let mut out = Outputs::<MemBurst>::default();
            classify(&v, p(in_port), &rx, &mut classified);
            let got: Vec<Fate> = classified
                .actions()
                .iter()
                .map(|a| match *a {
                    Action::Output(q, tag) => Fate::To(vec![(q, tag)]),
                    Action::Flood(n) => Fate::To(classified.floods.get(n).unwrap().targets().to_vec()),
                    Action::Drop(d) => Fate::Dropped(d),
                    Action::Answer(q) => Fate::To(vec![(q, TagAction::Keep)]),
                })
                .collect();
            prop_assert_eq!(&got, &fates);
            for a in classified.actions() {
                if let Action::Flood(n) = a {
                    prop_assert!(classified.floods.get(*n).unwrap().targets().len() >= 2);
                }
            }
            // The VLAN each frame was classified into (its conntrack zone):
            // the input port's rule on its outer tag, unless classify
            // dropped it.
            let port_vlan = &v.port(p(in_port)).unwrap().vlan;
            for (i, fate) in got.iter().enumerate() {
                let f = rx.get(i).unwrap();
                let want = match fate {
                    Fate::Dropped(
                        DropReason::Malformed | DropReason::VlanViolation | DropReason::LinkLocal,
                    ) => None,
                    _ => SwitchingHeader::parse(f.data(), f.stripped_tci())
                        .ok()
                        .and_then(|h| port_vlan.ingress(h.outer_tci.map(|t| t & 0x0fff))),
                };
                prop_assert_eq!(classified.vlan_of(i), want, "frame {}", i);
            }
            let counts = execute(&v, &classified, &mut rx, &mut out, &mut pool, &mut cap);
            out.flush(&mut cap);
            prop_assert_eq!(&cap.sent, &want);
            prop_assert_eq!(counts.rx_dropped as usize, sent_nowhere);
            let (fv, fr) = (&v.bridge(0).unwrap().fdb, &r.bridge(0).unwrap().fdb);
            prop_assert_eq!(fv.entries(), fr.entries());
        }
    }
}

// ---- the security stage ------------------------------------------------------

mod security {
    use super::*;
    use crate::acl::{AclRule, Direction, PortAcl, Prefix, Remote};
    use crate::conntrack::{ConnCache, ConnTable, Timeouts};

    const VM_A: u64 = 0xfa16_3e00_00a1;
    const VM_B: u64 = 0xfa16_3e00_00b1;
    const OUT: u64 = 0x0200_0000_0001; // a host behind the uplink
    const IP_A: u32 = 0x0a00_0005;
    const IP_B: u32 = 0x0a00_0006;
    const IP_OUT: u32 = 0x0a00_0001;

    fn host(ip: u32) -> Prefix {
        Prefix {
            v6: false,
            base: u128::from(ip),
            len: 32,
        }
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

    fn acl(mac: u64, ip: u32, rules: Vec<AclRule>) -> Arc<PortAcl> {
        let mut a = PortAcl {
            port_security: true,
            allowed_sources: vec![(mac, host(ip))],
            rules,
            ..PortAcl::default()
        };
        a.index_rules();
        Arc::new(a)
    }

    /// p0: VM A (egress any; ingress TCP 22 and ICMP), p1: the uplink (no
    /// port security), p2: VM B (egress any; ingress UDP); all access 10.
    fn view() -> SwitchView {
        let mut v = SwitchView::default();
        let b = v.add_bridge("br0", Arc::new(MacTable::new(64, 300)));
        let acls = [
            Some(acl(
                VM_A,
                IP_A,
                vec![
                    rule(Direction::Egress, None, (0, 65535)),
                    rule(Direction::Ingress, Some(6), (22, 22)),
                    rule(Direction::Ingress, Some(1), (255, 255)),
                ],
            )),
            None,
            Some(acl(
                VM_B,
                IP_B,
                vec![
                    rule(Direction::Egress, None, (0, 65535)),
                    rule(Direction::Ingress, Some(17), (0, 65535)),
                ],
            )),
        ];
        for (i, acl) in acls.into_iter().enumerate() {
            v.add_port(PortView {
                acl,
                ..super::access_port(i as u16, b)
            })
            .unwrap();
        }
        v
    }

    fn ip_frame(dst_mac: u64, src_mac: u64, src: u32, dst: u32, proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut f = mac(dst_mac).to_vec();
        f.extend_from_slice(&mac(src_mac));
        f.extend_from_slice(&[0x08, 0x00]);
        let total = 20 + l4.len();
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            proto,
            0,
            0,
        ]);
        f.extend_from_slice(&src.to_be_bytes());
        f.extend_from_slice(&dst.to_be_bytes());
        f.extend_from_slice(l4);
        f
    }

    fn udp(sport: u16, dport: u16) -> Vec<u8> {
        let mut u = sport.to_be_bytes().to_vec();
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&[0, 8, 0, 0]);
        u
    }

    fn tcp(sport: u16, dport: u16, flags: u8, seq: u32, ack: u32) -> Vec<u8> {
        let mut t = sport.to_be_bytes().to_vec();
        t.extend_from_slice(&dport.to_be_bytes());
        t.extend_from_slice(&seq.to_be_bytes());
        t.extend_from_slice(&ack.to_be_bytes());
        t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        t
    }

    /// classify, filter, execute, as the worker will.
    fn run(
        v: &SwitchView,
        ct: &ConnTable,
        in_port: u16,
        frame: Vec<u8>,
    ) -> (Action, BTreeMap<u16, usize>) {
        let mut rx = MemBurst::from_frames([MemFrame::new(&frame)]);
        let mut classified = Classified::default();
        let mut out = Outputs::<MemBurst>::default();
        let (mut pool, mut cap) = (MemPool::default(), Capture::default());
        classify(v, p(in_port), &rx, &mut classified);
        filter(
            v,
            ct,
            &mut ConnCache::new(),
            p(in_port),
            &rx,
            &mut classified,
        );
        let action = classified.actions()[0];
        execute(v, &classified, &mut rx, &mut out, &mut pool, &mut cap);
        out.flush(&mut cap);
        (
            action,
            cap.sent.iter().map(|(k, f)| (*k, f.len())).collect(),
        )
    }

    fn sent_to(r: &(Action, BTreeMap<u16, usize>)) -> Vec<u16> {
        r.1.keys().copied().collect()
    }

    #[test]
    fn stateful_groups_and_port_security_on_real_frames() {
        let v = view();
        let ct = ConnTable::new(64, Timeouts::default());
        // Everyone announces itself (ARP passes every port): MACs learned.
        for (port, m, ip) in [(0, VM_A, IP_A), (1, OUT, IP_OUT), (2, VM_B, IP_B)] {
            let mut arp = mac(u64::MAX).to_vec();
            arp.extend_from_slice(&mac(m));
            arp.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
            arp.extend_from_slice(&mac(m));
            arp.extend_from_slice(&ip.to_be_bytes());
            arp.extend_from_slice(&[0; 6]);
            arp.extend_from_slice(&IP_OUT.to_be_bytes());
            let r = run(&v, &ct, port, arp);
            assert_eq!(
                sent_to(&r).len(),
                2,
                "ARP from p{port} floods to both others: {r:?}"
            );
        }
        // A asks the outside (egress any): new, committed, out.
        let r = run(
            &v,
            &ct,
            0,
            ip_frame(OUT, VM_A, IP_A, IP_OUT, 17, &udp(5000, 53)),
        );
        assert_eq!(sent_to(&r), [1]);
        assert_eq!(ct.len(), 1);
        // The answer is established: in, though A admits no UDP.
        let r = run(
            &v,
            &ct,
            1,
            ip_frame(VM_A, OUT, IP_OUT, IP_A, 17, &udp(53, 5000)),
        );
        assert_eq!(sent_to(&r), [0]);
        // New from outside: TCP 22 admitted, TCP 80 not.
        let r = run(
            &v,
            &ct,
            1,
            ip_frame(VM_A, OUT, IP_OUT, IP_A, 6, &tcp(40000, 22, 0x02, 7, 0)),
        );
        assert_eq!(sent_to(&r), [0]);
        let r = run(
            &v,
            &ct,
            1,
            ip_frame(VM_A, OUT, IP_OUT, IP_A, 6, &tcp(40001, 80, 0x02, 7, 0)),
        );
        assert_eq!(r.0, Action::Drop(DropReason::Denied));
        // A's SYN-ACK on 22 is the reply of an admitted connection.
        let r = run(
            &v,
            &ct,
            0,
            ip_frame(OUT, VM_A, IP_A, IP_OUT, 6, &tcp(22, 40000, 0x12, 900, 8)),
        );
        assert_eq!(sent_to(&r), [1]);
        // An ACK of no connection is invalid.
        let r = run(
            &v,
            &ct,
            1,
            ip_frame(VM_A, OUT, IP_OUT, IP_A, 6, &tcp(40002, 22, 0x10, 7, 9)),
        );
        assert_eq!(r.0, Action::Drop(DropReason::CtInvalid));
        // A spoofing B's address: dropped before anything else.
        let r = run(
            &v,
            &ct,
            0,
            ip_frame(OUT, VM_A, IP_B, IP_OUT, 17, &udp(5000, 53)),
        );
        assert_eq!(r.0, Action::Drop(DropReason::Spoofed));
        // A broadcast UDP from outside: B admits UDP, A does not: B only.
        let r = run(
            &v,
            &ct,
            1,
            ip_frame(
                u64::MAX >> 16,
                OUT,
                IP_OUT,
                0xffff_ffff,
                17,
                &udp(6000, 7000),
            ),
        );
        assert_eq!(sent_to(&r), [2], "{r:?}");
        // A non-IP broadcast from outside reaches no secured port.
        let mut lldp = mac(u64::MAX >> 16).to_vec();
        lldp.extend_from_slice(&mac(OUT));
        lldp.extend_from_slice(&[0x88, 0xb5]);
        lldp.extend_from_slice(&[0; 46]);
        let r = run(&v, &ct, 1, lldp);
        assert_eq!(r.0, Action::Drop(DropReason::Denied));
    }

    #[test]
    fn a_rule_removed_cuts_the_connections_it_admitted() {
        let v = view();
        let ct = ConnTable::new(64, Timeouts::default());
        let r = run(
            &v,
            &ct,
            0,
            ip_frame(OUT, VM_A, IP_A, IP_OUT, 17, &udp(5000, 53)),
        );
        assert_eq!(
            sent_to(&r),
            [1, 2],
            "OUT unknown: the question floods, B admits UDP"
        );
        let r = run(
            &v,
            &ct,
            1,
            ip_frame(VM_A, OUT, IP_OUT, IP_A, 6, &tcp(40000, 22, 0x02, 7, 0)),
        );
        assert_eq!(sent_to(&r), [0]);
        assert_eq!(ct.len(), 2);
        assert_eq!(
            crate::pipeline::revalidate(&v, &ct),
            0,
            "the same rules keep both"
        );
        // A's SSH rule goes: its connection is cut, the DNS one stays.
        let mut w = SwitchView::default();
        let b = w.add_bridge("br0", Arc::clone(&v.bridge(0).unwrap().fdb));
        for port in v.ports() {
            let acl = if port.id == p(0) {
                Some(acl(
                    VM_A,
                    IP_A,
                    vec![rule(Direction::Egress, None, (0, 65535))],
                ))
            } else {
                port.acl.clone()
            };
            w.add_port(PortView {
                acl,
                dhcp: None,
                bridge: b,
                ..port.clone()
            })
            .unwrap();
        }
        assert_eq!(crate::pipeline::revalidate(&w, &ct), 1);
        assert_eq!(
            ct.snapshot(None)
                .iter()
                .map(|c| c.key.proto)
                .collect::<Vec<_>>(),
            [17]
        );
        // Its next segment has no connection: invalid.
        let r = run(
            &w,
            &ct,
            1,
            ip_frame(VM_A, OUT, IP_OUT, IP_A, 6, &tcp(40000, 22, 0x10, 8, 901)),
        );
        assert_eq!(r.0, Action::Drop(DropReason::CtInvalid));
    }

    /// A burst is decided as its frames one at a time (the second pass
    /// tracks and commits in frame order).
    #[test]
    fn a_burst_decides_as_its_frames_one_by_one() {
        let frames = [
            ip_frame(VM_A, OUT, IP_OUT, IP_A, 6, &tcp(40000, 22, 0x02, 7, 0)),
            ip_frame(VM_A, OUT, IP_OUT, IP_A, 6, &tcp(40001, 80, 0x02, 7, 0)),
            ip_frame(VM_A, OUT, IP_OUT, IP_A, 6, &tcp(40000, 22, 0x02, 7, 0)),
            ip_frame(VM_A, OUT, IP_OUT, IP_A, 1, &[8, 0, 0, 0, 0, 9, 0, 1]),
            ip_frame(VM_A, OUT, IP_OUT, IP_A, 17, &udp(1, 2)),
            ip_frame(VM_A, OUT, IP_OUT, IP_A, 6, &tcp(40003, 22, 0x10, 1, 1)),
        ];
        let one_by_one: Vec<Action> = {
            let v = view();
            let ct = ConnTable::new(64, Timeouts::default());
            frames
                .iter()
                .map(|f| run(&v, &ct, 1, f.clone()).0)
                .collect()
        };
        let v = view();
        let ct = ConnTable::new(64, Timeouts::default());
        let rx = MemBurst::from_frames(frames.iter().map(|f| MemFrame::new(f)));
        let mut classified = Classified::default();
        classify(&v, p(1), &rx, &mut classified);
        filter(&v, &ct, &mut ConnCache::new(), p(1), &rx, &mut classified);
        assert_eq!(classified.actions(), &one_by_one[..]);
        assert!(
            matches!(
                one_by_one[..],
                [
                    Action::Flood(_) | Action::Output(..),
                    Action::Drop(DropReason::Denied),
                    Action::Flood(_) | Action::Output(..),
                    Action::Flood(_) | Action::Output(..),
                    _,
                    Action::Drop(DropReason::CtInvalid),
                ]
            ),
            "{one_by_one:?}"
        );
    }

    #[test]
    fn ports_without_security_are_left_alone() {
        let mut v = SwitchView::default();
        let b = v.add_bridge("br0", Arc::new(MacTable::new(64, 300)));
        for i in 0..2u16 {
            v.add_port(super::access_port(i, b)).unwrap();
        }
        let ct = ConnTable::new(4, Timeouts::default());
        let r = run(
            &v,
            &ct,
            0,
            ip_frame(OUT, VM_A, IP_B, IP_OUT, 6, &tcp(1, 2, 0x10, 1, 1)),
        );
        assert_eq!(sent_to(&r), [1]);
        assert!(ct.is_empty(), "nothing tracked");
    }

    /// `trace` tells each step and changes nothing: no MAC learned, no
    /// connection tracked or committed.
    #[test]
    fn trace_explains_without_side_effects() {
        use crate::pipeline::trace;
        let v = view();
        let ct = ConnTable::new(64, Timeouts::default());
        let syn = |dport| ip_frame(VM_A, OUT, IP_OUT, IP_A, 6, &tcp(40000, dport, 0x02, 1, 0));
        let ssh = trace(&v, Some(&ct), p(1), &syn(22), &|_| None);
        let text = ssh.join("\n");
        assert!(text.contains("vlan: untagged -> VLAN 10"), "{text}");
        assert!(text.contains("ct_state=+new|+trk"), "{text}");
        assert!(
            text.contains("ingress of p0: new connection admitted by rule #1: IPv4 tcp port 22"),
            "{text}"
        );
        assert!(text.contains("would be committed"), "{text}");
        assert_eq!(ssh.last().unwrap(), "=> output: p0", "{text}");
        let web = trace(&v, Some(&ct), p(1), &syn(80), &|_| None).join("\n");
        assert!(web.contains("ingress of p0: no rule admits it"), "{web}");
        assert!(
            web.ends_with("=> drop: denied by every output port's ingress rules"),
            "{web}"
        );
        let spoofed = ip_frame(OUT, VM_A, IP_B, IP_OUT, 17, &udp(5000, 53));
        let sp = trace(&v, Some(&ct), p(0), &spoofed, &|_| None).join("\n");
        assert!(sp.contains("not its to send (ipv4_source)"), "{sp}");
        assert!(sp.ends_with("=> drop: spoofed"), "{sp}");
        assert_eq!(ct.len(), 0, "nothing tracked");
        assert!(v.bridge(0).unwrap().fdb.is_empty(), "nothing learned");
        // The real pipeline agrees with what trace said.
        assert_eq!(
            run(&v, &ct, 1, syn(22)).0,
            Action::Output(p(0), TagAction::Keep)
        );
        assert!(matches!(
            run(&v, &ct, 1, syn(80)).0,
            Action::Drop(DropReason::Denied)
        ));
        // Its answer is now a reply of a tracked connection, for trace too.
        assert_eq!(ct.len(), 1);
        let synack = ip_frame(OUT, VM_A, IP_A, IP_OUT, 6, &tcp(22, 40000, 0x12, 7, 2));
        let answer = trace(&v, Some(&ct), p(0), &synack, &|_| None).join("\n");
        assert!(answer.contains("ct_state=+est|+rpl|+trk"), "{answer}");
        assert!(
            answer.contains("passes (established or related connection)"),
            "{answer}"
        );
        assert_eq!(ct.len(), 1);
    }
}

mod flow_stage {
    use super::*;
    use crate::flow_table::program::FlowTables;
    use crate::flow_table::{ofctl, Flow, PortRef};

    /// An IPv4/UDP frame (optionally tagged) from a small family, so that
    /// frames share exact entries, megaflows and runs.
    fn udp(dst: u8, vlan: Option<u16>, src_ip: u8, sport: u16) -> Vec<u8> {
        let mut f = vec![0, 0, 0, 0, 0, dst, 0xfa, 0x16, 0x3e, 0, 0, 1];
        if let Some(v) = vlan {
            f.extend_from_slice(&[0x81, 0]);
            f.extend_from_slice(&v.to_be_bytes());
        }
        f.extend_from_slice(&[0x08, 0, 0x45, 0, 0, 30, 0, 0, 0, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&[10, 0, 0, src_ip, 10, 0, 1, 1]);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&[0x13, 0x89, 0, 10, 0, 0, 0xab, 0xcd]);
        f
    }

    const FLOWS: &[&str] = &[
        "priority=50,in_port=1,dl_dst=00:00:00:00:00:02,actions=output:2",
        "priority=40,udp,nw_src=10.0.0.7,actions=mod_nw_src:192.168.0.1,output:3",
        "priority=40,udp,tp_src=1000,actions=mod_tp_src:2000,output:4,output:2",
        "priority=30,dl_vlan=10,actions=strip_vlan,output:3",
        "priority=30,dl_vlan=0xffff,actions=mod_vlan_vid:20,output:4",
        "priority=20,dl_dst=00:00:00:00:00:03,actions=resubmit(,1),output:5",
        "priority=10,actions=FLOOD",
        "priority=1,actions=drop",
        "table=1,priority=5,udp,actions=dec_ttl,output:2",
        "table=1,priority=1,actions=mod_dl_dst:02:00:00:00:00:09",
        // Values from the packet: frames of one megaflow edited apart.
        "priority=45,udp,tp_src=1001,actions=move:NXM_OF_IP_SRC[0..7]->NXM_OF_ETH_DST[0..7],output:2",
        "priority=44,udp,tp_src=1000,actions=push_vlan:0x88a8,set_field:5->nw_ttl,load:0x3->NXM_OF_ETH_SRC[0..1],output:3",
        "priority=42,dl_dst=00:00:00:00:00:01,actions=load:0x7->NXM_NX_REG2[],move:NXM_OF_IP_SRC[0..3]->NXM_NX_REG3[0..3],resubmit(,2)",
        "table=2,reg2=7,reg3=7,actions=set_field:4->ip_dscp,output:4",
        "table=2,reg2=7,priority=1,actions=output:5",
    ];

    fn tables(pick: &[bool]) -> (Vec<Flow>, FlowTables) {
        let flows: Vec<Flow> = FLOWS
            .iter()
            .zip(pick)
            .filter(|(_, &on)| on)
            .map(|(l, _)| ofctl::parse_flow(l).unwrap())
            .collect();
        let t = FlowTables::build(
            flows.iter().enumerate().map(|(i, f)| (i as u64, f)),
            |r: &PortRef| match r {
                PortRef::Number(n) => crate::flow_table::program::port_of(*n),
                PortRef::Name(_) => None,
            },
            1,
        );
        (flows, t)
    }

    /// The flow stage (and nothing else: no flow here sends to NORMAL) on
    /// one burst.
    fn run_flows(
        v: &SwitchView,
        t: &FlowTables,
        scratch: &mut FlowScratch,
        frames: Vec<MemFrame>,
        cap: &mut Capture,
    ) -> BurstCounts {
        let mut rx = MemBurst::from_frames(frames);
        let mut normal = MemBurst::default();
        let mut out = Outputs::<MemBurst>::default();
        let mut pool = MemPool::default();
        let c = flows(
            v,
            t,
            None,
            scratch,
            0,
            p(0),
            &mut rx,
            &mut normal,
            &mut out,
            &mut pool,
            cap,
        );
        out.flush(cap);
        assert!(normal.is_empty());
        c
    }

    /// A UDP frame between 10.0.0.1 (`from_a`) and 10.0.1.1 (else back).
    fn udp_between(from_a: bool) -> Vec<u8> {
        let mut f = udp(2, None, 1, 1000);
        if !from_a {
            // Addresses and ports swapped: the reply direction.
            f[26..34].copy_from_slice(&[10, 0, 1, 1, 10, 0, 0, 1]);
            f[34..38].copy_from_slice(&[0x13, 0x89, 0x03, 0xe8]);
        }
        f
    }

    /// `ct` in the tables, against a real connection table: the first
    /// packet is new and committed with a mark, a reply is established
    /// and carries the mark, a packet the table was never told about is
    /// new again in another zone; a trace looks without tracking.
    #[test]
    fn ct_tracks_commits_and_marks_connections() {
        use crate::conntrack::{ConnTable, Timeouts};
        let ct = ConnTable::new(64, Timeouts::default());
        let lines: Vec<Flow> = [
            "priority=10,ct_state=-trk,ip,actions=ct(table=1,zone=NXM_NX_REG6[0..15])",
            "priority=20,ct_state=-trk,ip,in_port=3,actions=load:0x9->NXM_NX_REG6[],ct(table=1,zone=NXM_NX_REG6[0..15])",
            "table=1,ct_state=+trk+new,ip,actions=ct(commit,zone=NXM_NX_REG6[0..15],exec(set_field:0x1->ct_mark)),output:2",
            "table=1,ct_state=+trk+est+rpl,ct_mark=0x1,ct_zone=0,ip,actions=output:3",
            "table=1,priority=1,actions=drop",
        ]
        .iter()
        .map(|l| ofctl::parse_flow(l).unwrap())
        .collect();
        let t = FlowTables::build(
            lines.iter().enumerate().map(|(i, f)| (i as u64, f)),
            |r: &PortRef| match r {
                PortRef::Number(n) => crate::flow_table::program::port_of(*n),
                PortRef::Name(_) => None,
            },
            1,
        );
        let t = Arc::new(t);
        let mut v = view();
        v.set_flows(0, Some(t.clone()));
        let mut scratch = FlowScratch::default();
        let mut send = |in_port: u16, frame: Vec<u8>| {
            let mut cap = Capture::default();
            let mut rx = MemBurst::from_frames(vec![MemFrame::new(&frame)]);
            let (mut normal, mut out, mut pool) = (
                MemBurst::default(),
                Outputs::<MemBurst>::default(),
                MemPool::default(),
            );
            flows(
                &v,
                &t,
                Some(&ct),
                &mut scratch,
                0,
                p(in_port),
                &mut rx,
                &mut normal,
                &mut out,
                &mut pool,
                &mut cap,
            );
            out.flush(&mut cap);
            cap.sent.keys().copied().collect::<Vec<u16>>()
        };
        // Port numbers: OpenFlow n is switch port n - 1.
        assert_eq!(send(0, udp_between(true)), [1], "new: committed, output:2");
        assert_eq!(ct.len(), 1);
        assert_eq!(send(1, udp_between(false)), [2], "reply: +est+rpl, marked");
        // The same reply in zone 9 (in_port=3): a connection of no one.
        assert_eq!(send(2, udp_between(false)), [1], "zone 9: new");
        assert_eq!(ct.len(), 2);
        // A trace of a new packet moves nothing.
        let mut other = udp_between(true);
        other[29] = 7;
        let report = super::super::trace::trace(&v, Some(&ct), p(0), &other, &|_| None);
        assert!(
            report
                .iter()
                .any(|l| l.contains("ct: zone 0, ct_state +new|+trk")),
            "{report:?}"
        );
        assert_eq!(ct.len(), 2);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

        /// A burst through the flow stage (exact-match and megaflow
        /// caches, a frame in its predecessor's megaflow reusing its
        /// translation, the port's last translation carried into its next
        /// burst) sends, port by port and byte for byte, exactly what its
        /// frames sent one at a time with empty caches, and counts the
        /// same packets and bytes on every flow; then, through the same
        /// scratch, another build of tables is obeyed from its first frame.
        #[test]
        fn bursts_send_what_single_frames_send(
            pick in proptest::collection::vec(any::<bool>(), FLOWS.len()),
            pick_after in proptest::collection::vec(any::<bool>(), FLOWS.len()),
            specs in proptest::collection::vec(
                (1u8..4, prop_oneof![Just(None), Just(Some(10u16)), Just(Some(20))], prop_oneof![Just(5u8), Just(7)], 999u16..1002),
                1..32,
            ),
        ) {
            let v = view();
            let (flows_on, t) = tables(&pick);
            let (_, t_single) = tables(&pick);
            let frames: Vec<MemFrame> = specs
                .iter()
                .map(|&(d, vl, ip, sp)| MemFrame::new(&udp(d, vl, ip, sp)))
                .collect();
            // Twice through one scratch: the second burst meets warm caches
            // and the translation the first one ended with.
            let mut burst = Capture::default();
            let mut scratch = FlowScratch::default();
            let c1 = run_flows(&v, &t, &mut scratch, frames.clone(), &mut burst);
            let c2 = run_flows(&v, &t, &mut scratch, frames.clone(), &mut burst);
            let mut single = Capture::default();
            let (mut dropped, mut flow_drop) = (0, 0);
            for _ in 0..2 {
                for f in &frames {
                    let c = run_flows(&v, &t_single, &mut FlowScratch::default(), vec![f.clone()], &mut single);
                    dropped += c.rx_dropped;
                    flow_drop += c.flow_drop;
                }
            }
            prop_assert_eq!(&burst.sent, &single.sent);
            prop_assert_eq!(c1.rx_dropped + c2.rx_dropped, dropped);
            prop_assert_eq!(c1.flow_drop + c2.flow_drop, flow_drop);
            for i in 0..flows_on.len() {
                prop_assert_eq!(t.counters(i), t_single.counters(i), "flow {}", i);
            }
            let (_, after) = tables(&pick_after);
            let mut burst = Capture::default();
            run_flows(&v, &after, &mut scratch, frames.clone(), &mut burst);
            let mut single = Capture::default();
            for f in &frames {
                run_flows(&v, &after, &mut FlowScratch::default(), vec![f.clone()], &mut single);
            }
            prop_assert_eq!(&burst.sent, &single.sent);
        }
    }
}
