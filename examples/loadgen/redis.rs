//! Samples of a cluster's Redis (`--redis`) around each step: its process's CPU, the entries
//! appended to the cluster stream (the `{chat}:seq` counter the append scripts increment) and
//! the `EVALSHA` calls so far. Blocking, with short timeouts, and only between steps.

use crate::sys::proc_cpu_s;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The counter of the cluster's dense sequence numbers: one per appended entry.
const SEQ_KEY: &str = "{chat}:seq";

#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub at: Instant,
    pub cpu_s: Option<f64>,
    pub seq: Option<u64>,
    pub evalsha: Option<u64>,
}

enum Reply {
    Line(Vec<u8>),
    Bulk(Option<Vec<u8>>),
}

/// One RESP2 reply (not arrays) at the start of `buf` and its length; None when incomplete.
fn parse_reply(buf: &[u8]) -> Option<(Reply, usize)> {
    let nl = memchr::memmem::find(buf, b"\r\n")?;
    let head = &buf[1..nl];
    match buf.first()? {
        b'$' => {
            let n: i64 = std::str::from_utf8(head).ok()?.parse().ok()?;
            if n < 0 {
                return Some((Reply::Bulk(None), nl + 2));
            }
            let end = nl + 2 + n as usize;
            (buf.len() >= end + 2).then(|| (Reply::Bulk(Some(buf[nl + 2..end].to_vec())), end + 2))
        }
        _ => Some((Reply::Line(buf[..nl].to_vec()), nl + 2)),
    }
}

fn command(args: &[&str], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
}

/// `name:VALUE` from an INFO text (the value up to the end of the line or a comma).
fn info_field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let start = text.find(name)? + name.len();
    let rest = &text[start..];
    let end = rest.find([',', '\r', '\n']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Takes a sample; None when Redis does not answer within a second or two.
pub fn sample(addr: SocketAddr, password: Option<&str>) -> Option<Sample> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut req = Vec::new();
    let mut n = 3;
    if let Some(pw) = password {
        command(&["AUTH", pw], &mut req);
        n += 1;
    }
    command(&["GET", SEQ_KEY], &mut req);
    command(&["INFO", "commandstats"], &mut req);
    command(&["INFO", "server"], &mut req);
    s.write_all(&req).ok()?;
    let mut buf = Vec::new();
    let mut replies = Vec::new();
    let mut chunk = [0u8; 16384];
    let deadline = Instant::now() + Duration::from_secs(2);
    while replies.len() < n {
        while let Some((r, used)) = parse_reply(&buf) {
            buf.drain(..used);
            replies.push(r);
            if replies.len() == n {
                break;
            }
        }
        if replies.len() == n || Instant::now() > deadline {
            break;
        }
        let got = s.read(&mut chunk).ok()?;
        if got == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..got]);
    }
    if replies.len() < n {
        return None;
    }
    let text = |r: &Reply| match r {
        Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
        Reply::Bulk(None) => String::new(),
        Reply::Line(l) => String::from_utf8_lossy(l).into_owned(),
    };
    let k = n - 3;
    let seq = match &replies[k] {
        Reply::Bulk(None) => Some(0),
        r => text(r).trim().parse().ok(),
    };
    let stats = text(&replies[k + 1]);
    let evalsha = info_field(&stats, "cmdstat_evalsha:calls=")
        .and_then(|v| v.parse().ok())
        .or(Some(0));
    let server = text(&replies[k + 2]);
    let cpu_s = info_field(&server, "process_id:").and_then(|pid| proc_cpu_s(pid.trim()));
    Some(Sample {
        at: Instant::now(),
        cpu_s,
        seq,
        evalsha,
    })
}

/// What happened in Redis between two samples, as JSON.
pub fn delta(a: &Sample, b: &Sample) -> Value {
    let wall = b.at.duration_since(a.at).as_secs_f64().max(1e-3);
    let cpu = a.cpu_s.zip(b.cpu_s).map(|(x, y)| y - x);
    let appends = a.seq.zip(b.seq).map(|(x, y)| y.saturating_sub(x));
    let evalsha = a.evalsha.zip(b.evalsha).map(|(x, y)| y.saturating_sub(x));
    json!({
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_pct": cpu.map(|c| c / wall * 100.0),
        "appends": appends,
        "appends_per_s": appends.map(|n| n as f64 / wall),
        "evalsha_calls": evalsha,
        "evalsha_per_s": evalsha.map(|n| n as f64 / wall),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_only_when_complete() {
        assert!(parse_reply(b"$5\r\nhel").is_none());
        let Some((Reply::Bulk(Some(b)), used)) = parse_reply(b"$5\r\nhello\r\n+OK\r\n") else {
            panic!("bulk reply not parsed");
        };
        assert_eq!((b.as_slice(), used), (&b"hello"[..], 11));
        assert!(matches!(
            parse_reply(b"$-1\r\n"),
            Some((Reply::Bulk(None), 5))
        ));
        assert!(matches!(parse_reply(b"+OK\r\n"), Some((Reply::Line(_), 5))));
    }

    #[test]
    fn info_fields_are_found() {
        let t =
            "# Commandstats\r\ncmdstat_get:calls=3,usec=1\r\ncmdstat_evalsha:calls=42,usec=9\r\n";
        assert_eq!(info_field(t, "cmdstat_evalsha:calls="), Some("42"));
        assert_eq!(info_field("process_id:77\r\n", "process_id:"), Some("77"));
    }
}
