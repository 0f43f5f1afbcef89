//! Telnet: the framer and line cleaning.

use super::*;
use chat_server::proto::telnet::{
    encode_message, looks_like_http_request, TelnetDecoder, TelnetEvent, TelnetLimits, DONT, IAC,
    TIMING_MARK, WILL, WONT,
};
use chat_server::proto::text::clean_line;

/// An owned [`TelnetEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TelnetOut {
    Line(Vec<u8>),
    Reply([u8; 3]),
    TooLong,
    InputOverflow,
}

/// Most heap a telnet decoder may hold: its partial line of at most `max_line + 1` bytes,
/// allowing for `Vec`'s minimum capacity (8) and doubling growth.
pub fn telnet_heap_bound(limits: &TelnetLimits) -> usize {
    8usize.max(limits.max_line.saturating_add(1).saturating_mul(2))
}

/// Decodes `data` whole, byte by byte and split at `cuts`; checks that every chunking gives
/// the same events, that lines respect `limits`, that replies are refusals (or the
/// TIMING-MARK answer), that nothing follows an overflow, and that the decoder's heap stays
/// within [`telnet_heap_bound`] (none at all when idle). Every line also goes through
/// [`check_clean_line`]. Returns the events.
pub fn check_telnet(data: &[u8], limits: &TelnetLimits, cuts: &[usize]) -> Vec<TelnetOut> {
    let counting = heap_counting();
    let mut reference: Option<Vec<TelnetOut>> = None;
    for (name, chunks) in chunkings(data, cuts) {
        let mut events = Vec::new();
        let mut dec = TelnetDecoder::new();
        for chunk in &chunks {
            dec.feed(chunk, limits, |e| events.push(owned_telnet(e)));
        }
        match &reference {
            None => reference = Some(events),
            Some(whole) => assert_eq!(
                &events, whole,
                "telnet: chunking {name} gave other events than the whole input"
            ),
        }
        if counting {
            // The same again with a callback that does not allocate, measuring the decoder.
            let mut dec = TelnetDecoder::new();
            let base = live_bytes();
            let bound = telnet_heap_bound(limits) as isize;
            let mut too_long_line = None;
            for chunk in &chunks {
                dec.feed(chunk, limits, |e| {
                    if let TelnetEvent::Line(l) = e {
                        if l.len() > limits.max_line {
                            too_long_line = Some(l.len());
                        }
                    }
                });
                let held = live_bytes() - base;
                assert!(
                    held <= bound,
                    "telnet: decoder holds {held} heap bytes, bound {bound} ({limits:?})"
                );
                if dec.is_idle() {
                    assert_eq!(held, 0, "telnet: an idle decoder holds heap");
                }
            }
            assert_eq!(too_long_line, None, "telnet: line over max_line");
        }
    }
    let events = reference.unwrap_or_default();
    for (i, ev) in events.iter().enumerate() {
        match ev {
            TelnetOut::Line(line) => {
                assert!(
                    line.len() <= limits.max_line,
                    "telnet: line of {} bytes, max_line {}",
                    line.len(),
                    limits.max_line
                );
                assert!(
                    !line.contains(&b'\n') && !line.contains(&b'\r'),
                    "telnet: line holds CR or LF: {line:?}"
                );
                check_clean_line(line);
            }
            TelnetOut::Reply(reply) => assert!(
                matches!(reply, [IAC, WONT | DONT, _]) || *reply == [IAC, WILL, TIMING_MARK],
                "telnet: reply {reply:?} is neither a refusal nor WILL TIMING-MARK"
            ),
            TelnetOut::TooLong => {}
            TelnetOut::InputOverflow => {
                assert_eq!(i + 1, events.len(), "telnet: events after InputOverflow")
            }
        }
    }
    events
}

pub(crate) fn owned_telnet(e: TelnetEvent<'_>) -> TelnetOut {
    match e {
        TelnetEvent::Line(l) => TelnetOut::Line(l.to_vec()),
        TelnetEvent::Reply(r) => TelnetOut::Reply(r),
        TelnetEvent::TooLong => TelnetOut::TooLong,
        TelnetEvent::InputOverflow => TelnetOut::InputOverflow,
    }
}

/// True for the characters that may reach another user's screen: anything but a control
/// character, TAB and `'\n'` excepted.
pub fn allowed_char(c: char) -> bool {
    !c.is_control() || c == '\t' || c == '\n'
}

/// Checks [`clean_line`] on raw bytes: it accepts exactly the valid UTF-8; its output has no
/// control character but TAB, no space or TAB at either end, is not longer than the input,
/// and is a fixed point (cleaning it again changes nothing). A cleaned line also survives
/// the telnet encoding: decoding `encode_message(line)` gives the line back. Returns the
/// cleaned line.
pub fn check_clean_line(raw: &[u8]) -> Option<String> {
    let cleaned = clean_line(raw);
    assert_eq!(
        cleaned.is_ok(),
        std::str::from_utf8(raw).is_ok(),
        "clean_line: accepts invalid or refuses valid UTF-8: {raw:?}"
    );
    let line = cleaned.ok()?.into_owned();
    assert!(
        line.chars().all(|c| !c.is_control() || c == '\t'),
        "clean_line: control character left in {line:?}"
    );
    assert_eq!(
        line,
        line.trim_matches([' ', '\t']),
        "clean_line: not trimmed"
    );
    assert!(line.len() <= raw.len(), "clean_line: output grew");
    let again = clean_line(line.as_bytes()).map(|c| c.into_owned());
    assert_eq!(
        again.as_deref(),
        Ok(line.as_str()),
        "clean_line: not idempotent"
    );
    let _ = looks_like_http_request(&line);
    let mut wire = Vec::new();
    encode_message(&line, &mut wire);
    let limits = TelnetLimits {
        max_line: line.len(),
        max_input: line.len() + 2,
    };
    let mut back = Vec::new();
    TelnetDecoder::new().feed(&wire, &limits, |e| back.push(owned_telnet(e)));
    assert_eq!(
        back,
        [TelnetOut::Line(line.as_bytes().to_vec())],
        "telnet: encode_message then decode does not give the line back"
    );
    Some(line)
}
