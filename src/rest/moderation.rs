//! The moderation endpoints (§14), all behind the bearer token: who is online, channels,
//! kick, bans and mutes. Each act goes through the same core calls as the operator
//! commands, with the actor `api`, so telnet and REST behave the same.

use super::auth;
use super::envelope::{ApiError, Ctx};
use super::query::query_values;
use super::{RestConfig, ServerView};
use crate::chat::duration::MAX_DURATION_MS;
use crate::chat::{BanInfo, ChannelInfo, ModError, UserInfo};
use crate::proto::http::{Request, Response};
use crate::proto::text::clean_line;
use serde_json::{json, Map, Value};

/// What the moderation endpoints need from the running server.
pub trait ModerationApi {
    /// Users with a nickname.
    fn users(&self) -> Vec<UserInfo>;
    /// Channels with members.
    fn channels(&self) -> Vec<ChannelInfo>;
    /// Kicks a user; its nickname as spelt.
    fn kick(&mut self, nick: &str, reason: Option<&str>) -> Result<String, ModError>;
    /// Bans a target.
    fn ban(
        &mut self,
        target: &str,
        duration_ms: Option<u64>,
        reason: Option<&str>,
    ) -> Result<BanInfo, ModError>;
    /// Lifts a ban; the target as listed.
    fn unban(&mut self, target: &str) -> Result<String, ModError>;
    /// The bans in force.
    fn bans(&self) -> Vec<BanInfo>;
    /// Mutes a user; its nickname and the end (RFC 3339, `None` when permanent).
    fn mute(
        &mut self,
        nick: &str,
        duration_ms: Option<u64>,
    ) -> Result<(String, Option<String>), ModError>;
    /// Lifts a mute; the nickname as spelt.
    fn unmute(&mut self, nick: &str) -> Result<String, ModError>;
}

/// The paths served here.
#[cfg(test)]
pub(crate) const PATHS: [&str; 5] = [
    "/v1/api/users",
    "/v1/api/channels",
    "/v1/api/kick",
    "/v1/api/bans",
    "/v1/api/mute",
];

/// The `Allow` header of a moderation path, `None` for other paths.
pub(crate) fn allow(path: &str) -> Option<&'static str> {
    Some(match path {
        "/v1/api/users" | "/v1/api/channels" => "GET, HEAD",
        "/v1/api/kick" => "POST",
        "/v1/api/bans" => "GET, HEAD, POST, DELETE",
        "/v1/api/mute" => "POST, DELETE",
        _ => return None,
    })
}

/// Answers a request to a moderation path; `None` for other paths.
pub(crate) fn route(
    req: &Request,
    view: &mut dyn ServerView,
    cfg: &RestConfig,
) -> Option<Response> {
    let allowed = allow(&req.path)?;
    let ctx = Ctx::new(req, view.now_unix_ms());
    let method = req.method.as_str();
    let method_ok = allowed
        .split(", ")
        .any(|m| m == method || (m == "GET" && method == "HEAD"));
    if !method_ok {
        let short: String = method.chars().take(16).collect();
        return Some(
            ctx.error(
                405,
                ApiError::err(
                    "method-not-allowed",
                    format!("{short:?} is not allowed here; allowed: {allowed}"),
                ),
            )
            .header("Allow", allowed),
        );
    }
    if let Err(failure) = auth::check(req, &cfg.admin_token) {
        return Some(auth::unauthorized(&ctx, failure));
    }
    let Some(api) = view.moderation() else {
        return Some(ctx.error(
            503,
            ApiError::err("unavailable", "Moderation is not available"),
        ));
    };
    let result = match (req.path.as_str(), method) {
        ("/v1/api/users", _) => Ok(json!({ "users": api.users() })),
        ("/v1/api/channels", _) => Ok(json!({ "channels": api.channels() })),
        ("/v1/api/bans", "GET" | "HEAD") => Ok(json!({ "bans": api.bans() })),
        ("/v1/api/kick", _) => kick(req, api),
        ("/v1/api/bans", "POST") => ban(req, api),
        ("/v1/api/bans", _) => query_value(req, "target").and_then(|target| {
            api.unban(&target)
                .map(|shown| json!({ "removed": shown }))
                .map_err(mod_error)
        }),
        ("/v1/api/mute", "POST") => mute(req, api),
        (_, _) => query_value(req, "nick").and_then(|nick| {
            let nick = nick.strip_prefix('@').unwrap_or(&nick).to_string();
            api.unmute(&nick)
                .map(|shown| json!({ "nick": shown, "muted": false }))
                .map_err(mod_error)
        }),
    };
    Some(match result {
        Ok(data) => ctx.respond(200, &[], vec![("Data", data)]),
        Err((status, error)) => ctx.error(status, error),
    })
}

type Failure = (u16, ApiError);

fn mod_error(e: ModError) -> Failure {
    let text = crate::chat::moderation_error_text(&e);
    match e {
        ModError::UnknownNick(_) => (404, ApiError::err("unknown-user", text)),
        ModError::InvalidTarget(_) => (400, ApiError::err("invalid-target", text)),
        ModError::NotBanned(_) => (404, ApiError::err("not-banned", text)),
        ModError::NotMuted(_) => (404, ApiError::err("not-muted", text)),
        ModError::SelfTarget(_) => (400, ApiError::err("invalid-target", text)),
        ModError::ClusterDown => (503, ApiError::err("cluster-down", text)),
    }
}

fn bad(short: &'static str, human: impl Into<String>) -> Failure {
    (400, ApiError::err(short, human))
}

/// The JSON object body, after the media type check.
fn body(req: &Request) -> Result<Map<String, Value>, Failure> {
    let json_type = req.header("content-type").is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    });
    if !json_type {
        return Err((
            415,
            ApiError::err(
                "unsupported-media-type",
                "The body must be JSON, sent with Content-Type: application/json",
            ),
        ));
    }
    match serde_json::from_slice(&req.body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(bad("invalid-body", "The body must be a JSON object")),
        Err(e) => Err(bad(
            "invalid-json",
            format!("The body is not valid JSON: {e}"),
        )),
    }
}

fn string_field(
    map: &Map<String, Value>,
    name: &'static str,
    required: bool,
) -> Result<Option<String>, Failure> {
    match map.get(name) {
        None if required => Err(bad("missing-field", format!("{name} is required"))),
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad("invalid-field", format!("{name} must be a string"))),
    }
}

/// An optional reason: cleaned like chat input, at most 300 bytes, empty means none.
fn reason_field(map: &Map<String, Value>) -> Result<Option<String>, Failure> {
    let Some(raw) = string_field(map, "reason", false)? else {
        return Ok(None);
    };
    if raw.len() > 300 {
        return Err(bad("invalid-field", "reason is longer than 300 bytes"));
    }
    Ok(clean_line(raw.as_bytes())
        .ok()
        .map(|c| c.into_owned())
        .filter(|c| !c.is_empty()))
}

/// The optional `duration_s`: a whole number of seconds from 1 to 10 years.
fn duration_field(map: &Map<String, Value>) -> Result<Option<u64>, Failure> {
    match map.get("duration_s") {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(s) if s >= 1 && s.saturating_mul(1000) <= MAX_DURATION_MS => Ok(Some(s * 1000)),
            _ => Err(bad(
                "invalid-duration",
                "duration_s must be a whole number of seconds from 1 to 315360000",
            )),
        },
    }
}

fn nick_field(map: &Map<String, Value>) -> Result<String, Failure> {
    let nick = string_field(map, "nick", true)?.unwrap_or_default();
    Ok(nick.strip_prefix('@').unwrap_or(&nick).to_string())
}

fn kick(req: &Request, api: &mut dyn ModerationApi) -> Result<Value, Failure> {
    let map = body(req)?;
    let nick = nick_field(&map)?;
    let reason = reason_field(&map)?;
    let shown = api.kick(&nick, reason.as_deref()).map_err(mod_error)?;
    Ok(json!({ "kicked": shown }))
}

fn ban(req: &Request, api: &mut dyn ModerationApi) -> Result<Value, Failure> {
    let map = body(req)?;
    let target = string_field(&map, "target", true)?.unwrap_or_default();
    let duration = duration_field(&map)?;
    let reason = reason_field(&map)?;
    let info = api
        .ban(&target, duration, reason.as_deref())
        .map_err(mod_error)?;
    Ok(json!({ "ban": info }))
}

fn mute(req: &Request, api: &mut dyn ModerationApi) -> Result<Value, Failure> {
    let map = body(req)?;
    let nick = nick_field(&map)?;
    let duration = duration_field(&map)?;
    let (shown, until) = api.mute(&nick, duration).map_err(mod_error)?;
    Ok(json!({ "nick": shown, "muted": true, "muted_until": until }))
}

/// The one query parameter an endpoint takes (`target` or `nick`), percent-decoded.
fn query_value(req: &Request, name: &'static str) -> Result<String, Failure> {
    let [found] = query_values(&req.query, [name]).map_err(|e| (400, e))?;
    found
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad("missing-parameter", format!("{name} is required")))
}
