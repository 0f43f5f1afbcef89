//! `/metrics`: the Prometheus text exposition format, version 0.0.4.

use super::Snapshot;
use std::fmt::Write as _;

/// The `Content-Type` of [`render`]'s output.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders the snapshot as Prometheus text: a `# HELP` and a `# TYPE` line per metric family,
/// then its samples; every line ends with `\n`.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(2048);
    family(
        &mut out,
        "chat_connections",
        "gauge",
        "Open connections by transport.",
    );
    for (transport, n) in [
        ("telnet", s.telnet_connections),
        ("websocket", s.websocket_connections),
        ("http", s.http_connections),
    ] {
        sample(
            &mut out,
            "chat_connections",
            Some(("transport", transport)),
            n,
        );
    }
    single(
        &mut out,
        "chat_users",
        "gauge",
        "Users with a nickname.",
        s.users,
    );
    single(
        &mut out,
        "chat_channels",
        "gauge",
        "Channels with members.",
        s.channels.len() as u64,
    );
    single(
        &mut out,
        "chat_messages_in_total",
        "counter",
        "Input lines and messages received from users.",
        s.messages_in,
    );
    single(
        &mut out,
        "chat_messages_out_total",
        "counter",
        "Messages queued to recipients, one per recipient.",
        s.messages_out,
    );
    single(
        &mut out,
        "chat_bytes_in_total",
        "counter",
        "Bytes read from clients.",
        s.bytes_in,
    );
    single(
        &mut out,
        "chat_bytes_out_total",
        "counter",
        "Bytes written to clients.",
        s.bytes_out,
    );
    family(
        &mut out,
        "chat_disconnects_total",
        "counter",
        "Closed connections by reason.",
    );
    for (reason, n) in &s.disconnects {
        sample(
            &mut out,
            "chat_disconnects_total",
            Some(("reason", reason)),
            *n,
        );
    }
    single(
        &mut out,
        "chat_refused_connections_total",
        "counter",
        "Connections refused by limits.",
        s.refused,
    );
    single(
        &mut out,
        "chat_accepted_connections_total",
        "counter",
        "Connections accepted.",
        s.accepted,
    );
    single(
        &mut out,
        "chat_accept_errors_total",
        "counter",
        "Failed accepts (out of file descriptors and the like); accepting pauses briefly after each.",
        s.accept_errors,
    );
    single(
        &mut out,
        "chat_output_backlog_bytes",
        "gauge",
        "Output queued on connections that keep up with what they are sent (the server's own backlog).",
        s.output_backlog_bytes,
    );
    single(
        &mut out,
        "chat_input_pauses_total",
        "counter",
        "Times chat input paused because the server's backlog passed backlog_high_bytes.",
        s.input_pauses,
    );
    single(
        &mut out,
        "chat_log_write_errors_total",
        "counter",
        "Failed chat-log writes since start-up.",
        s.log_write_errors,
    );
    single(
        &mut out,
        "chat_log_failing",
        "gauge",
        "1 while the chat log cannot be written, else 0.",
        u64::from(s.log_failing),
    );
    single(
        &mut out,
        "chat_log_queries_total",
        "counter",
        "Log queries started.",
        s.queries,
    );
    single(
        &mut out,
        "chat_uptime_seconds",
        "gauge",
        "Seconds since start-up.",
        s.uptime_s,
    );
    family(
        &mut out,
        "chat_build_info",
        "gauge",
        "Always 1; the server version as a label.",
    );
    sample(&mut out, "chat_build_info", Some(("version", s.version)), 1);
    if let Some(c) = &s.cluster {
        cluster(&mut out, c);
    }
    out
}

/// The cluster link's gauges (cluster mode only).
fn cluster(out: &mut String, c: &super::ClusterSnapshot) {
    single(
        out,
        "chat_cluster_link_up",
        "gauge",
        "1 while the link to Redis is up and this node holds its lease, else 0.",
        u64::from(c.link_up),
    );
    single(
        out,
        "chat_cluster_applied_seq",
        "gauge",
        "Seq of the last stream entry applied by this node.",
        c.applied_seq,
    );
    single(
        out,
        "chat_cluster_lag_entries",
        "gauge",
        "Stream entries known to exist and not yet applied by this node.",
        c.lag,
    );
    family(
        out,
        "chat_cluster_append_rtt_seconds",
        "gauge",
        "Round trip of the last proposal to its acknowledgement by Redis, in seconds.",
    );
    let _ = writeln!(
        out,
        "chat_cluster_append_rtt_seconds {}",
        c.append_rtt_ms / 1000.0
    );
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn single(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    family(out, name, kind, help);
    sample(out, name, None, value);
}

fn sample(out: &mut String, name: &str, label: Option<(&str, &str)>, value: u64) {
    out.push_str(name);
    if let Some((key, val)) = label {
        out.push('{');
        out.push_str(key);
        out.push_str("=\"");
        escape_label(out, val);
        out.push_str("\"}");
    }
    let _ = writeln!(out, " {value}");
}

/// Label values escape `\`, `"` and line feeds.
fn escape_label(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            version: "0.1.0",
            uptime_s: 42,
            now_unix_ms: 0,
            users: 3,
            channels: vec!["#general".into(), "#rust".into()],
            telnet_connections: 2,
            websocket_connections: 1,
            http_connections: 4,
            messages_in: 10,
            messages_out: 30,
            bytes_in: 1000,
            bytes_out: 3000,
            disconnects: vec![("quit", 5), ("eof", 0), ("output_overflow", 1)],
            refused: 7,
            accepted: 11,
            accept_errors: 6,
            output_backlog_bytes: 12,
            input_pauses: 13,
            log_write_errors: 2,
            log_failing: true,
            queries: 9,
            cluster: None,
        }
    }

    #[test]
    fn every_family_has_help_type_and_samples() {
        let text = render(&snapshot());
        for (line, expected) in [
            ("chat_connections{transport=\"telnet\"}", 2),
            ("chat_connections{transport=\"websocket\"}", 1),
            ("chat_connections{transport=\"http\"}", 4),
            ("chat_users", 3),
            ("chat_channels", 2),
            ("chat_messages_in_total", 10),
            ("chat_messages_out_total", 30),
            ("chat_bytes_in_total", 1000),
            ("chat_bytes_out_total", 3000),
            ("chat_disconnects_total{reason=\"quit\"}", 5),
            ("chat_disconnects_total{reason=\"eof\"}", 0),
            ("chat_disconnects_total{reason=\"output_overflow\"}", 1),
            ("chat_refused_connections_total", 7),
            ("chat_accepted_connections_total", 11),
            ("chat_accept_errors_total", 6),
            ("chat_output_backlog_bytes", 12),
            ("chat_input_pauses_total", 13),
            ("chat_log_write_errors_total", 2),
            ("chat_log_failing", 1),
            ("chat_log_queries_total", 9),
            ("chat_uptime_seconds", 42),
            ("chat_build_info{version=\"0.1.0\"}", 1),
        ] {
            assert!(
                text.lines().any(|l| l == format!("{line} {expected}")),
                "{line} {expected} missing in\n{text}"
            );
        }
        // Syntax: comments are HELP/TYPE, every sample's family was declared before it.
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split(' ');
                let name = parts.next().unwrap();
                let kind = parts.next().unwrap();
                assert!(kind == "gauge" || kind == "counter");
                assert_eq!(kind == "counter", name.ends_with("_total"), "{name}");
                declared.push(name.to_string());
            } else if line.starts_with("# HELP ") {
                continue;
            } else {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(declared.last().map(String::as_str), Some(name), "{line}");
                let value = line.rsplit(' ').next().unwrap();
                assert!(value.parse::<u64>().is_ok(), "{line}");
            }
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        escape_label(&mut out, "a\"b\\c\nd");
        assert_eq!(out, "a\\\"b\\\\c\\nd");
    }
}
