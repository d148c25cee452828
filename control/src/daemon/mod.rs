//! `vswitchd`: brings up the EAL, the ports and the pinned workers from a
//! validated [`Config`], then runs the control thread: it serves the control
//! socket, applies port changes by publishing new snapshots, follows the
//! Neutron model, advances the MAC tables' clock and ages them out, until
//! SIGINT/SIGTERM.
//!
//! By responsibility: this module is the lifecycle (start, the control
//! loop, shutdown) and publication; [`ports`] the switch ports;
//! [`snapshot`] what a snapshot holds (a pure function);
//! [`neutron_sync`] following Neutron; [`socket`] the control socket;
//! [`metrics`] what `/metrics` and `pmd-stats` report; [`error`] why
//! things fail.
mod error;
mod flows;
mod limits;
mod metrics;
mod neutron_sync;
mod ports;
pub mod snapshot;
mod socket;

pub use error::{DaemonError, FdbError, OpenError, PortError, WorkerError};

use crate::compiler;
use crate::metrics::Latency;
use crate::perms;
use control_api::config::{Config, PortType};
use control_api::protocol::{Request, Response};
use crossbeam::channel::{self, Receiver};
use dataplane::mac_table::MacTable;
use dataplane::snapshot::{Snapshot, SnapshotCell};
use dataplane::stats::WorkerStats;
use dataplane::worker::Worker;
use dpdk_sys::eal::{Eal, RegisteredThread};
use dpdk_sys::mempool::Mempool;
use neutron::{Changes, Neutron};
use neutron_sync::NeutronSide;
use ports::OpenPort;
use socket::Call;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

/// How long a change waits for every worker to take its snapshot.
const GRACE_TIMEOUT: Duration = Duration::from_secs(2);
/// The control loop's tick: MAC clock, port states.
const TICK: Duration = Duration::from_millis(100);

/// A bridge: its name and MAC table (its ports are `OpenPort::bridge`).
pub(super) struct BridgeState {
    pub name: String,
    pub fdb: Arc<MacTable>,
    pub forward_bpdu: bool,
    /// `userspace_tso`: the bridge's ports are opened with offloads.
    pub userspace_tso: bool,
    /// Its flow tables.
    pub(super) flows: flows::BridgeFlows,
    /// l2population's remote MACs and the ARP responder's addresses
    /// (the integration bridge, with vxlan networks).
    pub known: Option<Arc<dataplane::l2pop::KnownPorts>>,
}

/// Buffers of the pool guests' TSO segments are copied into.
const TSO_MBUFS: u32 = 4095;

/// Worker counters at the last `pmd-stats-clear`.
#[derive(Clone, Copy, Default)]
pub(super) struct PmdBase {
    pub packets: u64,
    pub busy: u64,
    pub idle: u64,
    pub iterations: u64,
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
    apply_latency: Latency,
    started: Instant,
    socket_path: PathBuf,
    /// Bound at start, before the EAL; served by `run`.
    listeners: Option<Listeners>,
    /// The group of the vhost-user sockets (`dataplane.vhost_sock_group`).
    vhost_gid: Option<u32>,
    neutron: Option<NeutronSide>,
    /// The connection tracker, made when the first port with port security
    /// appears.
    conntrack: Option<Arc<dataplane::conntrack::ConnTable>>,
    /// The connection table being built on another thread while the
    /// Neutron model loads: Neutron ports have port security by default,
    /// so with `[neutron]` the table is all but certain to be needed, and
    /// filling it (hundreds of MiB) would otherwise add to start-up.
    conntrack_prepared: Option<std::thread::JoinHandle<dataplane::conntrack::ConnTable>>,
    /// The tunnels' next hops as last published (what workers learn by
    /// ARP lives in it; the next snapshot keeps it while they stay).
    neighbours: Arc<dataplane::neighbour::NeighbourTable>,
    // Held for the workers and ports opened later; the types keep DPDK's
    // lifetimes (a port holds its pool, a pool the EAL).
    pool: Arc<Mempool>,
    /// Large buffers for guests' TSO segments, when a bridge has
    /// `userspace_tso`.
    tso_pool: Option<Arc<Mempool>>,
    eal: Arc<Eal>,
}

/// The listeners `start` binds and `run` serves.
struct Listeners {
    control: std::os::unix::net::UnixListener,
    /// Removes the socket's file when the daemon stops or fails to start.
    control_file: socket::SocketFile,
    metrics: Option<std::net::TcpListener>,
    api: Option<std::net::TcpListener>,
}

/// The id of a configured group (checked by `Config::validate`).
fn group(key: &str, name: &Option<String>) -> Result<Option<u32>, DaemonError> {
    name.as_deref()
        .map(|g| {
            control_api::config::group_id(g).map_err(|reason| {
                DaemonError::Config(control_api::config::ConfigError {
                    key: key.into(),
                    reason,
                })
            })
        })
        .transpose()
}

impl Daemon {
    /// Validates, initialises the EAL, opens every port and starts the
    /// workers. On error nothing keeps running.
    pub fn start(cfg: Config) -> Result<Daemon, DaemonError> {
        cfg.validate()?;
        let socket_gid = group("control.socket_group", &cfg.control.socket_group)?;
        let vhost_gid = group(
            "dataplane.vhost_sock_group",
            &cfg.dataplane.vhost_sock_group,
        )?;
        let api_connections = limits::descriptor_budget(cfg.neutron.as_ref())?;
        // The vhost-user directories get their modes before any socket is
        // made in them (DPDK binds with the umask's mode).
        let vhost_dir_mode = if vhost_gid.is_some() {
            perms::DIR_SHARED
        } else {
            perms::DIR_PRIVATE
        };
        let config_err = |key: &str, reason: String| {
            DaemonError::Config(control_api::config::ConfigError {
                key: key.into(),
                reason,
            })
        };
        let sock_dir = std::path::Path::new(&cfg.dataplane.vhost_sock_dir);
        perms::own_dir(sock_dir, vhost_dir_mode, vhost_gid).map_err(|e| {
            config_err(
                "dataplane.vhost_sock_dir",
                format!("cannot create or set up {}: {e}", sock_dir.display()),
            )
        })?;
        // Every listener is bound before the EAL and the ports start: a
        // taken address is found while nothing runs.
        let (control, control_file) =
            socket::bind_socket(std::path::Path::new(&cfg.control.socket), socket_gid)?;
        let metrics = match &cfg.control.metrics_listen {
            Some(addr) => {
                let parsed: std::net::SocketAddr =
                    addr.parse().map_err(|source| DaemonError::MetricsAddr {
                        addr: addr.clone(),
                        source,
                    })?;
                let l = std::net::TcpListener::bind(parsed)
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .map_err(|source| DaemonError::MetricsBind {
                        addr: addr.clone(),
                        source,
                    })?;
                Some(l)
            }
            None => None,
        };
        let conntrack_prepared = if cfg.neutron.is_some() {
            let (max, timeouts) = (cfg.conntrack.max_connections, cfg.conntrack.timeouts);
            std::thread::Builder::new()
                .name("conntrack-prep".into())
                .spawn(move || dataplane::conntrack::ConnTable::new(max, timeouts))
                .ok()
        } else {
            None
        };
        // The store opens before the EAL: its config errors come first and
        // nothing has started when they do.
        let (neutron, api) = match &cfg.neutron {
            Some(ncfg) => {
                // Config::validate checked that every uplink is a port.
                let mappings = compiler::parse_mappings(&ncfg.bridge_mappings);
                // Where the hypervisor creates the sockets of the VMs bound
                // here (OVS's /var/run/openvswitch); it must exist first.
                perms::own_dir(&ncfg.vhost_socket_dir, vhost_dir_mode, vhost_gid).map_err(|e| {
                    config_err(
                        "neutron.vhost_socket_dir",
                        format!(
                            "cannot create or set up {}: {e}",
                            ncfg.vhost_socket_dir.display()
                        ),
                    )
                })?;
                let mut ncfg = ncfg.clone();
                ncfg.max_connections = api_connections;
                let dhcp = compiler::DhcpSettings {
                    enabled: ncfg.dhcp,
                    lease_secs: ncfg.dhcp_lease_secs,
                    domain: ncfg.dns_domain.clone(),
                };
                // Sharing the model (etcd): other hosts' ports are not ours.
                let cluster_host = ncfg.cluster.is_some().then(|| ncfg.host.clone());
                let local_ip = ncfg.local_ip.as_deref().and_then(|s| s.parse().ok());
                let service = Neutron::open(ncfg)?;
                let api = service.bind()?;
                (
                    Some(NeutronSide::new(
                        service,
                        mappings,
                        dhcp,
                        cluster_host,
                        local_ip,
                    )),
                    Some(api),
                )
            }
            None => (None, None),
        };
        let listeners = Listeners {
            control,
            control_file,
            metrics,
            api,
        };
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
            .map_err(DaemonError::Pool)?,
        );
        // Guests' TSO segments are copied into 16 KB buffers (4 per 64 KB
        // segment): 4,095 of them, 68 MB, made only if a bridge passes
        // offloads.
        let tso_pool = if cfg.bridges.iter().any(|b| b.userspace_tso) {
            Some(Arc::new(
                Mempool::new_pktmbuf(
                    &eal,
                    "fsw_tso_mbufs",
                    TSO_MBUFS,
                    256,
                    dpdk_sys::vhost::TSO_DATA_ROOM,
                    -1,
                )
                .map_err(DaemonError::Pool)?,
            ))
        } else {
            None
        };
        let nworkers = d.pmd_cores.len();
        let mut bridges: Vec<BridgeState> = Vec::with_capacity(cfg.bridges.len());
        for b in &cfg.bridges {
            let persisted = flows::load(&flows::flows_file(&cfg.control.state_dir, &b.name))?;
            if let Some(f) = &persisted {
                info!(bridge = %b.name, flows = f.len(), "flows restored");
            }
            bridges.push(BridgeState {
                name: b.name.clone(),
                fdb: Arc::new(MacTable::new(d.mac_table_size, d.mac_aging_secs)),
                forward_bpdu: b.forward_bpdu,
                userspace_tso: b.userspace_tso,
                flows: flows::BridgeFlows::new(persisted),
                known: None,
            });
        }
        let workers: Vec<Arc<WorkerStats>> = d
            .pmd_cores
            .iter()
            .map(|&c| Arc::new(WorkerStats::new(c)))
            .collect();
        let mut daemon = Daemon {
            ports: BTreeMap::new(),
            bridges,
            cell: Arc::new(SnapshotCell::new(Snapshot::empty(nworkers), nworkers)),
            pmd_base: vec![PmdBase::default(); nworkers],
            workers,
            threads: Vec::new(),
            worker_stop: Arc::new(AtomicBool::new(false)),
            generation: 0,
            apply_latency: Latency::default(),
            started: Instant::now(),
            socket_path: PathBuf::from(&cfg.control.socket),
            listeners: Some(listeners),
            vhost_gid,
            neutron,
            conntrack: None,
            conntrack_prepared,
            neighbours: Arc::default(),
            pool,
            tso_pool,
            eal,
            cfg,
        };
        let bridges_cfg = daemon.cfg.bridges.clone();
        for (bi, b) in bridges_cfg.iter().enumerate() {
            for (pi, p) in b.ports.iter().enumerate() {
                let key = format!("bridges[{bi}].ports[{pi}].{}", p.device_key());
                daemon
                    .open_port(bi, p.clone())
                    .map_err(|source| DaemonError::Port { key, source })?;
            }
        }
        daemon.absorb_neutron(None);
        daemon.reconcile_attachments(None);
        daemon.compile_neutron();
        daemon.publish();
        daemon.spawn_workers()?;
        Ok(daemon)
    }

    fn spawn_workers(&mut self) -> Result<(), WorkerError> {
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
                        let _ = ready_tx.send(Err(WorkerError::Pin(core)));
                        return;
                    }
                    let reg = match RegisteredThread::register(&eal) {
                        Ok(r) => r,
                        Err(source) => {
                            let _ = ready_tx.send(Err(WorkerError::Register { core, source }));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(reg.lcore()));
                    worker.run();
                    drop(reg);
                })
                .map_err(WorkerError::Spawn)?;
            match ready_rx.recv() {
                Ok(Ok(lcore)) => info!(worker = i, core, lcore, "PMD worker started"),
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(WorkerError::Died(core)),
            }
            self.threads.push(h);
        }
        Ok(())
    }

    /// Builds a snapshot from the current state, publishes it and waits for
    /// a grace period, after which the previous snapshot is freed here.
    fn publish(&mut self) {
        let since = Instant::now();
        self.generation += 1;
        let old = self.cell.load_full();
        let plans: Vec<snapshot::PortPlan<'_>> = self
            .ports
            .values()
            .map(|p| snapshot::PortPlan {
                id: p.dev.port_id(),
                name: &p.cfg.name,
                bridge: p.bridge,
                vlan: &p.vlan,
                acl: p.acl.as_ref(),
                dhcp: p.dhcp.as_ref(),
                // A tunnel port has no queues to poll: its frames arrive
                // through its uplink.
                rx_queues: if p.dev.queues().is_some() {
                    p.cfg.rx_queues
                } else {
                    0
                },
                mtu: p.cfg.mtu(),
                tunnel: (p.cfg.kind == PortType::Vxlan)
                    .then(|| {
                        self.tunnel_of(&p.cfg)
                            .map_err(
                                |why| error!(port = %p.cfg.name, "tunnel sends nothing: {why}"),
                            )
                            .ok()
                    })
                    .flatten(),
                unchanged: match (old.queues(p.dev.port_id()), p.dev.queues()) {
                    (Some(q), Some(mine)) => Arc::ptr_eq(q, mine),
                    _ => false,
                },
            })
            .collect();
        let bridges: Vec<snapshot::BridgePlan<'_>> = self
            .bridges
            .iter()
            .map(|b| snapshot::BridgePlan {
                name: &b.name,
                fdb: &b.fdb,
                forward_bpdu: b.forward_bpdu,
            })
            .collect();
        let hops = snapshot::next_hops(&plans);
        let aging = self.cfg.dataplane.neighbour_aging_secs;
        if !self.neighbours.holds(&hops, aging) {
            self.neighbours = Arc::new(dataplane::neighbour::NeighbourTable::new(
                hops,
                aging,
                Some(&self.neighbours),
            ));
        }
        let plan = snapshot::plan(
            &bridges,
            &plans,
            &self.neighbours,
            &old.rx_assignment,
            self.workers.len(),
        );
        // New rules (a rule gone, groups or addresses changed) may cut
        // tracked connections once workers use them.
        let rules_changed = dataplane::port::PortId::all().any(|id| {
            let acl = |v: &dataplane::view::SwitchView| v.port(id).and_then(|p| p.acl.clone());
            match (acl(&old.view), acl(&plan.view)) {
                (None, None) => false,
                (Some(a), Some(b)) => !Arc::ptr_eq(&a, &b),
                _ => true,
            }
        });
        drop(old);
        for e in &plan.refused {
            error!("snapshot: {e}");
        }
        let flows_ct = self.bridges.iter().any(|b| b.flows.uses_conntrack());
        if (plan.view.any_secured() || flows_ct) && self.conntrack.is_none() {
            let max = self.cfg.conntrack.max_connections;
            let timeouts = self.cfg.conntrack.timeouts;
            let ct = match self.conntrack_prepared.take().map(|t| t.join()) {
                Some(Ok(ct)) => ct,
                _ => dataplane::conntrack::ConnTable::new(max, timeouts),
            };
            info!(
                max_connections = max,
                mib = (ct.bytes_per_connection() * max) >> 20,
                "connection tracker up: {}",
                if flows_ct {
                    "a flow has a ct action"
                } else {
                    "a port has port security"
                }
            );
            self.conntrack = Some(Arc::new(ct));
        }
        let mut view = plan.view;
        let mut retired = Vec::new();
        for bi in 0..self.bridges.len() {
            let ports = self.bridge_ports(bi);
            let rx = self.bridge_rx(bi);
            let workers = self.workers.len();
            let (tables, old) = self.bridges[bi].flows.tables(&ports, workers, rx);
            view.set_flows(bi, tables);
            view.set_known(bi, self.bridges[bi].known.clone());
            if let Some(old) = old {
                retired.push((bi, old));
            }
        }
        let mut snap = Snapshot::new(self.generation, view, plan.rx_assignment);
        snap.conntrack = self.conntrack.clone();
        for p in self.ports.values() {
            if let Some(q) = p.dev.queues() {
                snap.set_queues(p.dev.port_id(), Arc::clone(q));
            }
        }
        let gen = snap.generation;
        let previous = self.cell.publish(snap);
        if !self.cell.synchronize(gen, GRACE_TIMEOUT) {
            warn!(
                generation = gen,
                "a worker did not pick up the new snapshot in time"
            );
        }
        self.apply_latency.record(since.elapsed());
        // No worker counts into replaced flow tables any more.
        for (bi, old) in retired {
            self.bridges[bi].flows.retire(&old);
        }
        if rules_changed {
            if let Some(ct) = &self.conntrack {
                let view = &self.cell.load_full().view;
                let cut = dataplane::pipeline::revalidate(view, ct);
                if cut > 0 {
                    info!(
                        connections = cut,
                        "cut connections the new rules no longer admit"
                    );
                }
            }
        }
        drop(previous);
    }

    /// One request of the control socket or of a metrics scrape.
    fn handle(&mut self, req: Request) -> Response {
        let json_or_err = |v: Result<serde_json::Value, flows::FlowError>| match v {
            Ok(v) => Response::ok(v),
            Err(e) => Response::err(e.to_string()),
        };
        let json = |v: Result<serde_json::Value, serde_json::Error>| match v {
            Ok(v) => Response::ok(v),
            Err(e) => Response::err(format!("response: {e}")),
        };
        match req {
            Request::PortList => json(serde_json::to_value(self.port_list())),
            Request::PortStats => json(serde_json::to_value(self.port_stats())),
            Request::PortAdd { bridge, port } => match self.add_port(&bridge, port) {
                Ok(()) => Response::ok(serde_json::Value::Null),
                Err(e) => Response::err(e.to_string()),
            },
            Request::PortDel { name } => {
                let iface_id = self.ports.get(&name).and_then(|p| p.cfg.iface_id.clone());
                match self.del_port(&name) {
                    Ok(last) => {
                        // The Neutron port it attached may want the
                        // daemon's own attachment back.
                        if let Some(id) = iface_id {
                            self.reconcile_attachments(Some(&[id].into()));
                            if self.compile_neutron() {
                                self.publish();
                            }
                        }
                        json(serde_json::to_value(last))
                    }
                    Err(e) => Response::err(e.to_string()),
                }
            }
            Request::FdbShow { bridge } => match self.fdb_rows(bridge.as_deref()) {
                Ok(rows) => json(serde_json::to_value(rows)),
                Err(e) => Response::err(e.to_string()),
            },
            Request::TunnelList => json(serde_json::to_value(self.tunnel_rows())),
            Request::HostList => match self.host_rows() {
                Ok(rows) => json(serde_json::to_value(rows)),
                Err(e) => Response::err(e),
            },
            Request::FdbFlush { bridge } => match self.fdb_flush(bridge.as_deref()) {
                Ok(n) => Response::ok(serde_json::json!({ "flushed": n })),
                Err(e) => Response::err(e.to_string()),
            },
            Request::PmdStats => json(serde_json::to_value(self.pmd_stats())),
            Request::ConntrackDump { zone } => {
                json(serde_json::to_value(self.conntrack_rows(zone)))
            }
            Request::ConntrackFlush { zone } => {
                let n = self.conntrack.as_ref().map_or(0, |ct| ct.flush(zone));
                Response::ok(serde_json::json!({ "flushed": n }))
            }
            Request::ConntrackStats => json(serde_json::to_value(self.conntrack_stats())),
            Request::Trace {
                bridge,
                in_port,
                frame,
            } => match self.trace(&bridge, &in_port, &frame) {
                Ok(lines) => json(serde_json::to_value(lines)),
                Err(e) => Response::err(e),
            },
            Request::FlowAdd {
                bridge,
                flows,
                volatile,
            } => json_or_err(self.flow_add(&bridge, &flows, volatile, false)),
            Request::FlowReplace {
                bridge,
                flows,
                volatile,
            } => json_or_err(self.flow_add(&bridge, &flows, volatile, true)),
            Request::FlowDel {
                bridge,
                pattern,
                strict,
            } => json_or_err(self.flow_del(&bridge, pattern.as_deref(), strict)),
            Request::FlowMod {
                bridge,
                flow,
                strict,
            } => json_or_err(self.flow_mod(&bridge, &flow, strict)),
            Request::FlowDump { bridge, pattern } => {
                match self.flow_dump(&bridge, pattern.as_deref()) {
                    Ok(lines) => json(serde_json::to_value(lines)),
                    Err(e) => Response::err(e.to_string()),
                }
            }
            Request::FlowTables { bridge } => match self.flow_tables(&bridge) {
                Ok(rows) => json(serde_json::to_value(rows)),
                Err(e) => Response::err(e.to_string()),
            },
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

    /// Every TICK: port states, the MAC clock; every second: aging,
    /// attachments to retry, port statuses (links come and go without a
    /// Neutron change).
    fn tick(&mut self, last_second: &mut Instant) {
        self.log_port_states();
        let now = self.started.elapsed().as_secs() as u32 + 1;
        for b in &self.bridges {
            b.fdb.set_now(now);
        }
        if let Some(ct) = &self.conntrack {
            ct.set_now(now);
        }
        self.neighbours.set_now(now);
        if last_second.elapsed() < Duration::from_secs(1) {
            return;
        }
        *last_second = Instant::now();
        for b in &self.bridges {
            b.fdb.expire();
        }
        self.expire_flows();
        if let Some(ct) = &self.conntrack {
            // The whole table every 30 s at most, a slice per second.
            ct.sweep((ct.capacity() / 30).max(65_536));
        }
        let retry = self.retry_attachments();
        let room = self.ports.len() < dataplane::port::MAX_PORTS;
        if retry
            || (room
                && self
                    .neutron
                    .as_ref()
                    .is_some_and(|n| n.waiting_attachments() > 0))
        {
            self.reconcile_attachments(Some(&Default::default()));
        } else if room && self.tunnels_missing() {
            self.reconcile_tunnels();
        }
        if self.compile_neutron() {
            self.publish();
        }
        self.report_neutron_status();
    }

    /// Serves the control socket and keeps the tables ticking until `stop`.
    pub fn run(mut self, stop: Arc<AtomicBool>) -> Result<(), DaemonError> {
        let (tx, rx) = channel::bounded::<Call>(16);
        let Some(listeners) = self.listeners.take() else {
            return Err(DaemonError::Socket(std::io::Error::other(
                "the daemon runs once",
            )));
        };
        let listener = listeners.control;
        let _socket_file = listeners.control_file;
        let sock_stop = Arc::clone(&stop);
        let metrics_thread = match (listeners.metrics, &self.cfg.control.metrics_listen) {
            (Some(l), Some(addr)) => {
                let h =
                    crate::metrics::serve(l, tx.clone(), Arc::clone(&stop)).map_err(|source| {
                        DaemonError::MetricsBind {
                            addr: addr.clone(),
                            source,
                        }
                    })?;
                info!(%addr, "Prometheus metrics on /metrics");
                Some(h)
            }
            _ => None,
        };
        let sock_thread = std::thread::Builder::new()
            .name("ctl-socket".into())
            .spawn(move || socket::serve_socket(listener, tx, sock_stop))
            .map_err(DaemonError::Socket)?;
        info!(socket = %self.socket_path.display(), ports = self.ports.len(), workers = self.workers.len(), "vswitchd running");
        if let (Some(n), Some(l)) = (self.neutron.as_mut(), listeners.api) {
            let api = n.service.serve_on(l)?;
            info!(listen = %api.local_addr(), "Neutron API serving");
            n.api = Some(api);
            // With [cluster]: this host can now be bound to from any
            // host's API (its dataplane is up).
            let tunnel_mac = self.neutron_endpoint().map(|(_, mac)| mac.to_string());
            if let Some(n) = self.neutron.as_mut() {
                n.service.register_host(tunnel_mac)?;
            }
        }
        self.report_neutron_status();
        // A receiver that never delivers when Neutron is off.
        let updates: Receiver<neutron::StateUpdate> = self
            .neutron
            .as_ref()
            .map(|n| n.updates.clone())
            .unwrap_or_else(channel::never);
        let mut last_second = Instant::now();
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
                    if let Ok(first) = msg {
                        // Only the newest state matters; what the skipped
                        // ones touched is merged.
                        let mut changes: Changes = first.changes;
                        while let Ok(next) = updates.try_recv() {
                            changes.merge(next.changes);
                        }
                        self.on_neutron_update(since, &changes);
                    }
                },
                default(TICK) => {}
            }
            self.tick(&mut last_second);
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
