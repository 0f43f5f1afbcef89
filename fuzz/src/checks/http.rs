//! HTTP: request framing and parsed requests.

use super::*;
use chat_server::proto::http::{HttpDecoder, HttpLimits, HttpParse, Request};

/// What the HTTP decoder gave: a request, or an error status (after which nothing is read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpOut {
    Request(Request),
    Error(u16),
}

/// The statuses [`HttpDecoder::parse`] may answer with.
pub const HTTP_FRAMING_STATUSES: [u16; 6] = [400, 408, 411, 413, 431, 505];

/// Frames `data` whole, byte by byte and split at `cuts` (parsing after every push, as the
/// server does, until `Partial` or an error); checks that every chunking gives the same
/// requests and ends the same way (an error status may differ only in that an incremental
/// parse can give 431 for a head that grows past `max_header` before the whole input shows
/// it malformed), that errors are from [`HTTP_FRAMING_STATUSES`], that every request is
/// within `limits` (see [`check_request`]), and that the buffer is bounded while waiting.
pub fn check_http(data: &[u8], limits: &HttpLimits, cuts: &[usize]) -> Vec<HttpOut> {
    let mut reference: Option<Vec<HttpOut>> = None;
    for (name, chunks) in chunkings(data, cuts) {
        let outs = frame_http(&chunks, limits);
        match &reference {
            None => reference = Some(outs),
            Some(whole) => {
                let requests = |v: &[HttpOut]| -> Vec<Request> {
                    v.iter()
                        .filter_map(|o| match o {
                            HttpOut::Request(r) => Some(r.clone()),
                            HttpOut::Error(_) => None,
                        })
                        .collect()
                };
                assert_eq!(
                    requests(&outs),
                    requests(whole),
                    "http: chunking {name} gave other requests than the whole input"
                );
                let error = |v: &[HttpOut]| match v.last() {
                    Some(HttpOut::Error(s)) => Some(*s),
                    _ => None,
                };
                match (error(&outs), error(whole)) {
                    (a, b) if a == b => {}
                    (Some(431), Some(_)) => {}
                    (a, b) => panic!("http: chunking {name} ended in {a:?}, whole input in {b:?}"),
                }
            }
        }
    }
    reference.unwrap_or_default()
}

pub(crate) fn frame_http(chunks: &[&[u8]], limits: &HttpLimits) -> Vec<HttpOut> {
    let mut outs = Vec::new();
    let mut dec = HttpDecoder::new();
    for chunk in chunks {
        dec.push(chunk);
        loop {
            match dec.parse(limits) {
                HttpParse::Partial => {
                    let buffered = dec.buffered();
                    if dec.in_body() {
                        assert!(
                            buffered < limits.max_body,
                            "http: {buffered} bytes buffered waiting for a body (max {})",
                            limits.max_body
                        );
                    } else {
                        assert!(
                            buffered <= limits.max_header,
                            "http: {buffered} bytes buffered waiting for a head (max {})",
                            limits.max_header
                        );
                    }
                    break;
                }
                HttpParse::Request(req) => {
                    check_request(&req, limits);
                    outs.push(HttpOut::Request(req));
                }
                HttpParse::Error(status, why) => {
                    assert!(
                        HTTP_FRAMING_STATUSES.contains(&status),
                        "http: framing error {status} ({why}) is not documented"
                    );
                    assert!(!why.is_empty());
                    outs.push(HttpOut::Error(status));
                    return outs;
                }
            }
        }
    }
    outs
}

/// A request that came out of the decoder: head within `max_header`, body within
/// `max_body` and equal to `Content-Length`, no `Transfer-Encoding`, lower-case header names,
/// at most 48 headers, a POST/PUT/PATCH with a length.
pub fn check_request(req: &Request, limits: &HttpLimits) {
    let head: usize = req.method.len()
        + req.path.len()
        + req.query.len()
        + req
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len())
            .sum::<usize>();
    assert!(
        head <= limits.max_header,
        "http: request head of {head} bytes, max {}",
        limits.max_header
    );
    assert!(
        req.body.len() <= limits.max_body,
        "http: body of {} bytes, max {}",
        req.body.len(),
        limits.max_body
    );
    assert!(!req.method.is_empty() && req.version <= 1);
    assert!(req.headers.len() <= 48, "http: more than 48 headers");
    for (name, _) in &req.headers {
        assert_eq!(*name, name.to_ascii_lowercase(), "http: header name case");
    }
    assert!(req.header("transfer-encoding").is_none());
    let lengths: Vec<&str> = req
        .headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .map(|(_, v)| v.as_str())
        .collect();
    match lengths.as_slice() {
        [] => {
            assert!(req.body.is_empty());
            assert!(!matches!(req.method.as_str(), "POST" | "PUT" | "PATCH"));
        }
        [one] => assert_eq!(one.parse::<usize>().ok(), Some(req.body.len())),
        _ => panic!("http: request with several Content-Length headers"),
    }
}
