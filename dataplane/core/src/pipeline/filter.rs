//! Stage 1b: port security and security groups, between `classify` and
//! `execute`, as Neutron's OVS firewall driver has them.
//!
//! For a frame from a port with port security: its source must be the
//! port's (`acl::PortAcl::check_source`), then its connection is tracked in
//! the zone of its VLAN (one per network) and, if new, must be admitted by
//! an egress rule of the port. For every output port with port security:
//! ARP passes, other non-IP frames do not; a new connection must be
//! admitted by one of its ingress rules. Established and related traffic
//! passes both ways; invalid traffic does not. A new connection admitted
//! is committed. A flood that some ports refuse goes to the others.
//!
//! A frame's connection is tracked once, whatever number of ports it goes
//! to; a burst's connection keys are placed and their connections (through
//! the worker's cache) or index buckets prefetched before any is looked up. Bursts from and to ports without
//! port security pass untouched, at the cost of one check per burst.
use super::{Action, Classified, DropReason};
use crate::acl::{addr_of, Direction, PortAcl, RuleQuery};
use crate::conntrack::{ConnCache, ConnTable, CtPacket, CtSlot, CtState, Untracked, L4};
use crate::flow_key::FlowKey;
use crate::frame::{Burst, Frame, BURST};
use crate::port::{PortId, PortMask};
use crate::view::SwitchView;
use crate::wire::EtherType;

/// What `filter` did to a burst.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FilterCounts {
    /// New connections committed.
    pub committed: u64,
    /// Of them, refused because the table was full.
    pub table_full: u64,
    /// Frames the input port may not send, by `SpoofReason::index`.
    pub spoofed: [u64; 8],
}

/// `p`'s filter, if it has port security on.
pub(crate) fn secured(view: &SwitchView, p: PortId) -> Option<&PortAcl> {
    view.port(p)
        .and_then(|v| v.acl.as_deref())
        .filter(|a| a.port_security)
}

/// What the rules check of a new connection's packet crossing a port in
/// `direction`. Only a TCP SYN, a UDP (or other port-less) packet and an
/// ICMP echo request open connections: the echo's type goes where a
/// rule's port range is checked, its code (0) beside it.
fn query(direction: Direction, p: &CtPacket) -> RuleQuery {
    let k = &p.key;
    let port = match p.l4 {
        L4::IcmpEchoRequest if k.v6 => 128,
        L4::IcmpEchoRequest => 8,
        _ => k.dport,
    };
    RuleQuery {
        direction,
        v6: k.v6,
        protocol: k.proto,
        port,
        icmp_code: 0,
        remote: match direction {
            Direction::Ingress => addr_of(k.v6, &k.src),
            Direction::Egress => addr_of(k.v6, &k.dst),
        },
    }
}

/// A frame between the two passes of [`filter`].
struct Pending {
    action: Action,
    targets: PortMask,
    guarded: PortMask,
    kind: Kind,
    /// An IP frame's key placed in the table (its line prefetched).
    at: Option<CtSlot>,
}

/// What a frame is to the firewall.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// ARP: no connection; port security checked it.
    Arp,
    /// Neither IP nor ARP.
    Other,
    /// IP without a connection (neighbour discovery, fragments after the
    /// first): left to the rules' base policy.
    Untracked(Untracked),
    /// Its connection's key.
    Ip(CtPacket),
}

impl Kind {
    /// The kind of a frame of EtherType `dl_type` whose L3 bytes are `l3`
    /// (of `l3_whole` in all: the rest may be in chained buffers), its
    /// connection in `zone`.
    pub(crate) fn of(dl_type: u16, zone: u16, l3: &[u8], l3_whole: usize) -> Kind {
        match EtherType(dl_type) {
            EtherType::ARP => Kind::Arp,
            t @ (EtherType::IPV4 | EtherType::IPV6) => {
                match CtPacket::parse_prefix(zone, t, l3, l3_whole) {
                    Ok(p) => Kind::Ip(p),
                    Err(why) => Kind::Untracked(why),
                }
            }
            _ => Kind::Other,
        }
    }
}

/// Why a frame may cross a port with port security.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admitted {
    Arp,
    /// Not IP, going out: port security checked it already.
    NonIpOut,
    /// ICMP that opens nothing (neighbour discovery and the like).
    IcmpInfo,
    /// Established or related to a tracked connection.
    Tracked,
    /// A new connection this rule (an index into the port's rules) admits.
    Rule(usize),
}

/// May a frame of `kind` in connection state `state` cross the port `acl`
/// guards in `direction`?
pub(crate) fn admit(
    acl: &PortAcl,
    direction: Direction,
    kind: &Kind,
    state: CtState,
) -> Result<Admitted, DropReason> {
    match kind {
        Kind::Arp => Ok(Admitted::Arp),
        Kind::Other => match direction {
            Direction::Egress => Ok(Admitted::NonIpOut),
            Direction::Ingress => Err(DropReason::Denied),
        },
        Kind::Untracked(Untracked::IcmpInfo) => Ok(Admitted::IcmpInfo),
        Kind::Untracked(_) => Err(DropReason::Denied),
        Kind::Ip(_) if state.has(CtState::INV) => Err(DropReason::CtInvalid),
        Kind::Ip(_) if state.has(CtState::EST) || state.has(CtState::REL) => Ok(Admitted::Tracked),
        Kind::Ip(p) => acl
            .index
            .lookup(&acl.rules, &query(direction, p))
            .map(Admitted::Rule)
            .ok_or(DropReason::Denied),
    }
}

/// Stage 1b: applies port security and the security groups of `view` to
/// the burst `rx` from `in_port` that `classify` left in `out`, tracking
/// connections in `ct` through the worker's `cache` of them.
///
/// Contract: reads the frames and never changes them; only narrows
/// actions (an output or a flood becomes a drop, or a flood a smaller one),
/// never widens one; commits the new connections it admits.
pub fn filter<B: Burst>(
    view: &SwitchView,
    ct: &ConnTable,
    cache: &mut ConnCache,
    in_port: PortId,
    rx: &B,
    out: &mut Classified,
) -> FilterCounts {
    let mut counts = FilterCounts::default();
    let source = secured(view, in_port);
    if source.is_none() && !view.any_secured() {
        return counts;
    }
    let n = out.actions().len().min(BURST);
    // Pass 1: parse, port security, connection keys placed and their index
    // buckets prefetched for the whole burst (as classify does for MACs).
    let mut pending: [Option<Pending>; BURST] = [const { None }; BURST];
    for (i, slot) in pending.iter_mut().enumerate().take(n) {
        let action = out.actions()[i];
        let targets: PortMask = match action {
            Action::Output(p, _) => PortMask::from_iter([p]),
            Action::Flood(f) => out
                .floods
                .get(f)
                .map(|s| s.targets().iter().map(|&(p, _)| p).collect())
                .unwrap_or(PortMask::EMPTY),
            // Dropped, or answered by the switch: nothing crosses a port.
            Action::Drop(_) | Action::Answer(_) => continue,
        };
        let guarded: PortMask = targets
            .iter()
            .filter(|&p| secured(view, p).is_some())
            .collect();
        if source.is_none() && guarded.is_empty() {
            continue;
        }
        let (Some(f), Some(zone)) = (rx.get(i), out.vlan_of(i)) else {
            continue;
        };
        let data = f.data();
        let frame_len = f.pkt_len() as usize;
        let Ok(key) = FlowKey::extract_l4_chained(data, frame_len, f.stripped_tci()) else {
            out.set_action(i, Action::Drop(DropReason::Malformed));
            continue;
        };
        let l3 = data.get(usize::from(key.l3_offset)..).unwrap_or_default();
        if let Some(acl) = source {
            if let Err(why) = acl.check_source(&key, l3) {
                counts.spoofed[why.index()] += 1;
                out.set_action(i, Action::Drop(DropReason::Spoofed));
                continue;
            }
        }
        let l3_whole = frame_len.saturating_sub(usize::from(key.l3_offset));
        let kind = Kind::of(key.dl_type, zone, l3, l3_whole);
        let at = match &kind {
            Kind::Ip(p) => {
                let at = ct.slot(&p.key);
                ct.prefetch_cached(cache, at);
                Some(at)
            }
            _ => None,
        };
        *slot = Some(Pending {
            action,
            targets,
            guarded,
            kind,
            at,
        });
    }

    // Pass 1b: the buckets are arriving; prefetch the connections they
    // point to (the cache's hits were prefetched in pass 1).
    for at in pending.iter().take(n).flatten().filter_map(|p| p.at) {
        ct.prefetch_conn(cache, at);
    }

    // Pass 2: track, decide, commit, in frame order.
    for (i, slot) in pending.iter_mut().enumerate().take(n) {
        let Some(Pending {
            action,
            targets,
            guarded,
            kind,
            at,
        }) = slot.take()
        else {
            continue;
        };
        let state = match (&kind, at) {
            (Kind::Ip(p), Some(at)) => ct.track_cached(cache, at, p),
            _ => CtState::default(),
        };
        // A new connection a rule admitted is committed.
        let mut commit = false;
        let mut passes = |acl: &PortAcl, direction| {
            let a = admit(acl, direction, &kind, state)?;
            commit |= matches!(a, Admitted::Rule(_));
            Ok::<_, DropReason>(())
        };
        if let Some(acl) = source {
            if let Err(why) = passes(acl, Direction::Egress) {
                out.set_action(i, Action::Drop(why));
                continue;
            }
        }
        let mut refused = PortMask::EMPTY;
        let mut why = DropReason::Denied;
        for p in guarded.iter() {
            if let Some(acl) = secured(view, p) {
                if let Err(w) = passes(acl, Direction::Ingress) {
                    refused.insert(p);
                    why = w;
                }
            }
        }
        if commit {
            if let (Kind::Ip(p), Some(at)) = (&kind, at) {
                counts.committed += 1;
                if ct.commit_at(at, p).is_err() {
                    counts.table_full += 1;
                }
            }
        }
        if refused.is_empty() {
            continue;
        }
        let keep: PortMask = targets.iter().filter(|&p| !refused.contains(p)).collect();
        let narrowed = match action {
            Action::Flood(fi) => match out.floods.restrict(fi, keep) {
                Action::Drop(_) => Action::Drop(why),
                a => a,
            },
            _ => Action::Drop(why),
        };
        out.set_action(i, narrowed);
    }
    counts
}

/// Cuts the tracked connections `view`'s rules no longer admit (a rule
/// removed, a port's groups or addresses changed), as Neutron's firewall
/// does, instead of leaving them to expire; returns how many went. Runs on
/// the control thread after a snapshot with new rules is published: for
/// each connection, the secured ports of its zone whose addresses it comes
/// from must still admit it out, and those it goes to must still admit it
/// in.
pub fn revalidate(view: &SwitchView, ct: &ConnTable) -> usize {
    use crate::conntrack::ConnState;
    let secured: Vec<(&crate::vlan::PortVlan, &PortAcl)> = view
        .ports()
        .filter_map(|p| Some((&p.vlan, secured(view, p.id)?)))
        .collect();
    if secured.is_empty() || ct.is_empty() {
        return 0;
    }
    ct.remove_where(|c| {
        let k = &c.key;
        let (src, dst) = (addr_of(k.v6, &k.src), addr_of(k.v6, &k.dst));
        // ICMP echo: the request's type; TCP/UDP: the destination port.
        let port = match c.state {
            ConnState::Icmp { .. } => {
                if k.v6 {
                    128
                } else {
                    8
                }
            }
            _ => k.dport,
        };
        let admits = |acl: &PortAcl, direction, remote| {
            let q = RuleQuery {
                direction,
                v6: k.v6,
                protocol: k.proto,
                port,
                icmp_code: 0,
                remote,
            };
            acl.index.lookup(&acl.rules, &q).is_some()
        };
        // Cut when a secured port of its zone that sends it (owns its
        // source) no longer lets it out, or one that receives it no longer
        // lets it in.
        secured.iter().any(|&(vlan, acl)| {
            vlan.is_member(k.zone)
                && ((acl.owns(k.v6, src) && !admits(acl, Direction::Egress, dst))
                    || (acl.owns(k.v6, dst) && !admits(acl, Direction::Ingress, src)))
        })
    })
}
