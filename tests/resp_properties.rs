//! Property tests for the RESP2 reply decoder of the cluster link (SPEC §15, CLUSTER.md §8
//! K11): whatever Redis — or anything pretending to be Redis — sends, the decoder never
//! panics, gives the same frames at every split point of the input, keeps its memory within
//! the reply cap, and decodes every well-formed reply to exactly the frame that was encoded.
//!
//! The checks are the ones the `resp_decoder` cargo-fuzz target runs
//! (`fuzz/src/resp_checks.rs`, included here); this file supplies the inputs. 256 cases per
//! property (`PROPTEST_CASES` overrides).

#[allow(dead_code)]
#[path = "../fuzz/src/checks/heap.rs"]
mod checks;
#[path = "../fuzz/src/resp_checks.rs"]
mod resp_checks;

use chat_server::proto::resp::{encode_frame, Frame, RespDecoder, RespError, RespLimits};
use proptest::collection::vec;
use proptest::prelude::*;
use resp_checks::{check_resp, resp_heap_bound};

#[global_allocator]
static ALLOC: checks::CountingAlloc = checks::CountingAlloc;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn limits() -> impl Strategy<Value = RespLimits> {
    prop_oneof![
        3 => Just(RespLimits::default()),
        1 => (1usize..200, 0usize..4).prop_map(|(max_reply, max_depth)| RespLimits {
            max_reply,
            max_depth
        }),
    ]
}

/// Text for simple strings and errors: printable, no CR or LF.
fn line_text() -> impl Strategy<Value = String> {
    "[ -~]{0,12}"
}

fn frame() -> impl Strategy<Value = Frame> {
    let leaf = prop_oneof![
        line_text().prop_map(|s| Frame::SimpleString(s.into_bytes())),
        line_text().prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        vec(any::<u8>(), 0..20).prop_map(Frame::BulkString),
        Just(Frame::Null),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| vec(inner, 0..6).prop_map(Frame::Array))
}

/// Bytes that look like RESP: type bytes, lengths (some huge or negative), CR, LF, text.
fn resp_ish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop::sample::select(vec![
        &b"+"[..],
        b"-",
        b":",
        b"$",
        b"*",
        b"\r\n",
        b"\r",
        b"\n",
        b"-1",
        b"0",
        b"1",
        b"2",
        b"3",
        b"17",
        b"99999999999999999999",
        b"9223372036854775807",
        b"-9223372036854775808",
        b"OK",
        b"\xff",
        b"*1\r\n",
        b"$3\r\nabc\r\n",
    ]);
    vec(token, 0..60).prop_map(|t| t.concat())
}

fn live() -> isize {
    checks::live_bytes()
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes: no panic, split-invariant, bounded.
    #[test]
    fn arbitrary_bytes(data in vec(any::<u8>(), 0..400), l in limits(), cuts in vec(any::<usize>(), 0..8)) {
        check_resp(&data, &l, &cuts, live);
    }

    /// Near-RESP bytes reach the header, length and nesting paths.
    #[test]
    fn resp_like_bytes(data in resp_ish(), l in limits(), cuts in vec(any::<usize>(), 0..8)) {
        check_resp(&data, &l, &cuts, live);
    }

    /// Well-formed replies decode to exactly the frames encoded, at every split point,
    /// followed by any partial reply, which waits.
    #[test]
    fn well_formed_replies_round_trip(frames in vec(frame(), 1..6), tail in 0usize..20, cuts in vec(any::<usize>(), 0..8)) {
        let mut data = Vec::new();
        for f in &frames {
            encode_frame(&mut data, f);
        }
        let complete = data.len();
        let mut last = Vec::new();
        encode_frame(&mut last, &frames[0]);
        let partial = tail.min(last.len() - 1);
        data.extend_from_slice(&last[..partial]);
        let out = check_resp(&data, &RespLimits { max_reply: 1 << 20, max_depth: 8 }, &cuts, live);
        prop_assert_eq!(out.error, None);
        prop_assert_eq!(&out.frames, &frames);
        prop_assert_eq!(out.waiting, data[complete..].to_vec());
    }

    /// Under tight limits a well-formed stream is either decoded whole or refused for size
    /// or depth, never as malformed.
    #[test]
    fn tight_limits_refuse_cleanly(frames in vec(frame(), 1..6), l in limits()) {
        let mut data = Vec::new();
        for f in &frames {
            encode_frame(&mut data, f);
        }
        let out = check_resp(&data, &l, &[], live);
        match out.error {
            None => prop_assert_eq!(&out.frames, &frames),
            Some(RespError::TooLarge { .. }) | Some(RespError::TooDeep { .. }) => {}
            Some(e) => prop_assert!(false, "well-formed input refused as {e:?}"),
        }
    }
}

/// Headers announcing enormous replies are refused before any of it is buffered, and the
/// decoder holds almost nothing meanwhile.
#[test]
fn huge_announcements_cost_nothing() {
    assert!(
        checks::heap_counting(),
        "the counting allocator is not installed"
    );
    let limits = RespLimits::default();
    for header in [
        &b"$9223372036854775807\r\n"[..],
        b"*9223372036854775807\r\n",
        b"*3000000\r\n",
        b"$8388609\r\n",
    ] {
        let mut d = RespDecoder::new(limits);
        let before = live();
        let r = d.decode(header);
        assert!(
            live() - before <= resp_heap_bound(&limits),
            "{:?}",
            String::from_utf8_lossy(header)
        );
        assert!(
            matches!(r, Err(RespError::TooLarge { .. })),
            "{:?}: {r:?}",
            String::from_utf8_lossy(header)
        );
    }
}

/// A reply nested far deeper than the limit (which would exhaust the stack of a recursive
/// decoder) is refused at the limit.
#[test]
fn deep_nesting_is_refused_not_recursed() {
    let data = b"*1\r\n".repeat(100_000);
    let out = check_resp(&data[..400], &RespLimits::default(), &[], live);
    assert_eq!(out.error, Some(RespError::TooDeep { limit: 8 }));
    let mut d = RespDecoder::default();
    assert_eq!(d.decode(&data), Err(RespError::TooDeep { limit: 8 }));
}

/// A 1 MiB bulk reply arriving in 4 KiB reads waits, within bounds, and decodes whole.
#[test]
fn large_reply_in_many_reads() {
    let body = vec![b'x'; 1 << 20];
    let mut data = Vec::new();
    encode_frame(&mut data, &Frame::BulkString(body.clone()));
    let out = resp_checks::feed_resp(
        &data.chunks(4096).collect::<Vec<_>>(),
        &RespLimits::default(),
        live,
    );
    assert_eq!(out.frames, vec![Frame::BulkString(body)]);
}
