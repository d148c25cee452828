//! Errors: `ApiError` is what a request gets back (HTTP status, Neutron
//! exception type, a message naming the field and the reason);
//! `NeutronError` is what the library's callers see.
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    /// Neutron's exception name, e.g. "IpAddressAlreadyAllocated".
    pub kind: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, kind: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind: kind.to_owned(),
            message: message.into(),
        }
    }

    /// 400 in Neutron's words: "Invalid input for FIELD. Reason: WHY."
    pub fn bad(field: &str, reason: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            400,
            "InvalidInput",
            format!("Invalid input for {field}. Reason: {reason}."),
        )
    }

    /// 400 as Neutron's attribute validation raises it (webob's
    /// HTTPBadRequest): "Invalid input for FIELD. Reason: WHY."
    pub fn bad_attr(field: &str, reason: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            400,
            "HTTPBadRequest",
            format!("Invalid input for {field}. Reason: {reason}."),
        )
    }

    pub fn not_found(kind: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(404, kind, message)
    }

    pub fn conflict(kind: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(409, kind, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "HTTPInternalServerError", message)
    }

    /// `{"NeutronError": {"type", "message", "detail"}}`.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "NeutronError": {"type": self.kind, "message": self.message, "detail": ""}
        }))
        .unwrap_or_default()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.kind, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NeutronError {
    /// A configuration key and why it is wrong.
    #[error("{key}: {reason}")]
    Config { key: String, reason: String },
    /// A refused request or mutation.
    #[error("{0}")]
    Api(ApiError),
    /// The database could not be opened, read or written.
    #[error("neutron.database {path}: {reason}")]
    Store { path: String, reason: String },
    /// The API server could not start.
    #[error("neutron.listen {addr}: {reason}")]
    Serve { addr: String, reason: String },
}

impl From<ApiError> for NeutronError {
    fn from(e: ApiError) -> Self {
        NeutronError::Api(e)
    }
}

impl NeutronError {
    /// How a request reports this error.
    pub fn to_api(&self) -> ApiError {
        match self {
            NeutronError::Api(e) => e.clone(),
            other => ApiError::internal(other.to_string()),
        }
    }
}

pub(crate) fn config_err(key: impl Into<String>, reason: impl Into<String>) -> NeutronError {
    NeutronError::Config {
        key: key.into(),
        reason: reason.into(),
    }
}
