//! Keeping the switch in step with the Neutron model: each committed change
//! is absorbed by the incremental compiler, Neutron ports bound here get
//! (and lose) their own switch ports, the compiled VLAN rules and filters
//! reach the ports through a new snapshot, and each attached port's status
//! goes back to Neutron.
use super::Daemon;
use crate::compiler::{DhcpSettings, NeutronCompiler, SwitchPort};
use crate::metrics::Latency;
use crate::port::PortState;
use control_api::config::PortConfig;
use dataplane::acl::PortAcl;
use dataplane::l2pop::KnownPorts;
use dataplane::port::MAX_PORTS;
use neutron::model::PortStatus;
use neutron::{ApiServer, Changes, Neutron, StateUpdate};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How long an attachment that failed waits before it is tried again.
const ATTACH_RETRY: Duration = Duration::from_secs(30);

/// The Neutron side of the daemon: the service, its API server, the
/// compiler and what the synchronisation keeps between changes.
pub(super) struct NeutronSide {
    pub service: Neutron,
    pub api: Option<ApiServer>,
    pub updates: crossbeam::channel::Receiver<StateUpdate>,
    pub compiler: NeutronCompiler,
    /// From a committed change reaching the control thread to its snapshot
    /// being in use by every worker (or to knowing it changes nothing there).
    pub latency: Latency,
    /// The same, for the changes that altered the dataplane.
    pub dataplane_latency: Latency,
    /// Neutron ports that want a switch port of their own and have none yet.
    pending: BTreeSet<String>,
    /// Those of them whose switch port could not be opened, and when.
    attach_failures: BTreeMap<String, Instant>,
    /// Logged that attachments wait for a free switch port.
    full_logged: bool,
    /// A tunnel port's networks were changed in place since the last
    /// compile: the next snapshot must carry its new VNIs.
    tunnels_changed: bool,
    /// Statuses compiled and not yet reported.
    statuses: BTreeMap<String, PortStatus>,
    /// The compiler's warnings last logged (each is logged once).
    warnings: Vec<String>,
}

impl NeutronSide {
    pub fn new(
        service: Neutron,
        mappings: BTreeMap<String, String>,
        dhcp: DhcpSettings,
        cluster_host: Option<String>,
        local_ip: Option<std::net::IpAddr>,
    ) -> NeutronSide {
        NeutronSide {
            updates: service.subscribe(),
            service,
            api: None,
            compiler: NeutronCompiler::new(mappings)
                .with_dhcp(dhcp)
                .with_host(cluster_host)
                .with_local_ip(local_ip),
            latency: Latency::default(),
            dataplane_latency: Latency::default(),
            pending: BTreeSet::new(),
            attach_failures: BTreeMap::new(),
            full_logged: false,
            tunnels_changed: false,
            statuses: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    /// Attachments waiting (for a free port, or to retry a failure).
    pub fn waiting_attachments(&self) -> usize {
        self.pending.len()
    }
}

/// Same rule set: the same compiled value (usually the same `Arc`).
fn same_acl(a: &Option<Arc<PortAcl>>, b: &Option<Arc<PortAcl>>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => Arc::ptr_eq(x, y) || x == y,
        (None, None) => true,
        _ => false,
    }
}

impl Daemon {
    /// The bridge Neutron's ports and tunnels join (checked at start to exist).
    fn integration_bridge(&self) -> &str {
        self.cfg
            .neutron
            .as_ref()
            .map_or(neutron::DEFAULT_INTEGRATION_BRIDGE, |c| {
                c.integration_bridge.as_str()
            })
    }

    /// Lets the compiler take in what `changes` touched (everything when
    /// `None`: the first state); false when nothing the switch has or
    /// wants can change.
    pub(super) fn absorb_neutron(&mut self, changes: Option<&Changes>) -> bool {
        match self.neutron.as_mut() {
            Some(n) => {
                let state = n.service.state();
                n.compiler.absorb(&state, changes)
            }
            None => false,
        }
    }

    /// Compiles the Neutron state for the current switch ports into their
    /// VLAN rules and filters; true when some port changed (the caller
    /// publishes). Ports whose VLAN changes forget what they learned.
    pub(super) fn compile_neutron(&mut self) -> bool {
        let Some(n) = self.neutron.as_mut() else {
            return false;
        };
        let state = n.service.state();
        let views: Vec<SwitchPort<'_>> = self
            .ports
            .values()
            .map(|p| SwitchPort {
                name: &p.cfg.name,
                iface_id: p.cfg.iface_id.as_deref(),
                link_up: p.dev.state() == PortState::Active,
            })
            .collect();
        let compiled = n.compiler.compile(&state, &views);
        drop(views);
        if compiled.warnings != n.warnings {
            for w in compiled.warnings.iter().filter(|w| !n.warnings.contains(w)) {
                warn!("neutron: {w}");
            }
            n.warnings = compiled.warnings;
        }
        n.statuses.extend(compiled.statuses);
        let mut changed = std::mem::take(&mut n.tunnels_changed);
        // l2population's tables, with the tunnel ports' numbers.
        let known = compiled.known.map(|k| {
            let id = |name: &str| self.ports.get(name).map(|p| p.dev.port_id());
            Arc::new(KnownPorts::new(
                k.iter().flat_map(|(v, l2)| {
                    l2.remote_macs
                        .iter()
                        .filter_map(move |(mac, port)| Some((*v, *mac, id(port)?)))
                }),
                k.iter()
                    .flat_map(|(v, l2)| l2.addresses.iter().map(move |&(ip, mac)| (*v, ip, mac))),
                k.iter()
                    .flat_map(|(v, l2)| l2.addresses6.iter().map(move |&(ip, mac)| (*v, ip, mac))),
            ))
        });
        let bridge = self
            .bridges
            .iter()
            .position(|b| b.name == self.integration_bridge());
        if let Some(b) = bridge.and_then(|i| self.bridges.get_mut(i)) {
            if b.known != known {
                b.known = known;
                changed = true;
            }
        }
        for (name, vlan) in compiled.port_vlans {
            if let Some(p) = self.ports.get_mut(&name) {
                if p.vlan != vlan {
                    info!(port = %name, vlan_mode = %vlan.mode(), tag = ?vlan.tag(), translations = ?vlan.translations(), "VLAN set by Neutron");
                    if let Some(b) = self.bridges.get(p.bridge) {
                        b.fdb.flush_port(p.dev.port_id());
                    }
                    p.vlan = vlan;
                    changed = true;
                }
            }
        }
        // A partial compile gives only the ports a change touched.
        let partial = compiled.partial;
        for p in self.ports.values_mut() {
            if partial.as_ref().is_some_and(|t| !t.contains(&p.cfg.name)) {
                continue;
            }
            let acl = compiled.port_acls.get(&p.cfg.name).cloned();
            if !same_acl(&p.acl, &acl) {
                p.acl = acl;
                changed = true;
            }
            let dhcp = compiled.port_dhcp.get(&p.cfg.name);
            // The compiler hands back the same server while nothing it
            // depends on changed: a pointer comparison, mostly.
            let same = match (&p.dhcp, dhcp) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
                (a, b) => a.is_none() && b.is_none(),
            };
            if !same {
                if let Some(d) = dhcp.and_then(|d| d.v4.as_ref()) {
                    info!(port = %p.cfg.name, address = %std::net::Ipv4Addr::from(d.client_ip), server = %std::net::Ipv4Addr::from(d.server_ip), "DHCP served by the switch");
                }
                if let Some(d) = dhcp.and_then(|d| d.v6.as_ref()) {
                    let address = d.address.map_or("none (stateless)".to_owned(), |a| {
                        std::net::Ipv6Addr::from(a).to_string()
                    });
                    info!(port = %p.cfg.name, %address, server = %std::net::Ipv6Addr::from(d.server_ip), "DHCPv6 served by the switch");
                }
                p.dhcp = dhcp.cloned();
                changed = true;
            }
        }
        changed
    }

    /// Opens a switch port for Neutron ports bound here that need one (a
    /// vhost-user socket, an SR-IOV VF), in their network's VLAN through
    /// `iface_id`, and closes those no longer wanted. `changed`: the
    /// Neutron ports a change touched (`None`: consider all). One that
    /// cannot be opened is logged, its port stays DOWN, and it is retried
    /// after a while; while the switch has no free port number the rest
    /// wait, with one log line.
    pub(super) fn reconcile_attachments(&mut self, changed: Option<&BTreeSet<String>>) {
        let Some(n) = self.neutron.as_mut() else {
            return;
        };
        let wanted = n.compiler.attachments();
        // Stale: no longer wanted as it is, or replaced by a port the
        // operator added for the same Neutron port (its iface_id).
        let named: BTreeSet<&String> = self
            .ports
            .values()
            .filter(|p| !p.auto_attached)
            .filter_map(|p| p.cfg.iface_id.as_ref())
            .collect();
        // Only a port whose Neutron port the change touched can have gone
        // stale (a port the operator adds or removes names its own), and
        // only such a port can have just been made pending.
        let touched = |id: &String| changed.is_none_or(|ids| ids.contains(id));
        let stale: Vec<String> = self
            .ports
            .values()
            .filter(|p| {
                p.auto_attached
                    && p.cfg.iface_id.as_ref().is_none_or(touched)
                    && !p.cfg.iface_id.as_ref().is_some_and(|id| {
                        !named.contains(id)
                            && wanted.get(id).is_some_and(|a| a.port_config(id) == p.cfg)
                    })
            })
            .map(|p| p.cfg.name.clone())
            .collect();
        match changed {
            None => n.pending = wanted.keys().cloned().collect(),
            Some(ids) => {
                for id in ids {
                    if wanted.contains_key(id) {
                        n.pending.insert(id.clone());
                    } else {
                        n.pending.remove(id);
                        n.attach_failures.remove(id);
                    }
                }
            }
        }
        for name in stale {
            match self.del_port(&name) {
                Ok(_) => info!(port = %name, "Neutron port detached"),
                Err(e) => warn!(port = %name, "cannot detach: {e}"),
            }
        }
        let Some(n) = self.neutron.as_mut() else {
            return;
        };
        // Already attached (by this daemon, or by a port that names it):
        // only the ports just made pending can be.
        for id in self
            .ports
            .values()
            .filter_map(|p| p.cfg.iface_id.as_ref())
            .filter(|id| touched(id))
        {
            n.pending.remove(id);
        }
        loop {
            let Some(n) = self.neutron.as_mut() else {
                return;
            };
            if n.pending.is_empty() {
                break;
            }
            if self.ports.len() >= MAX_PORTS {
                if !n.full_logged {
                    warn!(
                        waiting = n.pending.len(),
                        "Neutron ports wait for a free switch port (at most {MAX_PORTS})"
                    );
                    n.full_logged = true;
                }
                return;
            }
            // The first waiting port that has not just failed (failures
            // are few: they wait for the retry).
            let next = n
                .pending
                .iter()
                .filter(|id| !n.attach_failures.contains_key(*id))
                .find_map(|id| Some((id.clone(), n.compiler.attachments().get(id)?.clone())));
            let Some((id, a)) = next else { break };
            let cfg = a.port_config(&id);
            // The config names the bridge (checked at start to exist).
            let wanted = self.integration_bridge();
            let bridge = self.bridges.iter().position(|b| b.name == wanted);
            let opened = match bridge {
                Some(bi) => self.open_port(bi, cfg),
                None => Err(super::error::OpenError::NoBridge(wanted.to_owned())),
            };
            match opened {
                Ok(()) => {
                    if let Some(p) = self.ports.get_mut(&a.port_name) {
                        p.auto_attached = true;
                    }
                    info!(neutron_port = %id, r#type = %a.kind, target = %a.target, port = %a.port_name, "Neutron port attached");
                    if let Some(n) = self.neutron.as_mut() {
                        n.pending.remove(&id);
                    }
                }
                Err(e) => {
                    warn!(neutron_port = %id, r#type = %a.kind, target = %a.target, "cannot attach: {e}");
                    if let Some(n) = self.neutron.as_mut() {
                        n.attach_failures.insert(id, Instant::now());
                    }
                }
            }
        }
        if let Some(n) = self.neutron.as_mut() {
            n.full_logged = false;
        }
        self.reconcile_tunnels();
    }

    /// Opens the tunnel ports l2population wants (to other hosts with
    /// ports in this host's vxlan networks) on the integration bridge, and
    /// closes those no longer wanted. A tunnel that cannot be opened is
    /// logged and tried again at the next change, or the next second with
    /// a port number free ([`Self::tunnels_missing`]).
    pub(super) fn reconcile_tunnels(&mut self) {
        let Some(n) = self.neutron.as_ref() else {
            return;
        };
        let local = if n.compiler.tunnels().is_empty() {
            None
        } else {
            self.neutron_endpoint().map(|(ip, _)| ip)
        };
        let wanted: BTreeMap<String, PortConfig> = match local {
            Some(ip) => n
                .compiler
                .tunnels()
                .iter()
                .filter_map(|(name, t)| {
                    Some((name.clone(), t.port_config(ip, n.compiler.local_vlans())?))
                })
                .collect(),
            None => BTreeMap::new(),
        };
        // A tunnel whose networks changed (the same remote and endpoint)
        // is changed in place: the other networks' traffic never stops,
        // and its counters and learned MACs stay.
        let mut stale = Vec::new();
        let mut in_place = false;
        for p in self.ports.values_mut().filter(|p| p.auto_tunnel) {
            match wanted.get(&p.cfg.name) {
                Some(want) if *want == p.cfg => {}
                Some(want)
                    if (want.remote_ip, want.local_ip) == (p.cfg.remote_ip, p.cfg.local_ip) =>
                {
                    match want.validate("port") {
                        Ok(vlan) => {
                            info!(port = %p.cfg.name, vlan_keys = ?want.vlan_keys, "tunnel's networks changed");
                            p.cfg = want.clone();
                            p.vlan = vlan;
                            in_place = true;
                        }
                        Err(e) => {
                            warn!(port = %p.cfg.name, "cannot change the tunnel: {e}");
                            stale.push(p.cfg.name.clone());
                        }
                    }
                }
                _ => stale.push(p.cfg.name.clone()),
            }
        }
        if let Some(n) = self.neutron.as_mut() {
            n.tunnels_changed |= in_place;
        }
        for name in stale {
            match self.del_port(&name) {
                Ok(_) => info!(port = %name, "tunnel closed"),
                Err(e) => warn!(port = %name, "cannot close the tunnel: {e}"),
            }
        }
        let bridge_name = self.integration_bridge();
        let Some(bi) = self.bridges.iter().position(|b| b.name == bridge_name) else {
            return;
        };
        for (name, cfg) in wanted {
            if self.ports.contains_key(&name) {
                continue;
            }
            let (remote, vnis) = (cfg.remote_ip, cfg.vlan_keys.clone());
            match self.open_port(bi, cfg) {
                Ok(()) => {
                    if let Some(p) = self.ports.get_mut(&name) {
                        p.auto_tunnel = true;
                    }
                    info!(port = %name, remote = ?remote, vlan_keys = ?vnis, "tunnel opened (l2population)");
                }
                Err(e) => warn!(port = %name, "cannot open the tunnel: {e}"),
            }
        }
    }

    /// Some tunnel l2population wants is not open (it could not be, when
    /// it was first wanted).
    pub(super) fn tunnels_missing(&self) -> bool {
        self.neutron.as_ref().is_some_and(|n| {
            let locals = n.compiler.local_vlans();
            n.compiler
                .tunnels()
                .iter()
                .any(|(name, t)| !self.ports.contains_key(name) && !t.vlan_keys(locals).is_empty())
        })
    }

    /// Attachments whose last failure is old enough are tried again; true
    /// when there were any.
    pub(super) fn retry_attachments(&mut self) -> bool {
        let Some(n) = self.neutron.as_mut() else {
            return false;
        };
        let before = n.attach_failures.len();
        n.attach_failures
            .retain(|_, at| at.elapsed() < ATTACH_RETRY);
        n.attach_failures.len() != before
    }

    /// Tells Neutron the status of each port compiled since the last report
    /// (only where it differs from what Neutron has).
    pub(super) fn report_neutron_status(&mut self) {
        let Some(n) = self.neutron.as_mut() else {
            return;
        };
        let state = n.service.state();
        for (id, status) in std::mem::take(&mut n.statuses) {
            if state.ports.get(&id).is_some_and(|p| p.status != status) {
                info!(neutron_port = %id, status = status.as_str(), "port status");
                if let Err(e) = n.service.set_port_status(&id, status) {
                    warn!(neutron_port = %id, "cannot report status: {e}");
                }
            }
        }
    }

    /// Committed Neutron changes (`changes`: what they touched, merged):
    /// absorb, attach and detach, compile, publish if the dataplane
    /// changes, record the latency, report port statuses.
    pub(super) fn on_neutron_update(&mut self, since: Instant, changes: &Changes) {
        // Most changes touch nothing this switch has (another host's port,
        // a group no attached port uses): then there is nothing to do.
        let mut changed = false;
        if self.absorb_neutron(Some(changes)) {
            self.reconcile_attachments(Some(&changes.ports));
            changed = self.compile_neutron();
            if changed {
                self.publish();
            }
        }
        if let Some(n) = self.neutron.as_mut() {
            let took = since.elapsed();
            n.latency.record(took);
            if changed {
                n.dataplane_latency.record(took);
            }
        }
        self.report_neutron_status();
    }
}
