//! What `/metrics` and `pmd-stats` report: the counters the control thread
//! reads from the workers, the ports and the MAC tables, and the latencies
//! it recorded.
use super::Daemon;
use crate::metrics::Exposition;
use control_api::protocol::PmdStatsRow;

impl Daemon {
    pub(super) fn pmd_stats(&self) -> Vec<PmdStatsRow> {
        let snap = self.cell.load_full();
        self.workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let b = self.pmd_base[i];
                let packets = w.packets.get() - b.packets;
                let busy = w.busy_cycles.get() - b.busy;
                let idle = w.idle_cycles.get() - b.idle;
                let rx_queues = snap
                    .rx_assignment
                    .get(i)
                    .map(|v| {
                        v.iter()
                            .map(|&(p, q)| {
                                format!(
                                    "{}:{q}",
                                    snap.view.port(p).map(|c| c.name.as_str()).unwrap_or("?")
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                PmdStatsRow {
                    core: w.core,
                    packets,
                    busy_cycles: busy,
                    idle_cycles: idle,
                    cycles_per_packet: if packets > 0 {
                        busy as f64 / packets as f64
                    } else {
                        0.0
                    },
                    busy_percent: if busy + idle > 0 {
                        100.0 * busy as f64 / (busy + idle) as f64
                    } else {
                        0.0
                    },
                    iterations: w.iterations.get() - b.iterations,
                    flow_cache_hits: w.flow_cache_hits.get(),
                    flow_megaflow_hits: w.flow_megaflow_hits.get(),
                    flow_cache_misses: w.flow_cache_misses.get(),
                    normal_cache_hits: w.normal_cache_hits.get(),
                    normal_cache_misses: w.normal_cache_misses.get(),
                    rx_queues,
                    drops_malformed: w.drops.malformed.get(),
                    drops_vlan: w.drops.vlan_violation.get(),
                    drops_link_local: w.drops.link_local.get(),
                    drops_no_output: w.drops.no_output.get(),
                    drops_oversize: w.drops.oversize.get(),
                    drops_spoofed: w.drops.spoofed.get(),
                    drops_denied: w.drops.denied.get(),
                    drops_ct_invalid: w.drops.ct_invalid.get(),
                    drops_flow: w.drops.flow_drop.get(),
                    drops_tx_full: w.drops.tx_full.get(),
                    drops_no_mbuf: w.drops.no_mbuf.get(),
                    drops_unresolved: w.drops.unresolved.get(),
                }
            })
            .collect()
    }

    pub(super) fn metrics(&self) -> String {
        let mut e = Exposition::default();
        for p in self.port_stats() {
            let bridge = self
                .ports
                .get(&p.name)
                .and_then(|o| self.bridges.get(o.bridge))
                .map(|b| b.name.clone())
                .unwrap_or_default();
            let l = [("port", p.name.as_str()), ("bridge", bridge.as_str())];
            e.counter(
                "ferroswitch_port_rx_packets_total",
                "Frames received by the switch on the port.",
                &l,
                p.rx_packets,
            );
            e.counter(
                "ferroswitch_port_rx_bytes_total",
                "Bytes received on the port.",
                &l,
                p.rx_bytes,
            );
            e.counter(
                "ferroswitch_port_tx_packets_total",
                "Frames transmitted on the port.",
                &l,
                p.tx_packets,
            );
            e.counter(
                "ferroswitch_port_tx_bytes_total",
                "Bytes transmitted on the port.",
                &l,
                p.tx_bytes,
            );
            e.counter(
                "ferroswitch_port_rx_dropped_total",
                "Received frames not forwarded (malformed, VLAN, no output).",
                &l,
                p.rx_dropped,
            );
            e.counter(
                "ferroswitch_port_tx_dropped_total",
                "Frames the port did not take.",
                &l,
                p.tx_dropped,
            );
            e.counter(
                "ferroswitch_port_tx_oversize_total",
                "Frames not sent because they were longer than the port's MTU allows.",
                &l,
                p.tx_oversize,
            );
            for (reason, &n) in &p.spoofed {
                e.counter(
                    "ferroswitch_port_spoofed_total",
                    "Frames port security dropped, by reason.",
                    &[
                        ("port", p.name.as_str()),
                        ("bridge", bridge.as_str()),
                        ("reason", reason.as_str()),
                    ],
                    n,
                );
            }
            for (kind, &n) in &p.dhcp {
                e.counter(
                    "ferroswitch_port_dhcp_total",
                    "DHCP messages the switch's server got from the port (requests) and what it answered (offers, acks, naks) or left unanswered.",
                    &[
                        ("port", p.name.as_str()),
                        ("bridge", bridge.as_str()),
                        ("type", kind.as_str()),
                    ],
                    n,
                );
            }
            e.counter(
                "ferroswitch_port_arp_answered_total",
                "ARP requests from the port the switch's ARP responder answered (l2population).",
                &l,
                p.arp_answered,
            );
            e.counter(
                "ferroswitch_port_rx_missed_total",
                "Frames the PMD missed (imissed).",
                &l,
                p.rx_missed,
            );
        }
        // Tunnels: their packets are the port counters above; here what
        // each leads to.
        for t in self.tunnel_rows() {
            // A port with a VNI per VLAN: all of them, by VLAN.
            let vni = match t.vni {
                Some(v) => v.to_string(),
                None => t
                    .vlan_keys
                    .iter()
                    .map(|(_, v)| v.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            };
            e.gauge(
                "ferroswitch_tunnel_remote_macs",
                "Remote ports' MACs l2population sends through the tunnel port.",
                &[
                    ("port", t.port.as_str()),
                    ("remote_ip", t.remote_ip.as_str()),
                    ("vni", vni.as_str()),
                ],
                t.macs.len() as f64,
            );
            let l = [("port", t.port.as_str()), ("next_hop", t.next_hop.as_str())];
            let known = t.next_hop_state.starts_with("reachable")
                || t.next_hop_state.starts_with("probing")
                || t.next_hop_state == "static";
            e.gauge(
                "ferroswitch_tunnel_next_hop_resolved",
                "1 when the MAC of the tunnel's next hop is known (static or by ARP), else 0: its frames are dropped.",
                &l,
                if known { 1.0 } else { 0.0 },
            );
            e.counter(
                "ferroswitch_tunnel_arp_requests_total",
                "ARP requests (IPv6: neighbour solicitations) sent for the tunnel's next hop (shared by the tunnels with that next hop).",
                &l,
                t.arp_requests,
            );
        }
        for w in self.pmd_stats() {
            let core = w.core.to_string();
            let l = [("core", core.as_str())];
            e.counter(
                "ferroswitch_pmd_packets_total",
                "Frames received by the PMD worker.",
                &l,
                w.packets,
            );
            e.counter(
                "ferroswitch_pmd_busy_cycles_total",
                "TSC cycles of iterations that received frames.",
                &l,
                w.busy_cycles,
            );
            e.counter(
                "ferroswitch_pmd_idle_cycles_total",
                "TSC cycles of iterations that received nothing.",
                &l,
                w.idle_cycles,
            );
            e.gauge(
                "ferroswitch_pmd_cycles_per_packet",
                "Busy cycles per frame since the last pmd-stats-clear.",
                &l,
                w.cycles_per_packet,
            );
            for (reason, v) in [
                ("malformed", w.drops_malformed),
                ("vlan", w.drops_vlan),
                ("link_local", w.drops_link_local),
                ("no_output", w.drops_no_output),
                ("oversize", w.drops_oversize),
                ("spoofed", w.drops_spoofed),
                ("denied", w.drops_denied),
                ("ct_invalid", w.drops_ct_invalid),
                ("flow", w.drops_flow),
                ("tx_full", w.drops_tx_full),
                ("no_mbuf", w.drops_no_mbuf),
                ("unresolved", w.drops_unresolved),
            ] {
                e.counter(
                    "ferroswitch_pmd_drops_total",
                    "Frames dropped by the PMD, by reason.",
                    &[("core", core.as_str()), ("reason", reason)],
                    v,
                );
            }
        }
        if let Some(ct) = &self.conntrack {
            use std::sync::atomic::Ordering::Relaxed;
            e.gauge(
                "ferroswitch_conntrack_connections",
                "Connections tracked now.",
                &[],
                ct.len() as f64,
            );
            for (what, help, v) in [
                (
                    "created",
                    "Connections committed.",
                    ct.counters.created.load(Relaxed),
                ),
                (
                    "expired",
                    "Connections that timed out.",
                    ct.counters.expired.load(Relaxed),
                ),
                (
                    "refused_full",
                    "New connections refused: table full.",
                    ct.counters.refused_full.load(Relaxed),
                ),
            ] {
                e.counter(&format!("ferroswitch_conntrack_{what}_total"), help, &[], v);
            }
        }
        for b in &self.bridges {
            let l = [("bridge", b.name.as_str())];
            e.gauge(
                "ferroswitch_fdb_entries",
                "Learned MAC entries.",
                &l,
                b.fdb.len() as f64,
            );
            e.counter(
                "ferroswitch_fdb_moves_total",
                "MACs seen moving to another port.",
                &l,
                b.fdb.moves(),
            );
            e.counter(
                "ferroswitch_fdb_evictions_total",
                "Entries evicted to stay within the bound.",
                &l,
                b.fdb.evictions(),
            );
        }
        if let Some(n) = &self.neutron {
            e.histogram(
                "ferroswitch_neutron_apply_seconds",
                "From a committed Neutron change reaching the control thread to its snapshot in use by every worker.",
                &[],
                &n.latency,
            );
            for (which, h) in [("all", &n.latency), ("dataplane", &n.dataplane_latency)] {
                for (q, name) in [(0.5, "0.5"), (0.99, "0.99"), (1.0, "1")] {
                    if let Some(v) = h.quantile(q) {
                        e.gauge(
                            "ferroswitch_neutron_apply_quantile_seconds",
                            "Quantiles of recent Neutron apply latencies: all changes, or those that altered the dataplane.",
                            &[("changes", which), ("quantile", name)],
                            v,
                        );
                    }
                }
                e.gauge(
                    "ferroswitch_neutron_applied_changes",
                    "Neutron changes applied: all, or those that altered the dataplane.",
                    &[("changes", which)],
                    h.count() as f64,
                );
            }
            e.gauge(
                "ferroswitch_neutron_local_vlans",
                "Networks with a local VLAN on this switch.",
                &[],
                n.compiler.local_vlans().len() as f64,
            );
            e.gauge(
                "ferroswitch_neutron_attachments_waiting",
                "Neutron ports bound here still without a switch port of their own.",
                &[],
                n.waiting_attachments() as f64,
            );
            e.api_routes(&n.service.api_metrics());
            if let Some(c) = n.service.cluster_metrics() {
                e.gauge(
                    "ferroswitch_cluster_etcd_up",
                    "1 while the watch of etcd is connected ([cluster]).",
                    &[],
                    f64::from(u8::from(c.etcd_up)),
                );
                e.gauge(
                    "ferroswitch_cluster_model_revision",
                    "The etcd revision of the Neutron model this host holds.",
                    &[],
                    c.model_revision as f64,
                );
                e.gauge(
                    "ferroswitch_cluster_hosts",
                    "Hosts registered in the cluster now.",
                    &[],
                    c.hosts as f64,
                );
                e.counter(
                    "ferroswitch_cluster_commit_conflicts_total",
                    "Commits that lost the race to another host's and were run again.",
                    &[],
                    c.conflicts,
                );
                e.counter(
                    "ferroswitch_cluster_watched_commits_total",
                    "Other hosts' commits that reached this host by the etcd watch.",
                    &[],
                    c.watched_commits,
                );
                for (q, v) in [
                    ("0.5", c.lag_p50_micros),
                    ("0.99", c.lag_p99_micros),
                    ("1", c.lag_max_micros),
                ] {
                    if let Some(v) = v {
                        e.gauge(
                            "ferroswitch_cluster_watch_lag_seconds",
                            "From another host's commit (its clock) to its arrival here by the watch.",
                            &[("quantile", q)],
                            v as f64 / 1e6,
                        );
                    }
                }
            }
        }
        e.gauge(
            "ferroswitch_snapshot_generation",
            "Generation of the dataplane snapshot in use.",
            &[],
            self.generation as f64,
        );
        e.histogram(
            "ferroswitch_config_apply_seconds",
            "From a configuration change to its snapshot in use by every worker.",
            &[],
            &self.apply_latency,
        );
        e.finish()
    }
}

impl Daemon {
    /// `conntrack dump`: every tracked connection (of `zone`).
    pub(super) fn conntrack_rows(&self, zone: Option<u16>) -> Vec<control_api::protocol::ConnRow> {
        let Some(ct) = &self.conntrack else {
            return Vec::new();
        };
        let now = ct.now();
        ct.snapshot(zone)
            .into_iter()
            .map(|c| {
                let v6 = c.key.v6;
                let addr = |a: [u8; 16]| {
                    if v6 {
                        std::net::Ipv6Addr::from(a).to_string()
                    } else {
                        std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()
                    }
                };
                control_api::protocol::ConnRow {
                    zone: c.key.zone,
                    proto: c.key.proto,
                    src: addr(c.key.src),
                    dst: addr(c.key.dst),
                    sport: c.key.sport,
                    dport: c.key.dport,
                    state: conn_state_name(&c.state),
                    idle: now.wrapping_sub(c.last_seen),
                }
            })
            .collect()
    }

    /// `conntrack stats`.
    pub(super) fn conntrack_stats(&self) -> control_api::protocol::ConntrackStats {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(ct) = &self.conntrack else {
            return Default::default();
        };
        let mut s = control_api::protocol::ConntrackStats {
            enabled: true,
            connections: ct.len(),
            max_connections: ct.capacity(),
            created: ct.counters.created.load(Relaxed),
            expired: ct.counters.expired.load(Relaxed),
            refused_full: ct.counters.refused_full.load(Relaxed),
            invalid: self.workers.iter().map(|w| w.drops.ct_invalid.get()).sum(),
            ..Default::default()
        };
        for c in ct.snapshot(None) {
            *s.per_zone.entry(c.key.zone).or_default() += 1;
            *s.per_state.entry(conn_state_name(&c.state)).or_default() += 1;
        }
        s
    }
}

fn conn_state_name(s: &dataplane::conntrack::ConnState) -> String {
    use dataplane::conntrack::ConnState;
    match s {
        ConnState::Tcp(t) => format!("{:?}", t.state()).to_uppercase(),
        ConnState::Udp { replied: false } | ConnState::Icmp { replied: false } => {
            "UNREPLIED".into()
        }
        ConnState::Udp { replied: true } | ConnState::Icmp { replied: true } => "REPLIED".into(),
    }
}
