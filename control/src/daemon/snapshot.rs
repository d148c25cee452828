//! What a new snapshot holds, worked out from the daemon's bridges and
//! ports: a pure function, unit-tested without DPDK. The daemon then adds
//! each port's queues and publishes it.
use dataplane::acl::PortAcl;
use dataplane::mac_table::MacTable;
use dataplane::neighbour::{NeighbourTable, NextHop};
use dataplane::port::PortId;
use dataplane::view::{max_frame_len, PortView, SwitchView, TunnelKey, TunnelPort, ViewError};
use dataplane::vlan::PortVlan;
use dataplane::wire::vxlan::OuterHeader;
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
    pub tunnel: Option<Tunnel>,
    /// The same device as in the previous snapshot: its rx queues stay
    /// with the workers that poll them.
    pub unchanged: bool,
}

/// A tunnel port's uplink, outer headers, VNI (or VNIs) and next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    pub uplink: PortId,
    pub outer: OuterHeader,
    pub key: TunnelKey,
    pub next_hop: NextHop,
}

/// The next hops of `ports`' tunnels, each once, in port order.
pub fn next_hops(ports: &[PortPlan<'_>]) -> Vec<NextHop> {
    let mut hops: Vec<NextHop> = Vec::new();
    for t in ports.iter().filter_map(|p| p.tunnel.as_ref()) {
        if !hops.contains(&t.next_hop) {
            hops.push(t.next_hop);
        }
    }
    hops
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

/// The view of `bridges` (name, MAC table) and `ports` (their tunnels'
/// next hops in `neighbours`, which must hold [`next_hops`] of `ports`),
/// and which of `workers` polls which rx queue: queues of unchanged ports
/// keep the worker they had in `previous`; every other queue goes to the
/// least loaded worker at that point (ties: the lowest index), in port
/// order.
pub fn plan(
    bridges: &[BridgePlan<'_>],
    ports: &[PortPlan<'_>],
    neighbours: &Arc<NeighbourTable>,
    previous: &[Vec<(PortId, u16)>],
    workers: usize,
) -> Plan {
    let mut view = SwitchView::default();
    view.set_neighbours(Arc::clone(neighbours));
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
        if let Some(t) = &p.tunnel {
            let hop = neighbours
                .entries()
                .iter()
                .position(|n| n.hop == t.next_hop)
                .unwrap_or(usize::MAX);
            let tunnel = TunnelPort::new(t.uplink, t.outer, t.key.clone(), hop);
            if let Err(e) = view.add_tunnel(p.id, tunnel) {
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
            &Arc::default(),
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
            &Arc::default(),
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
            &Arc::default(),
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
            &Arc::default(),
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
            &Arc::default(),
            &[],
            0,
        );
        assert!(none.rx_assignment.is_empty());
        assert!(none.view.port(id(0)).is_some());
    }

    #[test]
    fn tunnels_to_one_next_hop_share_its_entry() {
        use dataplane::wire::EthernetAddress;
        let fdb = Arc::new(MacTable::new(64, 300));
        let v = vlan();
        let hop = |ip: u8| NextHop {
            uplink: id(0),
            src_ip: [10, 0, 0, 1].into(),
            src_mac: EthernetAddress::new(2, 0, 0, 0, 0, 1),
            ip: [10, 0, 0, ip].into(),
            fixed: None,
        };
        let tunnel = |remote: u8, vni: u32, via: u8| Tunnel {
            uplink: id(0),
            outer: OuterHeader::V4(dataplane::wire::vxlan::Ipv4Tunnel {
                src_mac: EthernetAddress::new(2, 0, 0, 0, 0, 1),
                dst_mac: EthernetAddress::BROADCAST,
                src_ip: [10, 0, 0, 1],
                dst_ip: [10, 9, 0, remote],
                ttl: 64,
                tos: 0,
                dont_fragment: true,
            }),
            key: TunnelKey::Fixed(dataplane::wire::vxlan::Vni::new(vni).unwrap()),
            next_hop: hop(via),
        };
        let mut ports = vec![
            port(0, "uplink", &v, 1, false),
            port(1, "vx1", &v, 0, false),
            port(2, "vx2", &v, 0, false),
            port(3, "vx3", &v, 0, false),
        ];
        // Two remotes behind the gateway .254, one on the segment.
        ports[1].tunnel = Some(tunnel(2, 100, 254));
        ports[2].tunnel = Some(tunnel(3, 100, 254));
        ports[3].tunnel = Some(tunnel(4, 100, 4));
        let hops = next_hops(&ports);
        assert_eq!(hops, [hop(254), hop(4)]);
        let table = Arc::new(NeighbourTable::new(hops, 60, None));
        let bridges = [BridgePlan {
            name: "br0",
            fdb: &fdb,
            forward_bpdu: false,
        }];
        let p = plan(&bridges, &ports, &table, &[], 1);
        assert!(p.refused.is_empty(), "{:?}", p.refused);
        let at = |n: u16| p.view.tunnel(id(n)).unwrap().next_hop;
        assert_eq!((at(1), at(2), at(3)), (0, 0, 1));
        assert!(Arc::ptr_eq(p.view.neighbours(), &table));
        // A table without the next hop: the tunnel is refused, not wrong.
        let p = plan(&bridges, &ports, &Arc::default(), &[], 1);
        assert_eq!(p.refused.len(), 3);
    }
}
