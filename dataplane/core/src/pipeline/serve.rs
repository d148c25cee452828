//! Stage 1a: the switch's own services, between `classify` and the
//! security stage. Today one: the DHCPv4 and DHCPv6 servers of a port whose
//! Neutron subnets have DHCP enabled (`view::PortView::dhcp`). Every DHCP
//! message a served port sends the server (IPv4 UDP to port 67, IPv6 UDP
//! to port 547) stays in the switch:
//! it is rewritten in place into the answer, which goes back out of the
//! same port (`Action::Answer`), or, when there is nothing to answer (a
//! RELEASE, another MAC, another server), dropped as having no output. A
//! port without a server costs one check per burst; a served port's frames
//! cost a few byte reads each. An ARP request from the port for the
//! server's address is answered too, as the DHCP agent's port would, so a
//! client can renew its lease by unicast.
//!
//! The ARP responder of a bridge with tunnelled Neutron networks
//! (`view::BridgeView::known`) answers here too: an ARP request for the
//! address of a port the model knows in the frame's network is answered
//! by the switch, never flooded over the tunnels (l2population's ARP
//! responder in Neutron's br-tun).
use super::{Action, Classified, DropReason};
use crate::dhcp::{self, DhcpCounter, ToServer, Unanswered};
use crate::dhcp6;
use crate::frame::{Burst, Frame, BURST};
use crate::l2pop::KnownPorts;
use crate::port::PortId;
use crate::view::PortView;
use crate::view::SwitchView;
use crate::wire::EtherType;

/// What [`serve`] did to a burst.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ServeCounts {
    /// By [`DhcpCounter::index`].
    pub dhcp: [u64; DhcpCounter::COUNT],
    /// ARP requests the responder answered.
    pub arp_answered: u64,
}

/// Stage 1a: answers what the burst `rx` from `in_port` asks the switch's
/// DHCP server, if the port has one; `None` (nothing done) otherwise.
///
/// Contract: touches only frames to the server that `classify` did not
/// drop (but for having no other port to go to): each becomes its answer (`Action::Answer(in_port)`) or is dropped
/// (`DropReason::NoOutput`). Other frames and actions are left as they are.
pub fn serve<B: Burst>(
    view: &SwitchView,
    in_port: PortId,
    rx: &mut B,
    out: &mut Classified,
) -> Option<ServeCounts> {
    let port = view.port(in_port)?;
    let known = view
        .bridge(port.bridge)
        .and_then(|b| b.known.as_deref())
        .filter(|k| k.answers());
    let servers = port.dhcp.as_deref();
    if servers.is_none() && known.is_none() {
        return None;
    }
    let mut counts = ServeCounts::default();
    let n = out.actions().len().min(BURST);
    for i in 0..n {
        // Malformed, outside the port's VLANs, link-local: not served. A
        // frame with nowhere else to go (the only port of its VLAN) is.
        if matches!(out.actions()[i], Action::Drop(r) if r != DropReason::NoOutput) {
            continue;
        }
        let Some(f) = rx.get_mut(i) else { continue };
        if let Some(k) = known {
            if answer_known(k, port, f) {
                f.set_offload(crate::offload::Offload::NONE);
                counts.arp_answered += 1;
                out.set_action(i, Action::Answer(in_port));
                continue;
            }
        }
        let Some(servers) = servers else { continue };
        // Each frame is sorted once: DHCPv4 or ARP to the v4 server, else
        // DHCPv6 to the v6 one, else not for the switch.
        let v4 = servers
            .v4
            .as_ref()
            .and_then(|cfg| Some((cfg, dhcp::to_server(f.data())?)));
        let answered = match v4 {
            // ARP for the server's address (a unicast renewal needs it).
            Some((cfg, ToServer::Arp(l3))) => {
                if f.data_mut().is_some_and(|d| dhcp::answer_arp(cfg, d, l3)) {
                    out.set_action(i, Action::Answer(in_port));
                }
                continue;
            }
            Some((cfg, ToServer::Dhcp(l3))) => {
                counts.dhcp[DhcpCounter::Requests.index()] += 1;
                dhcp::parse(f.data(), l3).and_then(|req| {
                    let kind = dhcp::decide(cfg, &req)?;
                    rewrite(f, l3 + cfg.max_reply_len(), |buf| {
                        dhcp::write_reply(cfg, &req, kind, buf, l3)
                    })?;
                    Ok(DhcpCounter::answered(kind))
                })
            }
            None => {
                let Some((cfg, l3)) = servers
                    .v6
                    .as_ref()
                    .and_then(|cfg| Some((cfg, dhcp6::to_server(f.data())?)))
                else {
                    continue;
                };
                counts.dhcp[DhcpCounter::Requests.index()] += 1;
                dhcp6::parse(cfg, f.data(), l3).and_then(|req| {
                    let kind = dhcp6::decide(cfg, &req)?;
                    rewrite(f, l3 + cfg.max_reply_len(), |buf| {
                        dhcp6::write_reply(cfg, &req, kind, buf, l3)
                    })?;
                    Ok(DhcpCounter::answered6(kind))
                })
            }
        };
        let (counter, action) = match answered {
            Ok(counter) => {
                // The answer's checksums are whole, whatever the request's were.
                f.set_offload(crate::offload::Offload::NONE);
                (counter, Action::Answer(in_port))
            }
            Err(_) => (DhcpCounter::Unanswered, Action::Drop(DropReason::NoOutput)),
        };
        counts.dhcp[counter.index()] += 1;
        out.set_action(i, action);
    }
    Some(counts)
}

/// The ARP and neighbour responder: answers `f` in place if it is an ARP
/// request or an IPv6 neighbour solicitation for a known address in the
/// VLAN it arrived in on `port`.
fn answer_known<F: Frame>(known: &KnownPorts, port: &PortView, f: &mut F) -> bool {
    let Some((l3, ethertype)) = dhcp::l3_behind_one_tag(f.data()) else {
        return false;
    };
    if ethertype != EtherType::ARP && ethertype != EtherType::IPV6 {
        return false;
    }
    let tci = match f.data().get(14..16) {
        Some(t) if l3 == 18 => Some(u16::from_be_bytes([t[0], t[1]])),
        _ => f.stripped_tci(),
    };
    let Some(vlan) = port.vlan.ingress(tci.map(|t| t & 0x0fff)) else {
        return false;
    };
    if ethertype == EtherType::ARP {
        return f.data_mut().is_some_and(|d| known.answer_arp(vlan, d, l3));
    }
    let Some(answer) = known.neighbour_answer(vlan, f.data(), l3) else {
        return false;
    };
    rewrite(f, l3 + 40 + crate::l2pop::NA_LEN, |buf| {
        answer.write(buf, l3).ok_or(Unanswered::Malformed)
    })
    .is_ok()
}

/// Grows `f` to `room` bytes, lets `write` put the answer there (its
/// length returned) and cuts `f` to it.
fn rewrite<F: Frame>(
    f: &mut F,
    room: usize,
    write: impl FnOnce(&mut [u8]) -> Result<usize, Unanswered>,
) -> Result<(), Unanswered> {
    let buf = f.resize(room).ok_or(Unanswered::Malformed)?;
    let len = write(buf)?;
    f.resize(len).ok_or(Unanswered::Malformed)?;
    Ok(())
}
