//! `vswitchd`: brings up the EAL, the ports and the pinned workers from a
//! validated [`Config`], then runs the control thread: it serves the control
//! socket, applies port changes by publishing new snapshots, advances the MAC
//! tables' clock and ages them out, until SIGINT/SIGTERM.
use crate::compiler::{self, LocalVlans, SwitchPort};
use crate::metrics::Latency;
use crate::port::{PortDevice, PortState};
use control_api::config::PortType;
use control_api::config::{Config, ConfigError, PortConfig};
use control_api::protocol::{FdbRow, PmdStatsRow, PortInfo, PortStatsRow, Request, Response};
use crossbeam::channel::{self, Sender};
use dataplane::mac_table::MacTable;
use dataplane::port::{PortMask, MAX_PORTS};
use dataplane::snapshot::{Snapshot, SnapshotCell};
use dataplane::stats::{PortTotals, WorkerStats};
use dataplane::view::{PortView, SwitchView};
use dataplane::vlan::PortVlan;
use dataplane::wire::EthernetAddress;
use dataplane::worker::Worker;
use dpdk_sys::eal::{Eal, RegisteredThread};
use dpdk_sys::ethdev::{EthStats, PortSetup};
use dpdk_sys::mempool::Mempool;
use neutron::{ApiServer, Neutron};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

const GRACE_TIMEOUT: Duration = Duration::from_secs(2);
const TICK: Duration = Duration::from_millis(100);

/// Why the daemon could not start or a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("eal.args: {0}")]
    Eal(dpdk_sys::DpdkError),
    #[error("{key}: {source}")]
    Dpdk {
        key: String,
        source: dpdk_sys::DpdkError,
    },
    #[error("control.socket: {0}")]
    Socket(std::io::Error),
    #[error("control.metrics_listen: {0}")]
    Metrics(String),
    #[error("dataplane.pmd_cores: {0}")]
    Worker(String),
    #[error("{0}")]
    Neutron(String),
}

/// The Neutron side of the daemon: the service, its API server, and what
/// the compiler keeps between runs.
struct NeutronSide {
    service: Neutron,
    api: Option<ApiServer>,
    updates: channel::Receiver<neutron::StateUpdate>,
    mappings: BTreeMap<String, String>,
    locals: LocalVlans,
    /// From a committed change reaching the control thread to its snapshot
    /// being in use by every worker (or to knowing it changes nothing there).
    latency: Latency,
    /// The same, for the changes that altered the dataplane.
    dataplane_latency: Latency,
    /// Generation of the Neutron state last compiled.
    compiled_generation: u64,
    /// Neutron ports whose switch port could not be opened, and when:
    /// retried after a while.
    attach_failures: BTreeMap<String, Instant>,
    /// The status each attached Neutron port should have, as last compiled.
    statuses: BTreeMap<String, neutron::model::PortStatus>,
}

struct OpenPort {
    cfg: PortConfig,
    bridge: usize,
    vlan: PortVlan,
    /// Security-group rule set of the attached Neutron port.
    acl: Option<Arc<dataplane::acl::PortAcl>>,
    /// Opened by the daemon for a Neutron port bound here (an SR-IOV VF or
    /// a vhost-user socket), not by config or `port add`.
    auto_attached: bool,
    dev: PortDevice,
    /// As last seen by the control thread (changes are logged).
    state: PortState,
    base: PortTotals,
}

struct BridgeState {
    name: String,
    fdb: Arc<MacTable>,
}

#[derive(Clone, Copy, Default)]
struct PmdBase {
    packets: u64,
    busy: u64,
    idle: u64,
    iterations: u64,
}

pub struct Daemon {
    cfg: Config,
    ports: BTreeMap<String, OpenPort>,
    bridges: Vec<BridgeState>,
    cell: Arc<SnapshotCell>,
    workers: Vec<Arc<WorkerStats>>,
    pmd_base: Vec<PmdBase>,
    threads: Vec<JoinHandle<()>>,
    worker_stop: Arc<AtomicBool>,
    generation: u64,
    /// Time from the start of a change to the snapshot being in use by
    /// every worker (build + publish + grace period).
    apply_latency: crate::metrics::Latency,
    started: Instant,
    socket_path: PathBuf,
    neutron: Option<NeutronSide>,
    // Dropped last, in this order: the pool after every port, the EAL last.
    pool: Arc<Mempool>,
    eal: Arc<Eal>,
}

impl Daemon {
    /// Validates, initialises the EAL, opens every port and starts the
    /// workers. On error nothing keeps running.
    pub fn start(cfg: Config) -> Result<Daemon, DaemonError> {
        cfg.validate()?;
        // The store opens before the EAL: its config errors come first and
        // nothing has started when they do.
        let neutron = match &cfg.neutron {
            Some(ncfg) => {
                let service =
                    Neutron::open(ncfg.clone()).map_err(|e| DaemonError::Neutron(e.to_string()))?;
                Some(NeutronSide {
                    updates: service.subscribe(),
                    mappings: compiler::parse_mappings(&ncfg.bridge_mappings),
                    service,
                    api: None,
                    locals: LocalVlans::default(),
                    latency: Latency::default(),
                    dataplane_latency: Latency::default(),
                    compiled_generation: u64::MAX,
                    attach_failures: BTreeMap::new(),
                    statuses: BTreeMap::new(),
                })
            }
            None => None,
        };
        if let Some(n) = &neutron {
            for (physnet, uplink) in &n.mappings {
                if !cfg
                    .bridges
                    .iter()
                    .flat_map(|b| &b.ports)
                    .any(|p| &p.name == uplink)
                {
                    return Err(DaemonError::Config(ConfigError {
                        key: "neutron.bridge_mappings".into(),
                        reason: format!(
                            "{physnet} maps to {uplink:?}, which is not a port of any bridge"
                        ),
                    }));
                }
            }
        }
        if let Some(ncfg) = &cfg.neutron {
            // Where the hypervisor creates the sockets of the VMs bound here
            // (OVS's /var/run/openvswitch); it must exist before they start.
            std::fs::create_dir_all(&ncfg.vhost_socket_dir).map_err(|e| {
                DaemonError::Config(ConfigError {
                    key: "neutron.vhost_socket_dir".into(),
                    reason: format!("cannot create {}: {e}", ncfg.vhost_socket_dir.display()),
                })
            })?;
        }
        let eal = Arc::new(Eal::init(&cfg.eal_args()).map_err(DaemonError::Eal)?);
        let d = &cfg.dataplane;
        let pool = Arc::new(
            Mempool::new_pktmbuf(
                &eal,
                "fsw_mbufs",
                d.mbufs,
                256,
                dpdk_sys::raw::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
                -1,
            )
            .map_err(|e| DaemonError::Dpdk {
                key: "dataplane.mbufs".into(),
                source: e,
            })?,
        );
        let nworkers = d.pmd_cores.len();
        let bridges: Vec<BridgeState> = cfg
            .bridges
            .iter()
            .map(|b| BridgeState {
                name: b.name.clone(),
                fdb: Arc::new(MacTable::new(d.mac_table_size, d.mac_aging_secs)),
            })
            .collect();
        let workers: Vec<Arc<WorkerStats>> = d
            .pmd_cores
            .iter()
            .map(|&c| Arc::new(WorkerStats::new(c)))
            .collect();
        let socket_path = PathBuf::from(&cfg.control.socket);
        let mut daemon = Daemon {
            ports: BTreeMap::new(),
            bridges,
            cell: Arc::new(SnapshotCell::new(Snapshot::empty(nworkers), nworkers)),
            pmd_base: vec![PmdBase::default(); nworkers],
            workers,
            threads: Vec::new(),
            worker_stop: Arc::new(AtomicBool::new(false)),
            generation: 0,
            apply_latency: Default::default(),
            started: Instant::now(),
            socket_path,
            neutron,
            pool,
            eal,
            cfg,
        };
        let bridges_cfg = daemon.cfg.bridges.clone();
        for (bi, b) in bridges_cfg.iter().enumerate() {
            for (pi, p) in b.ports.iter().enumerate() {
                daemon
                    .open_port(bi, p.clone())
                    .map_err(|e| DaemonError::Dpdk {
                        key: format!("bridges[{bi}].ports[{pi}].{}", p.device_key()),
                        source: e,
                    })?;
            }
        }
        daemon.reconcile_attachments();
        daemon.compile_neutron();
        daemon.publish();
        daemon.spawn_workers()?;
        Ok(daemon)
    }

    fn spawn_workers(&mut self) -> Result<(), DaemonError> {
        for (i, &core) in self.cfg.dataplane.pmd_cores.iter().enumerate() {
            // The daemon itself may be confined to the control core (taskset):
            // pin by id, the kernel refuses a core that does not exist.
            let core_id = core_affinity::CoreId { id: core };
            let worker = Worker {
                index: i,
                cell: Arc::clone(&self.cell),
                stats: Arc::clone(&self.workers[i]),
                pool: Arc::clone(&self.pool),
                stop: Arc::clone(&self.worker_stop),
            };
            let eal = Arc::clone(&self.eal);
            let (ready_tx, ready_rx) = channel::bounded(1);
            let h = std::thread::Builder::new()
                .name(format!("pmd-c{core:02}"))
                .spawn(move || {
                    if !core_affinity::set_for_current(core_id) {
                        let _ = ready_tx.send(Err(format!("cannot pin to core {core}")));
                        return;
                    }
                    let reg = match RegisteredThread::register(&eal) {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(reg.lcore()));
                    worker.run();
                    drop(reg);
                })
                .map_err(|e| DaemonError::Worker(e.to_string()))?;
            match ready_rx.recv() {
                Ok(Ok(lcore)) => info!(worker = i, core, lcore, "PMD worker started"),
                Ok(Err(e)) => return Err(DaemonError::Worker(e)),
                Err(_) => return Err(DaemonError::Worker("worker thread died".into())),
            }
            self.threads.push(h);
        }
        Ok(())
    }

    fn open_port(&mut self, bridge: usize, cfg: PortConfig) -> Result<(), dpdk_sys::DpdkError> {
        let vlan = cfg.validate("port").map_err(|e| dpdk_sys::DpdkError {
            call: "config",
            errno: libc::EINVAL,
            reason: e.to_string(),
        })?;
        let setup = PortSetup {
            rx_queues: cfg.rx_queues,
            tx_queues: self.cfg.dataplane.pmd_cores.len() as u16,
            rx_desc: self.cfg.dataplane.rx_desc,
            tx_desc: self.cfg.dataplane.tx_desc,
        };
        // The lowest switch port number not in use.
        let used: PortMask = self.ports.values().map(|p| p.dev.port_id()).collect();
        let Some(number) = used.first_free() else {
            return Err(dpdk_sys::DpdkError {
                call: "port add",
                errno: libc::ENOSPC,
                reason: format!("at most {MAX_PORTS} ports"),
            });
        };
        let device = cfg.device(&self.cfg.dataplane.vhost_sock_dir);
        let dev = PortDevice::open(number, &device, setup, &self.pool)?;
        let base = PortTotals::sum(&self.workers, number);
        let state = dev.state();
        info!(port = %cfg.name, port_id = number.get(), r#type = %cfg.kind, device = %dev.dpdk_name(), vlan_mode = %vlan.mode(), state = state.as_str(), "port added");
        self.ports.insert(
            cfg.name.clone(),
            OpenPort {
                cfg,
                bridge,
                vlan,
                acl: None,
                auto_attached: false,
                dev,
                state,
                base,
            },
        );
        Ok(())
    }

    /// Builds a snapshot from the current state, publishes it and waits for
    /// a grace period, after which the previous snapshot is freed here.
    fn publish(&mut self) {
        self.publish_since(Instant::now());
    }

    /// As [`Self::publish`], for a change that began at `since` (its latency
    /// to the dataplane is recorded).
    fn publish_since(&mut self, since: Instant) {
        self.generation += 1;
        let nworkers = self.workers.len();
        let mut view = SwitchView::default();
        for b in &self.bridges {
            view.add_bridge(b.name.clone(), Arc::clone(&b.fdb));
        }
        // Keep queues where they are; place new ones on the least loaded worker.
        let old = self.cell.load_full();
        let mut load = vec![0usize; nworkers];
        let mut assignment = vec![Vec::new(); nworkers];
        for p in self.ports.values() {
            let id = p.dev.port_id();
            if let Err(e) = view.add_port(PortView {
                id,
                name: p.cfg.name.clone(),
                bridge: p.bridge,
                vlan: p.vlan.clone(),
                acl: p.acl.clone(),
            }) {
                error!("snapshot: {e}");
                continue;
            }
            for q in 0..p.cfg.rx_queues {
                let same_port = old
                    .queues(id)
                    .is_some_and(|o| Arc::ptr_eq(o, p.dev.queues()));
                let prev = same_port
                    .then(|| old.rx_assignment.iter().position(|v| v.contains(&(id, q))))
                    .flatten();
                let w = prev.unwrap_or_else(|| (0..nworkers).min_by_key(|&w| load[w]).unwrap_or(0));
                assignment[w].push((id, q));
                load[w] += 1;
            }
        }
        let mut snap = Snapshot::new(self.generation, view, assignment);
        for p in self.ports.values() {
            snap.set_queues(p.dev.port_id(), Arc::clone(p.dev.queues()));
        }
        drop(old);
        let gen = snap.generation;
        let previous = self.cell.publish(snap);
        if !self.cell.synchronize(gen, GRACE_TIMEOUT) {
            warn!(
                generation = gen,
                "a worker did not pick up the new snapshot in time"
            );
        }
        self.apply_latency.record(since.elapsed());
        drop(previous);
    }

    fn add_port(&mut self, bridge: &str, cfg: PortConfig) -> Result<(), String> {
        let vlan_err = cfg.validate("port").map_err(|e| e.to_string());
        vlan_err?;
        let bi = self
            .bridges
            .iter()
            .position(|b| b.name == bridge)
            .ok_or_else(|| format!("bridge: no bridge named {bridge:?}"))?;
        if self.ports.contains_key(&cfg.name) {
            return Err(format!("port.name: a port named {:?} exists", cfg.name));
        }
        let sock_dir = &self.cfg.dataplane.vhost_sock_dir;
        let dev = cfg.device(sock_dir).identity();
        if self
            .ports
            .values()
            .any(|p| p.cfg.device(sock_dir).identity() == dev)
        {
            return Err(format!(
                "port.{}: device {dev:?} is already a port",
                cfg.device_key()
            ));
        }
        if self.ports.len() >= MAX_PORTS {
            return Err(format!("port: at most {MAX_PORTS} ports"));
        }
        let key = cfg.device_key();
        self.open_port(bi, cfg)
            .map_err(|e| format!("port.{key}: {e}"))?;
        self.compile_neutron();
        self.publish();
        self.report_neutron_status();
        Ok(())
    }

    /// Removes a port; returns its final counters (complete: every worker
    /// has finished with it when this returns).
    fn del_port(&mut self, name: &str) -> Result<PortStatsRow, String> {
        let Some(p) = self.ports.remove(name) else {
            return Err(format!("name: no port named {name:?}"));
        };
        if self
            .neutron
            .as_ref()
            .is_some_and(|n| n.mappings.values().any(|u| u == name))
        {
            self.ports.insert(name.to_owned(), p);
            return Err(format!(
                "name: {name} is the uplink of a physical network in neutron.bridge_mappings"
            ));
        }
        self.compile_neutron();
        // Workers drop the port's queues when they adopt this snapshot.
        self.publish();
        let id = p.dev.port_id();
        if let Some(b) = self.bridges.get(p.bridge) {
            b.fdb.flush_port(id);
        }
        let deadline = Instant::now() + GRACE_TIMEOUT;
        let base = p.base;
        let hw = p.dev.hw_stats();
        let mut dev = p.dev;
        loop {
            match dev.close() {
                Ok(()) => break,
                Err((back, e)) => {
                    if Instant::now() >= deadline {
                        error!(port = name, "cannot close: {e}; leaving the device open");
                        std::mem::forget(back);
                        break;
                    }
                    dev = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        let t = PortTotals::sum(&self.workers, id).since(base);
        self.report_neutron_status();
        info!(
            port = name,
            port_id = id.get(),
            rx = t.rx_packets,
            tx = t.tx_packets,
            "port deleted"
        );
        Ok(stats_row(name, id.get(), t, hw))
    }

    /// Compiles the current Neutron state into the ports' VLAN rules; true
    /// when some port changed (the caller publishes). Ports whose VLAN
    /// changes forget what they learned.
    fn compile_neutron(&mut self) -> bool {
        let Some(n) = self.neutron.as_mut() else {
            return false;
        };
        let state = n.service.state();
        let views = switch_port_views(&self.ports);
        let compiled = compiler::compile(&state, &views, &n.mappings, &mut n.locals);
        drop(views);
        n.compiled_generation = state.generation;
        n.statuses = compiled.statuses;
        for w in &compiled.warnings {
            warn!("neutron: {w}");
        }
        let mut changed = false;
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
        for p in self.ports.values_mut() {
            let acl = compiled.port_acls.get(&p.cfg.name).cloned();
            if p.acl != acl {
                p.acl = acl;
                changed = true;
            }
        }
        changed
    }

    /// Opens a switch port for every Neutron port bound here that needs one
    /// (a vhost-user socket, an SR-IOV VF; see [`compiler::attachments`]), in
    /// its network's VLAN via iface_id, and closes those no longer wanted.
    /// One that cannot be opened is logged, its port stays DOWN, and it is
    /// retried every 30 s.
    fn reconcile_attachments(&mut self) {
        let Some(n) = self.neutron.as_mut() else {
            return;
        };
        let wanted = compiler::attachments(&n.service.state());
        let stale: Vec<String> = self
            .ports
            .values()
            .filter(|p| {
                p.auto_attached
                    && !p.cfg.iface_id.as_ref().is_some_and(|id| {
                        wanted.get(id).is_some_and(|a| a.port_config(id) == p.cfg)
                    })
            })
            .map(|p| p.cfg.name.clone())
            .collect();
        for name in stale {
            match self.del_port(&name) {
                Ok(_) => info!(port = %name, "Neutron port detached"),
                Err(e) => warn!(port = %name, "cannot detach: {e}"),
            }
        }
        let Some(n) = self.neutron.as_mut() else {
            return;
        };
        n.attach_failures
            .retain(|id, at| wanted.contains_key(id) && at.elapsed() < Duration::from_secs(30));
        let todo: Vec<(String, compiler::Attachment)> = wanted
            .into_iter()
            .filter(|(id, _)| !n.attach_failures.contains_key(id))
            .filter(|(_, a)| !self.ports.contains_key(&a.port_name))
            .collect();
        for (id, a) in todo {
            let cfg = a.port_config(&id);
            match self.open_port(0, cfg) {
                Ok(()) => {
                    if let Some(p) = self.ports.get_mut(&a.port_name) {
                        p.auto_attached = true;
                    }
                    info!(neutron_port = %id, r#type = %a.kind, target = %a.target, port = %a.port_name, "Neutron port attached");
                }
                Err(e) => {
                    warn!(neutron_port = %id, r#type = %a.kind, target = %a.target, "cannot attach: {e}");
                    if let Some(n) = self.neutron.as_mut() {
                        n.attach_failures.insert(id, Instant::now());
                    }
                }
            }
        }
    }

    /// Tells Neutron the status each attached port has now (only changes).
    /// Uses the statuses of the last [`Self::compile_neutron`]; call that
    /// first when the ports or the state may have changed.
    fn report_neutron_status(&mut self) {
        let Some(n) = self.neutron.as_mut() else {
            return;
        };
        let state = n.service.state();
        for (id, &status) in &n.statuses {
            if state.ports.get(id).is_some_and(|p| p.status != status) {
                info!(neutron_port = %id, status = status.as_str(), "port status");
                if let Err(e) = n.service.set_port_status(id, status) {
                    warn!(neutron_port = %id, "cannot report status: {e}");
                }
            }
        }
    }

    /// A committed Neutron change: compile, publish if the dataplane changes,
    /// record the latency, report port statuses.
    fn on_neutron_update(&mut self, since: Instant) {
        self.reconcile_attachments();
        let changed = self.compile_neutron();
        if changed {
            self.publish();
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

    fn handle(&mut self, req: Request) -> Response {
        match req {
            Request::PortList => {
                Response::ok(serde_json::to_value(self.port_list()).unwrap_or_default())
            }
            Request::PortStats => {
                Response::ok(serde_json::to_value(self.port_stats()).unwrap_or_default())
            }
            Request::PortAdd { bridge, port } => match self.add_port(&bridge, port) {
                Ok(()) => Response::ok(serde_json::Value::Null),
                Err(e) => Response::err(e),
            },
            Request::PortDel { name } => match self.del_port(&name) {
                Ok(last) => Response::ok(serde_json::to_value(last).unwrap_or_default()),
                Err(e) => Response::err(e),
            },
            Request::FdbShow { bridge } => match self.fdb_rows(bridge.as_deref()) {
                Ok(rows) => Response::ok(serde_json::to_value(rows).unwrap_or_default()),
                Err(e) => Response::err(e),
            },
            Request::FdbFlush { bridge } => {
                let mut n = 0;
                for b in &self.bridges {
                    if bridge.as_deref().is_none_or(|want| want == b.name) {
                        n += b.fdb.flush();
                    }
                }
                Response::ok(serde_json::json!({ "flushed": n }))
            }
            Request::PmdStats => {
                Response::ok(serde_json::to_value(self.pmd_stats()).unwrap_or_default())
            }
            Request::Metrics => Response::ok(serde_json::Value::String(self.metrics())),
            Request::PmdStatsClear => {
                for (i, w) in self.workers.iter().enumerate() {
                    self.pmd_base[i] = PmdBase {
                        packets: w.packets.get(),
                        busy: w.busy_cycles.get(),
                        idle: w.idle_cycles.get(),
                        iterations: w.iterations.get(),
                    };
                }
                Response::ok(serde_json::Value::Null)
            }
        }
    }

    fn port_list(&self) -> Vec<PortInfo> {
        let mut v: Vec<PortInfo> = self
            .ports
            .values()
            .map(|p| (p, p.dev.state()))
            .map(|(p, state)| PortInfo {
                name: p.cfg.name.clone(),
                bridge: self.bridges[p.bridge].name.clone(),
                port_id: p.dev.port_id().get(),
                devargs: p.cfg.devargs.clone(),
                dpdk_name: p.dev.dpdk_name().to_owned(),
                vlan_mode: p.vlan.mode().to_string(),
                tag: p.vlan.tag(),
                trunks: p.vlan.trunks().to_vec(),
                vlan_translations: p.vlan.translations().to_vec(),
                rx_queues: p.cfg.rx_queues,
                iface_id: p.cfg.iface_id.clone(),
                security: p.acl.as_ref().map(|a| control_api::protocol::PortSecurity {
                    port_security: a.port_security,
                    allowed_sources: a.allowed_sources.len(),
                    ingress_rules: a.count(dataplane::acl::Direction::Ingress),
                    egress_rules: a.count(dataplane::acl::Direction::Egress),
                }),
                link_up: state == PortState::Active,
                state: state.as_str().to_owned(),
                kind: p.cfg.kind.to_string(),
                mac: p
                    .dev
                    .mac_addr()
                    .map(|m| EthernetAddress(m).to_string())
                    .unwrap_or_default(),
                vhost: p
                    .dev
                    .vhost_status()
                    .map(|v| control_api::protocol::VhostInfo {
                        mode: match p.cfg.kind {
                            PortType::Dpdkvhostuser => "server",
                            _ => "client",
                        }
                        .to_owned(),
                        attached: v.attached,
                        queue_pairs: v.queue_pairs,
                        enabled_queues: v.enabled_queues,
                        connects: v.connects,
                        disconnects: v.disconnects,
                    }),
            })
            .collect();
        v.sort_by_key(|p| p.port_id);
        v
    }

    fn port_stats(&self) -> Vec<PortStatsRow> {
        let mut v: Vec<PortStatsRow> = self
            .ports
            .values()
            .map(|p| {
                let t = PortTotals::sum(&self.workers, p.dev.port_id()).since(p.base);
                let hw = p.dev.hw_stats();
                stats_row(&p.cfg.name, p.dev.port_id().get(), t, hw)
            })
            .collect();
        v.sort_by_key(|r| r.port_id);
        v
    }

    fn pmd_stats(&self) -> Vec<PmdStatsRow> {
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
                    rx_queues,
                    drops_malformed: w.drops.malformed.get(),
                    drops_vlan: w.drops.vlan_violation.get(),
                    drops_no_output: w.drops.no_output.get(),
                    drops_tx_full: w.drops.tx_full.get(),
                    drops_no_mbuf: w.drops.no_mbuf.get(),
                }
            })
            .collect()
    }

    fn metrics(&self) -> String {
        let mut e = crate::metrics::Exposition::default();
        for p in self.port_stats() {
            let bridge = self
                .ports
                .get(&p.name)
                .map(|o| self.bridges[o.bridge].name.clone())
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
                "ferroswitch_port_rx_missed_total",
                "Frames the PMD missed (imissed).",
                &l,
                p.rx_missed,
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
                ("no_output", w.drops_no_output),
                ("tx_full", w.drops_tx_full),
                ("no_mbuf", w.drops_no_mbuf),
            ] {
                e.counter(
                    "ferroswitch_pmd_drops_total",
                    "Frames dropped by the PMD, by reason.",
                    &[("core", core.as_str()), ("reason", reason)],
                    v,
                );
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
                n.locals.len() as f64,
            );
            e.api_routes(&n.service.api_metrics());
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

    fn fdb_rows(&self, bridge: Option<&str>) -> Result<Vec<FdbRow>, String> {
        if let Some(b) = bridge {
            if !self.bridges.iter().any(|x| x.name == b) {
                return Err(format!("bridge: no bridge named {b:?}"));
            }
        }
        let snap = self.cell.load_full();
        let mut rows = Vec::new();
        for br in &self.bridges {
            if bridge.is_some_and(|b| b != br.name) {
                continue;
            }
            for e in br.fdb.entries() {
                rows.push(FdbRow {
                    bridge: br.name.clone(),
                    port: snap
                        .view
                        .port(e.port)
                        .map(|p| p.name.clone())
                        .unwrap_or_else(|| e.port.to_string()),
                    vlan: e.vlan,
                    mac: EthernetAddress::from_u64(e.mac).to_string(),
                    age: e.age,
                });
            }
        }
        Ok(rows)
    }

    fn tick(&mut self, last_expire: &mut Instant) {
        self.log_port_states();
        let now = self.started.elapsed().as_secs() as u32 + 1;
        for b in &self.bridges {
            b.fdb.set_now(now);
        }
        if last_expire.elapsed() >= Duration::from_secs(1) {
            *last_expire = Instant::now();
            for b in &self.bridges {
                b.fdb.expire();
            }
            // Links come and go without a Neutron change; failed attachments retry.
            if self
                .neutron
                .as_ref()
                .is_some_and(|n| !n.attach_failures.is_empty())
            {
                self.reconcile_attachments();
            }
            if self.compile_neutron() {
                self.publish();
            }
            self.report_neutron_status();
        }
    }

    /// Logs every port whose state changed since the last look (a VM's
    /// vhost-user device coming and going, a link going down).
    fn log_port_states(&mut self) {
        for p in self.ports.values_mut() {
            let now = p.dev.state();
            if now != p.state {
                let v = p.dev.vhost_status().unwrap_or_default();
                info!(port = %p.cfg.name, from = p.state.as_str(), to = now.as_str(), queue_pairs = v.queue_pairs, enabled_queues = v.enabled_queues, "port state");
                p.state = now;
            }
        }
    }

    /// Serves the control socket and keeps the tables ticking until `stop`.
    pub fn run(mut self, stop: Arc<AtomicBool>) -> Result<(), DaemonError> {
        let (tx, rx) = channel::bounded::<(Request, Sender<Response>)>(16);
        let listener = bind_socket(&self.socket_path)?;
        let sock_stop = Arc::clone(&stop);
        let metrics_thread = match &self.cfg.control.metrics_listen {
            Some(addr) => {
                let addr = addr
                    .parse()
                    .map_err(|e| DaemonError::Metrics(format!("{addr}: {e}")))?;
                let h = crate::metrics::serve(addr, tx.clone(), Arc::clone(&stop))
                    .map_err(|e| DaemonError::Metrics(format!("{addr}: {e}")))?;
                info!(%addr, "Prometheus metrics on /metrics");
                Some(h)
            }
            None => None,
        };
        let sock_thread = std::thread::Builder::new()
            .name("ctl-socket".into())
            .spawn(move || serve_socket(listener, tx, sock_stop))
            .map_err(DaemonError::Socket)?;
        info!(socket = %self.socket_path.display(), ports = self.ports.len(), workers = self.workers.len(), "vswitchd running");
        if let Some(n) = self.neutron.as_mut() {
            let api = n
                .service
                .serve()
                .map_err(|e| DaemonError::Neutron(e.to_string()))?;
            info!(listen = %api.local_addr(), "Neutron API serving");
            n.api = Some(api);
        }
        self.report_neutron_status();
        // A receiver that never delivers when Neutron is off.
        let updates = self
            .neutron
            .as_ref()
            .map(|n| n.updates.clone())
            .unwrap_or_else(channel::never);
        let mut last_expire = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            channel::select! {
                recv(rx) -> msg => match msg {
                    Ok((req, reply)) => {
                        let resp = self.handle(req);
                        let _ = reply.send(resp);
                    }
                    Err(_) => break,
                },
                recv(updates) -> msg => {
                    let since = Instant::now();
                    if msg.is_ok() {
                        // Only the newest state matters: skip what queued up.
                        while updates.try_recv().is_ok() {}
                        self.on_neutron_update(since);
                    }
                },
                default(TICK) => {}
            }
            self.tick(&mut last_expire);
        }
        if let Some(api) = self.neutron.as_mut().and_then(|n| n.api.take()) {
            api.shutdown();
        }
        info!("stopping");
        stop.store(true, Ordering::Relaxed);
        let _ = sock_thread.join();
        if let Some(h) = metrics_thread {
            let _ = h.join();
        }
        let _ = std::fs::remove_file(&self.socket_path);
        self.shutdown();
        Ok(())
    }

    /// Stops the workers, then closes every port (their queues are free).
    pub fn shutdown(&mut self) {
        self.worker_stop.store(true, Ordering::Relaxed);
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
        for (name, p) in std::mem::take(&mut self.ports) {
            if let Err((back, e)) = p.dev.close() {
                error!(port = %name, "close: {e}");
                std::mem::forget(back);
            }
        }
        // The snapshot holds queue handles' shared state only; drop it now.
        self.cell.publish(Snapshot::empty(0));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !self.threads.is_empty() || !self.ports.is_empty() {
            self.shutdown();
        }
    }
}

/// The compiler's view of the switch ports.
fn switch_port_views(ports: &BTreeMap<String, OpenPort>) -> Vec<SwitchPort<'_>> {
    ports
        .values()
        .map(|p| SwitchPort {
            name: &p.cfg.name,
            iface_id: p.cfg.iface_id.as_deref(),
            link_up: p.dev.state() == PortState::Active,
        })
        .collect()
}

/// A port's row: the switch's own counters plus what the PMD saw missing.
fn stats_row(name: &str, port_id: u16, t: PortTotals, hw: EthStats) -> PortStatsRow {
    PortStatsRow {
        name: name.to_owned(),
        port_id,
        rx_packets: t.rx_packets,
        rx_bytes: t.rx_bytes,
        tx_packets: t.tx_packets,
        tx_bytes: t.tx_bytes,
        rx_dropped: t.rx_dropped,
        tx_dropped: t.tx_dropped,
        rx_missed: hw.imissed,
        rx_errors: hw.ierrors,
        tx_errors: hw.oerrors,
    }
}

fn bind_socket(path: &Path) -> Result<UnixListener, DaemonError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(DaemonError::Socket)?;
    }
    if path.exists() {
        // A live daemon answers; a stale file from a crash does not.
        if UnixStream::connect(path).is_ok() {
            return Err(DaemonError::Socket(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is served by another running vswitchd", path.display()),
            )));
        }
        std::fs::remove_file(path).map_err(DaemonError::Socket)?;
    }
    let l = UnixListener::bind(path).map_err(DaemonError::Socket)?;
    l.set_nonblocking(true).map_err(DaemonError::Socket)?;
    Ok(l)
}

fn serve_socket(
    listener: UnixListener,
    tx: Sender<(Request, Sender<Response>)>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = serve_conn(stream, &tx) {
                    warn!("control connection: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => {
                warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn serve_conn(stream: UnixStream, tx: &Sender<(Request, Sender<Response>)>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.by_ref().take(1 << 20).read_line(&mut line)?;
    let resp = match serde_json::from_str::<Request>(&line) {
        Ok(req) => {
            let (rtx, rrx) = channel::bounded(1);
            if tx.send((req, rtx)).is_err() {
                Response::err("daemon is stopping")
            } else {
                rrx.recv_timeout(Duration::from_secs(30))
                    .unwrap_or_else(|_| Response::err("daemon did not answer in 30 s"))
            }
        }
        Err(e) => Response::err(format!("request: {e}")),
    };
    let mut out = serde_json::to_string(&resp)?;
    out.push('\n');
    (&stream).write_all(out.as_bytes())
}

use std::io::Read as _;
