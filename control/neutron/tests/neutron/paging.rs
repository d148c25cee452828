//! Pagination as Neutron's api_common does it: next and previous links,
//! page_reverse, the marker looked up as the resource, and its errors.
use super::common::{call_as, config, TempDir};
use neutron::Neutron;
use serde_json::Value;

fn names(v: &Value) -> Vec<String> {
    v["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_owned())
        .collect()
}

fn link(v: &Value, rel: &str) -> Option<String> {
    v["networks_links"]
        .as_array()?
        .iter()
        .find(|l| l["rel"] == rel)
        .map(|l| {
            let href = l["href"].as_str().unwrap();
            href[href.find("/v2.0").unwrap()..].to_owned()
        })
}

#[test]
fn pages_link_both_ways_and_markers_are_resources() {
    let dir = TempDir::new("paging");
    let n = Neutron::open(config(&dir)).unwrap();
    for name in ["a", "b", "c", "d"] {
        let body =
            format!(r#"{{"network": {{"name": "{name}", "provider:network_type": "local"}}}}"#);
        let (st, _) = n.handle("POST", "/v2.0/networks", body.as_bytes(), Some("p"));
        assert_eq!(st, 201);
    }
    let (st, p1) = call_as(
        &n,
        "p",
        "GET",
        "/v2.0/networks?limit=2&sort_key=name&sort_dir=asc",
        Value::Null,
    );
    assert_eq!(st, 200, "{p1}");
    assert_eq!(names(&p1), ["a", "b"]);
    assert!(link(&p1, "previous").is_some(), "{p1}");
    let (_, p2) = call_as(&n, "p", "GET", &link(&p1, "next").unwrap(), Value::Null);
    assert_eq!(names(&p2), ["c", "d"]);
    // A full last page still links to a next one, which is empty.
    let (_, p3) = call_as(&n, "p", "GET", &link(&p2, "next").unwrap(), Value::Null);
    assert_eq!(names(&p3), Vec::<String>::new());
    assert!(link(&p3, "next").is_none(), "{p3}");
    // Back from the second page: the page before its first item, in order.
    let (_, back) = call_as(&n, "p", "GET", &link(&p2, "previous").unwrap(), Value::Null);
    assert_eq!(names(&back), ["a", "b"], "{back}");
    // Errors, typed as Neutron types them.
    for (path, status, kind) in [
        (
            "/v2.0/networks?limit=2&marker=00000000-0000-0000-0000-000000000000",
            404,
            "NetworkNotFound",
        ),
        ("/v2.0/networks?sort_key=name", 400, "HTTPBadRequest"),
        (
            "/v2.0/networks?sort_key=nope&sort_dir=asc",
            400,
            "HTTPBadRequest",
        ),
        ("/v2.0/networks?limit=abc", 400, "BadRequest"),
    ] {
        let (st, v) = call_as(&n, "p", "GET", path, Value::Null);
        assert_eq!(
            (st, v["NeutronError"]["type"].as_str()),
            (status, Some(kind)),
            "{path}: {v}"
        );
    }
}
