//! Stage 1: one resolved action per frame of a burst.
use super::{Action, DropReason, FloodSets, TagAction};
use crate::flow_key::FlowKey;
use crate::frame::{Burst, Frame, BURST};
use crate::mac_table::MacKey;
use crate::port::PortId;
use crate::view::SwitchView;
use crate::wire::EtherType;

/// What [`classify`] found for a burst: an action per frame, the burst's
/// flood sets, and what [`execute`](super::execute) needs to know up front.
/// Sized once; reused for every burst.
pub struct Classified {
    actions: [Action; BURST],
    len: usize,
    /// The flood sets that `Action::Flood(n)` refers to.
    pub floods: FloodSets,
    rx_bytes: u64,
    /// Every frame got the same action.
    uniform: bool,
    /// Some frame's outer tag was stripped by the NIC.
    stripped: bool,
}

impl Default for Classified {
    fn default() -> Self {
        Classified {
            actions: [Action::Drop(DropReason::Malformed); BURST],
            len: 0,
            floods: FloodSets::default(),
            rx_bytes: 0,
            uniform: false,
            stripped: false,
        }
    }
}

impl Classified {
    /// Frame i's action is `actions()[i]`.
    #[inline(always)]
    pub fn actions(&self) -> &[Action] {
        &self.actions[..self.len.min(BURST)]
    }

    /// Bytes received in the burst.
    #[inline(always)]
    pub fn rx_bytes(&self) -> u64 {
        self.rx_bytes
    }

    /// The action of every frame, when they all have the same one and no
    /// frame carries a NIC-stripped tag (so the burst can move as a whole).
    #[inline(always)]
    pub fn uniform(&self) -> Option<Action> {
        (self.uniform && !self.stripped && self.len > 0).then_some(self.actions[0])
    }
}

/// A frame between the two passes of [`classify`].
#[derive(Clone, Copy)]
enum Lane {
    /// Its action is already known (dropped).
    Decided,
    /// Same decision inputs as the frame before it: same action.
    AsPrevious,
    /// To be learned (`src`, a unicast source) and looked up (`dst`, a
    /// unicast destination; `None` floods).
    Lookup {
        vlan: u16,
        in_tci: Option<u16>,
        src: Option<MacKey>,
        dst: Option<MacKey>,
    },
}

/// The bytes an L2 decision depends on, which are exactly the bytes the
/// parser reads: the two addresses and the EtherType (14 bytes), then per
/// VLAN tag its TCI and the next EtherType (4 more each, 22 at most: a TPID
/// after two tags is refused there). Whatever follows (the IP header, the
/// payload, the length) changes nothing, so two frames with equal header
/// keys get the same decision from the same table. Frames shorter than 22
/// bytes and frames with a tag stripped by the NIC have no key: each is
/// decided on its own.
#[inline(always)]
fn header_key(f: &impl Frame) -> Option<(u128, u64)> {
    if f.stripped_tci().is_some() {
        return None;
    }
    let d = f.data();
    let head = *d.first_chunk::<16>()?;
    let tail = *d.get(14..22)?.first_chunk::<8>()?;
    let is_tpid = |hi: u8, lo: u8| EtherType(u16::from_be_bytes([hi, lo])).is_vlan_tpid();
    let (a, b) = (u128::from_le_bytes(head), u64::from_le_bytes(tail));
    // In little-endian order byte i of a window is bits 8i..8i+8.
    Some(if !is_tpid(head[12], head[13]) {
        // Untagged: bytes 0..14.
        (a & (u128::MAX >> 16), 0)
    } else if !is_tpid(tail[2], tail[3]) {
        // One tag: bytes 0..18 (16..18 are bytes 2..4 of the tail window).
        (a, b & 0xffff_0000)
    } else {
        // Two tags: bytes 0..22.
        (a, b)
    })
}

/// Classifies the burst `rx` that arrived on `in_port`, into `out`.
///
/// Contract: reads the frames and never changes them; learns every unicast
/// source in the bridge's MAC table; leaves one action per frame in `out`
/// (frame i's at `out.actions()[i]`) with every flood resolved: a flood
/// to no port is a drop, to one port an output, to more an
/// `Action::Flood` of a set in `out.floods`. The actions are exactly those
/// of deciding each frame alone, in order (a frame with the same decision
/// inputs as its predecessor reuses its action instead of a second lookup).
///
/// Two passes: the first parses every frame, applies the input port's VLAN
/// rules, hashes the MAC keys and prefetches their buckets; the second
/// learns, looks up and resolves, by then mostly from cache.
pub fn classify<B: Burst>(view: &SwitchView, in_port: PortId, rx: &B, out: &mut Classified) {
    let n = rx.len().min(BURST);
    out.len = n;
    out.floods.clear();
    out.rx_bytes = 0;
    out.uniform = true;
    out.stripped = false;
    let Some((port, bridge)) = view
        .port(in_port)
        .and_then(|p| Some((p, view.bridge(p.bridge)?)))
    else {
        // A port the snapshot does not know (any more): nowhere to go.
        for i in 0..n {
            out.rx_bytes += rx.get(i).map_or(0, |f| u64::from(f.pkt_len()));
        }
        out.actions[..n].fill(Action::Drop(DropReason::NoOutput));
        return;
    };
    let fdb = &*bridge.fdb;
    for i in 0..n {
        if let Some(f) = rx.get(i) {
            f.prefetch();
        }
    }

    // Pass 1: parse, VLAN rules, keys; prefetch every bucket to be touched.
    let mut lanes = [Lane::Decided; BURST];
    let mut previous = None;
    for (i, lane) in lanes[..n].iter_mut().enumerate() {
        let Some(f) = rx.get(i) else {
            out.actions[i] = Action::Drop(DropReason::Malformed);
            previous = None;
            continue;
        };
        out.rx_bytes += u64::from(f.pkt_len());
        let header = header_key(f);
        if header.is_some() && header == previous {
            *lane = Lane::AsPrevious;
            continue;
        }
        previous = header;
        let stripped = f.stripped_tci();
        out.stripped |= stripped.is_some();
        let key = match FlowKey::extract_l2(f.data(), stripped) {
            Ok(key) => key,
            Err(_) => {
                out.actions[i] = Action::Drop(DropReason::Malformed);
                continue;
            }
        };
        let in_tci = key.has_vlan.then_some(key.vlan_tci);
        let Some(vlan) = port.vlan.ingress(key.has_vlan.then(|| key.vid())) else {
            out.actions[i] = Action::Drop(DropReason::VlanViolation);
            continue;
        };
        let src = key
            .dl_src
            .is_unicast()
            .then(|| fdb.key(vlan, key.dl_src.to_u64()));
        let dst = key
            .dl_dst
            .is_unicast()
            .then(|| fdb.key(vlan, key.dl_dst.to_u64()));
        if let Some(k) = src {
            fdb.prefetch(k);
        }
        if let Some(k) = dst {
            fdb.prefetch(k);
        }
        *lane = Lane::Lookup {
            vlan,
            in_tci,
            src,
            dst,
        };
    }

    // Pass 2: learn, look up, resolve floods, in frame order.
    for (i, lane) in lanes[..n].iter().enumerate() {
        let action = match *lane {
            Lane::Decided => out.actions[i],
            // Never frame 0: it has no previous header.
            Lane::AsPrevious => out.actions[i.saturating_sub(1)],
            Lane::Lookup {
                vlan,
                in_tci,
                src,
                dst,
            } => {
                if let Some(k) = src {
                    fdb.learn_key(k, in_port);
                }
                match dst.and_then(|k| fdb.lookup_key(k)) {
                    Some(p) if p == in_port => Action::Drop(DropReason::NoOutput),
                    Some(p) => match view.port(p).and_then(|o| o.vlan.egress(vlan)) {
                        Some(eg) => Action::Output(p, TagAction::for_egress(in_tci, eg)),
                        None => Action::Drop(DropReason::NoOutput),
                    },
                    None => out
                        .floods
                        .resolve(view, bridge.ports, in_port, vlan, in_tci),
                }
            }
        };
        out.actions[i] = action;
        out.uniform &= action == out.actions[0];
    }
}
