//! Request bodies: `{"network": {...}}` taken apart field by field. Each
//! handler takes the fields it knows; whatever is left is refused by
//! `finish`, naming it, so a typo never silently does nothing.
use super::error::ApiError;
use serde_json::{Map, Value};

/// Longest name/description Neutron accepts.
pub const NAME_MAX: usize = 255;

#[derive(Debug, Clone)]
pub struct Body {
    map: Map<String, Value>,
}

pub fn malformed(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        400,
        "HTTPBadRequest",
        format!("Malformed request body: {e}"),
    )
}

/// Parses bytes into a JSON object or names what is wrong.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(malformed("the body is empty; a JSON object is expected"));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(malformed("a JSON object is expected")),
        Err(e) => Err(malformed(e)),
    }
}

impl Body {
    /// `{"<res>": {...}}`; `plural` names the bulk form, which is refused.
    pub fn parse(bytes: &[u8], res: &'static str, plural: &str) -> Result<Body, ApiError> {
        let mut top = parse_object(bytes)?;
        if top.contains_key(plural) && !top.contains_key(res) {
            return Err(ApiError::bad_attr(
                plural,
                "bulk requests are not supported; send one object per request",
            ));
        }
        let inner = top.remove(res).ok_or_else(|| {
            ApiError::new(
                400,
                "HTTPBadRequest",
                format!("Unable to find '{res}' in request body"),
            )
        })?;
        if let Some(k) = top.keys().next() {
            return Err(unrecognized(&[k.as_str()]));
        }
        match inner {
            Value::Object(map) => Ok(Body { map }),
            _ => Err(ApiError::bad_attr(res, "must be a JSON object")),
        }
    }

    /// A create body: `{"port": {...}}`, or a bulk `{"ports": [{...}, ...]}`
    /// (created all or none). Returns the objects and whether it was bulk.
    pub fn parse_create(
        bytes: &[u8],
        res: &'static str,
        plural: &str,
    ) -> Result<(Vec<Body>, bool), ApiError> {
        let mut top = parse_object(bytes)?;
        if !top.contains_key(plural) || top.contains_key(res) {
            return Body::parse(bytes, res, plural).map(|b| (vec![b], false));
        }
        let list = top.remove(plural).unwrap_or_default();
        if let Some(k) = top.keys().next() {
            return Err(unrecognized(&[k.as_str()]));
        }
        let Value::Array(items) = list else {
            return Err(ApiError::bad_attr(plural, "must be a list of objects"));
        };
        if items.is_empty() {
            return Err(ApiError::bad_attr(plural, "must not be empty"));
        }
        items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Object(map) => Ok(Body { map }),
                _ => Err(ApiError::bad_attr(
                    &format!("{plural}[{i}]"),
                    "must be a JSON object",
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|b| (b, true))
    }

    /// What is left of the body.
    pub fn into_map(self) -> Map<String, Value> {
        self.map
    }

    pub fn from_map(map: Map<String, Value>) -> Body {
        Body { map }
    }

    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key)
    }

    /// A string field; null is refused.
    pub fn string(&mut self, key: &str, max: usize) -> Result<Option<String>, ApiError> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => string_value(key, v, max).map(Some),
        }
    }

    /// A string field that may be null: Some(None) for null.
    pub fn nullable_string(
        &mut self,
        key: &str,
        max: usize,
    ) -> Result<Option<Option<String>>, ApiError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => string_value(key, v, max).map(|s| Some(Some(s))),
        }
    }

    pub fn boolean(&mut self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => bool_value(key, &v).map(Some),
        }
    }

    /// An integer in `lo..=hi`, given as a number or a decimal string.
    pub fn integer(&mut self, key: &str, lo: i64, hi: i64) -> Result<Option<i64>, ApiError> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => int_value(key, &v, lo, hi).map(Some),
        }
    }

    pub fn list(&mut self, key: &str) -> Result<Option<Vec<Value>>, ApiError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(other) => Err(ApiError::bad_attr(
                key,
                format!("must be a list, not {}", kind(&other)),
            )),
        }
    }

    pub fn string_list(&mut self, key: &str, max: usize) -> Result<Option<Vec<String>>, ApiError> {
        let Some(items) = self.list(key)? else {
            return Ok(None);
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, v)| string_value(&format!("{key}[{i}]"), v, max))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    pub fn object(&mut self, key: &str) -> Result<Option<Map<String, Value>>, ApiError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(Value::Null) => Ok(Some(Map::new())),
            Some(other) => Err(ApiError::bad_attr(
                key,
                format!("must be a JSON object, not {}", kind(&other)),
            )),
        }
    }

    /// The owning project: `project_id` or its legacy twin `tenant_id`
    /// (equal if both are given), else `default` (the caller's project).
    pub fn project(&mut self, default: &str) -> Result<String, ApiError> {
        let p = self.string("project_id", NAME_MAX)?;
        let t = self.string("tenant_id", NAME_MAX)?;
        match (p, t) {
            (Some(p), Some(t)) if p != t => Err(ApiError::bad_attr(
                "tenant_id",
                format!("'{t}' differs from project_id '{p}'"),
            )),
            (Some(p), _) | (None, Some(p)) => Ok(p),
            (None, None) => Ok(default.to_owned()),
        }
    }

    /// Refuses leftover fields: read-only ones by name ("not allowed in
    /// POST/PUT"), anything else as unrecognized.
    pub fn finish(self, method: &str, readonly: &[&str]) -> Result<(), ApiError> {
        if let Some(k) = self.map.keys().find(|k| readonly.contains(&k.as_str())) {
            // Neutron's words (neutron_lib.api.attributes).
            let msg = if method == "PUT" {
                format!("Cannot update read-only attribute {k}")
            } else {
                format!("Attribute '{k}' not allowed in {method}")
            };
            return Err(ApiError::new(400, "HTTPBadRequest", msg));
        }
        if self.map.is_empty() {
            return Ok(());
        }
        let keys: Vec<&str> = self.map.keys().map(String::as_str).collect();
        Err(unrecognized(&keys))
    }
}

pub fn unrecognized(keys: &[&str]) -> ApiError {
    let list: Vec<String> = keys.iter().map(|k| format!("'{k}'")).collect();
    ApiError::new(
        400,
        "HTTPBadRequest",
        format!("Unrecognized attribute(s) {}", list.join(", ")),
    )
}

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

pub fn string_value(key: &str, v: Value, max: usize) -> Result<String, ApiError> {
    match v {
        Value::String(s) => {
            if s.chars().count() > max {
                Err(ApiError::bad_attr(
                    key,
                    format!(
                        "'{}...' is longer than {max} characters",
                        s.chars().take(20).collect::<String>()
                    ),
                ))
            } else if s.contains('\0') {
                Err(ApiError::bad_attr(key, "contains a NUL character"))
            } else {
                Ok(s)
            }
        }
        other => Err(ApiError::bad_attr(
            key,
            format!("must be a string, not {}", kind(&other)),
        )),
    }
}

/// Neutron's `convert_to_boolean`: JSON booleans, "true"/"false" in any
/// case, and 0/1.
pub fn bool_value(key: &str, v: &Value) -> Result<bool, ApiError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") || s == "1" => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") || s == "0" => Ok(false),
        Value::Number(n) if n.as_u64() == Some(1) => Ok(true),
        Value::Number(n) if n.as_u64() == Some(0) => Ok(false),
        // Neutron's convert_to_boolean raises InvalidInput.
        other => Err(ApiError::new(
            400,
            "InvalidInput",
            format!(
                "Invalid input for operation: '{}' cannot be converted to boolean ({key}).",
                other
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| other.to_string())
            ),
        )),
    }
}

pub fn int_value(key: &str, v: &Value, lo: i64, hi: i64) -> Result<i64, ApiError> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if (lo..=hi).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_attr(
            key,
            format!("{n} is not in the range {lo}-{hi}"),
        )),
        None => Err(ApiError::bad_attr(key, format!("'{v}' is not an integer"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_named() {
        let mut b = Body::parse(
            br#"{"network": {"name": "a", "nmae": "b"}}"#,
            "network",
            "networks",
        )
        .unwrap();
        assert_eq!(b.string("name", NAME_MAX).unwrap().as_deref(), Some("a"));
        let e = b.finish("POST", &["status"]).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("'nmae'"), "{}", e.message);
        let b = Body::parse(br#"{"network": {"status": "x"}}"#, "network", "networks").unwrap();
        let e = b.finish("POST", &["status"]).unwrap_err();
        assert_eq!(e.message, "Attribute 'status' not allowed in POST");
        assert_eq!(e.kind, "HTTPBadRequest");
    }

    #[test]
    fn shapes_and_types() {
        assert!(Body::parse(b"{", "network", "networks")
            .unwrap_err()
            .message
            .contains("Malformed"));
        assert!(Body::parse(b"", "network", "networks").is_err());
        assert!(Body::parse(br#"{"networks": []}"#, "network", "networks")
            .unwrap_err()
            .message
            .contains("bulk"));
        assert!(Body::parse(br#"{"network": 3}"#, "network", "networks").is_err());
        assert!(
            Body::parse(br#"{"network": {}, "x": 1}"#, "network", "networks")
                .unwrap_err()
                .message
                .contains("'x'")
        );
        let mut b = Body::parse(
            br#"{"network": {"a": "True", "b": 3, "c": null, "d": "12"}}"#,
            "network",
            "networks",
        )
        .unwrap();
        assert_eq!(b.boolean("a").unwrap(), Some(true));
        assert!(b
            .string("b", 10)
            .unwrap_err()
            .message
            .contains("Invalid input for b"));
        assert_eq!(b.nullable_string("c", 10).unwrap(), Some(None));
        assert_eq!(b.integer("d", 0, 20).unwrap(), Some(12));
    }
}
