//! Where the Neutron model is kept: a [`Store`] commits a mutation's ops
//! atomically and gives back everything committed. Two of them:
//! [`SqliteStore`] (one host, the default) and [`EtcdStore`] (a cloud of
//! hosts sharing one model; docs/ARCHITECTURE.md "Many hosts").
mod etcd;
mod sqlite;

pub use etcd::{EtcdSettings, EtcdStore, TlsFiles};
pub use sqlite::SqliteStore;

use crate::error::{ApiError, NeutronError};
use crate::model::{HostRecord, Network, Port, SecurityGroup, SecurityGroupRule, Subnet};
use std::sync::Arc;

/// Reads a shared store's figures.
pub type Figures = Arc<dyn Fn() -> crate::ClusterMetrics + Send + Sync>;

/// What became of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    Done,
    /// Another writer committed since the state the ops were made from:
    /// nothing was written; reload and run the mutation again.
    Conflict,
}

/// The persistence of the Neutron model. The engine is its only user and
/// calls it under its writer lock.
pub trait Store: Send {
    /// Everything committed, in the order it was first written.
    fn load(&mut self) -> Result<Loaded, NeutronError>;
    /// Commits the ops in one transaction, all or nothing. `Conflict` only
    /// from a store shared with other writers.
    fn apply(&mut self, ops: &[Op]) -> Result<Commit, ApiError>;
    /// Makes sure every commit made anywhere before this call is in what
    /// `load` gives (a shared store: one round trip to learn the latest
    /// revision, then waiting for it to arrive), so that a mutation is
    /// validated against the latest model, not a lagging copy.
    fn sync(&mut self) -> Result<(), ApiError> {
        Ok(())
    }
    /// What other writers changed since the last `load`, `load_delta` or
    /// `apply`, document by document; None when only a whole `load` can
    /// say (the default, and after a full re-read).
    fn load_delta(&mut self) -> Result<Option<Delta>, NeutronError> {
        Ok(None)
    }
    /// Whether another writer committed something `load` would now show
    /// that the last `load` or `apply` did not.
    fn stale(&self) -> bool {
        false
    }
    /// A consistency check of the stored data: "ok" when sound.
    fn check(&mut self) -> Result<String, NeutronError>;
    /// Names the store in errors and logs (a path, or etcd's endpoints).
    fn describe(&self) -> String;
    /// `notify` is called (from the store's own thread) whenever
    /// [`Store::stale`] may have become true.
    fn watch(&mut self, _notify: Box<dyn Fn() + Send>) {}
    /// A reader of a shared store's figures (etcd reachable, watch lag,
    /// conflicts) that never waits for a commit in progress.
    fn figures(&self) -> Option<Figures> {
        None
    }
    /// Keeps this host registered (alive) for `ttl` at a time, renewed in
    /// the background, until the store is dropped. Only a shared store has
    /// hosts to register with: the others ignore it.
    fn register(
        &mut self,
        _record: &HostRecord,
        _ttl: std::time::Duration,
    ) -> Result<(), NeutronError> {
        Ok(())
    }
}

/// A rule's document with its standard_attr_id, which the API shows only
/// inside groups.
pub(crate) fn rule_json(rule: &SecurityGroupRule) -> Result<String, serde_json::Error> {
    let mut v = serde_json::to_value(rule)?;
    if let serde_json::Value::Object(m) = &mut v {
        m.insert("standard_attr_id".into(), rule.standard_attr_id.into());
    }
    Ok(v.to_string())
}

/// One change, in the order it must reach the database.
#[derive(Debug, Clone)]
pub enum Op {
    PutNetwork(Arc<Network>),
    /// vid 0 for a flat network.
    AddSegment {
        network_id: String,
        physnet: String,
        vid: u16,
    },
    /// A vxlan network's VNI (unique in the cloud).
    AddVni {
        network_id: String,
        vni: u32,
    },
    DeleteNetwork(String),
    PutSubnet(Arc<Subnet>),
    DeleteSubnet(String),
    PutPort(Arc<Port>),
    DeletePort(String),
    AddAllocation {
        subnet_id: String,
        ip_address: String,
        port_id: String,
    },
    DeleteAllocation {
        subnet_id: String,
        ip_address: String,
    },
    SetPortGroups {
        port_id: String,
        groups: Vec<String>,
    },
    /// The group's document is stored without its rules (they have a table).
    PutGroup {
        group: Arc<SecurityGroup>,
        is_default: bool,
    },
    DeleteGroup(String),
    PutRule {
        rule: Box<SecurityGroupRule>,
        fingerprint: String,
    },
    DeleteRule(String),
    /// A project's quota limits, replacing what it had (none: defaults).
    SetQuotas {
        project: String,
        limits: std::collections::BTreeMap<String, i64>,
    },
}

/// One document another writer changed: its new value, or None if gone.
#[derive(Debug, Clone)]
pub enum Change {
    Network(String, Option<Network>),
    Subnet(String, Option<Subnet>),
    Port(String, Option<Port>),
    /// A group with all its rules (the group or one of its rules changed).
    Group(String, Option<SecurityGroup>),
    Quotas(String, Option<std::collections::BTreeMap<String, i64>>),
}

/// What other writers changed, for updating the world in proportion.
#[derive(Debug, Default)]
pub struct Delta {
    pub changes: Vec<Change>,
    /// Set when the registered hosts changed: all of them now.
    pub hosts: Option<Vec<HostRecord>>,
}

/// Everything in the database, for restoring the in-memory world.
#[derive(Default)]
pub struct Loaded {
    pub networks: Vec<Network>,
    pub subnets: Vec<Subnet>,
    pub ports: Vec<Port>,
    /// Groups without rules, then rules in insertion order.
    pub groups: Vec<SecurityGroup>,
    pub rules: Vec<SecurityGroupRule>,
    /// (project, resource, limit).
    pub quotas: Vec<(String, String, i64)>,
    /// The hosts registered now (etcd only).
    pub hosts: Vec<HostRecord>,
}
