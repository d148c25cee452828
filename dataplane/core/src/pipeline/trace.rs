//! `vswitchctl trace`: what the pipeline would do with one frame, step by
//! step, as `ovs-appctl ofproto/trace` tells it: the VLAN decision, port
//! security, the connection state, the security-group rule that admits the
//! frame or the reason it is dropped, the MAC-table decision and the
//! output. It reads a snapshot's view and the connection tracker and
//! changes neither: nothing is learned, tracked, committed or sent.
//! Control path only (it allocates its report).
use super::classify::forward;
use super::filter::{admit, secured, Admitted, Kind};
use super::{Action, DropReason, FloodSets, TagAction};
use crate::acl::{is_icmp, AclRule, Direction, PortAcl, Prefix, Remote};
use crate::conntrack::{ConnTable, CtState};
use crate::flow_key::{FlowKey, ParseDepth};
use crate::flow_table::program::{Edit, Emit, FlowId, FlowTables, Op, TraceStep};
use crate::flow_table::Field;
use crate::frame::mem::MemFrame;
use crate::frame::Frame;
use crate::port::PortId;
use crate::view::SwitchView;
use crate::wire::ethernet::SwitchingHeader;

/// The flow tables' part of a trace: each lookup, the flow it found, the
/// actions; the frame as it goes on to NORMAL, or `None` when the
/// tables decide its fate alone (the last line says what it is).
fn trace_flows(
    view: &SwitchView,
    tables: &FlowTables,
    conntrack: Option<&ConnTable>,
    in_port: PortId,
    frame: &[u8],
    describe: &dyn Fn(FlowId) -> Option<String>,
    out: &mut Vec<String>,
) -> Option<Vec<u8>> {
    let mut f = MemFrame::new(frame);
    let Some(key) = super::flows::key_of(&f) else {
        out.push("=> drop: malformed L2 header".to_owned());
        return None;
    };
    let name = |p: PortId| {
        view.port(p)
            .map_or(format!("port {}", p.get()), |v| v.name.clone())
    };
    let mut ct = super::flows::FrameCt::new(conntrack, None, frame, frame.len(), &key, true);
    let (steps, t) = tables.trace(in_port, &key, &mut ct);
    for s in steps {
        out.push(match s {
            TraceStep::Table { table, depth, flow } => {
                let pad = "  ".repeat(depth);
                match flow {
                    Some(id) => format!(
                        "{pad}flow table {table}: {}",
                        describe(id).unwrap_or_else(|| format!("flow {id}"))
                    ),
                    None => format!("{pad}flow table {table}: no flow matches"),
                }
            }
            TraceStep::Op(Op::Edit(e)) => format!(
                "    {}",
                match e {
                    Edit::SetVid(v) => format!("mod_vlan_vid:{v}"),
                    Edit::SetPcp(p) => format!("mod_vlan_pcp:{p}"),
                    Edit::StripVlan => "strip_vlan".to_owned(),
                    Edit::SetDlSrc(a) => format!("mod_dl_src:{a}"),
                    Edit::SetDlDst(a) => format!("mod_dl_dst:{a}"),
                    Edit::SetNwSrc(a) => format!("mod_nw_src:{}", std::net::Ipv4Addr::from(a)),
                    Edit::SetNwDst(a) => format!("mod_nw_dst:{}", std::net::Ipv4Addr::from(a)),
                    Edit::SetNwTos(t) => format!("mod_nw_tos:{t}"),
                    Edit::SetTpSrc(p) => format!("mod_tp_src:{p}"),
                    Edit::SetTpDst(p) => format!("mod_tp_dst:{p}"),
                    Edit::DecTtl => "dec_ttl".to_owned(),
                    Edit::SetTtl(t) => format!("mod_nw_ttl:{t}"),
                    Edit::PushVlan(t) => format!("push_vlan:{t:#06x}"),
                }
            ),
            TraceStep::Op(Op::Emit(e)) => format!(
                "    {}",
                match e {
                    Emit::Port(p) => format!("output:{}", name(p)),
                    Emit::InPort => "in_port".to_owned(),
                    Emit::Normal => "NORMAL".to_owned(),
                    Emit::Flood => "FLOOD".to_owned(),
                    Emit::All => "ALL".to_owned(),
                }
            ),
            TraceStep::Register { field, value } => match field {
                Field::Reg(r) => format!("    reg{r}={value:#x}"),
                _ => format!("    metadata={value:#x}"),
            },
            TraceStep::Ct {
                zone,
                state,
                mark,
                commit,
            } => format!(
                "    ct{}: zone {zone}, ct_state {}, ct_mark {mark:#x}",
                if commit { "(commit)" } else { "" },
                CtState(state)
            ),
            TraceStep::Nowhere => "    output to a port not on the bridge: nothing".to_owned(),
            TraceStep::TooDeep => "    resubmits nested too deep".to_owned(),
        });
    }
    if t.overflow {
        out.push("=> drop: the flow tables ran out of room (resubmits or actions)".to_owned());
        return None;
    }
    let members = view.bridge_of(in_port).map(|b| b.ports).unwrap_or_default();
    let mut normal = None;
    let mut sent = Vec::new();
    for &op in t.ops() {
        match op {
            Op::Edit(e) => {
                if !super::flows::apply_edit(&mut f, e) {
                    out.push("=> drop: an edit cannot be made on this frame".to_owned());
                    return None;
                }
            }
            Op::Emit(Emit::Normal) => normal = Some(f.data().to_vec()),
            Op::Emit(e) => {
                if let Some(ports) = super::flows::targets(e, in_port, members) {
                    sent.extend(ports.iter().map(name));
                }
            }
        }
    }
    if !sent.is_empty() {
        out.push(format!("=> output to {}", sent.join(", ")));
    }
    if normal.is_none() && sent.is_empty() {
        out.push("=> drop: the flow tables send it nowhere".to_owned());
    }
    normal
}

/// The steps `frame`, arriving on `in_port`, would take; the last line
/// says where it goes or why it is dropped. `describe` gives a flow's
/// text (`dump-flows`' match and actions) by its id.
pub fn trace(
    view: &SwitchView,
    ct: Option<&ConnTable>,
    in_port: PortId,
    frame: &[u8],
    flow_text: &dyn Fn(FlowId) -> Option<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    let end = |out: &mut Vec<String>, why: &str| out.push(format!("=> drop: {why}"));
    let Some((port, bridge)) = view
        .port(in_port)
        .and_then(|p| Some((p, view.bridge(p.bridge)?)))
    else {
        end(&mut out, "no such port in the running configuration");
        return out;
    };
    out.push(format!(
        "bridge {}, in_port {} ({} bytes)",
        bridge.name,
        port.name,
        frame.len()
    ));
    let edited;
    let mut frame = frame;
    if let Some(tables) = view.flows_of(in_port) {
        match trace_flows(view, tables, ct, in_port, frame, flow_text, &mut out) {
            Some(normal) => {
                edited = normal;
                frame = &edited;
                out.push("NORMAL:".to_owned());
            }
            None => return out,
        }
    }
    let Ok(h) = SwitchingHeader::parse(frame, None) else {
        end(&mut out, "malformed L2 header");
        return out;
    };
    out.push(format!("frame: {} -> {}", h.src, h.dst));

    // 1. VLAN
    let in_vid = h.outer_tci.map(|t| t & 0x0fff);
    let tag = in_vid.map_or("untagged".to_owned(), |v| format!("tag {v}"));
    let Some(vlan) = port.vlan.ingress(in_vid) else {
        out.push(format!("vlan: {tag} is not carried by {}", port.name));
        end(&mut out, "vlan");
        return out;
    };
    out.push(format!("vlan: {tag} -> VLAN {vlan}"));
    if !bridge.forward_bpdu && h.dst.is_reserved() {
        end(&mut out, "link-local destination (forward_bpdu is off)");
        return out;
    }

    // 2. MAC table (looked up, not learned)
    let fdb = &*bridge.fdb;
    let known = if h.dst.is_unicast() {
        fdb.lookup(vlan, h.dst.to_u64())
    } else {
        None
    };
    let mut floods = FloodSets::default();
    let action = forward(
        view,
        &mut floods,
        &view.reachable_from(in_port, bridge.ports),
        in_port,
        known,
        vlan,
        h.outer_tci,
    );
    let name = |p: PortId| {
        view.port(p)
            .map_or(format!("port {p:?}"), |v| v.name.clone())
    };
    out.push(match known {
        Some(p) => format!("mac table: {} in VLAN {vlan} is on {}", h.dst, name(p)),
        None if h.dst.is_unicast() => {
            format!("mac table: {} in VLAN {vlan} is unknown: flood", h.dst)
        }
        None => format!("mac table: {} is multicast: flood", h.dst),
    });
    let targets: Vec<(PortId, TagAction)> = match action {
        Action::Output(p, t) => vec![(p, t)],
        Action::Flood(f) => floods
            .get(f)
            .map(|s| s.targets().to_vec())
            .unwrap_or_default(),
        Action::Drop(_) | Action::Answer(_) => Vec::new(),
    };
    if targets.is_empty() {
        end(&mut out, "no output port in the VLAN but the input port");
        return out;
    }

    // 3. Port security and security groups
    let source = secured(view, in_port);
    let guarded: Vec<(PortId, &PortAcl)> = targets
        .iter()
        .filter_map(|&(p, _)| Some((p, secured(view, p)?)))
        .collect();
    let mut allowed: Vec<(PortId, TagAction)> = targets.clone();
    if source.is_some() || !guarded.is_empty() {
        let Ok(key) = FlowKey::extract(frame, None, ParseDepth::L4) else {
            end(&mut out, "malformed (L3/L4 headers)");
            return out;
        };
        let l3 = frame.get(usize::from(key.l3_offset)..).unwrap_or_default();
        if let Some(acl) = source {
            if let Err(why) = acl.check_source(&key, l3) {
                out.push(format!(
                    "port security of {}: not its to send ({})",
                    port.name,
                    why.name()
                ));
                end(&mut out, "spoofed");
                return out;
            }
            out.push(format!(
                "port security of {}: source is the port's",
                port.name
            ));
        }
        let kind = Kind::of(key.dl_type, vlan, l3, l3.len());
        let state = match (&kind, ct) {
            (Kind::Ip(p), Some(ct)) => ct.peek(p),
            _ => CtState::default(),
        };
        out.push(match &kind {
            Kind::Ip(_) if ct.is_some() => format!("conntrack zone {vlan}: ct_state={state}"),
            Kind::Ip(_) => "conntrack: no tracker yet (ct_state=+new)".to_owned(),
            Kind::Arp => "conntrack: ARP, not tracked".to_owned(),
            Kind::Untracked(why) => format!("conntrack: not tracked ({why:?})"),
            Kind::Other => "conntrack: neither IP nor ARP".to_owned(),
        });
        let mut commit = false;
        let mut say = |out: &mut Vec<String>, who: &str, acl: &PortAcl, d: Direction| {
            let r = admit(acl, d, &kind, state);
            let dir = match d {
                Direction::Ingress => "ingress",
                Direction::Egress => "egress",
            };
            out.push(match r {
                Ok(Admitted::Rule(i)) => {
                    commit = true;
                    let rule = acl.rules.get(i).map_or("?".to_owned(), describe);
                    format!("{dir} of {who}: new connection admitted by rule #{i}: {rule}")
                }
                Ok(a) => format!("{dir} of {who}: passes ({})", admitted(a)),
                Err(DropReason::CtInvalid) => format!("{dir} of {who}: invalid (ct_state=+inv)"),
                Err(_) => format!("{dir} of {who}: no rule admits it"),
            });
            r.is_ok()
        };
        if let Some(acl) = source {
            if !say(&mut out, &port.name, acl, Direction::Egress) {
                end(&mut out, "denied by the input port's egress rules");
                return out;
            }
        }
        for (p, acl) in &guarded {
            if !say(&mut out, &name(*p), acl, Direction::Ingress) {
                allowed.retain(|&(q, _)| q != *p);
            }
        }
        if commit {
            out.push("conntrack: the connection would be committed (ct(commit))".to_owned());
        }
        if allowed.is_empty() {
            end(&mut out, "denied by every output port's ingress rules");
            return out;
        }
    }

    // 4. Output
    let outputs: Vec<String> = allowed
        .iter()
        .map(|&(p, t)| {
            let edit = match t {
                TagAction::Keep => String::new(),
                TagAction::Pop => " (tag removed)".to_owned(),
                TagAction::Push(tci) => format!(" (tag {} pushed)", tci & 0x0fff),
                TagAction::Set(tci) => format!(" (tag set to {})", tci & 0x0fff),
            };
            format!("{}{edit}", name(p))
        })
        .collect();
    out.push(format!("=> output: {}", outputs.join(", ")));
    out
}

fn prefix(p: &Prefix) -> String {
    if p.v6 {
        format!("{}/{}", std::net::Ipv6Addr::from(p.base), p.len)
    } else {
        format!("{}/{}", std::net::Ipv4Addr::from(p.base as u32), p.len)
    }
}

fn admitted(a: Admitted) -> &'static str {
    match a {
        Admitted::Arp => "ARP",
        Admitted::NonIpOut => "not IP, checked by port security",
        Admitted::IcmpInfo => "ICMP that opens no connection",
        Admitted::Tracked => "established or related connection",
        Admitted::Rule(_) => "a rule",
    }
}

/// A rule as Neutron shows it: direction, ethertype, protocol, ports or
/// ICMP type/code, remote.
fn describe(r: &AclRule) -> String {
    let icmp = r.protocol.is_some_and(|p| is_icmp(p, r.v6));
    let proto = match r.protocol {
        None => "any".to_owned(),
        Some(_) if icmp => "icmp".to_owned(),
        Some(6) => "tcp".to_owned(),
        Some(17) => "udp".to_owned(),
        Some(p) => format!("protocol {p}"),
    };
    let ports = match (icmp, r.port_min, r.port_max) {
        (true, 255, _) => String::new(),
        (true, t, 255) => format!(" type {t}"),
        (true, t, c) => format!(" type {t} code {c}"),
        (false, 0, 65535) => String::new(),
        (false, a, b) if a == b => format!(" port {a}"),
        (false, a, b) => format!(" ports {a}-{b}"),
    };
    let remote = match &r.remote {
        Remote::Any => "anywhere".to_owned(),
        Remote::Prefix(p) => prefix(p),
        Remote::Group(set) => format!("a remote group of {} addresses", set.len()),
    };
    let dir = match r.direction {
        Direction::Ingress => "ingress from",
        Direction::Egress => "egress to",
    };
    format!(
        "{} {proto}{ports}, {dir} {remote}",
        if r.v6 { "IPv6" } else { "IPv4" }
    )
}
