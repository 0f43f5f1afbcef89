//! Criterion benches of the codecs: telnet line framing with chunked input, WebSocket frame
//! encode and client-frame decode, command parsing, and HTTP request parsing.
//!
//! Each group is short (2 s measurement, 20 samples) so that `cargo bench` takes minutes.

use chat_server::chat::parse_command;
use chat_server::proto::http::{HttpDecoder, HttpLimits, HttpParse};
use chat_server::proto::telnet::{TelnetDecoder, TelnetEvent, TelnetLimits};
use chat_server::proto::websocket::{encode_text, WsDecoder, WsEvent};
use criterion::{
    black_box, criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput,
};
use std::time::Duration;

fn short<M: criterion::measurement::Measurement>(g: &mut BenchmarkGroup<'_, M>) {
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);
}

/// A 64-byte chat text.
const TEXT: &str = "b12:3:45678:901234567890:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

fn telnet_input(lines: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for _ in 0..lines {
        v.extend_from_slice(TEXT.as_bytes());
        v.extend_from_slice(b"\r\n");
    }
    v
}

fn bench_telnet(c: &mut Criterion) {
    let mut g = c.benchmark_group("telnet_framing");
    short(&mut g);
    let input = telnet_input(1000);
    let limits = TelnetLimits::default();
    g.throughput(Throughput::Bytes(input.len() as u64));
    for chunk in [16usize, 1460, 16 * 1024] {
        g.bench_function(format!("1000_lines_chunks_of_{chunk}"), |b| {
            b.iter(|| {
                let mut dec = TelnetDecoder::new();
                let mut lines = 0usize;
                for part in input.chunks(chunk) {
                    dec.feed(black_box(part), &limits, |ev| {
                        if let TelnetEvent::Line(l) = ev {
                            lines += l.len();
                        }
                    });
                }
                black_box(lines)
            })
        });
    }
    g.finish();
}

/// Masked client frames (what browsers send), `n` frames of `text`.
fn ws_client_frames(text: &[u8], n: usize) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(0x81);
        v.push(0x80 | text.len() as u8);
        v.extend_from_slice(&key);
        v.extend(text.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
    }
    v
}

fn bench_websocket(c: &mut Criterion) {
    let mut g = c.benchmark_group("websocket");
    short(&mut g);
    g.throughput(Throughput::Elements(1));
    let msg = format!("3:04PM-@u1234: {TEXT}");
    let mut out = Vec::with_capacity(256);
    g.bench_function("encode_text_80B", |b| {
        b.iter(|| {
            out.clear();
            encode_text(black_box(&msg), &mut out);
            black_box(out.len())
        })
    });
    let long = "x".repeat(400);
    g.bench_function("encode_text_400B", |b| {
        b.iter(|| {
            out.clear();
            encode_text(black_box(&long), &mut out);
            black_box(out.len())
        })
    });
    let frames = ws_client_frames(TEXT.as_bytes(), 1000);
    g.throughput(Throughput::Bytes(frames.len() as u64));
    for chunk in [1460usize, 16 * 1024] {
        g.bench_function(
            format!("decode_1000_client_frames_chunks_of_{chunk}"),
            |b| {
                b.iter(|| {
                    let mut dec = WsDecoder::new();
                    let mut n = 0usize;
                    for part in frames.chunks(chunk) {
                        dec.feed(black_box(part), 4096, |ev| {
                            if let WsEvent::Text(t) = ev {
                                n += t.len();
                            }
                        });
                    }
                    black_box(n)
                })
            },
        );
    }
    g.finish();
}

fn bench_commands(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_command");
    short(&mut g);
    let lines = [
        TEXT,
        "/join #bench",
        "/msg @alice hello there, how are you?",
        "/help",
        "/list",
        "/ignore @bob",
        "/quit",
        "/helpme",
    ];
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("mixed_8_lines", |b| {
        b.iter(|| {
            let mut n = 0;
            for l in lines {
                if let Some(Ok(_)) = parse_command(black_box(l)) {
                    n += 1;
                }
            }
            black_box(n)
        })
    });
    g.finish();
}

fn bench_http(c: &mut Criterion) {
    let mut g = c.benchmark_group("http_parse");
    short(&mut g);
    let limits = HttpLimits {
        max_header: 8192,
        max_body: 16384,
    };
    let get = b"GET /v1/api/message?pattern=hello&limit=100 HTTP/1.1\r\nHost: 127.0.0.1:4001\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nAuthorization: Bearer 0123456789abcdef0123456789abcdef\r\n\r\n";
    let body = br##"{"message":"The server restarts at noon","channel":"#general"}"##;
    let post = format!(
        "POST /v1/api/message HTTP/1.1\r\nHost: 127.0.0.1:4001\r\nContent-Type: application/json\r\nAuthorization: Bearer 0123456789abcdef0123456789abcdef\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        String::from_utf8_lossy(body)
    );
    let upgrade = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:4004\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:4004\r\n\r\n";
    g.throughput(Throughput::Elements(1));
    for (name, req) in [
        ("get_query", &get[..]),
        ("post_json", post.as_bytes()),
        ("ws_upgrade", &upgrade[..]),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut dec = HttpDecoder::new();
                dec.push(black_box(req));
                match dec.parse(&limits) {
                    HttpParse::Request(r) => black_box(r.path.len()),
                    _ => panic!("{name}: not parsed"),
                }
            })
        });
        // The same request arriving in 3 pieces (re-parsed as bytes come in).
        g.bench_function(format!("{name}_in_3_reads"), |b| {
            let third = req.len() / 3;
            b.iter(|| {
                let mut dec = HttpDecoder::new();
                let mut got = 0;
                for part in [&req[..third], &req[third..2 * third], &req[2 * third..]] {
                    dec.push(black_box(part));
                    if let HttpParse::Request(r) = dec.parse(&limits) {
                        got = r.path.len();
                    }
                }
                assert!(got > 0, "{name}: not parsed");
                black_box(got)
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_telnet,
    bench_websocket,
    bench_commands,
    bench_http
);
criterion_main!(benches);
