//! The router and the endpoints that answer at once (everything but the log scan).

use super::auth;
use super::docs::{self, Asset};
use super::envelope::{api_headers, ApiError, Ctx, Severity};
use super::history;
use super::metrics_text;
use super::query::QueryJob;
use super::{Outcome, RestConfig, ServerView};
use crate::chat::AnnounceError;
use crate::log_store::LogReader;
use crate::proto::http::{Request, Response};
use crate::proto::text::clean_line;
use serde_json::{json, Map, Value};
use std::path::Path;

/// The path of the announcement and log-search endpoint.
pub(crate) const MESSAGE_PATH: &str = "/v1/api/message";

/// What a path is.
#[derive(Clone, Copy)]
enum Endpoint {
    Status,
    Healthz,
    Metrics,
    Message,
    History,
    OpenApi,
    DocsSlash,
    Docs(&'static Asset),
}

impl Endpoint {
    fn of(path: &str) -> Option<Endpoint> {
        Some(match path {
            "/status" => Endpoint::Status,
            "/healthz" => Endpoint::Healthz,
            "/metrics" => Endpoint::Metrics,
            MESSAGE_PATH => Endpoint::Message,
            "/openapi.json" | "/docs.json" => Endpoint::OpenApi,
            "/docs/" => Endpoint::DocsSlash,
            other if history::channel_in_path(other).is_some() => Endpoint::History,
            other => Endpoint::Docs(docs::find(other)?),
        })
    }

    /// The `Allow` header value.
    fn allow(self) -> &'static str {
        match self {
            Endpoint::Message => "GET, HEAD, POST",
            _ => "GET, HEAD",
        }
    }
}

/// Every path [`route`] answers (besides `404`), for tests and the OpenAPI check.
#[cfg(test)]
pub(crate) fn served_paths() -> Vec<&'static str> {
    let mut paths = vec![
        "/status",
        "/healthz",
        "/metrics",
        MESSAGE_PATH,
        "/v1/api/channels/general/history",
        "/openapi.json",
        "/docs.json",
        "/docs/",
    ];
    paths.extend(docs::ASSETS.iter().map(|a| a.path));
    paths.extend(super::moderation::PATHS);
    paths
}

/// Answers one REST request. `HEAD` is routed like `GET` (the shell leaves out the body).
/// The log search is returned as a [`QueryJob`] for the shell to drive; everything else is
/// answered at once.
pub fn route(
    req: &Request,
    view: &mut dyn ServerView,
    cfg: &RestConfig,
    log_path: &Path,
) -> Outcome {
    if let Some(resp) = super::moderation::route(req, view, cfg) {
        return Outcome::Respond(resp);
    }
    let Some(endpoint) = Endpoint::of(&req.path) else {
        let ctx = Ctx::new(req, view.now_unix_ms());
        return Outcome::Respond(ctx.error(
            404,
            ApiError::err("not-found", "There is no such endpoint; see /docs"),
        ));
    };
    let is_get = matches!(req.method.as_str(), "GET" | "HEAD");
    let resp = match endpoint {
        Endpoint::Message if req.method == "POST" => announce(req, view, cfg),
        _ if !is_get => {
            let ctx = Ctx::new(req, view.now_unix_ms());
            ctx.error(
                405,
                ApiError::err(
                    "method-not-allowed",
                    format!(
                        "{} is not allowed here; allowed: {}",
                        quote_method(&req.method),
                        endpoint.allow()
                    ),
                ),
            )
            .header("Allow", endpoint.allow())
        }
        Endpoint::History => {
            let ctx = Ctx::new(req, view.now_unix_ms());
            match auth::check(req, &cfg.admin_token) {
                Ok(()) => history::respond(req, view, &ctx),
                Err(failure) => auth::unauthorized(&ctx, failure),
            }
        }
        Endpoint::Message => {
            let now = view.now_unix_ms();
            if let Err(failure) = auth::check(req, &cfg.admin_token) {
                return Outcome::Respond(auth::unauthorized(&Ctx::new(req, now), failure));
            }
            return match QueryJob::start(req, LogReader::open_for_search(log_path), now) {
                Ok(job) => Outcome::Query(job),
                Err(resp) => Outcome::Respond(resp),
            };
        }
        Endpoint::Status => status(req, view),
        Endpoint::Healthz => match view.snapshot().cluster {
            Some(c) if !c.link_up => {
                api_headers(Response::text(503, "cluster link down").header("Retry-After", "2"))
            }
            _ => api_headers(Response::text(200, "ok")),
        },
        Endpoint::Metrics => api_headers(
            Response::new(200)
                .header("Content-Type", metrics_text::CONTENT_TYPE)
                .body(metrics_text::render(&view.snapshot()).into_bytes()),
        ),
        Endpoint::OpenApi => docs::openapi(cfg),
        Endpoint::DocsSlash => docs::redirect_to_docs(),
        Endpoint::Docs(asset) => docs::serve(asset),
    };
    Outcome::Respond(resp)
}

/// A method name as it may be quoted in a message.
fn quote_method(method: &str) -> String {
    let short: String = method.chars().take(16).collect();
    format!("{short:?}")
}

/// `GET /status`.
fn status(req: &Request, view: &dyn ServerView) -> Response {
    let s = view.snapshot();
    let ctx = Ctx::new(req, s.now_unix_ms);
    let data = json!({
        "health": if s.log_failing { "degraded" } else { "ok" },
        "uptime_s": s.uptime_s,
        "users": s.users,
        "channels": s.channels.len(),
        "channel_names": s.channels,
        "connections": {
            "telnet": s.telnet_connections,
            "websocket": s.websocket_connections,
            "http": s.http_connections,
        },
        "version": s.version,
        "log_write_errors": s.log_write_errors,
    });
    let mut data = data;
    if let (Some(c), Some(map)) = (&s.cluster, data.as_object_mut()) {
        map.insert(
            "cluster".into(),
            json!({
                "node_id": c.node_id,
                "link": if c.link_up { "up" } else { "down" },
                "applied_seq": c.applied_seq,
                "lag": c.lag,
                "lease": if c.lease_held { "held" } else { "lost" },
                "append_rtt_ms": c.append_rtt_ms,
            }),
        );
    }
    ctx.respond(200, &[], vec![("Data", data)])
}

/// True for `application/json`, with any parameters, in any case.
fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
    })
}

/// True when `text` has a character that survives cleaning: not a control character (Unicode
/// `Cc`: U+0000–U+001F, U+007F–U+009F) and not a space. This is the OpenAPI document's
/// `pattern` for `message`.
fn has_visible_char(text: &str) -> bool {
    text.chars().any(|c| !c.is_control() && c != ' ')
}

/// The announcement text: [`clean_line`]'s output; if that removed everything (the text was
/// only terminal escape sequences plus visible characters they swallowed), the text with just
/// its control characters removed, which no terminal can interpret either.
fn clean_message(raw: &str) -> String {
    match clean_line(raw.as_bytes()) {
        Ok(clean) if !clean.is_empty() => clean.into_owned(),
        _ => raw
            .chars()
            .filter(|c| !c.is_control())
            .collect::<String>()
            .trim_matches(' ')
            .to_owned(),
    }
}

/// `POST /v1/api/message`.
fn announce(req: &Request, view: &mut dyn ServerView, cfg: &RestConfig) -> Response {
    let ctx = Ctx::new(req, view.now_unix_ms());
    if let Err(failure) = auth::check(req, &cfg.admin_token) {
        return auth::unauthorized(&ctx, failure);
    }
    if !is_json(req.header("content-type")) {
        return ctx.error(
            415,
            ApiError::err(
                "unsupported-media-type",
                "The body must be JSON, sent with Content-Type: application/json",
            ),
        );
    }
    let (text, channel) = match parse_announcement(&req.body, cfg.max_announcement_bytes) {
        Ok(parsed) => parsed,
        Err(error) => return ctx.error(400, error),
    };
    if view.overloaded() {
        return ctx
            .error(
                503,
                ApiError::new(
                    Severity::Crit,
                    "server-busy",
                    "The server is behind on delivering messages; the announcement was not \
                     sent, try again in a second",
                ),
            )
            .header("Retry-After", "1");
    }
    match view.announce(&text, channel.as_deref()) {
        Ok(recipients) => ctx.respond(200, &[], vec![("recipients", json!(recipients))]),
        Err(AnnounceError::NoUsers) => {
            let human = match &channel {
                Some(c) => format!("No users are in {c}"),
                None => "No users are connected to this server".to_string(),
            };
            ctx.respond(
                200,
                &[ApiError::new(Severity::Info, "no-connected-users", human)],
                vec![("recipients", json!([]))],
            )
        }
        Err(AnnounceError::UnknownChannel) => ctx.error(
            404,
            ApiError::err("unknown-channel", "There is no such channel"),
        ),
        Err(AnnounceError::InvalidChannel) => ctx.error(400, invalid_channel()),
        Err(AnnounceError::ClusterDown) => ctx
            .error(
                503,
                ApiError::new(
                    Severity::Crit,
                    "cluster-down",
                    "The cluster link is down, so the announcement was not sent; try again shortly",
                ),
            )
            .header("Retry-After", "2"),
        Err(AnnounceError::LogFailed) => ctx
            .error(
                503,
                ApiError::new(
                    Severity::Crit,
                    "log-write-failed",
                    "The announcement could not be written to the chat log, so it was not sent",
                ),
            )
            .header("Retry-After", "30"),
    }
}

fn invalid_channel() -> ApiError {
    ApiError::err(
        "invalid-channel",
        "channel must be # followed by 1 to 32 letters, digits, _ or -",
    )
}

/// Checks the JSON body `{"message": "...", "channel": "#optional"}`: the cleaned message
/// text and the channel.
fn parse_announcement(body: &[u8], max_bytes: usize) -> Result<(String, Option<String>), ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::err("invalid-json", format!("The body is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(ApiError::err(
            "invalid-body",
            "The body must be a JSON object: {\"message\": \"...\"}",
        ));
    };
    let message = match map.get("message") {
        Some(Value::String(m)) => m,
        Some(_) => {
            return Err(ApiError::err("invalid-message", "message must be a string"));
        }
        None => {
            return Err(ApiError::err("missing-message", "message is required"));
        }
    };
    if message.len() > max_bytes {
        return Err(ApiError::err(
            "message-too-long",
            format!("message is longer than {max_bytes} bytes"),
        ));
    }
    if !has_visible_char(message) {
        return Err(ApiError::err(
            "empty-message",
            "message has no visible characters",
        ));
    }
    Ok((clean_message(message), channel_of(&map)?))
}

/// The optional `channel`: a string (one trailing line feed is ignored, as JSON Schema's `$`
/// allows it); `null` or another type is refused.
fn channel_of(map: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match map.get("channel") {
        None => Ok(None),
        Some(Value::String(c)) => Ok(Some(c.strip_suffix('\n').unwrap_or(c).to_owned())),
        Some(_) => Err(invalid_channel()),
    }
}

#[cfg(test)]
mod tests;
