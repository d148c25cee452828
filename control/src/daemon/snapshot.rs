//! What a new snapshot holds, worked out from the daemon's bridges and
//! ports: a pure function, unit-tested without DPDK. The daemon then adds
//! each port's queues and publishes it.
use dataplane::acl::PortAcl;
use dataplane::mac_table::MacTable;
use dataplane::port::PortId;
use dataplane::view::{max_frame_len, PortView, SwitchView, TunnelPort, ViewError};
use dataplane::vlan::PortVlan;
use std::sync::Arc;

/// A bridge as the snapshot needs it.
#[derive(Debug, Clone, Copy)]
pub struct BridgePlan<'a> {
    pub name: &'a str,
    pub fdb: &'a Arc<MacTable>,
    pub forward_bpdu: bool,
}

/// A port as the snapshot needs it.
#[derive(Debug, Clone)]
pub struct PortPlan<'a> {
    pub id: PortId,
    pub name: &'a str,
    pub bridge: usize,
    pub vlan: &'a PortVlan,
    pub acl: Option<&'a Arc<PortAcl>>,
    pub dhcp: Option<&'a Arc<dataplane::dhcp::DhcpServer>>,
    pub rx_queues: u16,
    pub mtu: u16,
    /// A tunnel port's tunnel (its uplink is one of the ports).
    pub tunnel: Option<TunnelPort>,
    /// The same device as in the previous snapshot: its rx queues stay
    /// with the workers that poll them.
    pub unchanged: bool,
}

/// The contents of a snapshot, queues aside.
#[derive(Debug)]
pub struct Plan {
    pub view: SwitchView,
    /// Per worker: the (port, rx queue) pairs it polls.
    pub rx_assignment: Vec<Vec<(PortId, u16)>>,
    /// Ports the view refused (cannot happen with a consistent daemon).
    pub refused: Vec<ViewError>,
}

/// The view of `bridges` (name, MAC table) and `ports`, and which of
/// `workers` polls which rx queue: queues of unchanged ports keep the
/// worker they had in `previous`; every other queue goes to the least
/// loaded worker at that point (ties: the lowest index), in port order.
pub fn plan(
    bridges: &[BridgePlan<'_>],
    ports: &[PortPlan<'_>],
    previous: &[Vec<(PortId, u16)>],
    workers: usize,
) -> Plan {
    let mut view = SwitchView::default();
    for b in bridges {
        let i = view.add_bridge(b.name, Arc::clone(b.fdb));
        view.set_forward_bpdu(i, b.forward_bpdu);
    }
    let mut refused = Vec::new();
    let mut placed = Vec::with_capacity(ports.len());
    for p in ports {
        match view.add_port(PortView {
            id: p.id,
            name: p.name.to_owned(),
            bridge: p.bridge,
            vlan: p.vlan.clone(),
            acl: p.acl.cloned(),
            dhcp: p.dhcp.cloned(),
            max_frame: max_frame_len(p.mtu),
        }) {
            Ok(()) => placed.push(p),
            Err(e) => refused.push(e),
        }
    }
    for p in &placed {
        if let Some(t) = p.tunnel {
            if let Err(e) = view.add_tunnel(p.id, t) {
                refused.push(e);
            }
        }
    }
    let mut rx_assignment = vec![Vec::new(); workers];
    if workers == 0 {
        return Plan {
            view,
            rx_assignment,
            refused,
        };
    }
    // Queues that stay where they are first, so new ones see the real load.
    let mut fresh = Vec::new();
    for p in &placed {
        for q in 0..p.rx_queues {
            let kept = p
                .unchanged
                .then(|| previous.iter().position(|v| v.contains(&(p.id, q))))
                .flatten()
                .filter(|&w| w < workers);
            match kept {
                Some(w) => rx_assignment[w].push((p.id, q)),
                None => fresh.push((p.id, q)),
            }
        }
    }
    for pq in fresh {
        let w = (0..workers)
            .min_by_key(|&w| rx_assignment[w].len())
            .unwrap_or(0);
        rx_assignment[w].push(pq);
    }
    Plan {
        view,
        rx_assignment,
        refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u16) -> PortId {
        PortId::new(n).unwrap()
    }

    fn vlan() -> PortVlan {
        PortVlan::new(None, Some(10), &[]).unwrap()
    }

    fn port<'a>(
        n: u16,
        name: &'a str,
        vlan: &'a PortVlan,
        rxq: u16,
        unchanged: bool,
    ) -> PortPlan<'a> {
        PortPlan {
            id: id(n),
            name,
            bridge: 0,
            vlan,
            acl: None,
            dhcp: None,
            rx_queues: rxq,
            mtu: 1500,
            tunnel: None,
            unchanged,
        }
    }

    #[test]
    fn new_queues_spread_and_kept_ones_stay() {
        let fdb = Arc::new(MacTable::new(64, 300));
        let v = vlan();
        let bridges = [BridgePlan {
            name: "br0",
            fdb: &fdb,
            forward_bpdu: false,
        }];
        let first = plan(
            &bridges,
            &[port(0, "a", &v, 2, false), port(1, "b", &v, 1, false)],
            &[],
            2,
        );
        assert_eq!(
            first.rx_assignment,
            vec![vec![(id(0), 0), (id(1), 0)], vec![(id(0), 1)]]
        );
        assert_eq!(first.view.bridges()[0].ports.len(), 2);

        // `a` stays; `b` was replaced by another device; `c` is new.
        let second = plan(
            &bridges,
            &[
                port(0, "a", &v, 2, true),
                port(1, "b", &v, 1, false),
                port(2, "c", &v, 1, false),
            ],
            &first.rx_assignment,
            2,
        );
        assert_eq!(second.rx_assignment[0][0], (id(0), 0));
        assert_eq!(second.rx_assignment[1][0], (id(0), 1));
        let counts: Vec<usize> = second.rx_assignment.iter().map(Vec::len).collect();
        assert_eq!(counts, [2, 2], "new queues go where the load is least");

        // A port gone: its queues are nobody's; nothing else moves.
        let third = plan(
            &bridges,
            &[port(2, "c", &v, 1, true)],
            &second.rx_assignment,
            2,
        );
        let all: Vec<(PortId, u16)> = third.rx_assignment.concat();
        assert_eq!(all, [(id(2), 0)]);
        let w = second
            .rx_assignment
            .iter()
            .position(|v| v.contains(&(id(2), 0)))
            .unwrap();
        assert_eq!(third.rx_assignment[w], [(id(2), 0)]);
    }

    #[test]
    fn fewer_workers_and_refused_ports() {
        let fdb = Arc::new(MacTable::new(64, 300));
        let v = vlan();
        // A queue that sat on worker 3 of a 4-worker plan is placed anew.
        let p = plan(
            &[BridgePlan {
                name: "br0",
                fdb: &fdb,
                forward_bpdu: false,
            }],
            &[port(0, "a", &v, 1, true), port(0, "dup", &v, 1, false)],
            &[vec![], vec![], vec![], vec![(id(0), 0)]],
            1,
        );
        assert_eq!(p.rx_assignment, vec![vec![(id(0), 0)]]);
        assert_eq!(p.refused.len(), 1, "two ports cannot share a number");
        let none = plan(
            &[BridgePlan {
                name: "br0",
                fdb: &fdb,
                forward_bpdu: false,
            }],
            &[port(0, "a", &v, 1, false)],
            &[],
            0,
        );
        assert!(none.rx_assignment.is_empty());
        assert!(none.view.port(id(0)).is_some());
    }
}
