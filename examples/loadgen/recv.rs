//! Incoming bytes: framing (telnet lines, WebSocket frames) and the check of every message.

use crate::conn::{push_line, ws_frame_op, Conn, Kind, Role, St};
use crate::order::msg_id;
use crate::stats::Shared;
use crate::WS_KEY;
use std::time::Instant;

/// A decimal number of 1 to 19 digits (so it cannot overflow) and the bytes after it.
pub fn parse_u64(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v: u64 = 0;
    let mut i = 0;
    while let Some(&d) = b.get(i) {
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        v = v * 10 + u64::from(d);
        i += 1;
        if i > 19 {
            return None;
        }
    }
    if i == 0 {
        return None;
    }
    Some((v, &b[i..]))
}

/// `b<sender>:<step>:<seq>:<sched_ns>:...`
pub fn parse_msg(b: &[u8]) -> Option<(u64, u64, u64, u64)> {
    let b = b.strip_prefix(b"b")?;
    let (sender, b) = parse_u64(b)?;
    let (step, b) = parse_u64(b.strip_prefix(b":")?)?;
    let (seq, b) = parse_u64(b.strip_prefix(b":")?)?;
    let (ns, _) = parse_u64(b.strip_prefix(b":")?)?;
    Some((sender, step, seq, ns))
}

/// What the connection must do after a message was handled.
#[derive(PartialEq, Eq)]
pub enum After {
    Continue,
    Close,
}

/// One server message (a telnet line without CR LF, or a WebSocket text payload).
pub fn on_text(c: &mut Conn, text: &[u8], now: Instant, sh: &mut Shared) -> After {
    match c.st {
        St::Joined => {
            if c.draining {
                return After::Continue;
            }
            // "3:04PM-@nick: text": the first ": " ends the prefix.
            let Some(p) = sh.colon_space.find(text) else {
                return After::Continue;
            };
            let body = &text[p + 2..];
            match body.first() {
                Some(b'b') => {
                    let Some((sender, step, seq, ns)) = parse_msg(body) else {
                        sh.error("unparsable chat line");
                        return After::Continue;
                    };
                    let now_ns = sh.ns_since_base(now);
                    let lat_us = now_ns.saturating_sub(ns) / 1000;
                    let local = (sender as usize) / sh.channels;
                    if let Some(next) = c.next_seq.get_mut(local) {
                        let seq = seq as u32;
                        if seq == *next {
                            *next += 1;
                        } else if seq > *next {
                            let skipped = u64::from(seq - *next);
                            *next = seq + 1;
                            if let Some(s) = sh.steps.get_mut(step as usize) {
                                s.gaps += skipped;
                            }
                        } else if let Some(s) = sh.steps.get_mut(step as usize) {
                            s.dups += 1;
                        }
                    } else {
                        sh.error("message from a sender of another channel");
                    }
                    if let Some(s) = sh.steps.get_mut(step as usize) {
                        if s.closed {
                            s.late += 1;
                        } else {
                            s.received += 1;
                            s.hist.saturating_record(lat_us.max(1));
                            if let Some(n) = s.by_node.get_mut(usize::from(c.node)) {
                                n.received += 1;
                                n.hist.saturating_record(lat_us.max(1));
                            }
                            if sh.order_check {
                                c.order.push(msg_id(sender, seq));
                            }
                            if let Some(slots) = s.slots.as_mut() {
                                slots.record(ns, now_ns, lat_us.max(1));
                            }
                            s.last_recv = Some(now);
                            if s.first_recv.is_none() {
                                s.first_recv = Some(now);
                            }
                        }
                    }
                }
                Some(b'z') => {
                    if let Some((nonce, _)) = parse_u64(&body[1..]) {
                        if nonce as u32 == sh.barrier_nonce && c.barrier != sh.barrier_nonce {
                            c.barrier = sh.barrier_nonce;
                            sh.barrier_seen += 1;
                        }
                    }
                }
                _ => {}
            }
            After::Continue
        }
        St::Greeting => {
            if text.starts_with(b"Welcome") {
                match c.role {
                    Role::Member => {
                        let line = format!("u{}", c.id);
                        push_line(c, line.as_bytes());
                        let join = format!("/join #b{}", c.channel);
                        push_line(c, join.as_bytes());
                        c.st = St::Joining;
                    }
                    Role::Churn => {
                        let line = format!("c{}", c.id);
                        push_line(c, line.as_bytes());
                        c.st = St::ChurnNick;
                    }
                    Role::Rest => {}
                }
            }
            After::Continue
        }
        St::Joining => {
            if let Some(p) = memchr::memmem::find(text, b" just joined channel ") {
                let own = format!("-@u{}", c.id);
                if text[..p].ends_with(own.as_bytes()) {
                    c.st = St::Joined;
                    // Joins happen between load steps (nothing in flight): expect each
                    // sender's next message.
                    let ch = c.channel as usize;
                    c.next_seq = (0..senders_in(sh, ch))
                        .map(|l| sh.seq.get(ch + l * sh.channels).copied().unwrap_or(0))
                        .collect();
                    sh.joined += 1;
                    sh.inflight = sh.inflight.saturating_sub(1);
                    if !c.stalled {
                        sh.live[c.channel as usize] += 1;
                    }
                }
            } else if text.starts_with(b"Another user") {
                sh.error("nickname taken");
                return After::Close;
            }
            After::Continue
        }
        St::ChurnNick => {
            if text.starts_with(b"Thanks") {
                push_line(c, b"/quit");
                c.st = St::ChurnQuit;
            }
            After::Continue
        }
        _ => After::Continue,
    }
}

pub fn senders_in(sh: &Shared, channel: usize) -> usize {
    (sh.senders + sh.channels - 1 - channel) / sh.channels
}

/// Splits `data` into messages; returns the bytes consumed.
pub fn frame(c: &mut Conn, data: &[u8], now: Instant, sh: &mut Shared) -> (usize, After) {
    let mut pos = 0;
    if c.st == St::WsHandshake {
        let Some(end) = memchr::memmem::find(data, b"\r\n\r\n") else {
            return (0, After::Continue);
        };
        let head = &data[..end];
        let accept = tungstenite::handshake::derive_accept_key(WS_KEY.as_bytes());
        let ok = head.starts_with(b"HTTP/1.1 101")
            && memchr::memmem::find(head, accept.as_bytes()).is_some();
        if !ok {
            sh.error("websocket handshake refused");
            return (end + 4, After::Close);
        }
        c.st = St::Greeting;
        pos = end + 4;
    }
    if c.role == Role::Rest {
        if c.head.len() < 64 {
            let take = (64 - c.head.len()).min(data.len());
            c.head.extend_from_slice(&data[..take]);
        }
        return (data.len(), After::Continue);
    }
    match c.kind {
        Kind::Telnet => {
            while let Some(nl) = memchr::memchr(b'\n', &data[pos..]) {
                let mut line = &data[pos..pos + nl];
                if let [rest @ .., b'\r'] = line {
                    line = rest;
                }
                pos += nl + 1;
                if on_text(c, line, now, sh) == After::Close {
                    return (pos, After::Close);
                }
            }
        }
        Kind::Ws => loop {
            let d = &data[pos..];
            if d.len() < 2 {
                break;
            }
            let op = d[0] & 0x0f;
            let masked = d[1] & 0x80 != 0;
            let mut len = usize::from(d[1] & 0x7f);
            let mut h = 2;
            if len == 126 {
                if d.len() < 4 {
                    break;
                }
                len = usize::from(u16::from_be_bytes([d[2], d[3]]));
                h = 4;
            } else if len == 127 {
                if d.len() < 10 {
                    break;
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&d[2..10]);
                len = u64::from_be_bytes(b) as usize;
                h = 10;
            }
            if masked {
                h += 4;
            }
            if d.len() < h + len {
                break;
            }
            let payload = &d[h..h + len];
            pos += h + len;
            match op {
                0 | 1 if on_text(c, payload, now, sh) == After::Close => {
                    return (pos, After::Close);
                }
                8 => {
                    sh.error("websocket close frame from server");
                    return (pos, After::Close);
                }
                9 => {
                    let payload = payload.to_vec();
                    ws_frame_op(0xA, &payload, [7, 7, 7, 7], &mut c.out);
                }
                _ => {}
            }
        },
    }
    (pos, After::Continue)
}

/// Handles bytes read from a connection.
pub fn process(c: &mut Conn, data: &[u8], now: Instant, sh: &mut Shared) -> After {
    if c.draining {
        sh.drained_bytes += data.len() as u64;
        return After::Continue;
    }
    if c.inbuf.is_empty() {
        let (used, after) = frame(c, data, now, sh);
        if after == After::Continue {
            c.inbuf.extend_from_slice(&data[used..]);
        }
        after
    } else {
        c.inbuf.extend_from_slice(data);
        let buf = std::mem::take(&mut c.inbuf);
        let (used, after) = frame(c, &buf, now, sh);
        c.inbuf = buf;
        c.inbuf.drain(..used);
        if c.inbuf.capacity() > 8192 && c.inbuf.len() < 1024 {
            c.inbuf.shrink_to(1024);
        }
        after
    }
}
