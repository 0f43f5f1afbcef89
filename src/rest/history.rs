//! `GET /v1/api/channels/{name}/history?limit=&before=SEQ` (token): a channel's remembered
//! entries as log records, newest last (SPEC §12).
//!
//! `{name}` is the channel without `#`. `limit` is 1 or more (default 20; more than the
//! ring holds gives what it holds); `before` keeps the entries with `seq < before`. A valid
//! channel with nothing remembered answers an empty list.

use super::envelope::{ApiError, Ctx};
use super::query::{decode_component, query_values};
use super::ServerView;
use crate::chat::{Entry, EntryKind};
use crate::proto::http::{Request, Response};
use crate::timefmt;
use serde_json::{json, Value};

/// The path's fixed parts.
const PREFIX: &str = "/v1/api/channels/";
const SUFFIX: &str = "/history";
/// Entries returned without `limit`.
const DEFAULT_LIMIT: usize = 20;
/// Largest `before` (2^53 − 1, so that it survives JavaScript clients).
const MAX_SEQ: u64 = (1 << 53) - 1;

/// The `{name}` part of a history path, still percent-encoded; `None` for other paths.
pub(crate) fn channel_in_path(path: &str) -> Option<&str> {
    let name = path.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// Answers a GET of a history path (the caller checked the method and the token).
pub(crate) fn respond(req: &Request, view: &dyn ServerView, ctx: &Ctx) -> Response {
    let raw = channel_in_path(&req.path).unwrap_or_default();
    let name = decode_component(raw)
        .map(|n| format!("#{n}"))
        .filter(|n| crate::chat::is_valid_channel(n));
    let Some(name) = name else {
        return ctx.error(
            400,
            ApiError::err(
                "invalid-channel",
                "The channel in the path must be 1 to 32 letters, digits, _ or - (without #)",
            ),
        );
    };
    let (limit, before) = match params(&req.query) {
        Ok(p) => p,
        Err(e) => return ctx.error(400, e),
    };
    let (channel, entries) = match view.history(&name) {
        Some(ring) => {
            let entries: Vec<Value> = ring
                .before(before, limit)
                .map(|e| record(e, &ring.name))
                .collect();
            (ring.name.to_string(), entries)
        }
        None => (name, Vec::new()),
    };
    ctx.respond(
        200,
        &[],
        vec![("Data", json!({ "channel": channel, "entries": entries }))],
    )
}

/// `limit` and `before`, checked.
fn params(query: &str) -> Result<(usize, u64), ApiError> {
    let [limit, before] = query_values(query, ["limit", "before"])?;
    let number = |v: &str| {
        (!v.is_empty() && v.len() <= 16 && v.bytes().all(|b| b.is_ascii_digit()))
            .then(|| v.parse::<u64>().ok())
            .flatten()
    };
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(v) => match number(&v) {
            Some(n) if (1..=MAX_SEQ).contains(&n) => usize::try_from(n).unwrap_or(usize::MAX),
            _ => {
                return Err(ApiError::err(
                    "invalid-limit",
                    "limit must be a positive integer",
                ))
            }
        },
    };
    let before = match before {
        None => u64::MAX,
        Some(v) => match number(&v) {
            Some(n) if (1..=MAX_SEQ).contains(&n) => n,
            _ => {
                return Err(ApiError::err(
                    "invalid-before",
                    "before must be a sequence number from 1 to 9007199254740991",
                ))
            }
        },
    };
    Ok((limit, before))
}

/// An entry as the log record it came from: `ts`, `seq`, `kind` and the kind's fields.
pub(crate) fn record(entry: &Entry, channel: &str) -> Value {
    let ts = timefmt::rfc3339_ms(entry.ts_ms);
    let kind = entry.kind().as_str();
    match entry.kind() {
        EntryKind::Chat | EntryKind::Action => json!({
            "ts": ts, "seq": entry.seq, "kind": kind,
            "nick": entry.nick(), "channel": channel, "text": entry.text(),
        }),
        EntryKind::Announcement => json!({
            "ts": ts, "seq": entry.seq, "kind": kind,
            "channel": channel, "text": entry.text(),
        }),
        EntryKind::Topic => json!({
            "ts": ts, "seq": entry.seq, "kind": kind,
            "nick": entry.nick(), "channel": channel, "topic": entry.text(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_params() {
        assert_eq!(
            channel_in_path("/v1/api/channels/general/history"),
            Some("general")
        );
        assert_eq!(channel_in_path("/v1/api/channels//history"), None);
        assert_eq!(channel_in_path("/v1/api/channels/a/b/history"), None);
        assert_eq!(channel_in_path("/v1/api/channels/general"), None);
        assert_eq!(params("").ok(), Some((20, u64::MAX)));
        assert_eq!(params("limit=5&before=%3100").ok(), Some((5, 100)));
        for bad in [
            "limit=0",
            "limit=x",
            "before=0",
            "before=-1",
            "x=1",
            "limit=1&limit=2",
        ] {
            assert!(params(bad).is_err(), "{bad}");
        }
    }
}
