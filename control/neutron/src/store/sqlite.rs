//! Durability: SQLite in WAL mode with `synchronous=FULL`, one transaction
//! per mutation, committed before the request is answered. Resources are
//! JSON documents keyed by id; the columns beside them exist so the
//! database itself enforces the invariants (one MAC per network, one port
//! per IP, one network per VLAN, foreign keys for "in use"), whatever the
//! code above it gets wrong.
use super::{Commit, Loaded, Op, Store};
use crate::error::{ApiError, NeutronError};
use crate::model::SecurityGroupRule;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
-- vlan networks: vid 1-4094; flat networks: vid 0 (one per physnet).
CREATE TABLE IF NOT EXISTS segments (
    network_id TEXT PRIMARY KEY REFERENCES networks(id) ON DELETE CASCADE,
    physnet TEXT NOT NULL,
    vid INTEGER NOT NULL CHECK (vid BETWEEN 0 AND 4094),
    UNIQUE (physnet, vid)
);
-- vxlan networks: one VNI each, unique (ML2's ml2_vxlan_allocations).
CREATE TABLE IF NOT EXISTS vxlan_segments (
    network_id TEXT PRIMARY KEY REFERENCES networks(id) ON DELETE CASCADE,
    vni INTEGER NOT NULL UNIQUE CHECK (vni BETWEEN 1 AND 16777215)
);
CREATE TABLE IF NOT EXISTS subnets (
    id TEXT PRIMARY KEY,
    network_id TEXT NOT NULL REFERENCES networks(id),
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS subnets_network ON subnets(network_id);
CREATE TABLE IF NOT EXISTS ports (
    id TEXT PRIMARY KEY,
    network_id TEXT NOT NULL REFERENCES networks(id),
    mac_address TEXT NOT NULL,
    doc TEXT NOT NULL,
    UNIQUE (network_id, mac_address)
);
CREATE TABLE IF NOT EXISTS ip_allocations (
    subnet_id TEXT NOT NULL REFERENCES subnets(id),
    ip_address TEXT NOT NULL,
    port_id TEXT NOT NULL REFERENCES ports(id) ON DELETE CASCADE,
    PRIMARY KEY (subnet_id, ip_address)
);
CREATE INDEX IF NOT EXISTS ip_allocations_port ON ip_allocations(port_id);
CREATE TABLE IF NOT EXISTS security_groups (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    is_default INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS security_groups_one_default
    ON security_groups(project_id) WHERE is_default = 1;
CREATE TABLE IF NOT EXISTS security_group_rules (
    id TEXT PRIMARY KEY,
    security_group_id TEXT NOT NULL REFERENCES security_groups(id) ON DELETE CASCADE,
    remote_group_id TEXT REFERENCES security_groups(id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    doc TEXT NOT NULL,
    UNIQUE (security_group_id, fingerprint)
);
CREATE INDEX IF NOT EXISTS security_group_rules_remote ON security_group_rules(remote_group_id);
CREATE TABLE IF NOT EXISTS port_security_groups (
    port_id TEXT NOT NULL REFERENCES ports(id) ON DELETE CASCADE,
    security_group_id TEXT NOT NULL REFERENCES security_groups(id),
    PRIMARY KEY (port_id, security_group_id)
);
CREATE INDEX IF NOT EXISTS port_security_groups_group ON port_security_groups(security_group_id);
CREATE TABLE IF NOT EXISTS quotas (
    project_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    hard_limit INTEGER NOT NULL CHECK (hard_limit >= -1),
    PRIMARY KEY (project_id, resource)
);
";

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// Copies the WAL back into the database in the background (held for
    /// its thread, stopped on drop).
    _checkpointer: Checkpointer,
}

/// How often the background checkpoint runs.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);
/// WAL frames (pages) beyond which the checkpoint also restarts the WAL.
const WAL_RESTART_FRAMES: i64 = 4096;

/// A thread with a connection of its own that checkpoints the WAL. SQLite's
/// automatic checkpoint runs inside a commit, so every few hundred creates
/// one request paid for copying the WAL into a growing database. Here a
/// `PASSIVE` checkpoint (which never waits for or blocks the writer) runs
/// every 200 ms; under a steady stream of commits it cannot finish the
/// last frames, so the WAL would only grow: past 4096 frames a `RESTART`
/// checkpoint, which holds the writer for the little left to copy, lets
/// the next commit start the WAL over (its file cut back to 16 MiB).
struct Checkpointer {
    stop: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Checkpointer, String> {
        let conn = Connection::open(path).map_err(|e| e.to_string())?;
        conn.execute_batch("PRAGMA busy_timeout=5000; PRAGMA journal_size_limit=16777216;")
            .map_err(|e| e.to_string())?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    let frames = |mode: &str| {
                        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                            r.get::<_, i64>(1)
                        })
                    };
                    let done = frames("PASSIVE").and_then(|n| {
                        if n > WAL_RESTART_FRAMES {
                            frames("RESTART")
                        } else {
                            Ok(n)
                        }
                    });
                    if let Err(e) = done {
                        tracing::warn!("sqlite checkpoint: {e}");
                    }
                }
            })
            .map_err(|e| format!("thread: {e}"))?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore, NeutronError> {
        let fail = |reason: String| NeutronError::Store {
            path: path.display().to_string(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| fail(format!("cannot create directory {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(|e| fail(e.to_string()))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| fail(format!("enabling WAL: {e}")))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(fail(format!("journal_mode is {mode}, WAL is required")));
        }
        // FULL: the WAL is fsynced at every commit, so an acknowledged
        // mutation survives power loss, not just a process kill.
        conn.execute_batch(
            "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000; PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=16777216;",
        )
        .map_err(|e| fail(e.to_string()))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| fail(e.to_string()))?;
        if version > SCHEMA_VERSION {
            return Err(fail(format!(
                "schema version {version} is newer than this program's ({SCHEMA_VERSION})"
            )));
        }
        conn.execute_batch(&format!(
            "BEGIN; {SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;"
        ))
        .map_err(|e| fail(format!("creating the schema: {e}")))?;
        let checkpointer =
            Checkpointer::start(path).map_err(|e| fail(format!("checkpoint connection: {e}")))?;
        Ok(SqliteStore {
            conn,
            path: path.to_owned(),
            _checkpointer: checkpointer,
        })
    }

    fn load_docs<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        out: &mut Vec<T>,
    ) -> Result<(), NeutronError> {
        let mut st = self
            .conn
            .prepare(sql)
            .map_err(|e| self.fail(e.to_string()))?;
        let rows = st
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.fail(e.to_string()))?;
        for doc in rows {
            let doc = doc.map_err(|e| self.fail(e.to_string()))?;
            out.push(
                serde_json::from_str(&doc)
                    .map_err(|e| self.fail(format!("corrupt document {doc:.80}: {e}")))?,
            );
        }
        Ok(())
    }

    fn fail(&self, reason: impl Into<String>) -> NeutronError {
        NeutronError::Store {
            path: self.path.display().to_string(),
            reason: reason.into(),
        }
    }
}

impl Store for SqliteStore {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn load(&mut self) -> Result<Loaded, NeutronError> {
        let mut out = Loaded::default();
        self.load_docs("SELECT doc FROM networks ORDER BY rowid", &mut out.networks)?;
        self.load_docs("SELECT doc FROM subnets ORDER BY rowid", &mut out.subnets)?;
        self.load_docs("SELECT doc FROM ports ORDER BY rowid", &mut out.ports)?;
        self.load_docs(
            "SELECT doc FROM security_groups ORDER BY rowid",
            &mut out.groups,
        )?;
        // A rule's standard_attr_id is stored beside its API document
        // (which does not show it).
        let mut docs: Vec<serde_json::Value> = Vec::new();
        self.load_docs(
            "SELECT doc FROM security_group_rules ORDER BY rowid",
            &mut docs,
        )?;
        for v in docs {
            let sa = v
                .get("standard_attr_id")
                .and_then(|x| x.as_u64())
                .unwrap_or(0);
            let mut r: SecurityGroupRule = serde_json::from_value(v)
                .map_err(|e| self.fail(format!("corrupt rule document: {e}")))?;
            r.standard_attr_id = sa;
            out.rules.push(r);
        }
        let mut st = self
            .conn
            .prepare("SELECT project_id, resource, hard_limit FROM quotas")
            .map_err(|e| self.fail(e.to_string()))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| self.fail(e.to_string()))?;
        for row in rows {
            out.quotas.push(row.map_err(|e| self.fail(e.to_string()))?);
        }
        Ok(out)
    }

    /// Applies the ops in one transaction and commits (fsync). On any error
    /// the transaction is rolled back and nothing is changed.
    fn apply(&mut self, ops: &[Op]) -> Result<Commit, ApiError> {
        let tx = self.conn.transaction().map_err(db_err)?;
        for op in ops {
            apply_one(&tx, op).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        Ok(Commit::Done)
    }

    /// `PRAGMA integrity_check` and `foreign_key_check`: "ok" or the problems.
    fn check(&mut self) -> Result<String, NeutronError> {
        let ic: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| self.fail(e.to_string()))?;
        let fk: Option<String> = self
            .conn
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()
            .map_err(|e| self.fail(e.to_string()))?;
        Ok(match fk {
            Some(t) => format!("{ic}; foreign key violation in {t}"),
            None => ic,
        })
    }
}

/// A database refusal is a conflict the in-memory checks should have
/// caught; anything else (disk full, I/O) is a 500.
fn db_err(e: rusqlite::Error) -> ApiError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            ApiError::conflict("Conflict", format!("the database refused the change: {e}"))
        }
        _ => ApiError::internal(format!("database error: {e}")),
    }
}

fn doc<T: serde::Serialize>(v: &T) -> rusqlite::Result<String> {
    serde_json::to_string(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn rule_doc(rule: &SecurityGroupRule) -> rusqlite::Result<String> {
    super::rule_json(rule).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn apply_one(tx: &rusqlite::Transaction<'_>, op: &Op) -> rusqlite::Result<()> {
    match op {
        Op::PutNetwork(n) => {
            tx.prepare_cached(
                "INSERT INTO networks (id, doc) VALUES (?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
            )?
            .execute(params![n.id, doc(&**n)?])?;
        }
        Op::AddSegment {
            network_id,
            physnet,
            vid,
        } => {
            tx.prepare_cached(
                "INSERT INTO segments (network_id, physnet, vid) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![network_id, physnet, vid])?;
        }
        Op::AddVni { network_id, vni } => {
            tx.prepare_cached("INSERT INTO vxlan_segments (network_id, vni) VALUES (?1, ?2)")?
                .execute(params![network_id, vni])?;
        }
        Op::DeleteNetwork(id) => {
            tx.prepare_cached("DELETE FROM networks WHERE id = ?1")?
                .execute(params![id])?;
        }
        Op::PutSubnet(s) => {
            tx.prepare_cached(
                "INSERT INTO subnets (id, network_id, doc) VALUES (?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
            )?
            .execute(params![s.id, s.network_id, doc(&**s)?])?;
        }
        Op::DeleteSubnet(id) => {
            tx.prepare_cached("DELETE FROM subnets WHERE id = ?1")?
                .execute(params![id])?;
        }
        Op::PutPort(p) => {
            tx.prepare_cached(
                "INSERT INTO ports (id, network_id, mac_address, doc) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET mac_address = excluded.mac_address, doc = excluded.doc",
            )?
            .execute(params![p.id, p.network_id, p.mac_address, doc(&**p)?])?;
        }
        Op::DeletePort(id) => {
            tx.prepare_cached("DELETE FROM ports WHERE id = ?1")?
                .execute(params![id])?;
        }
        Op::AddAllocation {
            subnet_id,
            ip_address,
            port_id,
        } => {
            tx.prepare_cached(
                "INSERT INTO ip_allocations (subnet_id, ip_address, port_id) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![subnet_id, ip_address, port_id])?;
        }
        Op::DeleteAllocation {
            subnet_id,
            ip_address,
        } => {
            tx.prepare_cached(
                "DELETE FROM ip_allocations WHERE subnet_id = ?1 AND ip_address = ?2",
            )?
            .execute(params![subnet_id, ip_address])?;
        }
        Op::SetPortGroups { port_id, groups } => {
            tx.prepare_cached("DELETE FROM port_security_groups WHERE port_id = ?1")?
                .execute(params![port_id])?;
            let mut ins = tx.prepare_cached(
                "INSERT INTO port_security_groups (port_id, security_group_id) VALUES (?1, ?2)",
            )?;
            for g in groups {
                ins.execute(params![port_id, g])?;
            }
        }
        Op::PutGroup { group, is_default } => {
            let mut bare = (**group).clone();
            bare.security_group_rules.clear();
            tx.prepare_cached(
                "INSERT INTO security_groups (id, project_id, is_default, doc) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
            )?
            .execute(params![group.id, group.project_id, *is_default as i64, doc(&bare)?])?;
        }
        Op::DeleteGroup(id) => {
            tx.prepare_cached("DELETE FROM security_groups WHERE id = ?1")?
                .execute(params![id])?;
        }
        Op::PutRule { rule, fingerprint } => {
            tx.prepare_cached(
                "INSERT INTO security_group_rules (id, security_group_id, remote_group_id, fingerprint, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
            )?
            .execute(params![
                rule.id,
                rule.security_group_id,
                rule.remote_group_id,
                fingerprint,
                rule_doc(rule)?
            ])?;
        }
        Op::DeleteRule(id) => {
            tx.prepare_cached("DELETE FROM security_group_rules WHERE id = ?1")?
                .execute(params![id])?;
        }
        Op::SetQuotas { project, limits } => {
            tx.prepare_cached("DELETE FROM quotas WHERE project_id = ?1")?
                .execute(params![project])?;
            let mut ins = tx.prepare_cached(
                "INSERT INTO quotas (project_id, resource, hard_limit) VALUES (?1, ?2, ?3)",
            )?;
            for (r, l) in limits {
                ins.execute(params![project, r, l])?;
            }
        }
    }
    Ok(())
}
