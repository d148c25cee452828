//! Quotas (the `quotas` and `quota_details` extensions): how many of each
//! resource a project may have, Neutron's defaults unless a project's are
//! set, enforced when the API creates (inside the creating mutation, so
//! concurrent creates cannot overshoot). The default security group and
//! its rules, which the service makes itself, are never refused, as in
//! Neutron. Resources of no project (a request without `X-Project-Id` or
//! `project_id`, which Neutron without Keystone refuses outright) count
//! against no quota.
use super::engine::Tx;
use super::error::ApiError;
use super::model::NeutronState;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The resources with a quota and Neutron's default limits (-1: none).
pub const DEFAULTS: [(&str, i64); 7] = [
    ("network", 100),
    ("subnet", 100),
    ("subnetpool", -1),
    ("port", 500),
    ("security_group", 10),
    ("security_group_rule", 100),
    ("rbac_policy", 10),
];

/// A project's limits: the defaults with its own overrides.
pub fn limits(st: &NeutronState, project: &str) -> BTreeMap<&'static str, i64> {
    let own = st.quotas.get(project);
    DEFAULTS
        .iter()
        .map(|&(r, d)| (r, own.and_then(|o| o.get(r).copied()).unwrap_or(d)))
        .collect()
}

pub fn defaults() -> BTreeMap<&'static str, i64> {
    DEFAULTS.iter().copied().collect()
}

/// How many of `resource` the project has.
pub fn used(st: &NeutronState, project: &str, resource: &str) -> i64 {
    let n = match resource {
        "network" => st
            .networks
            .values()
            .filter(|n| n.project_id == project)
            .count(),
        "subnet" => st
            .subnets
            .values()
            .filter(|s| s.project_id == project)
            .count(),
        "port" => st
            .ports
            .values()
            .filter(|p| p.project_id == project)
            .count(),
        "security_group" => st
            .security_groups
            .values()
            .filter(|g| g.project_id == project)
            .count(),
        "security_group_rule" => st
            .security_groups
            .values()
            .flat_map(|g| g.security_group_rules.iter())
            .filter(|r| r.project_id == project)
            .count(),
        _ => 0,
    };
    n as i64
}

/// Neutron's `OverQuota`.
fn over_quota(resource: &str) -> ApiError {
    ApiError::conflict(
        "OverQuota",
        format!("Quota exceeded for resources: ['{resource}']."),
    )
}

/// A limit as Neutron converts it: an integer (or its text), -1 or more.
fn limit_value(resource: &str, v: &Value) -> Result<i64, ApiError> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n >= -1 => Ok(n),
        Some(n) => Err(ApiError::bad_attr(
            resource,
            format!("'{n}' is too small - must be at least '-1'"),
        )),
        None => Err(ApiError::bad(resource, format!("'{v}' is not an integer"))),
    }
}

impl Tx<'_> {
    /// Refuses the mutation when the projects of what it created are past
    /// their `resource` quota.
    pub fn enforce_quota<'p>(
        &self,
        resource: &str,
        projects: impl IntoIterator<Item = &'p str>,
    ) -> Result<(), ApiError> {
        for p in projects.into_iter().filter(|p| !p.is_empty()) {
            let limit = limits(&self.w.st, p)[resource];
            if limit >= 0 && used(&self.w.st, p, resource) > limit {
                return Err(over_quota(resource));
            }
        }
        Ok(())
    }

    /// `PUT /v2.0/quotas/{project}`: sets the given limits; returns all.
    pub fn set_quotas(
        &mut self,
        project: &str,
        mut body: Map<String, Value>,
    ) -> Result<BTreeMap<&'static str, i64>, ApiError> {
        // check_limit: refuse a limit below what the project already has;
        // force: the default (no check).
        let check_limit = body
            .remove("check_limit")
            .is_some_and(|v| super::body::bool_value("check_limit", &v).unwrap_or(false));
        body.remove("force");
        let unknown: Vec<&str> = body
            .keys()
            .map(String::as_str)
            .filter(|k| !DEFAULTS.iter().any(|(r, _)| r == k))
            .collect();
        if !unknown.is_empty() {
            return Err(super::body::unrecognized(&unknown));
        }
        let mut own: BTreeMap<String, i64> = self
            .w
            .st
            .quotas
            .get(project)
            .map(|o| (**o).clone())
            .unwrap_or_default();
        for (r, v) in &body {
            let limit = limit_value(r, v)?;
            let used = used(&self.w.st, project, r);
            if check_limit && limit >= 0 && limit < used {
                return Err(ApiError::new(
                    400,
                    "HTTPBadRequest",
                    format!("Quota limit {limit} for {r} must be greater than or equal to already used {used}"),
                ));
            }
            own.insert(r.clone(), limit);
        }
        self.put_quotas(project, own);
        Ok(limits(&self.w.st, project))
    }

    /// `DELETE /v2.0/quotas/{project}`: back to the defaults.
    pub fn delete_quotas(&mut self, project: &str) {
        if self.w.st.quotas.contains_key(project) {
            self.put_quotas(project, BTreeMap::new());
        }
    }

    fn put_quotas(&mut self, project: &str, own: BTreeMap<String, i64>) {
        if own.is_empty() {
            self.w.st.quotas.remove(project);
        } else {
            self.w
                .st
                .quotas
                .insert(project.to_owned(), Arc::new(own.clone()));
        }
        self.ops.push(super::store::Op::SetQuotas {
            project: project.to_owned(),
            limits: own,
        });
    }
}
