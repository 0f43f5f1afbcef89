//! `GET /v1/api/message`: the log search, as a job the shell drives in slices so that a scan
//! of a large log never stalls chat.
//!
//! # Parameters (query string, `application/x-www-form-urlencoded`)
//!
//! | name | meaning | invalid → 400 `short_message` |
//! |---|---|---|
//! | `pattern` | regex (Rust `regex` syntax, ≤ 512 bytes, compiled size ≤ 1 MiB) matched against the message text; empty or missing: everything | `invalid-regex-pattern` |
//! | `channel` | chat records in that channel and announcements to it; `#` optional, case-insensitive; empty: no filter | – |
//! | `nick` | chat records by that nick and private messages from or to it; `@` optional, case-insensitive; empty: no filter | – |
//! | `since` | RFC 3339 (a space in place of an unencoded `+` is accepted); records with `ts >= since` | `invalid-since` |
//! | `until` | RFC 3339; records with `ts < until` | `invalid-until` |
//! | `limit` | 1..=100, default 100 | `invalid-limit` |
//! | `cursor` | `next_cursor` of the previous page | `invalid-cursor` |
//!
//! Unknown parameters (`unknown-parameter`), a parameter given twice (`duplicate-parameter`)
//! and bad percent-encoding (`invalid-query`) are refused with 400 too.
//!
//! # Answer
//!
//! The envelope plus `occurrences` (one rendered line per hit, see [`render_occurrence`]),
//! `records` (the same hits as the log's JSON objects: `ts`, `seq`, `kind` and the kind's
//! fields) and `next_cursor` (an integer to pass back as `cursor`, or `null` when the scan
//! reached the end). A non-null cursor is only returned when at least one more record
//! matched in the slice already read, or the slice ended before the end of the log; the next
//! page may then turn out empty.
//!
//! The scan covers the log as it was when the query started: records appended while it runs
//! are left for a later query. The cursor is the byte offset of the next record to read; a
//! cursor past the end gives an empty last page, and one that does not point at the start of
//! a line (e.g. after the log was rotated) resumes at the next line.
//!
//! A log file that does not exist yet is an empty log (200, no results); one that exists but
//! cannot be read gives 500 `could-not-read-log`.
//!
//! # Speed
//!
//! The shell gives each query a time budget per loop pass ([`QueryJob::step_until`]), not a
//! byte count, so the scan runs as fast as the disk and the checks allow while chat waits at
//! most that long. Before a line is parsed, a cheap check on the raw bytes ([`prefilter`])
//! rules out most lines that cannot be hits: the record kind, the time range, the channel
//! and nick, and a literal every match of the pattern starts with.

use super::envelope::{ApiError, Ctx, Severity};
use crate::log_store::{LogLine, LogReader};
use crate::proto::http::{Request, Response};
use crate::record::Record;
use crate::timefmt::parse_rfc3339_ms;
use prefilter::Prefilter;
use regex::{Regex, RegexBuilder};
use serde_json::{json, Value};
use std::io;
use std::time::Instant;

mod prefilter;

/// A slice size for [`QueryJob::step`] that keeps one call to a millisecond or two even when
/// every line must be parsed (about 40 MB/s).
pub const SUGGESTED_SLICE_BYTES: usize = 64 * 1024;
/// The slice [`QueryJob::step_until`] reads between two looks at the clock: small enough that
/// a slice of lines that all need parsing does not overrun the budget by much.
const TIMED_SLICE_BYTES: usize = 64 * 1024;
/// [`QueryJob::step`] reads at least this much per call, so that no record (at most a few
/// KiB) is ever longer than a slice (the log reader passes over such lines as corrupt).
pub const MIN_SLICE_BYTES: usize = 8 * 1024;
/// Results per page, at most and by default.
pub(crate) const MAX_LIMIT: usize = 100;
/// Longest `pattern`, in bytes.
pub(crate) const MAX_PATTERN_BYTES: usize = 512;
/// Compiled size limit of the regex (program and lazy DFA cache).
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Largest accepted cursor: 2^53 − 1, so that it survives JavaScript clients.
pub(crate) const MAX_CURSOR: u64 = (1 << 53) - 1;

/// The query parameters, checked.
#[derive(Debug)]
pub(crate) struct Params {
    filter: Filter,
    limit: usize,
    cursor: u64,
}

/// Which records are hits.
#[derive(Debug, Default)]
struct Filter {
    regex: Option<Regex>,
    /// Without `#`.
    channel: Option<String>,
    /// Without `@`.
    nick: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
}

impl Filter {
    fn matches(&self, line: &LogLine) -> bool {
        let (text, channel, nicks): (&str, Option<&str>, [Option<&str>; 2]) = match &line.record {
            Record::Chat {
                nick,
                channel,
                text,
            }
            | Record::Action {
                nick,
                channel,
                text,
            } => (text, Some(channel), [Some(nick), None]),
            Record::Private { from, to, text } => (text, None, [Some(from), Some(to)]),
            Record::Announcement { text, channel, .. } => (text, channel.as_deref(), [None, None]),
            _ => return false,
        };
        if let Some(want) = &self.channel {
            let hit = channel.is_some_and(|c| without(c, '#').eq_ignore_ascii_case(want));
            if !hit {
                return false;
            }
        }
        if let Some(want) = &self.nick {
            let hit = nicks
                .iter()
                .flatten()
                .any(|n| without(n, '@').eq_ignore_ascii_case(want));
            if !hit {
                return false;
            }
        }
        if self.since.is_some() || self.until.is_some() {
            let Ok(ts) = parse_rfc3339_ms(&line.ts) else {
                return false;
            };
            if self.since.is_some_and(|since| ts < since) || self.until.is_some_and(|u| ts >= u) {
                return false;
            }
        }
        self.regex.as_ref().is_none_or(|re| re.is_match(text))
    }
}

/// `s` without one leading `sigil`.
fn without(s: &str, sigil: char) -> &str {
    s.strip_prefix(sigil).unwrap_or(s)
}

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a space, `%XX` a byte;
/// the result must be UTF-8.
pub(super) fn decode_component(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// At most `max` characters of `s`, for quoting client input in messages.
fn quote(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

const NAMES: [&str; 7] = [
    "pattern", "channel", "nick", "since", "until", "limit", "cursor",
];

/// The values a query string gives the parameters `names`, percent-decoded, in that order.
/// Each may be given once; any other name, or a component that is not percent-encoded
/// UTF-8, is refused.
pub(super) fn query_values<const N: usize>(
    query: &str,
    names: [&str; N],
) -> Result<[Option<String>; N], ApiError> {
    let mut values: [Option<String>; N] = std::array::from_fn(|_| None);
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = part.split_once('=').unwrap_or((part, ""));
        let (Some(name), Some(value)) = (decode_component(raw_name), decode_component(raw_value))
        else {
            return Err(ApiError::err(
                "invalid-query",
                "The query string is not valid percent-encoded UTF-8",
            ));
        };
        let Some(index) = names.iter().position(|n| *n == name) else {
            return Err(ApiError::err(
                "unknown-parameter",
                format!(
                    "Unknown query parameter {:?}; known: {}",
                    quote(&name, 64),
                    names.join(", ")
                ),
            ));
        };
        if values[index].replace(value).is_some() {
            return Err(ApiError::err(
                "duplicate-parameter",
                format!("The query parameter {name:?} is given more than once"),
            ));
        }
    }
    Ok(values)
}

/// Parses and checks the query string.
pub(crate) fn parse_params(query: &str) -> Result<Params, ApiError> {
    let values = query_values(query, NAMES)?;
    let [pattern, channel, nick, since, until, limit, cursor] = values;

    let regex = match pattern.as_deref() {
        None | Some("") => None,
        Some(p) if p.len() > MAX_PATTERN_BYTES => {
            return Err(ApiError::err(
                "invalid-regex-pattern",
                format!("Invalid REGEX pattern: longer than {MAX_PATTERN_BYTES} bytes"),
            ))
        }
        Some(p) => Some(compile(p)?),
    };
    let non_empty = |v: Option<String>, sigil: char| {
        v.filter(|v| !v.is_empty())
            .map(|v| without(&v, sigil).to_owned())
    };
    let time = |v: Option<String>, name: &str, short: &'static str| match v {
        None => Ok(None),
        Some(v) => parse_rfc3339_ms(&v)
            .or_else(|e| {
                // `+01:00` sent without percent-encoding arrives as ` 01:00`.
                if v.contains(' ') {
                    parse_rfc3339_ms(&v.replace(' ', "+")).map_err(|_| e)
                } else {
                    Err(e)
                }
            })
            .map(Some)
            .map_err(|e| {
                ApiError::err(
                    short,
                    format!("{name}: {e} (expected e.g. 2026-11-27T00:24:40Z)"),
                )
            }),
    };
    let filter = Filter {
        regex,
        channel: non_empty(channel, '#'),
        nick: non_empty(nick, '@'),
        since: time(since, "since", "invalid-since")?,
        until: time(until, "until", "invalid-until")?,
    };
    let limit = match limit {
        None => MAX_LIMIT,
        Some(v) => match digits(&v, 10) {
            Some(n) if (1..=MAX_LIMIT as u64).contains(&n) => n as usize,
            _ => {
                return Err(ApiError::err(
                    "invalid-limit",
                    format!("limit must be an integer from 1 to {MAX_LIMIT}"),
                ))
            }
        },
    };
    let cursor = match cursor {
        None => 0,
        Some(v) => match digits(&v, 16) {
            Some(n) if n <= MAX_CURSOR => n,
            _ => {
                return Err(ApiError::err(
                    "invalid-cursor",
                    "cursor must be the next_cursor of an earlier answer",
                ))
            }
        },
    };
    Ok(Params {
        filter,
        limit,
        cursor,
    })
}

/// A non-negative decimal integer of 1 to `max_len` ASCII digits.
fn digits(s: &str, max_len: usize) -> Option<u64> {
    if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Compiles a client's pattern with size limits.
fn compile(pattern: &str) -> Result<Regex, ApiError> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            let why = match e {
                regex::Error::CompiledTooBig(_) => "the compiled pattern is too big".to_string(),
                other => other.to_string(),
            };
            ApiError::err(
                "invalid-regex-pattern",
                format!("Invalid REGEX pattern: {why}"),
            )
        })
}

/// The occurrence line of a chat, action (`/me`), private or announcement record:
///
/// ```text
/// 2026-11-27T00:24:40.123Z #general @alice: hi
/// 2026-11-27T00:24:40.123Z #general * @alice waves
/// 2026-11-27T00:24:40.123Z @alice -> @bob (private): hi
/// 2026-11-27T00:24:40.123Z announcement: maintenance at noon
/// 2026-11-27T00:24:40.123Z #general announcement: maintenance at noon
/// ```
///
/// `None` for other records.
pub(crate) fn render_occurrence(line: &LogLine) -> Option<String> {
    let ts = &line.ts;
    Some(match &line.record {
        Record::Chat {
            nick,
            channel,
            text,
        } => format!("{ts} {channel} @{nick}: {text}"),
        Record::Action {
            nick,
            channel,
            text,
        } => format!("{ts} {channel} * @{nick} {text}"),
        Record::Private { from, to, text } => format!("{ts} @{from} -> @{to} (private): {text}"),
        Record::Announcement {
            text,
            channel: Some(channel),
            ..
        } => format!("{ts} {channel} announcement: {text}"),
        Record::Announcement { text, .. } => format!("{ts} announcement: {text}"),
        _ => return None,
    })
}

/// The record as the log's JSON object (`ts`, `seq`, `kind`, fields).
fn record_json(line: &LogLine) -> Value {
    let mut value = serde_json::to_value(&line.record).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut value {
        map.insert("ts".into(), Value::from(line.ts.clone()));
        map.insert("seq".into(), Value::from(line.seq));
        if let (Some(cseq), Some(node)) = (line.cseq, &line.node) {
            map.insert("cseq".into(), Value::from(cseq));
            map.insert("node".into(), Value::from(node.clone()));
        }
    }
    value
}

/// A running log query. See the [module docs](self). Small (one pointer) to move around.
#[derive(Debug)]
pub struct QueryJob(Box<JobState>);

#[derive(Debug)]
struct JobState {
    ctx: Ctx,
    filter: Filter,
    limit: usize,
    prefilter: Prefilter,
    /// `None` when the log does not exist (an empty result) or once finished.
    reader: Option<LogReader>,
    /// Length of the log when the query started: the scan stops there.
    end: u64,
    occurrences: Vec<String>,
    records: Vec<Value>,
    batch: Vec<(u64, LogLine)>,
    finished: bool,
    /// Cluster mode: the last stream entry applied when the query started.
    applied_seq: Option<u64>,
}

impl QueryJob {
    /// Checks the query string of `req` and compiles the pattern; `log` is the log opened by
    /// the log store ([`LogReader::open_for_search`]: `None` when there is no log yet), and
    /// `now_unix_ms` is the envelope's `generated` time. Does not check the token (the router
    /// does).
    ///
    /// # Errors
    ///
    /// The whole answer when there is nothing to scan: 400 for bad parameters, 500
    /// `could-not-read-log` when the log exists but could not be opened.
    pub fn start(
        req: &Request,
        log: io::Result<Option<LogReader>>,
        now_unix_ms: i64,
    ) -> Result<QueryJob, Response> {
        let ctx = Ctx::new(req, now_unix_ms);
        let params = parse_params(&req.query).map_err(|e| ctx.error(400, e))?;
        let (reader, end) = match log {
            Ok(Some(mut reader)) => {
                reader.seek_to(params.cursor);
                let end = reader.len_at_open();
                (Some(reader), end)
            }
            Ok(None) => (None, 0),
            Err(e) => return Err(read_failed(&ctx, &e)),
        };
        Ok(QueryJob(Box::new(JobState {
            ctx,
            prefilter: Prefilter::new(&params.filter),
            filter: params.filter,
            limit: params.limit,
            reader,
            end,
            occurrences: Vec::new(),
            records: Vec::new(),
            batch: Vec::new(),
            finished: false,
            applied_seq: None,
        })))
    }

    /// Cluster mode: the answer reports `applied_seq`, the last stream entry this node had
    /// applied when the query started.
    pub fn set_applied_seq(&mut self, applied: u64) {
        self.0.applied_seq = Some(applied);
    }

    /// Scans the next slice of at most `max_bytes` (but at least [`MIN_SLICE_BYTES`]) of the
    /// log. Returns the answer once the page is full or the scan reached the end (or failed:
    /// 500 `could-not-read-log`); `None` means "call again on the next loop pass". After it
    /// has returned the answer, it returns `None` and does nothing.
    pub fn step(&mut self, max_bytes: usize) -> Option<Response> {
        self.0.step(max_bytes)
    }

    /// Scans slices of the log until the answer is ready or `clock()` reaches `deadline` (at
    /// least one slice per call). Returns like [`QueryJob::step`].
    pub fn step_until(
        &mut self,
        deadline: Instant,
        clock: impl Fn() -> Instant,
    ) -> Option<Response> {
        loop {
            if let Some(resp) = self.0.step(TIMED_SLICE_BYTES) {
                return Some(resp);
            }
            if self.0.finished || clock() >= deadline {
                return None;
            }
        }
    }

    /// True once [`QueryJob::step`] has returned the answer.
    pub fn is_finished(&self) -> bool {
        self.0.finished
    }
}

impl JobState {
    fn step(&mut self, max_bytes: usize) -> Option<Response> {
        if self.finished {
            return None;
        }
        let Some(reader) = self.reader.as_mut() else {
            return Some(self.finish(None));
        };
        if reader.offset() >= self.end {
            return Some(self.finish(None));
        }
        self.batch.clear();
        let eof = match reader.next_slice_where(
            max_bytes.max(MIN_SLICE_BYTES),
            &self.prefilter,
            &mut self.batch,
        ) {
            Ok(eof) => eof,
            Err(e) => {
                self.finished = true;
                self.reader = None;
                return Some(read_failed(&self.ctx, &e));
            }
        };
        let after_slice = reader.offset();
        let mut next_hit = None;
        let mut past_end = false;
        for (offset, line) in self.batch.drain(..) {
            if offset >= self.end {
                past_end = true;
                break;
            }
            if !self.filter.matches(&line) {
                continue;
            }
            if self.occurrences.len() >= self.limit {
                next_hit = Some(offset);
                break;
            }
            if let Some(occurrence) = render_occurrence(&line) {
                self.occurrences.push(occurrence);
                self.records.push(record_json(&line));
            }
        }
        if next_hit.is_some() {
            return Some(self.finish(next_hit));
        }
        let at_end = eof || past_end || after_slice >= self.end;
        if self.occurrences.len() >= self.limit {
            let cursor = (!at_end).then_some(after_slice);
            return Some(self.finish(cursor));
        }
        at_end.then(|| self.finish(None))
    }

    fn finish(&mut self, next_cursor: Option<u64>) -> Response {
        self.finished = true;
        self.reader = None;
        self.batch = Vec::new();
        let occurrences = std::mem::take(&mut self.occurrences);
        let records = std::mem::take(&mut self.records);
        let mut fields = vec![
            ("occurrences", json!(occurrences)),
            ("records", Value::Array(records)),
            ("next_cursor", next_cursor.map_or(Value::Null, Value::from)),
        ];
        if let Some(applied) = self.applied_seq {
            fields.push(("applied_seq", Value::from(applied)));
        }
        self.ctx.respond(200, &[], fields)
    }
}

/// 500 `could-not-read-log`.
fn read_failed(ctx: &Ctx, err: &io::Error) -> Response {
    ctx.error(
        500,
        ApiError::new(
            Severity::Crit,
            "could-not-read-log",
            format!("Could not read the log file: {err}"),
        ),
    )
}

#[cfg(test)]
mod tests;
