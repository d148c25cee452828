//! The Neutron model in etcd, shared by every host's daemon (and any
//! `neutron-server`): any of them takes API requests for the whole cloud.
//!
//! Keys, under the configured prefix P (docs/ARCHITECTURE.md "Many hosts"):
//! * `P/model/networks/ID`, `subnets/ID`, `ports/ID`, `groups/ID` (without
//!   rules), `rules/GROUP/ID`, `quotas/PROJECT`: the JSON documents.
//! * `P/model/ips/SUBNET/IP`, `macs/NETWORK/MAC` (value: the port) and
//!   `vlans/PHYSNET/VID` and `vnis/VNI` (value: the network): one key per unique thing,
//!   created only if absent, so etcd itself refuses a second holder.
//! * `P/model/revision`: written by every commit. A commit is one etcd
//!   transaction that succeeds only if this key's mod revision is the one
//!   the writer's copy of the model has seen: the model changes one
//!   serializable step at a time whichever host takes the request, exactly
//!   as the single SQLite writer does on one host. A writer that lost the
//!   race waits for its copy to catch up and runs the mutation again.
//!
//! The copy ([`Mirror`]) is filled by one range read and then kept current
//! by a watch on `P/model/` from the revision after it. A lost connection
//! is retried with backoff and the watch resumes from that revision (a
//! full read only if etcd compacted it away); meanwhile reads and the
//! dataplane keep the last state and writes answer 503.
use super::{Change, Commit, Delta, Loaded, Op, Store};
use crate::error::{ApiError, NeutronError};
use crate::model::{
    HostRecord, Network, NetworkType, Port, SecurityGroup, SecurityGroupRule, Subnet,
};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KeyValue, PutOptions, Txn,
    TxnOp, WatchOptions,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// The `[cluster]` settings, validated.
#[derive(Debug, Clone)]
pub struct EtcdSettings {
    pub endpoints: Vec<String>,
    /// Without a trailing '/'.
    pub prefix: String,
    /// Each etcd request's deadline.
    pub timeout: Duration,
    /// This host's name, in the commit stamps.
    pub host: String,
    /// The life of this host's registration lease.
    pub host_ttl: Duration,
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca_file: std::path::PathBuf,
    /// Client certificate and key (etcd's `--client-cert-auth`).
    pub identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// One stored document, parsed once when it arrives.
#[derive(Debug, Clone)]
enum Doc {
    Network(Network),
    Subnet(Subnet),
    Port(Port),
    Group(SecurityGroup),
    Rule(SecurityGroupRule),
    Quotas(BTreeMap<String, i64>),
    /// ips/, macs/, vlans/: the id of the holder.
    Holder(String),
    Sentinel,
}

#[derive(Debug, Clone)]
struct Entry {
    /// Orders `load` as rowids order SQLite's: first written first.
    create_rev: i64,
    doc: Doc,
}

/// This process's copy of `P/model/`, at etcd revision `rev`.
#[derive(Default)]
struct Mirror {
    /// Keys relative to `P/model/`.
    docs: BTreeMap<String, Entry>,
    /// Every model change up to this revision is in `docs`.
    rev: i64,
    /// `P/model/revision`'s mod revision (0: never written).
    sentinel_rev: i64,
    /// `P/hosts/`: the registered hosts, by name, at `hosts_rev`; `hosts_gen`
    /// counts their changes.
    hosts: BTreeMap<String, HostRecord>,
    hosts_rev: i64,
    hosts_gen: u64,
    /// Model keys the watch changed since the engine last took them.
    dirty: BTreeSet<String>,
    /// The model was re-read whole: only a whole `load` can follow.
    reread: bool,
    /// The last error talking to etcd, cleared by the next success.
    down: Option<String>,
}

const SENTINEL: &str = "revision";

/// The sentinel's value: who committed, and when (wall clock). A watcher
/// takes the difference to its own clock as the commit's watch lag (hosts'
/// clocks must agree, as NTP keeps them, for it to mean anything).
#[derive(serde::Serialize, serde::Deserialize)]
struct Stamp {
    host: String,
    at_us: u64,
}

fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// HTTP/2 ping interval of the connection to etcd: above etcd's default
/// minimum of 5 s.
const KEEPALIVE: Duration = Duration::from_secs(10);

/// Most lags kept for the figures: the recent ones (the oldest half goes
/// when full).
const MAX_LAGS: usize = 1 << 16;

/// The two watched prefixes: the model, and the hosts' registrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    Model,
    Hosts,
}

fn parse_doc(key: &str, value: &[u8]) -> Result<Doc, String> {
    let kind = key.split('/').next().unwrap_or("");
    let json = || -> Result<serde_json::Value, String> {
        serde_json::from_slice(value).map_err(|e| format!("key {key}: {e}"))
    };
    fn typed<T: serde::de::DeserializeOwned>(key: &str, v: serde_json::Value) -> Result<T, String> {
        serde_json::from_value(v).map_err(|e| format!("key {key}: {e}"))
    }
    Ok(match kind {
        "networks" => Doc::Network(typed(key, json()?)?),
        "subnets" => Doc::Subnet(typed(key, json()?)?),
        "ports" => Doc::Port(typed(key, json()?)?),
        "groups" => Doc::Group(typed(key, json()?)?),
        "rules" => {
            let v = json()?;
            let sa = v
                .get("standard_attr_id")
                .and_then(|x| x.as_u64())
                .unwrap_or(0);
            let mut r: SecurityGroupRule = typed(key, v)?;
            r.standard_attr_id = sa;
            Doc::Rule(r)
        }
        "quotas" => Doc::Quotas(typed(key, json()?)?),
        "ips" | "macs" | "vlans" | "vnis" => Doc::Holder(
            std::str::from_utf8(value)
                .map_err(|e| format!("key {key}: {e}"))?
                .to_owned(),
        ),
        SENTINEL => Doc::Sentinel,
        _ => return Err(format!("key {key}: unknown kind of document")),
    })
}

impl Mirror {
    /// Applies one key's new value (None: deleted) at `rev`. Documents that
    /// do not parse are logged and left out rather than stopping the copy.
    fn set(&mut self, key: &str, value: Option<&[u8]>, create_rev: i64, mod_rev: i64) {
        if key == SENTINEL {
            self.sentinel_rev = if value.is_some() { mod_rev } else { 0 };
        }
        match value {
            None => {
                self.docs.remove(key);
            }
            Some(v) => match parse_doc(key, v) {
                Ok(doc) => {
                    self.docs.insert(key.to_owned(), Entry { create_rev, doc });
                }
                Err(e) => {
                    tracing::error!("etcd: ignoring a document that does not parse: {e}");
                    self.docs.remove(key);
                }
            },
        }
    }

    fn replace(&mut self, kvs: &[KeyValue], model: &str, rev: i64) {
        self.reread = true;
        self.dirty.clear();
        self.docs.clear();
        self.sentinel_rev = 0;
        for kv in kvs {
            if let Some(k) = kv.key_str().ok().and_then(|k| k.strip_prefix(model)) {
                self.set(k, Some(kv.value()), kv.create_revision(), kv.mod_revision());
            }
        }
        self.rev = rev;
    }

    fn set_host(&mut self, name: &str, value: Option<&[u8]>) {
        match value.map(serde_json::from_slice::<HostRecord>) {
            None => {
                self.hosts.remove(name);
            }
            Some(Ok(h)) => {
                self.hosts.insert(name.to_owned(), h);
            }
            Some(Err(e)) => {
                tracing::error!("etcd: ignoring host {name}: its registration does not parse: {e}");
                self.hosts.remove(name);
            }
        }
        self.hosts_gen += 1;
    }

    fn feed_rev(&self, f: Feed) -> i64 {
        match f {
            Feed::Model => self.rev,
            Feed::Hosts => self.hosts_rev,
        }
    }

    /// One watched key's new value at `mod_rev` (`key` relative to the
    /// feed's prefix).
    fn event(&mut self, f: Feed, key: &str, value: Option<&[u8]>, create_rev: i64, mod_rev: i64) {
        match f {
            Feed::Model => {
                self.set(key, value, create_rev, mod_rev);
                self.dirty.insert(key.to_owned());
                self.rev = self.rev.max(mod_rev);
            }
            Feed::Hosts => {
                self.set_host(key, value);
                self.hosts_rev = self.hosts_rev.max(mod_rev);
            }
        }
    }

    fn replace_feed(&mut self, f: Feed, kvs: &[KeyValue], prefix: &str, rev: i64) {
        match f {
            Feed::Model => self.replace(kvs, prefix, rev),
            Feed::Hosts => {
                self.hosts.clear();
                for kv in kvs {
                    if let Some(k) = kv.key_str().ok().and_then(|k| k.strip_prefix(prefix)) {
                        self.set_host(k, Some(kv.value()));
                    }
                }
                self.hosts_gen += 1;
                self.hosts_rev = rev;
            }
        }
    }

    /// A group's document with its rules, in the order they were written.
    fn group_with_rules(&self, id: &str) -> Option<SecurityGroup> {
        let Some(Doc::Group(g)) = self.docs.get(&format!("groups/{id}")).map(|e| &e.doc) else {
            return None;
        };
        let mut g = g.clone();
        let prefix = format!("rules/{id}/");
        let mut rules: Vec<(i64, &SecurityGroupRule)> = self
            .docs
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(_, e)| match &e.doc {
                Doc::Rule(r) => Some((e.create_rev, r)),
                _ => None,
            })
            .collect();
        // Rules written in one transaction share a create revision: the
        // order they were made in is their standard_attr_id's.
        rules.sort_by_key(|(c, r)| (r.standard_attr_id, *c));
        g.security_group_rules = rules.into_iter().map(|(_, r)| r.clone()).collect();
        Some(g)
    }

    /// The changed documents named by `dirty`, taken.
    fn take_delta(&mut self) -> Vec<Change> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut groups = BTreeSet::new();
        let mut out = Vec::new();
        for key in &dirty {
            let doc = self.docs.get(key).map(|e| &e.doc);
            let Some((kind, id)) = key.split_once('/') else {
                continue;
            };
            match (kind, doc) {
                ("networks", Some(Doc::Network(n))) => {
                    out.push(Change::Network(id.to_owned(), Some(n.clone())))
                }
                ("networks", _) => out.push(Change::Network(id.to_owned(), None)),
                ("subnets", Some(Doc::Subnet(n))) => {
                    out.push(Change::Subnet(id.to_owned(), Some(n.clone())))
                }
                ("subnets", _) => out.push(Change::Subnet(id.to_owned(), None)),
                ("ports", Some(Doc::Port(p))) => {
                    out.push(Change::Port(id.to_owned(), Some(p.clone())))
                }
                ("ports", _) => out.push(Change::Port(id.to_owned(), None)),
                ("groups", _) => {
                    groups.insert(id.to_owned());
                }
                ("rules", _) => {
                    if let Some((g, _)) = id.split_once('/') {
                        groups.insert(g.to_owned());
                    }
                }
                ("quotas", Some(Doc::Quotas(q))) => {
                    out.push(Change::Quotas(id.to_owned(), Some(q.clone())))
                }
                ("quotas", _) => out.push(Change::Quotas(id.to_owned(), None)),
                // ips/, macs/, vlans/ and the sentinel follow from the
                // documents.
                _ => {}
            }
        }
        for g in groups {
            let doc = self.group_with_rules(&g);
            out.push(Change::Group(g, doc));
        }
        out
    }

    fn port(&self, id: &str) -> Option<&Port> {
        match self.docs.get(&format!("ports/{id}")).map(|e| &e.doc) {
            Some(Doc::Port(p)) => Some(p),
            _ => None,
        }
    }

    fn network(&self, id: &str) -> Option<&Network> {
        match self.docs.get(&format!("networks/{id}")).map(|e| &e.doc) {
            Some(Doc::Network(n)) => Some(n),
            _ => None,
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(v).map_err(|e| ApiError::internal(format!("encoding a document: {e}")))
}

/// A change as etcd keys (relative to `P/model/`): one write per key, the
/// last op on a key winning as it would in SQLite, and the keys that must
/// not exist yet (the unique ones being created).
#[derive(Default)]
struct Writes {
    keys: BTreeMap<String, Option<Vec<u8>>>,
    absent: BTreeSet<String>,
}

impl Writes {
    fn put(&mut self, key: String, v: Vec<u8>) {
        self.keys.insert(key, Some(v));
    }

    fn delete(&mut self, key: String) {
        self.keys.insert(key, None);
    }

    /// A unique key: the commit fails if someone else holds it.
    fn create(&mut self, m: &Mirror, key: String, holder: &str) {
        if !m.docs.contains_key(&key) {
            self.absent.insert(key.clone());
        }
        self.put(key, holder.as_bytes().to_vec());
    }

    /// The writes for `ops` applied to the mirror's model, with what
    /// SQLite's foreign keys cascade spelled out (a port's addresses and
    /// MAC, a group's rules).
    fn of(ops: &[Op], m: &Mirror, stamp: Vec<u8>) -> Result<Writes, ApiError> {
        let mut w = Writes::default();
        // Ports written earlier in the same ops (None: deleted).
        let mut ports: BTreeMap<&str, Option<&Port>> = BTreeMap::new();
        for op in ops {
            match op {
                Op::PutNetwork(n) => w.put(format!("networks/{}", n.id), to_json(&**n)?),
                Op::AddSegment {
                    network_id,
                    physnet,
                    vid,
                } => w.create(m, format!("vlans/{physnet}/{vid}"), network_id),
                Op::AddVni { network_id, vni } => w.create(m, format!("vnis/{vni}"), network_id),
                Op::DeleteNetwork(id) => {
                    w.delete(format!("networks/{id}"));
                    if let Some(n) = m.network(id) {
                        if let Some(p) = &n.physical_network {
                            let vid = n.segmentation_id.unwrap_or(0);
                            w.delete(format!("vlans/{p}/{vid}"));
                        }
                        if let (NetworkType::Vxlan, Some(vni)) = (n.network_type, n.segmentation_id)
                        {
                            w.delete(format!("vnis/{vni}"));
                        }
                    }
                }
                Op::PutSubnet(s) => w.put(format!("subnets/{}", s.id), to_json(&**s)?),
                Op::DeleteSubnet(id) => w.delete(format!("subnets/{id}")),
                Op::PutPort(p) => {
                    let before = match ports.get(p.id.as_str()) {
                        Some(b) => *b,
                        None => m.port(&p.id),
                    };
                    let mac_key = |p: &Port| format!("macs/{}/{}", p.network_id, p.mac_address);
                    let new_key = mac_key(p);
                    if before.map(mac_key).as_ref() != Some(&new_key) {
                        if let Some(b) = before {
                            w.delete(mac_key(b));
                        }
                        w.create(m, new_key, &p.id);
                    }
                    w.put(format!("ports/{}", p.id), to_json(&**p)?);
                    ports.insert(&p.id, Some(p));
                }
                Op::DeletePort(id) => {
                    let gone = match ports.get(id.as_str()) {
                        Some(p) => *p,
                        None => m.port(id),
                    };
                    if let Some(p) = gone {
                        w.delete(format!("macs/{}/{}", p.network_id, p.mac_address));
                        for f in &p.fixed_ips {
                            w.delete(format!("ips/{}/{}", f.subnet_id, f.ip_address));
                        }
                    }
                    w.delete(format!("ports/{id}"));
                    ports.insert(id, None);
                }
                Op::AddAllocation {
                    subnet_id,
                    ip_address,
                    port_id,
                } => w.create(m, format!("ips/{subnet_id}/{ip_address}"), port_id),
                Op::DeleteAllocation {
                    subnet_id,
                    ip_address,
                } => w.delete(format!("ips/{subnet_id}/{ip_address}")),
                // The port's own document lists its groups.
                Op::SetPortGroups { .. } => {}
                Op::PutGroup { group, .. } => {
                    let mut bare = (**group).clone();
                    bare.security_group_rules.clear();
                    w.put(format!("groups/{}", group.id), to_json(&bare)?);
                }
                Op::DeleteGroup(id) => {
                    w.delete(format!("groups/{id}"));
                    let rules = format!("rules/{id}/");
                    let held: Vec<String> = m
                        .docs
                        .range(rules.clone()..)
                        .map(|(k, _)| k)
                        .take_while(|k| k.starts_with(&rules))
                        .cloned()
                        .collect();
                    for k in held {
                        w.delete(k);
                    }
                }
                Op::PutRule { rule, .. } => {
                    let doc = super::rule_json(rule)
                        .map_err(|e| ApiError::internal(format!("encoding a rule: {e}")))?;
                    w.put(
                        format!("rules/{}/{}", rule.security_group_id, rule.id),
                        doc.into_bytes(),
                    );
                }
                Op::DeleteRule(id) => {
                    let suffix = format!("/{id}");
                    let key = m
                        .docs
                        .range("rules/".to_owned()..)
                        .map(|(k, _)| k)
                        .take_while(|k| k.starts_with("rules/"))
                        .chain(w.keys.keys().filter(|k| k.starts_with("rules/")))
                        .find(|k| k.ends_with(&suffix))
                        .cloned();
                    if let Some(k) = key {
                        w.delete(k);
                    }
                }
                Op::SetQuotas { project, limits } => {
                    if limits.is_empty() {
                        w.delete(format!("quotas/{project}"));
                    } else {
                        w.put(format!("quotas/{project}"), to_json(limits)?);
                    }
                }
            }
        }
        w.put(SENTINEL.to_owned(), stamp);
        Ok(w)
    }
}

struct Shared {
    mirror: Mutex<Mirror>,
    /// Signalled whenever the mirror moves.
    moved: Condvar,
    notify: Mutex<Option<Box<dyn Fn() + Send>>>,
    /// This host's registration lease, once granted.
    lease: Mutex<Option<i64>>,
    /// Watch lag of other writers' commits, in microseconds.
    lags: Mutex<Vec<u32>>,
    /// Commits refused because another writer was first.
    conflicts: std::sync::atomic::AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Mirror> {
        self.mirror.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The figures, from the mirror alone: never waits for a commit.
    fn figures(&self) -> crate::ClusterMetrics {
        let (up, revision, hosts) = {
            let m = self.lock();
            (m.down.is_none(), m.rev, m.hosts.len())
        };
        let mut lags = self.lags.lock().unwrap_or_else(|e| e.into_inner()).clone();
        lags.sort_unstable();
        let q = |f: f64| {
            (!lags.is_empty()).then(|| {
                lags[((lags.len() as f64 * f).ceil() as usize).clamp(1, lags.len()) - 1] as u64
            })
        };
        crate::ClusterMetrics {
            etcd_up: up,
            model_revision: revision,
            hosts,
            conflicts: self.conflicts.load(std::sync::atomic::Ordering::Relaxed),
            watched_commits: lags.len() as u64,
            lag_p50_micros: q(0.5),
            lag_p99_micros: q(0.99),
            lag_max_micros: lags.last().map(|&l| l as u64),
        }
    }

    fn moved(&self) {
        self.moved.notify_all();
        if let Some(f) = &*self.notify.lock().unwrap_or_else(|e| e.into_inner()) {
            f();
        }
    }
}

pub struct EtcdStore {
    s: EtcdSettings,
    /// `P/model/`.
    model: String,
    /// Taken on drop (shut down without waiting: the last owner may be
    /// an async task of the API's runtime).
    rt: Option<tokio::runtime::Runtime>,
    client: Client,
    shared: Arc<Shared>,
    /// The mirror revision the engine's world was last built from (by
    /// `load`, or by the engine's own commit)...
    loaded_rev: i64,
    /// ...and the sentinel's revision there: what a commit made from that
    /// world must find unchanged. Never the mirror's own, which may be
    /// ahead of the world.
    loaded_sentinel: i64,
    /// `Mirror::hosts_gen` at the last `load`.
    loaded_hosts: u64,
}

/// How long a writer that lost a race waits for the watch to bring the
/// winner's change before it reads the model afresh.
const CATCH_UP: Duration = Duration::from_secs(2);

impl EtcdStore {
    /// Connects, reads the whole model and starts watching it. Fails if no
    /// endpoint answers within the timeout.
    pub fn open(s: EtcdSettings) -> Result<EtcdStore, NeutronError> {
        let fail = |reason: String| NeutronError::Store {
            path: format!("etcd {}", s.endpoints.join(",")),
            reason,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("etcd")
            .enable_all()
            .build()
            .map_err(|e| fail(format!("runtime: {e}")))?;
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(s.timeout)
            .with_timeout(s.timeout)
            // etcd closes connections that ping more often than its
            // --grpc-keepalive-min-time (5 s by default): every watch
            // then stalls while it reconnects.
            .with_keep_alive(KEEPALIVE, s.timeout.max(Duration::from_secs(5)))
            .with_keep_alive_while_idle(true);
        if let Some(tls) = &s.tls {
            let read = |p: &std::path::Path| {
                std::fs::read(p).map_err(|e| fail(format!("{}: {e}", p.display())))
            };
            let mut t = etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(read(&tls.ca_file)?));
            if let Some((cert, key)) = &tls.identity {
                t = t.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
            }
            opts = opts.with_tls(t);
        }
        let client = rt
            .block_on(Client::connect(&s.endpoints, Some(opts)))
            .map_err(|e| fail(format!("connect: {e}")))?;
        let model = format!("{}/model/", s.prefix);
        let shared = Arc::new(Shared {
            mirror: Mutex::new(Mirror::default()),
            moved: Condvar::new(),
            notify: Mutex::new(None),
            lease: Mutex::new(None),
            lags: Mutex::new(Vec::new()),
            conflicts: std::sync::atomic::AtomicU64::new(0),
        });
        let (kvs, rev) = rt
            .block_on(read_all(client.clone(), model.clone(), s.timeout))
            .map_err(|e| fail(format!("reading {model}: {e}")))?;
        shared.lock().replace(&kvs, &model, rev);
        let hosts = format!("{}/hosts/", s.prefix);
        let (kvs, rev) = rt
            .block_on(read_all(client.clone(), hosts.clone(), s.timeout))
            .map_err(|e| fail(format!("reading {hosts}: {e}")))?;
        shared.lock().replace_feed(Feed::Hosts, &kvs, &hosts, rev);
        for (prefix, feed) in [(model.clone(), Feed::Model), (hosts, Feed::Hosts)] {
            rt.spawn(watch(
                client.clone(),
                prefix,
                feed,
                s.timeout,
                shared.clone(),
            ));
        }
        Ok(EtcdStore {
            s,
            model,
            rt: Some(rt),
            client,
            shared,
            loaded_rev: 0,
            loaded_sentinel: 0,
            loaded_hosts: 0,
        })
    }

    fn unavailable(&self, what: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            503,
            "ServiceUnavailable",
            format!(
                "the model's store, etcd at {}, did not answer: {what}; nothing was changed, try again",
                self.s.endpoints.join(",")
            ),
        )
    }

    /// One request made by `f` from the client, sent within the timeout;
    /// a 503 when etcd does not answer in time. etcd's own refusal is the
    /// caller's to say.
    fn request<T, F>(
        &self,
        f: impl FnOnce(Client) -> F,
    ) -> Result<Result<T, etcd_client::Error>, ApiError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
    {
        let timeout = self.s.timeout;
        let request = f(self.client.clone());
        self.run(async move { tokio::time::timeout(timeout, request).await })
            .ok_or_else(|| self.unavailable("the runtime stopped"))?
            .map_err(|_| self.unavailable(format!("no answer in {timeout:?}")))
    }

    /// Runs `f` on the store's runtime and waits for it, from any thread
    /// (the API's blocking threads belong to another runtime).
    fn run<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.rt.as_ref()?.spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv().ok()
    }

    /// The etcd transaction for a change and the sentinel revision it
    /// was made against.
    fn txn(&self, w: &Writes, sentinel_rev: i64) -> Txn {
        let key = |k: &str| format!("{}{k}", self.model);
        let mut compares = vec![Compare::mod_revision(
            key(SENTINEL),
            CompareOp::Equal,
            sentinel_rev,
        )];
        for k in &w.absent {
            if matches!(w.keys.get(k), Some(Some(_))) {
                compares.push(Compare::create_revision(key(k), CompareOp::Equal, 0));
            }
        }
        let then: Vec<TxnOp> = w
            .keys
            .iter()
            .map(|(k, v)| match v {
                Some(v) => TxnOp::put(key(k), v.clone(), None),
                None => TxnOp::delete(key(k), None),
            })
            .collect();
        // On failure: the sentinel, to tell a lost race from a unique key
        // held by someone else.
        Txn::new()
            .when(compares)
            .and_then(then)
            .or_else(vec![TxnOp::get(key(SENTINEL), None)])
    }

    /// Waits until the mirror is `done` (the watch brought a change another
    /// writer made), else, after `CATCH_UP`, reads the whole model again.
    fn catch_up(&mut self, done: impl Fn(&Mirror) -> bool) -> Result<(), ApiError> {
        let deadline = std::time::Instant::now() + CATCH_UP;
        let mut m = self.shared.lock();
        while !done(&m) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            m = self
                .shared
                .moved
                .wait_timeout(m, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if done(&m) {
            return Ok(());
        }
        drop(m);
        let (kvs, rev) = self
            .run(read_all(
                self.client.clone(),
                self.model.clone(),
                self.s.timeout,
            ))
            .ok_or_else(|| self.unavailable("the runtime stopped"))?
            .map_err(|e| self.unavailable(e))?;
        let mut m = self.shared.lock();
        if rev > m.rev {
            m.replace(&kvs, &self.model, rev);
        }
        Ok(())
    }
}

impl Drop for EtcdStore {
    /// A host that stops cleanly leaves at once (its ports go DOWN now,
    /// not when the lease runs out); its tasks end with the runtime.
    fn drop(&mut self) {
        let lease = self
            .shared
            .lease
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(lease) = lease {
            let mut client = self.client.clone();
            let timeout = self.s.timeout.min(Duration::from_millis(500));
            let _ =
                self.run(
                    async move { tokio::time::timeout(timeout, client.lease_revoke(lease)).await },
                );
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Keys per range request when reading a whole prefix: gRPC refuses
/// answers over 4 MiB, and a cloud's ports are many times that.
const PAGE: i64 = 1000;

/// Everything under `prefix` at one revision (read page by page, every
/// page at the first one's revision), and that revision.
async fn read_all(
    mut client: Client,
    prefix: String,
    timeout: Duration,
) -> Result<(Vec<KeyValue>, i64), String> {
    let mut end = prefix.clone().into_bytes();
    if let Some(last) = end.last_mut() {
        *last += 1; // The prefix ends in '/': never 0xff.
    }
    let mut from = prefix.into_bytes();
    let mut rev = 0;
    let mut out = Vec::new();
    loop {
        let mut opts = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
        if rev > 0 {
            opts = opts.with_revision(rev);
        }
        let r = tokio::time::timeout(timeout, client.get(from.clone(), Some(opts)))
            .await
            .map_err(|_| format!("no answer in {timeout:?}"))?
            .map_err(|e| e.to_string())?;
        if rev == 0 {
            rev = r.header().map(|h| h.revision()).unwrap_or(0);
        }
        out.extend_from_slice(r.kvs());
        match r.kvs().last() {
            Some(kv) if r.more() => {
                from = kv.key().to_vec();
                from.push(0);
            }
            _ => return Ok((out, rev)),
        }
    }
}

/// Keeps the mirror's `feed` current (until the store's runtime stops):
/// watches `prefix` from
/// the revision after the mirror's, reconnecting with backoff.
async fn watch(client: Client, prefix: String, feed: Feed, timeout: Duration, shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let from = shared.lock().feed_rev(feed) + 1;
        let run = watch_from(client.clone(), &prefix, feed, from, &shared);
        let err = run.await;
        let compacted = err.starts_with("compacted");
        {
            let mut m = shared.lock();
            if m.down.is_none() {
                tracing::warn!("etcd watch of {prefix} from revision {from}: {err}; retrying");
            }
            m.down = Some(err);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
        if compacted {
            match read_all(client.clone(), prefix.clone(), timeout).await {
                Ok((kvs, rev)) => {
                    shared.lock().replace_feed(feed, &kvs, &prefix, rev);
                    shared.moved();
                }
                Err(e) => shared.lock().down = Some(e),
            }
        }
    }
}

/// One watch stream; returns why it ended.
async fn watch_from(
    mut client: Client,
    prefix: &str,
    feed: Feed,
    from: i64,
    shared: &Shared,
) -> String {
    let opts = WatchOptions::new()
        .with_prefix()
        .with_start_revision(from)
        .with_progress_notify();
    let mut stream = match client.watch(prefix, Some(opts)).await {
        Ok(s) => s,
        Err(e) => return e.to_string(),
    };
    loop {
        let resp = match stream.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return "the watch stream ended".into(),
            Err(e) => return e.to_string(),
        };
        if resp.compact_revision() > 0 {
            return format!("compacted past revision {from}");
        }
        if resp.canceled() {
            return format!("watch canceled: {}", resp.cancel_reason());
        }
        let mut changed = false;
        {
            let mut m = shared.lock();
            if m.down.take().is_some() {
                tracing::info!(
                    "etcd watch of {prefix} resumed at revision {}",
                    m.feed_rev(feed) + 1
                );
            }
            // A revision's events all come in one response: compare them
            // with where the mirror was before it, not after its first.
            let floor = m.feed_rev(feed);
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                if kv.mod_revision() <= floor {
                    continue; // Already there: this process wrote it.
                }
                let Some(k) = kv.key_str().ok().and_then(|k| k.strip_prefix(prefix)) else {
                    continue;
                };
                let value = match ev.event_type() {
                    EventType::Put => Some(kv.value()),
                    EventType::Delete => None,
                };
                if feed == Feed::Model && k == SENTINEL {
                    if let Some(stamp) = value.and_then(|v| serde_json::from_slice::<Stamp>(v).ok())
                    {
                        let lag = unix_micros()
                            .saturating_sub(stamp.at_us)
                            .min(u32::MAX as u64);
                        let mut lags = shared.lags.lock().unwrap_or_else(|e| e.into_inner());
                        if lags.len() >= MAX_LAGS {
                            lags.drain(..MAX_LAGS / 2);
                        }
                        lags.push(lag as u32);
                    }
                }
                m.event(feed, k, value, kv.create_revision(), kv.mod_revision());
                changed = true;
            }
        }
        if changed {
            shared.moved();
        }
    }
}

/// Keeps `record` registered under `key` with a lease of `ttl` (until the
/// store's runtime stops): granted, put, renewed every third of its life; granted and put
/// again whenever that fails (etcd lost long enough for the lease to
/// expire, or a restart of etcd).
async fn keep_registered(
    client: Client,
    key: String,
    record: Vec<u8>,
    ttl: Duration,
    shared: Arc<Shared>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut failing = false;
    loop {
        let err = register_once(client.clone(), &key, &record, ttl, &shared).await;
        if !failing {
            tracing::warn!("etcd registration {key}: {err}; registering again");
        }
        failing = true;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn register_once(
    mut client: Client,
    key: &str,
    record: &[u8],
    ttl: Duration,
    shared: &Shared,
) -> String {
    let ttl_secs = ttl.as_secs().max(1) as i64;
    let lease = match client.lease_grant(ttl_secs, None).await {
        Ok(l) => l.id(),
        Err(e) => return format!("lease: {e}"),
    };
    let put = client
        .put(
            key,
            record.to_vec(),
            Some(PutOptions::new().with_lease(lease)),
        )
        .await;
    if let Err(e) = put {
        return format!("put: {e}");
    }
    tracing::info!("etcd: registered {key} (lease {lease:x}, {ttl_secs} s)");
    *shared.lease.lock().unwrap_or_else(|e| e.into_inner()) = Some(lease);
    let (mut keeper, mut answers) = match client.lease_keep_alive(lease).await {
        Ok(k) => k,
        Err(e) => return format!("keep-alive: {e}"),
    };
    loop {
        tokio::time::sleep(ttl / 3).await;
        if let Err(e) = keeper.keep_alive().await {
            return format!("keep-alive: {e}");
        }
        match answers.message().await {
            Ok(Some(a)) if a.ttl() > 0 => {}
            Ok(_) => return "the lease expired".into(),
            Err(e) => return format!("keep-alive: {e}"),
        }
    }
}

impl Store for EtcdStore {
    fn describe(&self) -> String {
        format!("etcd {} ({})", self.s.endpoints.join(","), self.model)
    }

    fn load(&mut self) -> Result<Loaded, NeutronError> {
        let mut m = self.shared.lock();
        let mut entries: Vec<(&String, &Entry)> = m.docs.iter().collect();
        entries.sort_by_key(|(_, e)| e.create_rev);
        let mut out = Loaded::default();
        for (key, e) in entries {
            match &e.doc {
                Doc::Network(n) => out.networks.push(n.clone()),
                Doc::Subnet(s) => out.subnets.push(s.clone()),
                Doc::Port(p) => out.ports.push(p.clone()),
                Doc::Group(g) => out.groups.push(g.clone()),
                Doc::Rule(r) => out.rules.push(r.clone()),
                Doc::Quotas(q) => {
                    let project = key.strip_prefix("quotas/").unwrap_or_default();
                    for (r, l) in q {
                        out.quotas.push((project.to_owned(), r.clone(), *l));
                    }
                }
                Doc::Holder(_) | Doc::Sentinel => {}
            }
        }
        // As in `group_with_rules`: one transaction's rules share a create
        // revision, their standard_attr_id orders them.
        out.rules.sort_by_key(|r| r.standard_attr_id);
        out.hosts = m.hosts.values().cloned().collect();
        m.dirty.clear();
        m.reread = false;
        self.loaded_rev = m.rev;
        self.loaded_sentinel = m.sentinel_rev;
        self.loaded_hosts = m.hosts_gen;
        Ok(out)
    }

    fn apply(&mut self, ops: &[Op]) -> Result<Commit, ApiError> {
        let seen = self.loaded_sentinel;
        let stamp = serde_json::to_vec(&Stamp {
            host: self.s.host.clone(),
            at_us: unix_micros(),
        })
        .unwrap_or_default();
        let writes = Writes::of(ops, &self.shared.lock(), stamp)?;
        let txn = self.txn(&writes, seen);
        let resp = self
            .request(move |mut c| async move { c.txn(txn).await })?
            .map_err(|e| match e {
                etcd_client::Error::GRpcStatus(s)
                    if s.message().contains("too many operations")
                        || s.message().contains("too large") =>
                {
                    ApiError::new(
                        413,
                        "RequestEntityTooLarge",
                        format!(
                            "etcd refused the transaction ({}): start etcd with a larger --max-txn-ops or --max-request-bytes",
                            s.message()
                        ),
                    )
                }
                other => self.unavailable(other),
            })?;
        if !resp.succeeded() {
            let now = resp
                .op_responses()
                .into_iter()
                .find_map(|r| match r {
                    etcd_client::TxnOpResponse::Get(g) => {
                        Some(g.kvs().first().map(|kv| kv.mod_revision()).unwrap_or(0))
                    }
                    _ => None,
                })
                .unwrap_or(-1);
            if now == seen {
                // The model did not move, yet a key this change creates is
                // held: the copy it was made from is wrong. Refuse, as
                // SQLite's UNIQUE constraints do, rather than retry it.
                let held: Vec<&String> = writes.absent.iter().collect();
                return Err(ApiError::conflict(
                    "Conflict",
                    format!("etcd refused the change: one of {held:?} is already held"),
                ));
            }
            self.shared
                .conflicts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.catch_up(|m| m.sentinel_rev != seen)?;
            return Ok(Commit::Conflict);
        }
        let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
        // The same change the watch will bring: apply it now so the next
        // mutation starts from it (the watch skips what is already here).
        let mut m = self.shared.lock();
        if rev > m.rev {
            for (k, v) in &writes.keys {
                let create = m.docs.get(k).map(|e| e.create_rev).unwrap_or(rev);
                m.set(k, v.as_deref(), create, rev);
            }
            m.rev = rev;
        }
        // The engine's world is now the model at `rev`; if the watch has
        // brought later commits already, `stale` says so.
        self.loaded_rev = rev;
        self.loaded_sentinel = rev;
        drop(m);
        self.shared.moved.notify_all();
        Ok(Commit::Done)
    }

    fn figures(&self) -> Option<super::Figures> {
        let shared = self.shared.clone();
        Some(Arc::new(move || shared.figures()))
    }

    fn load_delta(&mut self) -> Result<Option<Delta>, NeutronError> {
        let mut m = self.shared.lock();
        if m.reread {
            return Ok(None);
        }
        let changes = m.take_delta();
        let hosts = (m.hosts_gen != self.loaded_hosts).then(|| m.hosts.values().cloned().collect());
        self.loaded_rev = m.rev;
        self.loaded_sentinel = m.sentinel_rev;
        self.loaded_hosts = m.hosts_gen;
        Ok(Some(Delta { changes, hosts }))
    }

    fn sync(&mut self) -> Result<(), ApiError> {
        let key = format!("{}{SENTINEL}", self.model);
        let latest = self
            .request(move |mut c| async move { c.get(key, None).await })?
            .map_err(|e| self.unavailable(e))?
            .kvs()
            .first()
            .map(|kv| kv.mod_revision())
            .unwrap_or(0);
        self.catch_up(|m| m.sentinel_rev >= latest)
    }

    fn stale(&self) -> bool {
        let m = self.shared.lock();
        m.rev > self.loaded_rev || m.hosts_gen != self.loaded_hosts
    }

    /// The unique keys against the documents: every address, MAC and VLAN
    /// key held by what it names, every port's address and MAC keyed.
    fn check(&mut self) -> Result<String, NeutronError> {
        let m = self.shared.lock();
        let mut problems = Vec::new();
        for (k, e) in &m.docs {
            let Doc::Holder(holder) = &e.doc else {
                continue;
            };
            let parts: Vec<&str> = k.splitn(3, '/').collect();
            let held = match parts.as_slice() {
                ["ips", subnet, ip] => m.port(holder).is_some_and(|p| {
                    p.fixed_ips
                        .iter()
                        .any(|f| f.subnet_id == *subnet && f.ip_address == *ip)
                }),
                ["macs", net, mac] => m
                    .port(holder)
                    .is_some_and(|p| p.network_id == *net && p.mac_address == *mac),
                ["vlans", ..] | ["vnis", ..] => m.network(holder).is_some(),
                _ => false,
            };
            if !held {
                problems.push(format!("{k} names {holder}, which does not hold it"));
            }
        }
        for e in m.docs.values() {
            let Doc::Port(p) = &e.doc else { continue };
            let mut keys = vec![format!("macs/{}/{}", p.network_id, p.mac_address)];
            keys.extend(
                p.fixed_ips
                    .iter()
                    .map(|f| format!("ips/{}/{}", f.subnet_id, f.ip_address)),
            );
            for k in keys {
                if !matches!(m.docs.get(&k).map(|e| &e.doc), Some(Doc::Holder(h)) if *h == p.id) {
                    problems.push(format!("port {} has no key {k}", p.id));
                }
            }
        }
        if let Some(e) = &m.down {
            problems.push(format!("etcd unreachable, serving revision {}: {e}", m.rev));
        }
        Ok(if problems.is_empty() {
            "ok".to_owned()
        } else {
            problems.join("; ")
        })
    }

    fn register(&mut self, record: &HostRecord, ttl: Duration) -> Result<(), NeutronError> {
        let value = serde_json::to_vec(record).map_err(|e| NeutronError::Store {
            path: self.describe(),
            reason: format!("encoding the host record: {e}"),
        })?;
        let key = format!("{}/hosts/{}", self.s.prefix, record.host);
        let Some(rt) = &self.rt else { return Ok(()) };
        rt.spawn(keep_registered(
            self.client.clone(),
            key,
            value,
            ttl,
            self.shared.clone(),
        ));
        Ok(())
    }

    fn watch(&mut self, notify: Box<dyn Fn() + Send>) {
        *self.shared.notify.lock().unwrap_or_else(|e| e.into_inner()) = Some(notify);
    }
}
