//! The REST API: axum on its own thread and tokio runtime. axum only moves
//! bytes; every request is handled by the synchronous `dispatch` on the
//! blocking pool (mutations wait for an fsync, big lists take milliseconds
//! of CPU: neither belongs on the two async workers), which also keeps
//! error bodies Neutron-shaped for every failure, routing included.
use super::body::{parse_object, Body};
use super::engine::{Engine, Tx};
use super::error::{ApiError, NeutronError};
use super::networks::{check_tag, check_tags};
use super::query::{list, write_item, Query};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest request body accepted.
const MAX_BODY: usize = 1 << 20;
/// How long shutdown waits for in-flight requests.
const GRACE: Duration = Duration::from_secs(5);

/// A running API server; dropping it shuts it down too.
pub struct ApiServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish (up to 5 s) and joins
    /// the server thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Binds the API's address (before anything else starts, so a taken port
/// is found first).
pub(crate) fn bind(engine: &Engine) -> Result<std::net::TcpListener, NeutronError> {
    let listen = engine.s.listen;
    let fail = |e: std::io::Error| NeutronError::Serve {
        addr: listen.to_string(),
        reason: e.to_string(),
    };
    let l = std::net::TcpListener::bind(listen).map_err(fail)?;
    l.set_nonblocking(true).map_err(fail)?;
    Ok(l)
}

pub(crate) fn serve(
    engine: Arc<Engine>,
    std_listener: std::net::TcpListener,
) -> Result<ApiServer, NeutronError> {
    let listen = engine.s.listen;
    let limits = httpd::Limits {
        max_connections: engine.s.max_connections,
        header_timeout: engine.s.request_timeout,
        body_timeout: engine.s.request_timeout,
        grace: GRACE,
        ..httpd::Limits::default()
    };
    let fail = |reason: String| NeutronError::Serve {
        addr: listen.to_string(),
        reason,
    };
    std_listener
        .set_nonblocking(true)
        .map_err(|e| fail(e.to_string()))?;
    let addr = std_listener.local_addr().map_err(|e| fail(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .thread_name("neutron-api")
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| fail(format!("tokio runtime: {e}")))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let thread = std::thread::Builder::new()
        .name("neutron-api".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("neutron API: {e}");
                        return;
                    }
                };
                let app = Router::new().fallback(handle).with_state(engine);
                let mut stop = stop_rx;
                // A dropped sender means stop as well.
                let stopped = async move {
                    let _ = stop.wait_for(|v| *v).await;
                };
                httpd::serve(listener, app, limits, stopped).await;
            });
            rt.shutdown_timeout(GRACE);
        })
        .map_err(|e| fail(format!("spawning the server thread: {e}")))?;
    tracing::info!("neutron API listening on http://{addr}/");
    Ok(ApiServer {
        addr,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

/// A request, detached from hyper.
pub(crate) struct ApiRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub body: Vec<u8>,
    pub token: Option<String>,
    pub host: Option<String>,
    pub project: Option<String>,
}

pub(crate) struct Resp {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Resp {
    fn json(status: u16, v: &Value) -> Resp {
        Resp {
            status,
            body: serde_json::to_vec(v).unwrap_or_default(),
        }
    }
    fn empty(status: u16) -> Resp {
        Resp {
            status,
            body: Vec::new(),
        }
    }
}

async fn handle(State(engine): State<Arc<Engine>>, req: axum::extract::Request) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_owned();
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let read = match check_request_headers(&parts.headers) {
        Err(e) => Err(e),
        Ok(()) => httpd::read_body(&parts.extensions, body, MAX_BODY)
            .await
            .map_err(|e| body_error(&e)),
    };
    let (route, resp) = match read {
        Err(e) => ("unmatched".to_owned(), err_resp(&e)),
        Ok(bytes) => {
            let req = ApiRequest {
                method: method.clone(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().map(str::to_owned),
                body: bytes.to_vec(),
                token: header("x-auth-token"),
                host: header("host"),
                project: header("x-project-id"),
            };
            let e = engine.clone();
            match tokio::task::spawn_blocking(move || dispatch(&e, req)).await {
                Ok(r) => r,
                Err(e) => (
                    "unmatched".to_owned(),
                    err_resp(&ApiError::internal(format!("request handler failed: {e}"))),
                ),
            }
        }
    };
    engine
        .metrics
        .record(&method, &route, resp.status, started.elapsed());
    let mut r = Response::new(axum::body::Body::from(resp.body));
    *r.status_mut() =
        StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if resp.status != 204 {
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    r
}

/// The longest `X-Project-Id` (Neutron's `project_id` is 255 characters).
const MAX_PROJECT_ID: usize = 255;

/// What is wrong with a request before its body is read: a body that is not
/// JSON (Neutron answers 415) or a project id longer than Neutron stores.
fn check_request_headers(h: &axum::http::HeaderMap) -> Result<(), ApiError> {
    if let Some(ct) = h.get(header::CONTENT_TYPE) {
        let media = ct
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if media != "application/json" {
            return Err(ApiError::new(
                415,
                "HTTPUnsupportedMediaType",
                format!(
                    "Content-Type: {:?} is not supported, send application/json",
                    String::from_utf8_lossy(ct.as_bytes())
                ),
            ));
        }
    }
    if let Some(p) = h.get("x-project-id") {
        let ok = p
            .to_str()
            .is_ok_and(|s| !s.is_empty() && s.chars().count() <= MAX_PROJECT_ID);
        if !ok {
            return Err(ApiError::new(
                400,
                "HTTPBadRequest",
                format!("X-Project-Id: must be 1-{MAX_PROJECT_ID} printable ASCII characters"),
            ));
        }
    }
    Ok(())
}

/// A body that could not be read: too large (413), cut or badly chunked
/// (400), too slow (408).
fn body_error(e: &httpd::BodyError) -> ApiError {
    let (status, kind) = match e {
        httpd::BodyError::TooLarge(_) => (413, "HTTPRequestEntityTooLarge"),
        httpd::BodyError::Malformed(_) => (400, "HTTPBadRequest"),
        httpd::BodyError::TimedOut(_) => (408, "HTTPRequestTimeout"),
    };
    ApiError::new(status, kind, format!("request body: {e}"))
}

fn err_resp(e: &ApiError) -> Resp {
    Resp {
        status: e.status,
        body: e.body(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Coll {
    Networks,
    Subnets,
    Ports,
    Groups,
    Rules,
}

impl Coll {
    fn parse(s: &str) -> Option<Coll> {
        Some(match s {
            "networks" => Coll::Networks,
            "subnets" => Coll::Subnets,
            "ports" => Coll::Ports,
            "security-groups" => Coll::Groups,
            "security-group-rules" => Coll::Rules,
            _ => return None,
        })
    }
    fn plural(self) -> &'static str {
        match self {
            Coll::Networks => "networks",
            Coll::Subnets => "subnets",
            Coll::Ports => "ports",
            Coll::Groups => "security_groups",
            Coll::Rules => "security_group_rules",
        }
    }
    fn singular(self) -> &'static str {
        match self {
            Coll::Networks => "network",
            Coll::Subnets => "subnet",
            Coll::Ports => "port",
            Coll::Groups => "security_group",
            Coll::Rules => "security_group_rule",
        }
    }
    fn path(self) -> &'static str {
        match self {
            Coll::Networks => "networks",
            Coll::Subnets => "subnets",
            Coll::Ports => "ports",
            Coll::Groups => "security-groups",
            Coll::Rules => "security-group-rules",
        }
    }
    fn not_found(self, id: &str) -> ApiError {
        match self {
            Coll::Networks => ApiError::not_found(
                "NetworkNotFound",
                format!("Network {id} could not be found."),
            ),
            Coll::Subnets => {
                ApiError::not_found("SubnetNotFound", format!("Subnet {id} could not be found."))
            }
            Coll::Ports => {
                ApiError::not_found("PortNotFound", format!("Port {id} could not be found."))
            }
            Coll::Groups => ApiError::not_found(
                "SecurityGroupNotFound",
                format!("Security group {id} does not exist"),
            ),
            Coll::Rules => ApiError::not_found(
                "SecurityGroupRuleNotFound",
                format!("Security group rule {id} does not exist"),
            ),
        }
    }
}

fn method_not_allowed(method: &str, route: &str) -> ApiError {
    ApiError::new(
        405,
        "HTTPMethodNotAllowed",
        format!("{method} is not allowed on {route}"),
    )
}

/// Constant-time comparison, so the token cannot be guessed byte by byte
/// from response times.
fn token_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Routes a request; returns the route template (for metrics) and the reply.
pub(crate) fn dispatch(e: &Engine, r: ApiRequest) -> (String, Resp) {
    let mut segs: Vec<&str> = r.path.split('/').filter(|s| !s.is_empty()).collect();
    // Old clients append ".json".
    if let Some(last) = segs.last_mut() {
        if let Some(s) = last.strip_suffix(".json") {
            *last = s;
        }
    }
    let route = route_of(&segs);
    let out = (|| -> Result<Resp, ApiError> {
        // Version discovery stays open, as behind keystonemiddleware.
        if let Some(t) = &e.s.token {
            if !segs.is_empty() && !r.token.as_deref().is_some_and(|g| token_eq(g, t)) {
                return Err(ApiError::new(
                    401,
                    "HTTPUnauthorized",
                    "X-Auth-Token: missing or not the configured neutron.token",
                ));
            }
        }
        let base = base_url(e, r.host.as_deref());
        route_request(e, &r, &segs, &route, &base)
    })();
    (route, out.unwrap_or_else(|err| err_resp(&err)))
}

fn route_of(segs: &[&str]) -> String {
    match segs {
        [] => "/".into(),
        ["v2.0"] => "/v2.0/".into(),
        ["v2.0", "extensions"] => "/v2.0/extensions".into(),
        ["v2.0", "extensions", _] => "/v2.0/extensions/{alias}".into(),
        ["v2.0", "projects"] => "/v2.0/projects".into(),
        ["v2.0", "projects", _] => "/v2.0/projects/{id}".into(),
        ["v2.0", "quotas"] => "/v2.0/quotas".into(),
        ["v2.0", "quotas", _] => "/v2.0/quotas/{project_id}".into(),
        ["v2.0", "quotas", _, "default"] => "/v2.0/quotas/{project_id}/default".into(),
        ["v2.0", "quotas", _, "details"] => "/v2.0/quotas/{project_id}/details".into(),
        ["v2.0", c, rest @ ..] if Coll::parse(c).is_some() => match rest {
            [] => format!("/v2.0/{c}"),
            [_] => format!("/v2.0/{c}/{{id}}"),
            [_, "tags"] => format!("/v2.0/{c}/{{id}}/tags"),
            [_, "tags", _] => format!("/v2.0/{c}/{{id}}/tags/{{tag}}"),
            _ => "unmatched".into(),
        },
        _ => "unmatched".into(),
    }
}

/// `http://HOST/` as the client reached us (the Host header), so the links
/// we hand out work through whatever address it used.
fn base_url(e: &Engine, host: Option<&str>) -> String {
    let ok = |h: &&str| {
        !h.is_empty()
            && h.len() < 256
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
    };
    match host.filter(ok) {
        Some(h) => format!("http://{h}"),
        None => format!("http://{}", e.s.listen),
    }
}

fn route_request(
    e: &Engine,
    r: &ApiRequest,
    segs: &[&str],
    route: &str,
    base: &str,
) -> Result<Resp, ApiError> {
    let m = r.method.as_str();
    let get_only = |f: &dyn Fn() -> Resp| -> Result<Resp, ApiError> {
        if m == "GET" || m == "HEAD" {
            Ok(f())
        } else {
            Err(method_not_allowed(m, route))
        }
    };
    match segs {
        [] => get_only(&|| {
            Resp::json(
                200,
                &json!({"versions": [{"id": "v2.0", "status": "CURRENT",
                    "links": [{"href": format!("{base}/v2.0/"), "rel": "self"}]}]}),
            )
        }),
        ["v2.0"] => get_only(&|| {
            let res: Vec<Value> = [
                Coll::Networks,
                Coll::Subnets,
                Coll::Ports,
                Coll::Groups,
                Coll::Rules,
            ]
            .iter()
            .map(|c| {
                json!({"name": c.singular(), "collection": c.plural(),
                        "links": [{"href": format!("{base}/v2.0/{}", c.path()), "rel": "self"}]})
            })
            .collect();
            Resp::json(200, &json!({ "resources": res }))
        }),
        ["v2.0", "extensions"] => {
            get_only(&|| Resp::json(200, &json!({ "extensions": extensions() })))
        }
        ["v2.0", "extensions", alias] => {
            if m != "GET" {
                return Err(method_not_allowed(m, route));
            }
            extensions()
                .into_iter()
                .find(|x| x["alias"] == *alias)
                .map(|x| Resp::json(200, &json!({ "extension": x })))
                .ok_or_else(|| {
                    ApiError::not_found(
                        "ExtensionNotFound",
                        format!("Extension with alias {alias} does not exist"),
                    )
                })
        }
        // Keystone's project lookup, which the openstack client sends to the
        // one endpoint it has when run without Keystone: without Keystone a
        // project is the id the caller names (X-Project-Id), so every
        // well-formed id names itself.
        ["v2.0", "projects"] | ["v2.0", "projects", _] => {
            if m != "GET" {
                return Err(method_not_allowed(m, route));
            }
            let q = Query::parse(r.query.as_deref())?;
            let project = |id: &str| {
                json!({"id": id, "name": id, "domain_id": "default", "description": "",
                    "enabled": true, "is_domain": false, "parent_id": "default", "tags": [],
                    "options": {}, "links": {"self": format!("{base}/v2.0/projects/{id}")}})
            };
            let valid = |id: &str| !id.is_empty() && id.len() <= MAX_PROJECT_ID;
            match segs {
                [_, _, id] if valid(id) => Ok(Resp::json(200, &json!({"project": project(id)}))),
                [_, _, id] => Err(ApiError::not_found(
                    "ProjectNotFound",
                    format!("Could not find project: {id}."),
                )),
                _ => {
                    let named: Vec<Value> = q
                        .first("name")
                        .filter(|n| valid(n))
                        .map(project)
                        .into_iter()
                        .collect();
                    Ok(Resp::json(200, &json!({ "projects": named })))
                }
            }
        }
        ["v2.0", "quotas", rest @ ..] => quotas_route(
            e,
            m,
            rest,
            &r.body,
            route,
            r.project.as_deref().unwrap_or(""),
        ),
        ["v2.0", c, rest @ ..] => {
            let Some(coll) = Coll::parse(c) else {
                return Err(unmatched(&r.path));
            };
            let q = Query::parse(r.query.as_deref())?;
            let project = r.project.as_deref().unwrap_or("");
            match (m, rest) {
                ("GET", []) => {
                    if coll == Coll::Groups && !project.is_empty() {
                        // Listing groups makes the caller's default group,
                        // as Neutron does.
                        let st = e.state();
                        let has = st
                            .security_groups
                            .values()
                            .any(|g| g.project_id == project && g.name == "default");
                        if !has {
                            e.mutate(project, |tx| {
                                tx.default_group(project);
                                Ok(())
                            })?;
                        }
                    }
                    list_coll(e, coll, &q, &format!("{base}/v2.0/{}", coll.path()))
                }
                ("POST", []) => create(e, coll, &r.body, project),
                ("GET", [id]) => show(e, coll, id, &q),
                ("PUT", [id]) => update(e, coll, id, &r.body, project),
                ("DELETE", [id]) => delete(e, coll, id, project),
                (_, [_, "tags", ..]) if coll == Coll::Rules => Err(unmatched(&r.path)),
                (_, [id, "tags"]) => tags_all(e, coll, m, id, &r.body, route),
                (_, [id, "tags", tag]) => tag_one(e, coll, m, id, tag, route),
                (_, [] | [_]) => Err(method_not_allowed(m, route)),
                _ => Err(unmatched(&r.path)),
            }
        }
        _ => Err(unmatched(&r.path)),
    }
}

fn unmatched(path: &str) -> ApiError {
    ApiError::not_found(
        "HTTPNotFound",
        format!("The resource could not be found: {path}"),
    )
}

/// The extensions whose attributes and behaviour are implemented, with
/// Neutron 29.0.0's names, descriptions and dates (extra_dhcp_opt waits for
/// the switch's DHCP server, which will serve the options).
fn extensions() -> Vec<Value> {
    const EXT: &[(&str, &str, &str, &str)] = &[
        ("binding", "Port Binding", "Expose port bindings of a virtual port to external application", "2014-02-03T10:00:00-00:00"),
        ("provider", "Provider Network", "Expose mapping of virtual networks to physical networks", "2012-09-07T10:00:00-00:00"),
        ("security-group", "security-group", "The security groups extension.", "2012-10-05T10:00:00-00:00"),
        ("port-security", "Port Security", "Provides port security", "2012-07-23T10:00:00-00:00"),
        ("allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs", "2013-07-23T10:00:00-00:00"),
        ("standard-attr-tag", "Tag support for resources with standard attribute: port, subnet, subnetpool, network, router, floatingip, policy, security_group, trunk, network_segment_range", "Enables to set tag on resources with standard attribute.", "2017-01-01T00:00:00-00:00"),
        ("standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes", "2016-02-10T10:00:00-00:00"),
        ("standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.", "2016-09-12T10:00:00-00:00"),
        ("standard-attr-revisions", "Resource revision numbers", "This extension will display the revision number of neutron resources.", "2016-04-11T10:00:00-00:00"),
        ("project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled.", "2016-09-09T09:09:09-09:09"),
        ("net-mtu", "Network MTU", "Provides MTU attribute for a network resource.", "2015-03-25T10:00:00-00:00"),
        ("net-mtu-writable", "Network MTU (writable)", "Provides a writable MTU attribute for a network resource.", "2017-07-12T00:00:00-00:00"),
        ("stateful-security-group", "Stateful security group", "Indicates if the security group is stateful or not", "2019-11-26T09:00:00-00:00"),
        ("port-security-groups-filtering", "Port filtering on security groups", "Provides security groups filtering when listing ports", "2018-01-09T09:00:00-00:00"),
        ("ip-substring-filtering", "IP address substring filtering", "Provides IP address substring filtering when listing ports", "2017-11-28T09:00:00-00:00"),
        ("filter-validation", "Filter parameters validation", "Provides validation on filter parameters.", "2018-07-04T10:00:00-00:00"),
        ("pagination", "Pagination support", "Extension that indicates that pagination is enabled.", "2016-06-12T00:00:00-00:00"),
        ("sorting", "Sorting support", "Extension that indicates that sorting is enabled.", "2016-06-12T00:00:00-00:00"),
        ("external-net", "Neutron external network", "Adds external network attribute to network resource.", "2013-01-14T10:00:00-00:00"),
        ("quotas", "Quota management support", "Expose functions for quotas management per project", "2012-07-29T10:00:00-00:00"),
        ("quota_details", "Quota details management support", "Expose functions for quotas usage statistics per project", "2017-02-10T10:00:00-00:00"),
        ("quota-check-limit", "Quota engine limit check", "Support for checking the resource usage before applying a new quota limit", "2021-09-08T16:00:00-00:00"),
        ("security-groups-normalized-cidr", "Normalized CIDR field for security group rules", "Add new field with normalized remote_ip_prefix cidr in SG rule", "2020-07-28T10:00:00-00:00"),
        ("aap-reject-multicast", "Allowed address pairs reject multicast extension", "Reject multicast addresses in Allowed Address Pairs", "2026-04-01T00:00:00-00:00"),
    ];
    EXT.iter()
        .map(|(alias, name, desc, updated)| {
            json!({"alias": alias, "name": name, "description": desc,
                "updated": updated, "links": []})
        })
        .collect()
}

fn list_coll(e: &Engine, c: Coll, q: &Query, url: &str) -> Result<Resp, ApiError> {
    let st = e.state();
    let nf = |id: &str| c.not_found(id);
    let body = match c {
        Coll::Networks => list(
            c.plural(),
            st.networks.values().map(|v| &**v),
            q,
            url,
            &|id| st.networks.get(id).map(|v| &**v),
            &nf,
        )?,
        Coll::Subnets => list(
            c.plural(),
            st.subnets.values().map(|v| &**v),
            q,
            url,
            &|id| st.subnets.get(id).map(|v| &**v),
            &nf,
        )?,
        Coll::Ports => list(
            c.plural(),
            st.ports.values().map(|v| &**v),
            q,
            url,
            &|id| st.ports.get(id).map(|v| &**v),
            &nf,
        )?,
        Coll::Groups => list(
            c.plural(),
            st.security_groups.values().map(|v| &**v),
            q,
            url,
            &|id| st.security_groups.get(id).map(|v| &**v),
            &nf,
        )?,
        Coll::Rules => list(
            c.plural(),
            st.security_groups
                .values()
                .flat_map(|g| g.security_group_rules.iter()),
            q,
            url,
            &|id| st.rule(id),
            &nf,
        )?,
    };
    Ok(Resp { status: 200, body })
}

fn wrap<T: serde::Serialize>(
    status: u16,
    c: Coll,
    item: &T,
    fields: &[String],
) -> Result<Resp, ApiError> {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(format!("{{\"{}\":", c.singular()).as_bytes());
    write_item(&mut out, item, fields)?;
    out.push(b'}');
    Ok(Resp { status, body: out })
}

fn show(e: &Engine, c: Coll, id: &str, q: &Query) -> Result<Resp, ApiError> {
    let st = e.state();
    let f = q.fields();
    match c {
        Coll::Networks => st.networks.get(id).map(|v| wrap(200, c, &**v, &f)),
        Coll::Subnets => st.subnets.get(id).map(|v| wrap(200, c, &**v, &f)),
        Coll::Ports => st.ports.get(id).map(|v| wrap(200, c, &**v, &f)),
        Coll::Groups => st.security_groups.get(id).map(|v| wrap(200, c, &**v, &f)),
        Coll::Rules => st.rule(id).map(|v| wrap(200, c, v, &f)),
    }
    .unwrap_or_else(|| Err(c.not_found(id)))
}

fn create(e: &Engine, c: Coll, body: &[u8], project: &str) -> Result<Resp, ApiError> {
    let (bodies, bulk) = Body::parse_create(body, c.singular(), c.plural())?;
    // One mutation: a bulk create is all or nothing, and the quota is
    // checked against what it created, before anything commits.
    let created: Vec<Value> = e.mutate(project, |tx| {
        let mut out = Vec::with_capacity(bodies.len());
        let mut projects = std::collections::BTreeSet::new();
        for b in bodies.iter().cloned() {
            let (project, v) = match c {
                Coll::Networks => {
                    let n = tx.create_network(b)?;
                    (n.project_id.clone(), serde_json::to_value(&*n))
                }
                Coll::Subnets => {
                    let n = tx.create_subnet(b)?;
                    (n.project_id.clone(), serde_json::to_value(&*n))
                }
                Coll::Ports => {
                    let n = tx.create_port(b)?;
                    (n.project_id.clone(), serde_json::to_value(&*n))
                }
                Coll::Groups => {
                    let n = tx.create_group(b)?;
                    (n.project_id.clone(), serde_json::to_value(&*n))
                }
                Coll::Rules => {
                    let n = tx.create_rule(b)?;
                    (n.project_id.clone(), serde_json::to_value(&n))
                }
            };
            projects.insert(project);
            out.push(v.map_err(|e| ApiError::internal(format!("serialising: {e}")))?);
        }
        tx.enforce_quota(c.singular(), projects.iter().map(String::as_str))?;
        Ok(out)
    })?;
    if bulk {
        Ok(Resp::json(201, &json!({ c.plural(): created })))
    } else {
        let one = created.into_iter().next().unwrap_or_default();
        wrap(201, c, &one, &[])
    }
}

/// `/v2.0/quotas[/{project}[/default|/details]]` (quotas, quota_details).
fn quotas_route(
    e: &Engine,
    m: &str,
    rest: &[&str],
    body: &[u8],
    route: &str,
    caller: &str,
) -> Result<Resp, ApiError> {
    use super::quotas;
    let st = e.state();
    let quota = |limits: std::collections::BTreeMap<&str, i64>| json!({ "quota": limits });
    match (m, rest) {
        // The caller's own project (Neutron's quotas/tenant).
        ("GET", ["tenant"]) => Ok(Resp::json(200, &json!({"tenant": {"tenant_id": caller}}))),
        ("GET", []) => {
            let all: Vec<Value> = st
                .quotas
                .keys()
                .map(|p| {
                    let mut v = json!(quotas::limits(&st, p));
                    v["project_id"] = json!(p);
                    v["tenant_id"] = json!(p);
                    v
                })
                .collect();
            Ok(Resp::json(200, &json!({ "quotas": all })))
        }
        ("GET", [p]) => Ok(Resp::json(200, &quota(quotas::limits(&st, p)))),
        ("GET", [_, "default"]) => Ok(Resp::json(200, &quota(quotas::defaults()))),
        ("GET", [p, "details"]) => {
            let details: serde_json::Map<String, Value> = quotas::limits(&st, p)
                .into_iter()
                .map(|(r, limit)| {
                    let used = quotas::used(&st, p, r);
                    (
                        r.to_owned(),
                        json!({"limit": limit, "used": used, "reserved": 0}),
                    )
                })
                .collect();
            Ok(Resp::json(200, &json!({ "quota": details })))
        }
        ("PUT", [p]) => {
            let b = Body::parse(body, "quota", "quotas")?;
            let limits = e.mutate(p, |tx| tx.set_quotas(p, b.clone().into_map()))?;
            Ok(Resp::json(200, &quota(limits)))
        }
        ("DELETE", [p]) => {
            e.mutate(p, |tx| {
                tx.delete_quotas(p);
                Ok(())
            })?;
            Ok(Resp::empty(204))
        }
        (_, [] | [_] | [_, "default" | "details"]) => Err(method_not_allowed(m, route)),
        _ => Err(unmatched(&format!("/v2.0/quotas/{}", rest.join("/")))),
    }
}

fn update(e: &Engine, c: Coll, id: &str, body: &[u8], project: &str) -> Result<Resp, ApiError> {
    let b = Body::parse(body, c.singular(), c.plural())?;
    match c {
        Coll::Networks => wrap(
            200,
            c,
            &*e.mutate(project, |tx| tx.update_network(id, b.clone()))?,
            &[],
        ),
        Coll::Subnets => wrap(
            200,
            c,
            &*e.mutate(project, |tx| tx.update_subnet(id, b.clone()))?,
            &[],
        ),
        Coll::Ports => wrap(
            200,
            c,
            &*e.mutate(project, |tx| tx.update_port(id, b.clone()))?,
            &[],
        ),
        Coll::Groups => wrap(
            200,
            c,
            &*e.mutate(project, |tx| tx.update_group(id, b.clone()))?,
            &[],
        ),
        Coll::Rules => wrap(
            200,
            c,
            &e.mutate(project, |tx| tx.update_rule(id, b.clone()))?,
            &[],
        ),
    }
}

fn delete(e: &Engine, c: Coll, id: &str, project: &str) -> Result<Resp, ApiError> {
    e.mutate(project, |tx| match c {
        Coll::Networks => tx.delete_network(id),
        Coll::Subnets => tx.delete_subnet(id),
        Coll::Ports => tx.delete_port(id),
        Coll::Groups => tx.delete_group(id),
        Coll::Rules => tx.delete_rule(id),
    })?;
    Ok(Resp::empty(204))
}

fn current_tags(e: &Engine, c: Coll, id: &str) -> Result<Vec<String>, ApiError> {
    let st = e.state();
    match c {
        Coll::Networks => st.networks.get(id).map(|v| v.std.tags.clone()),
        Coll::Subnets => st.subnets.get(id).map(|v| v.std.tags.clone()),
        Coll::Ports => st.ports.get(id).map(|v| v.std.tags.clone()),
        Coll::Groups => st.security_groups.get(id).map(|v| v.std.tags.clone()),
        Coll::Rules => None,
    }
    .ok_or_else(|| c.not_found(id))
}

impl Tx<'_> {
    /// Applies `f` to a resource's tags; bumps its revision if they changed.
    fn edit_tags(
        &mut self,
        c: Coll,
        id: &str,
        f: impl FnOnce(&mut Vec<String>) -> Result<(), ApiError>,
    ) -> Result<Vec<String>, ApiError> {
        fn apply(
            std: &mut super::model::StdAttrs,
            now: &str,
            f: impl FnOnce(&mut Vec<String>) -> Result<(), ApiError>,
        ) -> Result<bool, ApiError> {
            let mut t = std.tags.clone();
            f(&mut t)?;
            t.sort();
            t.dedup();
            if t.len() > crate::MAX_TAGS {
                return Err(ApiError::bad(
                    "tags",
                    format!("at most {} tags per resource", crate::MAX_TAGS),
                ));
            }
            let changed = t != std.tags;
            if changed {
                std.tags = t;
                std.touch(now);
            }
            Ok(changed)
        }
        let now = self.now.clone();
        match c {
            Coll::Networks => {
                let mut v = (*self.network(id)?).clone();
                if apply(&mut v.std, &now, f)? {
                    return Ok(self.put_network(v).std.tags.clone());
                }
                Ok(v.std.tags)
            }
            Coll::Subnets => {
                let mut v = (*self.subnet(id)?).clone();
                if apply(&mut v.std, &now, f)? {
                    return Ok(self.put_subnet(v).std.tags.clone());
                }
                Ok(v.std.tags)
            }
            Coll::Ports => {
                let mut v = (*self.port(id)?).clone();
                if apply(&mut v.std, &now, f)? {
                    return Ok(self.put_port(v).std.tags.clone());
                }
                Ok(v.std.tags)
            }
            Coll::Groups => {
                let mut v = (*self.group(id)?).clone();
                if apply(&mut v.std, &now, f)? {
                    return Ok(self.put_group(v).std.tags.clone());
                }
                Ok(v.std.tags)
            }
            Coll::Rules => Err(c.not_found(id)),
        }
    }
}

/// `/v2.0/{coll}/{id}/tags`: GET, PUT (replace all), DELETE (remove all).
fn tags_all(
    e: &Engine,
    c: Coll,
    m: &str,
    id: &str,
    body: &[u8],
    route: &str,
) -> Result<Resp, ApiError> {
    match m {
        "GET" => Ok(Resp::json(200, &json!({ "tags": current_tags(e, c, id)? }))),
        "PUT" => {
            let mut top = parse_object(body)?;
            let tags = top
                .remove("tags")
                .ok_or_else(|| ApiError::bad("tags", "the body must be {\"tags\": [...]}"))?;
            if !tags.is_array() {
                let shown = tags
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| tags.to_string());
                return Err(ApiError::new(
                    400,
                    "InvalidInput",
                    format!("Invalid input for operation: '{shown}' is not a list."),
                ));
            }
            if let Some(k) = top.keys().next() {
                return Err(super::body::unrecognized(&[k.as_str()]));
            }
            let mut b = Body::from_map([("tags".to_owned(), tags)].into_iter().collect());
            let tags = check_tags("tags", b.string_list("tags", 255)?.unwrap_or_default())?;
            let t = e.mutate("", |tx| {
                tx.edit_tags(c, id, |t| {
                    *t = tags.clone();
                    Ok(())
                })
            })?;
            Ok(Resp::json(200, &json!({ "tags": t })))
        }
        "DELETE" => {
            e.mutate("", |tx| {
                tx.edit_tags(c, id, |t| {
                    t.clear();
                    Ok(())
                })
            })?;
            Ok(Resp::empty(204))
        }
        _ => Err(method_not_allowed(m, route)),
    }
}

/// `/v2.0/{coll}/{id}/tags/{tag}`: GET (204 if present), PUT (add), DELETE.
fn tag_one(
    e: &Engine,
    c: Coll,
    m: &str,
    id: &str,
    tag: &str,
    route: &str,
) -> Result<Resp, ApiError> {
    let tag = super::query::percent_decode(tag)?;
    let not_found = || {
        ApiError::not_found(
            "TagNotFound",
            format!("Tag {tag} could not be found for resource {id}."),
        )
    };
    match m {
        "GET" => {
            if current_tags(e, c, id)?.contains(&tag) {
                Ok(Resp::empty(204))
            } else {
                Err(not_found())
            }
        }
        "PUT" => {
            check_tag("tag", &tag)?;
            e.mutate("", |tx| {
                tx.edit_tags(c, id, |t| {
                    t.push(tag.clone());
                    Ok(())
                })
            })?;
            Ok(Resp::empty(201))
        }
        "DELETE" => {
            e.mutate("", |tx| {
                tx.edit_tags(c, id, |t| {
                    let before = t.len();
                    t.retain(|x| *x != tag);
                    if t.len() == before {
                        return Err(not_found());
                    }
                    Ok(())
                })
            })?;
            Ok(Resp::empty(204))
        }
        _ => Err(method_not_allowed(m, route)),
    }
}
