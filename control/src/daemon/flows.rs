//! A bridge's flows as the control thread keeps them: the flows in the
//! order they were added, each with an id that outlives snapshots, its
//! counters folded in from the fast path's tables when those are
//! replaced, and whether it is kept across restarts (`--volatile` flows
//! are not). Changes follow OpenFlow's flow_mod rules as `ovs-ofctl`
//! applies them; the fast path gets them with the next snapshot
//! ([`BridgeFlows::tables`]).
use dataplane::flow_table::ofctl::{self, FlowCounters, Pattern};
use dataplane::flow_table::program::{port_of, FlowId, FlowTables};
use dataplane::flow_table::{Action, Flow, PortRef, MAX_TABLE};
use dataplane::port::PortId;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// One flow and what the control thread knows of it.
#[derive(Debug, Clone)]
pub(crate) struct FlowRecord {
    id: FlowId,
    flow: Flow,
    volatile: bool,
    added: Instant,
    /// Counted by tables already replaced.
    packets: u64,
    bytes: u64,
    /// Packets as last seen, and when they last changed (idle timeouts,
    /// `idle_age`).
    seen: u64,
    used: Instant,
}

/// The flows of one bridge.
#[derive(Debug)]
pub(crate) struct BridgeFlows {
    records: Vec<FlowRecord>,
    next_id: FlowId,
    /// The tables the running snapshot has (`None`: only the default
    /// NORMAL flow, the flow stage is skipped), the position of each
    /// flow in them, and the ports they were built for.
    live: Option<Arc<FlowTables>>,
    live_pos: HashMap<FlowId, usize>,
    built_for: Vec<(String, PortId)>,
    /// Flows changed since the tables were built (true until the first
    /// build).
    dirty: bool,
    /// Per table: lookups and matches of tables already replaced.
    table_base: Vec<(u64, u64)>,
    /// While the fast path skips the flow stage: the bridge's received
    /// packets and bytes when it started to (the default flow counts what
    /// its ports received since).
    rx_mark: Option<(u64, u64)>,
}

/// Why a flow change was refused.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("bridge: no bridge named {0:?}")]
    NoBridge(String),
    #[error("flows: line {line}: {source}")]
    Parse {
        line: usize,
        source: ofctl::OfctlError,
    },
    #[error("flow: {0}")]
    One(ofctl::OfctlError),
    #[error("flow: in_port or output names {0:?}, which is no port of bridge {1}")]
    NoPort(String, String),
    #[error("state_dir: {path}: {source}")]
    Persist {
        path: String,
        source: std::io::Error,
    },
}

/// The file a bridge's flows persist in.
pub(super) fn flows_file(state_dir: &str, bridge: &str) -> PathBuf {
    Path::new(state_dir)
        .join("flows")
        .join(format!("{bridge}.flows"))
}

/// Reads flows in `add-flows` syntax: one a line, `#` comments and blank
/// lines skipped. Refused whole at the first bad line (numbered from 1).
pub(super) fn parse_lines<S: AsRef<str>>(lines: &[S]) -> Result<Vec<Flow>, FlowError> {
    let mut flows = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        for (j, text) in l.as_ref().lines().enumerate() {
            let t = text.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            flows.push(ofctl::parse_flow(t).map_err(|source| FlowError::Parse {
                line: i + j + 1,
                source,
            })?);
        }
    }
    Ok(flows)
}

/// Only the default flow: the fast path needs no tables.
fn default_only(records: &[FlowRecord]) -> bool {
    matches!(records, [r] if r.flow.table == 0
        && r.flow.m == Default::default()
        && r.flow.actions == [Action::Normal])
}

impl BridgeFlows {
    /// A bridge's flows at start: those persisted, else the default flow.
    pub fn new(persisted: Option<Vec<Flow>>) -> BridgeFlows {
        let mut b = BridgeFlows {
            records: Vec::new(),
            next_id: 1,
            live: None,
            live_pos: HashMap::new(),
            built_for: Vec::new(),
            dirty: true,
            table_base: vec![(0, 0); usize::from(MAX_TABLE) + 1],
            rx_mark: None,
        };
        let flows = persisted.unwrap_or_else(|| vec![Flow::default_normal()]);
        b.add(flows, false);
        b
    }

    fn record(&mut self, flow: Flow, volatile: bool) -> FlowRecord {
        let id = self.next_id;
        self.next_id += 1;
        let now = Instant::now();
        FlowRecord {
            id,
            flow,
            volatile,
            added: now,
            packets: 0,
            bytes: 0,
            seen: 0,
            used: now,
        }
    }

    /// Adds `flows`: one with the same table, priority and match as a flow
    /// there replaces it (counters start again), as OpenFlow's add does.
    /// Returns (added, replaced).
    pub fn add(&mut self, flows: Vec<Flow>, volatile: bool) -> (usize, usize) {
        let mut at: HashMap<(u8, u16, dataplane::flow_table::Match), usize> = self
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| ((r.flow.table, r.flow.priority, r.flow.m.clone()), i))
            .collect();
        let (mut added, mut replaced) = (0, 0);
        for f in flows {
            let key = (f.table, f.priority, f.m.clone());
            let r = self.record(f, volatile);
            match at.get(&key) {
                Some(&i) => {
                    self.records[i] = r;
                    replaced += 1;
                }
                None => {
                    at.insert(key, self.records.len());
                    self.records.push(r);
                    added += 1;
                }
            }
        }
        self.dirty = true;
        (added, replaced)
    }

    /// Checks that every port a flow names is one of `ports` (by name;
    /// numbers are OpenFlow's and need not be there yet).
    pub fn check_ports(
        flows: &[Flow],
        ports: &[(String, PortId)],
        bridge: &str,
    ) -> Result<(), FlowError> {
        for f in flows {
            let outputs = f.actions.iter().filter_map(|a| match a {
                Action::Output(p) => Some(p),
                _ => None,
            });
            for r in f.m.in_port.iter().chain(outputs) {
                if let PortRef::Name(n) = r {
                    if !ports.iter().any(|(p, _)| p == n) {
                        return Err(FlowError::NoPort(n.clone(), bridge.to_owned()));
                    }
                }
            }
        }
        Ok(())
    }

    /// Replaces every flow with `flows` at once (`replace-flows`): flows
    /// that are already there unchanged (same table, priority, match,
    /// actions, cookie and timeouts) keep their counters. Returns (added,
    /// kept, deleted).
    pub fn replace(&mut self, flows: Vec<Flow>, volatile: bool) -> (usize, usize, usize) {
        let mut old: HashMap<Flow, FlowRecord> = HashMap::new();
        for r in self.records.drain(..) {
            old.entry(r.flow.clone()).or_insert(r);
        }
        let before = old.len();
        let (mut added, mut kept) = (0, 0);
        let mut next = Vec::with_capacity(flows.len());
        let mut seen = std::collections::HashSet::new();
        for f in flows {
            if !seen.insert((f.table, f.priority, f.m.clone())) {
                // A later line with the same match wins, as with add-flows.
                next.retain(|r: &FlowRecord| {
                    (r.flow.table, r.flow.priority, &r.flow.m) != (f.table, f.priority, &f.m)
                });
            }
            match old.remove(&f) {
                Some(mut r) => {
                    r.volatile = volatile;
                    next.push(r);
                    kept += 1;
                }
                None => {
                    let r = self.record(f, volatile);
                    next.push(r);
                    added += 1;
                }
            }
        }
        self.records = next;
        self.dirty = true;
        (added, kept, before - kept)
    }

    /// Deletes the flows `p` selects; how many.
    pub fn delete(&mut self, p: &Pattern, strict: bool) -> usize {
        let before = self.records.len();
        self.records.retain(|r| !p.selects(&r.flow, strict));
        let n = before - self.records.len();
        self.dirty |= n > 0;
        n
    }

    /// Gives the flows `p` selects `actions` (counters kept); how many.
    pub fn modify(&mut self, p: &Pattern, actions: &[Action], strict: bool) -> usize {
        let mut n = 0;
        for r in self
            .records
            .iter_mut()
            .filter(|r| p.selects(&r.flow, strict))
        {
            r.flow.actions = actions.to_vec();
            n += 1;
        }
        self.dirty |= n > 0;
        n
    }

    /// The tables the next snapshot gets for the bridge's `ports`, rebuilt
    /// when the flows or the ports changed; and the tables they replace,
    /// whose counters [`retire`](Self::retire) folds in once no worker
    /// uses them. `rx` is what the bridge's ports have received so far.
    pub fn tables(
        &mut self,
        ports: &[(String, PortId)],
        workers: usize,
        rx: (u64, u64),
    ) -> (Option<Arc<FlowTables>>, Option<Arc<FlowTables>>) {
        if !self.dirty && self.built_for == ports {
            return (self.live.clone(), None);
        }
        let by_name: HashMap<&str, PortId> = ports.iter().map(|(n, p)| (n.as_str(), *p)).collect();
        let members: Vec<PortId> = ports.iter().map(|(_, p)| *p).collect();
        let new = if default_only(&self.records) {
            None
        } else {
            Some(Arc::new(FlowTables::build_after(
                self.records.iter().map(|r| (r.id, &r.flow)),
                |r: &PortRef| match r {
                    PortRef::Name(n) => by_name.get(n.as_str()).copied(),
                    PortRef::Number(n) => port_of(*n).filter(|p| members.contains(p)),
                },
                workers,
                self.live.as_deref(),
            )))
        };
        // The default flow counts what the ports received while the
        // stage was skipped.
        match (&new, self.rx_mark) {
            (None, None) => self.rx_mark = Some(rx),
            (Some(_), Some(mark)) => {
                if let [r] = &mut self.records[..] {
                    r.packets += rx.0.saturating_sub(mark.0);
                    r.bytes += rx.1.saturating_sub(mark.1);
                }
                self.rx_mark = None;
            }
            _ => {}
        }
        self.live_pos = self
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id, i))
            .collect();
        self.built_for = ports.to_vec();
        self.dirty = false;
        let old = std::mem::replace(&mut self.live, new.clone());
        (new, old)
    }

    /// Folds the counters of `old`, tables no worker uses any more, into
    /// the flows they counted for.
    pub fn retire(&mut self, old: &FlowTables) {
        let at: HashMap<FlowId, usize> = self
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id, i))
            .collect();
        for i in 0..old.len() {
            let Some(r) = old.id(i).and_then(|id| at.get(&id)) else {
                continue;
            };
            let (p, b) = old.counters(i);
            let r = &mut self.records[*r];
            r.packets += p;
            r.bytes += b;
        }
        for (t, base) in self.table_base.iter_mut().enumerate() {
            let (l, m) = old.table_counters(t as u8);
            base.0 += l;
            base.1 += m;
        }
    }

    /// Flow `i`'s packets and bytes so far.
    fn counters(&self, i: usize, rx: (u64, u64)) -> (u64, u64) {
        let r = &self.records[i];
        let (mut p, mut b) = (r.packets, r.bytes);
        match (&self.live, self.rx_mark) {
            (Some(t), _) => {
                // Positions in the live tables are those at their build.
                if let Some(&j) = self.live_pos.get(&r.id) {
                    if t.id(j) == Some(r.id) {
                        let (lp, lb) = t.counters(j);
                        p += lp;
                        b += lb;
                    }
                }
            }
            (None, Some(mark)) if !self.dirty => {
                p += rx.0.saturating_sub(mark.0);
                b += rx.1.saturating_sub(mark.1);
            }
            _ => {}
        }
        (p, b)
    }

    /// Flow `i`'s counters, noting `now` as its last use if they moved
    /// since they were last read (idle timeouts, `idle_age`).
    fn read_counters(&mut self, i: usize, rx: (u64, u64), now: Instant) -> (u64, u64) {
        let (p, b) = self.counters(i, rx);
        let r = &mut self.records[i];
        if p != r.seen {
            r.seen = p;
            r.used = now;
        }
        (p, b)
    }

    /// Notes which flows counted packets since the last call; removes
    /// those whose idle or hard timeout has passed. How many went.
    pub fn expire(&mut self, now: Instant, rx: (u64, u64)) -> usize {
        for i in 0..self.records.len() {
            self.read_counters(i, rx, now);
        }
        let before = self.records.len();
        self.records.retain(|r| {
            let idle = r.flow.idle_timeout != 0
                && now.duration_since(r.used).as_secs() >= u64::from(r.flow.idle_timeout);
            let hard = r.flow.hard_timeout != 0
                && now.duration_since(r.added).as_secs() >= u64::from(r.flow.hard_timeout);
            !(idle || hard)
        });
        let n = before - self.records.len();
        self.dirty |= n > 0;
        n
    }

    /// Any flow has a `ct` action (the switch then needs its connection
    /// table).
    pub fn uses_conntrack(&self) -> bool {
        self.records
            .iter()
            .any(|r| r.flow.actions.iter().any(|a| matches!(a, Action::Ct(_))))
    }

    /// Any flow has a timeout (the control thread checks them each second).
    pub fn has_timeouts(&self) -> bool {
        self.records
            .iter()
            .any(|r| r.flow.idle_timeout != 0 || r.flow.hard_timeout != 0)
    }

    /// `dump-flows`: the flows `p` selects (all without one), by table and
    /// then priority, highest first, in `ovs-ofctl`'s layout.
    pub fn dump(&mut self, p: Option<&Pattern>, rx: (u64, u64)) -> Vec<String> {
        let now = Instant::now();
        let mut order: Vec<usize> = (0..self.records.len())
            .filter(|&i| p.is_none_or(|p| p.selects(&self.records[i].flow, false)))
            .collect();
        order.sort_by_key(|&i| {
            let f = &self.records[i].flow;
            (f.table, std::cmp::Reverse(f.priority))
        });
        order
            .into_iter()
            .map(|i| {
                let (n_packets, n_bytes) = self.read_counters(i, rx, now);
                let r = &self.records[i];
                let c = FlowCounters {
                    duration: now.duration_since(r.added).as_secs_f64(),
                    n_packets,
                    n_bytes,
                    idle_age: now.duration_since(r.used).as_secs(),
                };
                ofctl::format_dump(&r.flow, &c)
            })
            .collect()
    }

    /// `dump-tables`: per table with flows or lookups: (table, flows,
    /// lookups, matches).
    pub fn table_stats(&self) -> Vec<(u8, usize, u64, u64)> {
        let mut active = vec![0usize; usize::from(MAX_TABLE) + 1];
        for r in &self.records {
            active[usize::from(r.flow.table)] += 1;
        }
        (0..=MAX_TABLE)
            .filter_map(|t| {
                let (mut l, mut m) = self.table_base[usize::from(t)];
                if let Some(tables) = &self.live {
                    let (ll, lm) = tables.table_counters(t);
                    l += ll;
                    m += lm;
                }
                let n = active[usize::from(t)];
                (n > 0 || l > 0 || t == 0).then_some((t, n, l, m))
            })
            .collect()
    }

    /// Flow `id` as `dump-flows` shows it, without counters (for traces).
    pub fn describe(&self, id: FlowId) -> Option<String> {
        let r = self.records.iter().find(|r| r.id == id)?;
        let text = ofctl::format_flow(&r.flow);
        Some(match r.flow.cookie {
            0 => format!("cookie=0x0, {text}"),
            _ => text,
        })
    }

    /// The persistent flows in `add-flows` syntax, one a line.
    pub fn persistent_text(&self) -> String {
        let mut s = String::new();
        for r in self.records.iter().filter(|r| !r.volatile) {
            s.push_str(&ofctl::format_flow(&r.flow));
            s.push('\n');
        }
        s
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// A copy of the flows, for undoing a change that could not be kept.
    pub fn checkpoint(&self) -> (Vec<FlowRecord>, bool) {
        (self.records.clone(), self.dirty)
    }

    pub fn restore(&mut self, (records, dirty): (Vec<FlowRecord>, bool)) {
        self.records = records;
        self.dirty = dirty;
    }
}

/// Writes `text` to `path` whole or not at all: a temporary file, synced,
/// renamed over it, its directory synced.
pub(super) fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("flows.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Reads a bridge's persisted flows; `None` when it has none yet.
pub(super) fn load(path: &Path) -> Result<Option<Vec<Flow>>, FlowError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            parse_lines(&lines).map(Some).map_err(|e| match e {
                FlowError::Parse { line, source } => FlowError::Persist {
                    path: path.display().to_string(),
                    source: std::io::Error::other(format!("line {line}: {source}")),
                },
                e => e,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FlowError::Persist {
            path: path.display().to_string(),
            source,
        }),
    }
}

impl super::Daemon {
    /// The ports of bridge `bi`, by name, as flows name them.
    pub(super) fn bridge_ports(&self, bi: usize) -> Vec<(String, PortId)> {
        self.ports
            .values()
            .filter(|p| p.bridge == bi)
            .map(|p| (p.cfg.name.clone(), p.dev.port_id()))
            .collect()
    }

    /// What bridge `bi`'s ports have received: packets, bytes.
    pub(super) fn bridge_rx(&self, bi: usize) -> (u64, u64) {
        self.ports
            .values()
            .filter(|p| p.bridge == bi)
            .map(|p| {
                let t =
                    dataplane::stats::PortTotals::sum(&self.workers, p.dev.port_id()).since(p.base);
                (t.rx_packets, t.rx_bytes)
            })
            .fold((0, 0), |(a, b), (p, q)| (a + p, b + q))
    }

    fn bridge_index(&self, bridge: &str) -> Result<usize, FlowError> {
        self.bridges
            .iter()
            .position(|b| b.name == bridge)
            .ok_or_else(|| FlowError::NoBridge(bridge.to_owned()))
    }

    /// Applies `change` to bridge `bridge`'s flows, keeps them on disk and
    /// publishes them in one snapshot; undone whole if they cannot be kept.
    fn change_flows<T>(
        &mut self,
        bridge: &str,
        change: impl FnOnce(&mut BridgeFlows) -> T,
    ) -> Result<T, FlowError> {
        let bi = self.bridge_index(bridge)?;
        let before = self.bridges[bi].flows.checkpoint();
        let out = change(&mut self.bridges[bi].flows);
        if let Err(e) = self.persist(bi) {
            self.bridges[bi].flows.restore(before);
            return Err(e);
        }
        self.publish();
        Ok(out)
    }

    /// Writes bridge `bi`'s persistent flows to its file, unless the file
    /// holds them already.
    fn persist(&self, bi: usize) -> Result<(), FlowError> {
        let b = &self.bridges[bi];
        let path = flows_file(&self.cfg.control.state_dir, &b.name);
        let text = b.flows.persistent_text();
        let unchanged_on_disk = match std::fs::read_to_string(&path) {
            Ok(old) => old == text,
            // Nothing kept yet and nothing to keep but the default flow.
            Err(_) => text == "priority=0 actions=NORMAL\n",
        };
        if unchanged_on_disk {
            return Ok(());
        }
        write_atomically(&path, &text).map_err(|source| FlowError::Persist {
            path: path.display().to_string(),
            source,
        })
    }

    pub(super) fn flow_add(
        &mut self,
        bridge: &str,
        lines: &[String],
        volatile: bool,
        replace: bool,
    ) -> Result<serde_json::Value, FlowError> {
        let bi = self.bridge_index(bridge)?;
        let flows = parse_lines(lines)?;
        BridgeFlows::check_ports(&flows, &self.bridge_ports(bi), bridge)?;
        if replace {
            let (added, kept, deleted) =
                self.change_flows(bridge, |b| b.replace(flows, volatile))?;
            Ok(serde_json::json!({ "added": added, "kept": kept, "deleted": deleted }))
        } else {
            let (added, replaced) = self.change_flows(bridge, |b| b.add(flows, volatile))?;
            Ok(serde_json::json!({ "added": added, "replaced": replaced }))
        }
    }

    pub(super) fn flow_del(
        &mut self,
        bridge: &str,
        pattern: Option<&str>,
        strict: bool,
    ) -> Result<serde_json::Value, FlowError> {
        let p = match pattern {
            Some(t) => ofctl::parse_pattern(t).map_err(FlowError::One)?,
            None => Pattern::default(),
        };
        let n = self.change_flows(bridge, |b| b.delete(&p, strict))?;
        Ok(serde_json::json!({ "deleted": n }))
    }

    pub(super) fn flow_mod(
        &mut self,
        bridge: &str,
        flow: &str,
        strict: bool,
    ) -> Result<serde_json::Value, FlowError> {
        let bi = self.bridge_index(bridge)?;
        let (p, actions) = ofctl::parse_flow_mod(flow).map_err(FlowError::One)?;
        let probe = Flow {
            actions: actions.clone(),
            ..Flow::default()
        };
        BridgeFlows::check_ports(&[probe], &self.bridge_ports(bi), bridge)?;
        let n = self.change_flows(bridge, |b| b.modify(&p, &actions, strict))?;
        Ok(serde_json::json!({ "modified": n }))
    }

    pub(super) fn flow_dump(
        &mut self,
        bridge: &str,
        pattern: Option<&str>,
    ) -> Result<Vec<String>, FlowError> {
        let bi = self.bridge_index(bridge)?;
        let p = pattern
            .map(ofctl::parse_pattern)
            .transpose()
            .map_err(FlowError::One)?;
        let rx = self.bridge_rx(bi);
        Ok(self.bridges[bi].flows.dump(p.as_ref(), rx))
    }

    pub(super) fn flow_tables(
        &self,
        bridge: &str,
    ) -> Result<Vec<control_api::protocol::TableRow>, FlowError> {
        let bi = self.bridge_index(bridge)?;
        Ok(self.bridges[bi]
            .flows
            .table_stats()
            .into_iter()
            .map(
                |(table, active, lookups, matched)| control_api::protocol::TableRow {
                    table,
                    active,
                    lookups,
                    matched,
                },
            )
            .collect())
    }

    /// Once a second: flows whose idle or hard timeout passed go (in one
    /// snapshot); volatile or not, they are gone from disk too.
    pub(super) fn expire_flows(&mut self) {
        let now = Instant::now();
        let mut gone = 0;
        for bi in 0..self.bridges.len() {
            if !self.bridges[bi].flows.has_timeouts() {
                continue;
            }
            let rx = self.bridge_rx(bi);
            let n = self.bridges[bi].flows.expire(now, rx);
            if n > 0 {
                if let Err(e) = self.persist(bi) {
                    tracing::warn!("timed-out flows not kept: {e}");
                }
            }
            gone += n;
        }
        if gone > 0 {
            tracing::info!(flows = gone, "flows timed out");
            self.publish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flows(lines: &[&str]) -> Vec<Flow> {
        parse_lines(lines).unwrap()
    }

    fn id(n: u16) -> PortId {
        PortId::new(n).unwrap()
    }

    #[test]
    fn a_bridge_starts_with_the_default_flow_and_needs_no_tables() {
        let mut b = BridgeFlows::new(None);
        let (t, _) = b.tables(&[("a".into(), id(0))], 1, (0, 0));
        assert!(t.is_none());
        let d = b.dump(None, (10, 600));
        assert_eq!(d.len(), 1);
        assert!(d[0].contains("n_packets=10, n_bytes=600"), "{}", d[0]);
        assert!(d[0].ends_with("priority=0 actions=NORMAL"), "{}", d[0]);
    }

    #[test]
    fn add_replaces_the_same_match_and_del_and_mod_select_as_openflow() {
        let mut b = BridgeFlows::new(None);
        let (added, replaced) = b.add(
            flows(&[
                "priority=4,in_port=1,dl_vlan=2,actions=mod_vlan_vid:3029,NORMAL",
                "priority=2,in_port=1,actions=drop",
                "priority=4,in_port=1,dl_vlan=2,actions=NORMAL",
                "table=1,tcp,nw_src=10.0.0.0/24,tp_dst=22,actions=drop",
            ]),
            false,
        );
        assert_eq!((added, replaced), (3, 1));
        assert_eq!(b.len(), 4);
        // Non-strict: every flow at least as narrow.
        let p = ofctl::parse_pattern("in_port=1").unwrap();
        assert_eq!(b.modify(&p, &[Action::Flood], false), 2);
        let p = ofctl::parse_pattern("tcp,nw_src=10.0.0.0/16").unwrap();
        assert_eq!(b.delete(&p, false), 1);
        // Strict: the exact match and priority.
        let p = ofctl::parse_pattern("priority=2").unwrap();
        assert_eq!(b.delete(&p, true), 0);
        let p = ofctl::parse_pattern("priority=2,in_port=1").unwrap();
        assert_eq!(b.delete(&p, true), 1);
        assert_eq!(b.delete(&Pattern::default(), false), 2);
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn counters_survive_a_rebuild_and_replace_keeps_unchanged_flows() {
        let mut b = BridgeFlows::new(None);
        b.add(flows(&["in_port=1,actions=output:2"]), false);
        let ports = [("a".into(), id(0)), ("b".into(), id(1))];
        let (t, _) = b.tables(&ports, 1, (0, 0));
        let t = t.unwrap();
        t.count(0, &[1], 1, 100);
        b.add(flows(&["in_port=2,actions=output:1"]), false);
        let (_, old) = b.tables(&ports, 1, (0, 0));
        b.retire(&old.unwrap());
        let d = b.dump(None, (0, 0));
        assert!(
            d.iter().any(|l| l.contains("n_packets=1, n_bytes=100")),
            "{d:?}"
        );
        let (added, kept, deleted) = b.replace(
            flows(&["in_port=1,actions=output:2", "actions=drop"]),
            false,
        );
        assert_eq!((added, kept, deleted), (1, 1, 2));
        let d = b.dump(None, (0, 0));
        assert!(
            d.iter().any(|l| l.contains("n_packets=1, n_bytes=100")),
            "{d:?}"
        );
    }

    #[test]
    fn volatile_flows_are_not_persisted_and_unknown_names_are_refused() {
        let mut b = BridgeFlows::new(None);
        b.add(flows(&["in_port=a,actions=drop"]), true);
        assert_eq!(b.persistent_text(), "priority=0 actions=NORMAL\n");
        let ports = [("a".to_owned(), id(0))];
        assert!(
            BridgeFlows::check_ports(&flows(&["in_port=a,actions=output:b"]), &ports, "br0")
                .is_err()
        );
        assert!(
            BridgeFlows::check_ports(&flows(&["in_port=a,actions=output:7"]), &ports, "br0")
                .is_ok()
        );
        let e = parse_lines(&["actions=NORMAL", "", "# c", "in_port=1,actions=bogus"]).unwrap_err();
        assert!(e.to_string().starts_with("flows: line 4: at byte"), "{e}");
    }
}
