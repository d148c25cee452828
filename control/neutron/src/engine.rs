//! The single writer. A mutation runs on a clone of the committed world
//! (O(1): everything is persistent maps), collects the store's ops, commits
//! them in one transaction and only then swaps the world and publishes it.
//! Any error on the way drops the clone: nothing reaches memory, disk or
//! subscribers. One writer at a time is what makes "never the same IP or
//! MAC twice" trivially true; readers never wait for it.
//!
//! With etcd, the writers of every host take turns the same way: a commit
//! made from a world another host has since changed is refused by etcd
//! ([`Commit::Conflict`]); the world is rebuilt from the store and the
//! mutation runs again on it. Changes other hosts commit are rebuilt into
//! the world and published to subscribers as this host's own are.
use super::error::{ApiError, NeutronError};
use super::ipam::SubnetIpam;
use super::metrics::Metrics;
use super::model::{
    Network, NetworkType, NeutronState, Port, PortStatus, SecurityGroup, SecurityGroupRule, Subnet,
};
use super::store::{Change, Commit, Delta, EtcdStore, Op, SqliteStore, Store};
use super::validate::{ip_to_u128, parse_mac, Cidr};
use super::Settings;
use super::{Changes, StateUpdate};
use arc_swap::ArcSwap;
use crossbeam::channel::{self, Receiver, Sender};
use imbl::{OrdMap, OrdSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// The committed state plus the indexes only the writer needs.
#[derive(Clone, Default)]
pub(crate) struct World {
    pub st: NeutronState,
    pub ipam: OrdMap<String, SubnetIpam>,
    /// (network id, MAC): MACs are unique per network.
    pub macs: OrdSet<(String, [u8; 6])>,
    /// (physnet, vid) in use; flat networks hold vid 0.
    pub vlans: OrdSet<(String, u16)>,
    /// VNIs of vxlan networks in use.
    pub vnis: OrdSet<u32>,
    /// project -> its "default" security group.
    pub default_groups: OrdMap<String, String>,
    /// The next security-group rule's `standard_attr_id`.
    pub next_std_attr: u64,
}

impl World {
    pub fn next_standard_attr_id(&mut self) -> u64 {
        self.next_std_attr = self.next_std_attr.max(1);
        let id = self.next_std_attr;
        self.next_std_attr += 1;
        id
    }
}

struct Writer {
    store: Box<dyn Store>,
    world: World,
    subscribers: Vec<Sender<StateUpdate>>,
}

pub(crate) struct Engine {
    pub s: Settings,
    writer: Mutex<Writer>,
    current: ArcSwap<NeutronState>,
    pub metrics: Metrics,
    /// The shared store's figures (etcd only).
    figures: Option<super::store::Figures>,
}

/// One mutation in progress.
pub(crate) struct Tx<'a> {
    pub w: World,
    pub ops: Vec<Op>,
    /// The timestamp of everything this mutation touches.
    pub now: String,
    pub s: &'a Settings,
    /// The caller's project, for resources created without one.
    pub project: String,
}

/// How many times a mutation is run again after losing the race to commit
/// to another host's writer before the caller gets a 503.
const MAX_ATTEMPTS: usize = 64;

impl Engine {
    pub fn open(s: Settings) -> Result<Arc<Engine>, NeutronError> {
        let mut store: Box<dyn Store> = match &s.etcd {
            Some(e) => Box::new(EtcdStore::open(e.clone())?),
            None => Box::new(SqliteStore::open(&s.database)?),
        };
        let world = restore(&mut *store)?;
        tracing::info!(
            store = %store.describe(),
            networks = world.st.networks.len(),
            subnets = world.st.subnets.len(),
            ports = world.st.ports.len(),
            security_groups = world.st.security_groups.len(),
            "neutron state restored"
        );
        let current = ArcSwap::from_pointee(world.st.clone());
        let (changed, changes) = channel::bounded::<()>(1);
        store.watch(Box::new(move || {
            let _ = changed.try_send(());
        }));
        let figures = store.figures();
        let engine = Arc::new(Engine {
            figures,
            s,
            writer: Mutex::new(Writer {
                store,
                world,
                subscribers: Vec::new(),
            }),
            current,
            metrics: Metrics::default(),
        });
        // Other hosts' commits, rebuilt into the world as they arrive. The
        // thread ends with the engine (or its store).
        let weak = Arc::downgrade(&engine);
        std::thread::Builder::new()
            .name("neutron-follow".into())
            .spawn(move || {
                while changes.recv().is_ok() {
                    let Some(e) = weak.upgrade() else { return };
                    let mut w = e.lock();
                    if !w.store.stale() {
                        continue;
                    }
                    let before = w.world.st.hosts.clone();
                    if let Err(err) = e.refresh(&mut w) {
                        tracing::error!("rebuilding the model from the store: {err}");
                        continue;
                    }
                    let gone: Vec<String> = before
                        .keys()
                        .filter(|h| !w.world.st.hosts.contains_key(*h))
                        .cloned()
                        .collect();
                    drop(w);
                    for host in gone {
                        e.host_lost(&host);
                    }
                }
            })
            .map_err(|e| NeutronError::Store {
                path: "neutron-follow".into(),
                reason: format!("thread: {e}"),
            })?;
        Ok(engine)
    }

    /// A host's registration ended (its lease ran out, or it stopped):
    /// the ports bound there go DOWN, as ML2 does for a dead agent. Every
    /// process that sees it does this; the first commit wins and the
    /// others find nothing left to change.
    fn host_lost(&self, host: &str) {
        tracing::warn!(host, "host registration gone: its ports go DOWN");
        let r = self.mutate("", |tx| {
            let up: Vec<Arc<Port>> =
                tx.w.st
                    .ports
                    .values()
                    .filter(|p| p.binding.host_id == host && p.status != PortStatus::Down)
                    .cloned()
                    .collect();
            for p in up {
                let mut p = (*p).clone();
                p.status = PortStatus::Down;
                p.std.touch(&tx.now);
                tx.put_port(p);
            }
            Ok(())
        });
        if let Err(e) = r {
            tracing::error!(host, "marking its ports DOWN: {}", e.message);
        }
    }

    /// Registers this host (etcd): it can then be bound to from any host's
    /// API, and its ports go DOWN when it stops renewing.
    pub fn register_host(&self, tunnel_mac: Option<String>) -> Result<(), NeutronError> {
        let Some(etcd) = &self.s.etcd else {
            return Ok(());
        };
        let mut record = self.s.host_record();
        record.started_at = super::time::now();
        record.tunnel_mac = tunnel_mac;
        self.lock().store.register(&record, etcd.host_ttl)
    }

    /// Rebuilds the world from the store (after another writer's commit)
    /// and publishes it with what changed.
    /// In proportion to what changed when the store can say
    /// ([`Store::load_delta`]), else whole.
    fn refresh(&self, w: &mut Writer) -> Result<(), NeutronError> {
        let generation = w.world.st.generation + 1;
        let changes = match w.store.load_delta()? {
            Some(delta) => {
                let mut world = w.world.clone();
                let changes =
                    apply_delta(&mut world, delta).map_err(|reason| NeutronError::Store {
                        path: w.store.describe(),
                        reason,
                    })?;
                w.world = world;
                changes
            }
            None => {
                let world = restore(&mut *w.store)?;
                let changes = diff(&w.world.st, &world.st);
                w.world = world;
                changes
            }
        };
        w.world.st.generation = generation;
        self.publish(w, changes);
        Ok(())
    }

    fn publish(&self, w: &mut Writer, changes: Changes) {
        let published = Arc::new(w.world.st.clone());
        self.current.store(published.clone());
        // Still under the writer lock, so subscribers see commit order.
        w.subscribers.retain(|s| {
            s.send(StateUpdate {
                state: published.clone(),
                changes: changes.clone(),
            })
            .is_ok()
        });
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        // A panic inside a mutation happens before the swap, so the
        // committed world is intact: keep going.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self) -> Arc<NeutronState> {
        self.current.load_full()
    }

    pub fn subscribe(&self) -> Receiver<StateUpdate> {
        let (tx, rx) = channel::unbounded();
        self.lock().subscribers.push(tx);
        rx
    }

    /// Without the writer lock: a scrape never waits for a commit.
    pub fn cluster_metrics(&self) -> Option<super::ClusterMetrics> {
        self.figures.as_ref().map(|f| f())
    }

    pub fn check_database(&self) -> Result<String, NeutronError> {
        self.lock().store.check()
    }

    /// Runs `f` on a copy of the world; commits and publishes what it did.
    /// A mutation that produces no op (e.g. a no-op update) commits nothing.
    pub fn mutate<T>(
        &self,
        project: &str,
        mut f: impl FnMut(&mut Tx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut w = self.lock();
        w.store.sync()?;
        for _ in 0..MAX_ATTEMPTS {
            if w.store.stale() {
                self.refresh(&mut w)
                    .map_err(|e| ApiError::internal(e.to_string()))?;
            }
            let mut tx = Tx {
                w: w.world.clone(),
                ops: Vec::new(),
                now: super::time::now(),
                s: &self.s,
                project: project.to_owned(),
            };
            let out = f(&mut tx)?;
            if tx.ops.is_empty() {
                return Ok(out);
            }
            if w.store.apply(&tx.ops)? == Commit::Conflict {
                // Another host committed first: run it again on its world.
                self.refresh(&mut w)
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                continue;
            }
            let changes = changes_of(&tx.ops, &w.world.st);
            let mut world = tx.w;
            world.st.generation = w.world.st.generation + 1;
            w.world = world;
            self.publish(&mut w, changes);
            return Ok(out);
        }
        Err(ApiError::new(
            503,
            "ServiceUnavailable",
            format!("other hosts changed the model {MAX_ATTEMPTS} times while this change was being made; try again"),
        ))
    }

    pub fn set_port_status(&self, port_id: &str, status: PortStatus) -> Result<(), NeutronError> {
        self.mutate("", |tx| {
            let p = tx.port(port_id)?;
            if p.status == status {
                return Ok(());
            }
            let mut p = (*p).clone();
            p.status = status;
            p.std.touch(&tx.now);
            tx.put_port(p);
            Ok(())
        })
        .map_err(NeutronError::Api)
    }
}

impl Tx<'_> {
    pub fn network(&self, id: &str) -> Result<Arc<Network>, ApiError> {
        self.w.st.networks.get(id).cloned().ok_or_else(|| {
            ApiError::not_found(
                "NetworkNotFound",
                format!("Network {id} could not be found."),
            )
        })
    }

    pub fn subnet(&self, id: &str) -> Result<Arc<Subnet>, ApiError> {
        self.w.st.subnets.get(id).cloned().ok_or_else(|| {
            ApiError::not_found("SubnetNotFound", format!("Subnet {id} could not be found."))
        })
    }

    pub fn port(&self, id: &str) -> Result<Arc<Port>, ApiError> {
        self.w.st.ports.get(id).cloned().ok_or_else(|| {
            ApiError::not_found("PortNotFound", format!("Port {id} could not be found."))
        })
    }

    pub fn group(&self, id: &str) -> Result<Arc<SecurityGroup>, ApiError> {
        self.w.st.security_groups.get(id).cloned().ok_or_else(|| {
            ApiError::not_found(
                "SecurityGroupNotFound",
                format!("Security group {id} does not exist"),
            )
        })
    }

    pub fn put_network(&mut self, n: Network) -> Arc<Network> {
        let n = Arc::new(n);
        self.w.st.networks.insert(n.id.clone(), n.clone());
        self.ops.push(Op::PutNetwork(n.clone()));
        n
    }

    pub fn put_subnet(&mut self, s: Subnet) -> Arc<Subnet> {
        let s = Arc::new(s);
        self.w.st.subnets.insert(s.id.clone(), s.clone());
        self.ops.push(Op::PutSubnet(s.clone()));
        s
    }

    pub fn put_port(&mut self, p: Port) -> Arc<Port> {
        let p = Arc::new(p);
        self.w.st.ports.insert(p.id.clone(), p.clone());
        self.ops.push(Op::PutPort(p.clone()));
        p
    }

    pub fn put_group(&mut self, g: SecurityGroup) -> Arc<SecurityGroup> {
        let is_default = self.w.default_groups.get(&g.project_id) == Some(&g.id);
        let g = Arc::new(g);
        self.w.st.security_groups.insert(g.id.clone(), g.clone());
        self.ops.push(Op::PutGroup {
            group: g.clone(),
            is_default,
        });
        g
    }

    /// Bumps a resource's parent when a child changes (Neutron bumps a
    /// group's revision when its rules change).
    pub fn touch_network(
        &mut self,
        id: &str,
        f: impl FnOnce(&mut Network),
    ) -> Result<(), ApiError> {
        let mut n = (*self.network(id)?).clone();
        f(&mut n);
        n.std.touch(&self.now);
        self.put_network(n);
        Ok(())
    }

    pub fn add_rule_row(&mut self, rule: &SecurityGroupRule) {
        self.w
            .st
            .rule_owner
            .insert(rule.id.clone(), rule.security_group_id.clone());
        self.ops.push(Op::PutRule {
            rule: Box::new(rule.clone()),
            fingerprint: super::secgroups::fingerprint(rule),
        });
    }
}

/// The resources a mutation's ops touched; `before` is the state it
/// started from (a deleted rule's group is only known there).
fn changes_of(ops: &[Op], before: &NeutronState) -> Changes {
    let mut c = Changes::default();
    for op in ops {
        match op {
            Op::PutNetwork(n) => {
                c.networks.insert(n.id.clone());
            }
            Op::AddSegment { network_id, .. } | Op::AddVni { network_id, .. } => {
                c.networks.insert(network_id.clone());
            }
            Op::DeleteNetwork(id) => {
                c.networks.insert(id.clone());
            }
            Op::PutSubnet(s) => {
                c.subnets.insert(s.id.clone());
            }
            Op::DeleteSubnet(id) => {
                c.subnets.insert(id.clone());
            }
            Op::PutPort(p) => {
                c.ports.insert(p.id.clone());
            }
            Op::DeletePort(id) => {
                c.ports.insert(id.clone());
            }
            Op::AddAllocation { port_id, .. } | Op::SetPortGroups { port_id, .. } => {
                c.ports.insert(port_id.clone());
            }
            // The port it belonged to is written too (PutPort/DeletePort).
            Op::DeleteAllocation { .. } => {}
            Op::PutGroup { group, .. } => {
                c.security_groups.insert(group.id.clone());
            }
            Op::DeleteGroup(id) => {
                c.security_groups.insert(id.clone());
            }
            Op::PutRule { rule, .. } => {
                c.security_groups.insert(rule.security_group_id.clone());
            }
            Op::SetQuotas { .. } => {}
            Op::DeleteRule(id) => {
                if let Some(g) = before.rule_owner.get(id) {
                    c.security_groups.insert(g.clone());
                }
            }
        }
    }
    c
}

/// Takes (`held`) or releases the segment network `n` holds: its
/// (physnet, VID), flat networks VID 0, or its VNI.
pub(crate) fn index_segment(w: &mut World, n: &Network, held: bool) {
    if let Some(p) = &n.physical_network {
        let seg = (p.clone(), n.segmentation_id.unwrap_or(0) as u16);
        if held {
            w.vlans.insert(seg);
        } else {
            w.vlans.remove(&seg);
        }
    }
    if let (NetworkType::Vxlan, Some(vni)) = (n.network_type, n.segmentation_id) {
        if held {
            w.vnis.insert(vni);
        } else {
            w.vnis.remove(&vni);
        }
    }
}

/// A subnet's CIDR and its allocation pools, sorted, as the IPAM wants them.
fn cidr_and_pools(sn: &Subnet) -> Result<(Cidr, Vec<(u128, u128)>), String> {
    let cidr = Cidr::parse_strict(&sn.cidr).map_err(|e| format!("subnet {}: {e}", sn.id))?;
    let mut pools = Vec::new();
    for p in &sn.allocation_pools {
        let a = super::validate::parse_ip(&p.start)?;
        let b = super::validate::parse_ip(&p.end)?;
        pools.push((ip_to_u128(a), ip_to_u128(b)));
    }
    pools.sort();
    Ok((cidr, pools))
}

/// Another writer's changes applied to the world: the documents and the
/// indexes restore derives from them (VLANs, MACs, address allocations,
/// default groups, rule owners), touching only what changed. Addresses and
/// MACs are all released before any is taken, so ports that swap them in
/// one batch never free each other's.
fn apply_delta(w: &mut World, delta: Delta) -> Result<Changes, String> {
    let mut c = Changes::default();
    if let Some(hosts) = delta.hosts {
        c.hosts = true;
        w.st.hosts = hosts
            .into_iter()
            .map(|h| (h.host.clone(), Arc::new(h)))
            .collect();
    }
    let addresses = |p: &Port| -> Vec<(String, u128)> {
        p.fixed_ips
            .iter()
            .filter_map(|f| {
                let a = super::validate::parse_ip(&f.ip_address).ok()?;
                Some((f.subnet_id.clone(), ip_to_u128(a)))
            })
            .collect()
    };
    // Networks and subnets first: ports' addresses need their subnets.
    for ch in &delta.changes {
        match ch {
            Change::Network(id, n) => {
                if let Some(old) = w.st.networks.get(id).cloned() {
                    index_segment(w, &old, false);
                }
                match n {
                    Some(n) => {
                        index_segment(w, n, true);
                        w.st.networks.insert(id.clone(), Arc::new(n.clone()));
                    }
                    None => {
                        w.st.networks.remove(id);
                    }
                }
                c.networks.insert(id.clone());
            }
            Change::Subnet(id, Some(sn)) => {
                let (cidr, pools) = cidr_and_pools(sn)?;
                match w.ipam.get_mut(id) {
                    Some(ipam) => ipam.set_pools(pools),
                    None => {
                        w.ipam.insert(
                            id.clone(),
                            SubnetIpam::new(cidr, pools).with_auto(sn.is_auto_address()),
                        );
                    }
                }
                w.st.subnets.insert(id.clone(), Arc::new(sn.clone()));
                c.subnets.insert(id.clone());
            }
            _ => {}
        }
    }
    // Every changed port's old addresses and MAC released, then the new
    // ones taken.
    for ch in &delta.changes {
        if let Change::Port(id, _) = ch {
            if let Some(old) = w.st.ports.get(id).cloned() {
                for (sid, a) in addresses(&old) {
                    if let Some(ipam) = w.ipam.get_mut(&sid) {
                        ipam.release(a);
                    }
                }
                if let Ok(mac) = parse_mac(&old.mac_address) {
                    w.macs.remove(&(old.network_id.clone(), mac));
                }
            }
        }
    }
    for ch in &delta.changes {
        if let Change::Port(id, p) = ch {
            match p {
                Some(p) => {
                    for (sid, a) in addresses(p) {
                        if let Some(ipam) = w.ipam.get_mut(&sid) {
                            ipam.take(a);
                        }
                    }
                    if let Ok(mac) = parse_mac(&p.mac_address) {
                        w.macs.insert((p.network_id.clone(), mac));
                    }
                    w.st.ports.insert(id.clone(), Arc::new(p.clone()));
                }
                None => {
                    w.st.ports.remove(id);
                }
            }
            c.ports.insert(id.clone());
        }
    }
    for ch in delta.changes {
        match ch {
            Change::Subnet(id, None) => {
                w.st.subnets.remove(&id);
                w.ipam.remove(&id);
                c.subnets.insert(id);
            }
            Change::Group(id, g) => {
                if let Some(old) = w.st.security_groups.get(&id).cloned() {
                    for r in &old.security_group_rules {
                        w.st.rule_owner.remove(&r.id);
                    }
                    if w.default_groups.get(&old.project_id) == Some(&id) {
                        w.default_groups.remove(&old.project_id);
                    }
                }
                match g {
                    Some(g) => {
                        for r in &g.security_group_rules {
                            w.st.rule_owner.insert(r.id.clone(), id.clone());
                            w.next_std_attr = w.next_std_attr.max(r.standard_attr_id + 1);
                        }
                        if g.name == "default" {
                            w.default_groups.insert(g.project_id.clone(), id.clone());
                        }
                        w.st.security_groups.insert(id.clone(), Arc::new(g));
                    }
                    None => {
                        w.st.security_groups.remove(&id);
                    }
                }
                c.security_groups.insert(id);
            }
            Change::Quotas(project, q) => match q {
                Some(q) => {
                    w.st.quotas.insert(project, Arc::new(q));
                }
                None => {
                    w.st.quotas.remove(&project);
                }
            },
            _ => {}
        }
    }
    Ok(c)
}

/// What differs between two states, as `changes_of` says it of a
/// mutation: the resources added, removed or changed.
fn diff(a: &NeutronState, b: &NeutronState) -> Changes {
    fn ids<T: PartialEq>(
        a: &imbl::OrdMap<String, Arc<T>>,
        b: &imbl::OrdMap<String, Arc<T>>,
        out: &mut std::collections::BTreeSet<String>,
    ) {
        for (k, v) in a {
            if b.get(k).is_none_or(|w| w != v) {
                out.insert(k.clone());
            }
        }
        for k in b.keys() {
            if !a.contains_key(k) {
                out.insert(k.clone());
            }
        }
    }
    let mut c = Changes::default();
    ids(&a.networks, &b.networks, &mut c.networks);
    ids(&a.subnets, &b.subnets, &mut c.subnets);
    ids(&a.ports, &b.ports, &mut c.ports);
    ids(
        &a.security_groups,
        &b.security_groups,
        &mut c.security_groups,
    );
    c.hosts = a.hosts != b.hosts;
    c
}

/// Rebuilds the world from the database: the documents plus the indexes
/// derived from them.
fn restore(store: &mut dyn Store) -> Result<World, NeutronError> {
    let loaded = store.load()?;
    let corrupt = |what: String| NeutronError::Store {
        path: store.describe(),
        reason: what,
    };
    let mut w = World::default();
    for n in loaded.networks {
        index_segment(&mut w, &n, true);
        w.st.networks.insert(n.id.clone(), Arc::new(n));
    }
    for sn in loaded.subnets {
        let (cidr, pools) = cidr_and_pools(&sn).map_err(corrupt)?;
        w.ipam.insert(
            sn.id.clone(),
            SubnetIpam::new(cidr, pools).with_auto(sn.is_auto_address()),
        );
        w.st.subnets.insert(sn.id.clone(), Arc::new(sn));
    }
    for p in loaded.ports {
        let mac = parse_mac(&p.mac_address).map_err(|e| corrupt(format!("port {}: {e}", p.id)))?;
        w.macs.insert((p.network_id.clone(), mac));
        for ip in &p.fixed_ips {
            let a = super::validate::parse_ip(&ip.ip_address).map_err(corrupt)?;
            match w.ipam.get_mut(&ip.subnet_id) {
                Some(ipam) => ipam.take(ip_to_u128(a)),
                None => {
                    return Err(corrupt(format!(
                        "port {} has an address on unknown subnet {}",
                        p.id, ip.subnet_id
                    )))
                }
            }
        }
        w.st.ports.insert(p.id.clone(), Arc::new(p));
    }
    let mut groups: OrdMap<String, SecurityGroup> = OrdMap::new();
    for g in loaded.groups {
        if g.name == "default" {
            w.default_groups.insert(g.project_id.clone(), g.id.clone());
        }
        groups.insert(g.id.clone(), g);
    }
    for r in loaded.rules {
        let Some(g) = groups.get_mut(&r.security_group_id) else {
            return Err(corrupt(format!(
                "rule {} of unknown group {}",
                r.id, r.security_group_id
            )));
        };
        w.st.rule_owner
            .insert(r.id.clone(), r.security_group_id.clone());
        g.security_group_rules.push(r);
    }
    // Documents written before these attributes existed get them now.
    w.next_std_attr = groups
        .values()
        .flat_map(|g| g.security_group_rules.iter())
        .map(|r| r.standard_attr_id + 1)
        .max()
        .unwrap_or(1);
    let ids: Vec<String> = groups.keys().cloned().collect();
    for id in ids {
        let Some(g) = groups.get_mut(&id) else {
            continue;
        };
        let is_default = w.default_groups.get(&g.project_id) == Some(&id);
        for r in g.security_group_rules.iter_mut() {
            if r.standard_attr_id == 0 {
                r.standard_attr_id = w.next_standard_attr_id();
                r.belongs_to_default_sg = is_default;
                if r.normalized_cidr.is_none() {
                    r.normalized_cidr = r.remote_prefix().map(|c| c.to_string());
                }
            }
        }
    }
    for (id, g) in groups {
        w.st.security_groups.insert(id, Arc::new(g));
    }
    let mut quotas: std::collections::BTreeMap<String, std::collections::BTreeMap<String, i64>> =
        Default::default();
    for (project, resource, limit) in loaded.quotas {
        quotas.entry(project).or_default().insert(resource, limit);
    }
    for (project, limits) in quotas {
        w.st.quotas.insert(project, Arc::new(limits));
    }
    for h in loaded.hosts {
        w.st.hosts.insert(h.host.clone(), Arc::new(h));
    }
    Ok(w)
}
