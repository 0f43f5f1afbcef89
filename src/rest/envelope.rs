//! The original's JSON envelope and error objects.
//!
//! Every JSON answer is an object with `links.self` (`//<Host><request target>`),
//! `metadata.generated` (Unix nanoseconds as a string) and `errors` (`null` or a list of
//! [`ApiError`]s), plus the endpoint's own fields.

use crate::proto::http::{Request, Response};
use serde_json::{json, Map, Value};

/// How bad an error is; serialized with the later original's syslog-style names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    /// Nothing went wrong, but there is something to know (`no-connected-users`).
    Info,
    /// The request was refused (client errors).
    Err,
    /// The server could not do its job (log unreadable or unwritable).
    Crit,
}

impl Severity {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Err => "err",
            Severity::Crit => "crit",
        }
    }
}

/// One entry of `errors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub severity: Severity,
    pub human: String,
    pub short: &'static str,
}

impl ApiError {
    pub(crate) fn new(severity: Severity, short: &'static str, human: impl Into<String>) -> Self {
        ApiError {
            severity,
            human: human.into(),
            short,
        }
    }

    /// A client error (`"err"`).
    pub(crate) fn err(short: &'static str, human: impl Into<String>) -> Self {
        ApiError::new(Severity::Err, short, human)
    }

    fn to_json(&self) -> Value {
        json!({
            "severity": self.severity.as_str(),
            "human_friendly_message": self.human,
            "short_message": self.short,
        })
    }
}

/// What every envelope of one request shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ctx {
    self_link: String,
    generated: String,
}

impl Ctx {
    /// `links.self` from the `Host` header and the request target; `generated` from the clock.
    pub(crate) fn new(req: &Request, now_unix_ms: i64) -> Ctx {
        let host = req.header("host").unwrap_or("");
        let mut self_link =
            String::with_capacity(2 + host.len() + req.path.len() + 1 + req.query.len());
        self_link.push_str("//");
        self_link.push_str(host);
        self_link.push_str(&req.path);
        if !req.query.is_empty() {
            self_link.push('?');
            self_link.push_str(&req.query);
        }
        Ctx {
            self_link,
            generated: generated(now_unix_ms),
        }
    }

    /// For answers to requests that could not be parsed: no link.
    pub(crate) fn bare(now_unix_ms: i64) -> Ctx {
        Ctx {
            self_link: String::new(),
            generated: generated(now_unix_ms),
        }
    }

    /// The envelope with `errors` (`null` when empty) and the extra top-level `fields`.
    pub(crate) fn body(&self, errors: &[ApiError], fields: Vec<(&str, Value)>) -> Value {
        let mut map = Map::new();
        map.insert("links".into(), json!({ "self": self.self_link }));
        map.insert("metadata".into(), json!({ "generated": self.generated }));
        let errors = if errors.is_empty() {
            Value::Null
        } else {
            Value::Array(errors.iter().map(ApiError::to_json).collect())
        };
        map.insert("errors".into(), errors);
        for (name, value) in fields {
            map.insert(name.to_owned(), value);
        }
        Value::Object(map)
    }

    /// A JSON response with the envelope.
    pub(crate) fn respond(
        &self,
        status: u16,
        errors: &[ApiError],
        fields: Vec<(&str, Value)>,
    ) -> Response {
        api_headers(Response::json(status, &self.body(errors, fields)))
    }

    /// A JSON error response: the envelope with one error and no other fields.
    pub(crate) fn error(&self, status: u16, error: ApiError) -> Response {
        self.respond(status, &[error], Vec::new())
    }
}

/// Headers every API (non-docs) response carries.
pub(crate) fn api_headers(resp: Response) -> Response {
    resp.header("Cache-Control", "no-store")
        .header("X-Content-Type-Options", "nosniff")
}

/// Unix nanoseconds as a decimal string, as the original's `metadata.generated`.
fn generated(now_unix_ms: i64) -> String {
    (i128::from(now_unix_ms) * 1_000_000).to_string()
}

/// The envelope answer for a request the shell refused before it was complete (framing
/// errors: 400, 408, 411, 413, 414, 431, 501, 505 ...), for the REST port. `links.self` is
/// empty since there is no trustworthy request target. The response is marked closing.
pub fn framing_error(status: u16, now_unix_ms: i64) -> Response {
    let (short, human) = match status {
        400 => ("bad-request", "The request is malformed"),
        408 => ("request-timeout", "The request was not received in time"),
        411 => ("length-required", "A request body needs a Content-Length"),
        413 => ("payload-too-large", "The request body is too large"),
        414 => ("uri-too-long", "The request target is too long"),
        431 => (
            "request-header-fields-too-large",
            "The request line and headers are too large",
        ),
        501 => (
            "not-implemented",
            "The request uses a feature this server does not implement",
        ),
        505 => (
            "http-version-not-supported",
            "Only HTTP/1.0 and HTTP/1.1 are supported",
        ),
        _ => ("bad-request", "The request could not be processed"),
    };
    Ctx::bare(now_unix_ms)
        .error(status, ApiError::err(short, human))
        .closing()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str, query: &str, host: Option<&str>) -> Request {
        Request {
            method: "GET".into(),
            path: path.into(),
            query: query.into(),
            version: 1,
            headers: host
                .map(|h| vec![("host".to_string(), h.to_string())])
                .unwrap_or_default(),
            body: Vec::new(),
        }
    }

    #[test]
    fn self_link_and_generated() {
        let ctx = Ctx::new(
            &req("/status", "", Some("localhost:4001")),
            1_795_739_080_123,
        );
        let body = ctx.body(&[], Vec::new());
        assert_eq!(body["links"]["self"], "//localhost:4001/status");
        assert_eq!(body["metadata"]["generated"], "1795739080123000000");
        assert_eq!(body["errors"], Value::Null);

        let ctx = Ctx::new(&req("/v1/api/message", "pattern=a&limit=2", None), 0);
        let body = ctx.body(&[], vec![("x", json!(1))]);
        assert_eq!(body["links"]["self"], "///v1/api/message?pattern=a&limit=2");
        assert_eq!(body["metadata"]["generated"], "0");
        assert_eq!(body["x"], 1);
    }

    #[test]
    fn generated_does_not_overflow() {
        assert_eq!(generated(i64::MAX), "9223372036854775807000000");
        assert_eq!(generated(-1), "-1000000");
    }

    #[test]
    fn error_objects() {
        let ctx = Ctx::bare(5);
        let resp = ctx.error(404, ApiError::err("not-found", "No such endpoint"));
        assert_eq!(resp.status, 404);
        let body: Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(
            body["errors"],
            json!([{"severity": "err", "human_friendly_message": "No such endpoint",
                    "short_message": "not-found"}])
        );
        assert_eq!(body["links"]["self"], "");
        assert!(resp
            .headers
            .iter()
            .any(|(n, v)| *n == "Content-Type" && v == "application/json"));
        assert_eq!(Severity::Info.as_str(), "info");
        assert_eq!(Severity::Crit.as_str(), "crit");
    }

    #[test]
    fn framing_errors_use_the_envelope_and_close() {
        for status in [400, 408, 411, 413, 414, 431, 501, 505, 418] {
            let resp = framing_error(status, 1);
            assert_eq!(resp.status, status);
            assert!(resp.close);
            let body: Value = serde_json::from_slice(&resp.body).unwrap();
            assert_eq!(body["errors"][0]["severity"], "err");
            assert!(body["errors"][0]["short_message"].is_string());
        }
        let body: Value = serde_json::from_slice(&framing_error(431, 1).body).unwrap();
        assert_eq!(
            body["errors"][0]["short_message"],
            "request-header-fields-too-large"
        );
    }
}
