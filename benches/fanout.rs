//! Fan-out bench: one chat line to a channel of 10 / 100 / 1,000 / 10,000 members, driving the
//! real [`ChatCore`] with an [`Outbox`] that does what the server's shell does
//! (`src/server/io.rs`): encode once per wire format into a shared [`Chunk`], queue a clone on
//! every recipient's [`Output`] under the output caps (`Output::push_capped`, which also keeps
//! the server's backlog count), then a simulated flush (`Output::write_to` into a sink, one
//! vectored write per connection). Reported per recipient.
//!
//! A counting global allocator measures the allocations of one publish (core + encode +
//! queue + flush); they must not grow with the member count beyond the per-recipient queue
//! entries. The figures are printed before the timings, and checked.

use chat_server::chat::{
    ChatCore, ClientId, CloseReason, CoreConfig, LogFailed, Now, Outbox, Transport,
};
use chat_server::record::Record;
use chat_server::server::{encode, Caps, Chunk, Encoded, Output, Pushed, Wire};
use criterion::{criterion_group, Criterion, Throughput};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, IoSlice, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The peer address of every simulated connection.
const PEER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5000));

/// Counts allocations (and reallocations) made through the global allocator.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A writer that accepts everything, like a socket with room (a vectored write is one call).
struct Sink {
    bytes: u64,
    calls: u64,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.calls += 1;
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.calls += 1;
        let n: usize = bufs.iter().map(|b| b.len()).sum();
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The shipped output caps.
const CAPS: Caps = Caps {
    hard: 262_144,
    soft: 65_536,
};

/// The shell's outbox, without sockets: per-connection output queues and a dirty list.
struct BenchOutbox {
    conns: Vec<(Wire, Output, bool)>,
    dirty: Vec<usize>,
    /// The server's backlog count, kept by the queues.
    backlog: usize,
    encode_buf: Vec<u8>,
    log_buf: Vec<u8>,
    sink: Sink,
}

impl BenchOutbox {
    #[inline]
    fn enqueue(&mut self, key: usize, chunk: Chunk) {
        let Some((_, q, dirty)) = self.conns.get_mut(key) else {
            return;
        };
        // A sink never pushes back, so the caps never judge anything here.
        let pushed = q.push_capped(chunk, &CAPS, 1, &mut self.backlog);
        debug_assert_eq!(pushed, Pushed::Queued);
        if !*dirty {
            *dirty = true;
            self.dirty.push(key);
        }
    }

    /// One loop pass's flush: one vectored write per dirty connection.
    fn flush(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for &key in &dirty {
            let (_, q, d) = &mut self.conns[key];
            *d = false;
            let _ = q.write_to(&mut self.sink, 64 * 1024, CAPS.soft, &mut self.backlog);
        }
        self.dirty = dirty;
        self.dirty.clear();
    }
}

impl Outbox for BenchOutbox {
    fn log(&mut self, _now: Now, record: &Record<'_>) -> Result<u64, LogFailed> {
        // The server serializes the record and appends it to the log; the write is left out.
        self.log_buf.clear();
        serde_json::to_writer(&mut self.log_buf, record).map_err(|_| LogFailed)?;
        Ok(0)
    }

    fn send(&mut self, to: ClientId, text: &str) {
        let Some(&(wire, _, _)) = self.conns.get(to.key as usize) else {
            return;
        };
        let chunk = encode(wire, text, &mut self.encode_buf);
        self.enqueue(to.key as usize, chunk);
    }

    fn send_many(&mut self, to: &[ClientId], text: &str) {
        // The shell's own encode-once step (`chat_server::server::Encoded`).
        let mut msg = Encoded::new(text);
        for &id in to {
            let Some(&(wire, _, _)) = self.conns.get(id.key as usize) else {
                continue;
            };
            let chunk = msg.chunk(wire, &mut self.encode_buf);
            self.enqueue(id.key as usize, chunk);
        }
    }

    fn close(&mut self, _id: ClientId, _reason: CloseReason) {}
}

const NOW: Now = Now {
    mono_ms: 1_000,
    unix_ms: 1_795_000_000_000,
    utc_offset_s: 0,
};

/// A 64-byte chat line.
const LINE: &str = "b12:3:45678:901234567890:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

/// A core with `n` identified members of `#b` (every other one on WebSocket), flushed.
fn setup(n: usize) -> (ChatCore, BenchOutbox) {
    let mut core = ChatCore::new(CoreConfig {
        nick_timeout_ms: 60_000,
        ..CoreConfig::default()
    });
    let mut out = BenchOutbox {
        conns: Vec::with_capacity(n),
        dirty: Vec::new(),
        backlog: 0,
        encode_buf: Vec::new(),
        log_buf: Vec::new(),
        sink: Sink { bytes: 0, calls: 0 },
    };
    for i in 0..n {
        let wire = if i % 2 == 0 {
            Wire::Telnet
        } else {
            Wire::WebSocket
        };
        out.conns.push((wire, Output::default(), false));
        let id = id(i);
        core.handle_connect(NOW, id, Transport::Telnet, PEER, &mut out);
        core.handle_line(NOW, id, &format!("u{i}"), &mut out);
        core.handle_line(NOW, id, "/join #b", &mut out);
        out.flush();
    }
    (core, out)
}

fn id(i: usize) -> ClientId {
    ClientId {
        key: i as u32,
        gen: i as u32 + 1,
    }
}

/// One publish: the core handles the line, then the flush writes every queue.
fn publish(core: &mut ChatCore, out: &mut BenchOutbox) {
    core.handle_line(NOW, id(0), LINE, out);
    out.flush();
}

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

/// Allocations of one publish, averaged over 20 after a warm-up publish.
fn allocations_per_publish(core: &mut ChatCore, out: &mut BenchOutbox) -> f64 {
    publish(core, out);
    let rounds = 20;
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..rounds {
        publish(core, out);
    }
    (ALLOCS.load(Ordering::Relaxed) - before) as f64 / f64::from(rounds)
}

/// Publishes per loop pass in the batched count: under load each recipient gets several
/// chunks before its connection is written.
const BATCH: u32 = 4;

/// Allocations per publish when [`BATCH`] publishes share one flush, averaged over 20 passes
/// after a warm-up pass.
fn allocations_per_batched_publish(core: &mut ChatCore, out: &mut BenchOutbox) -> f64 {
    let pass = |core: &mut ChatCore, out: &mut BenchOutbox| {
        for _ in 0..BATCH {
            core.handle_line(NOW, id(0), LINE, out);
        }
        out.flush();
    };
    pass(core, out);
    let rounds = 20;
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..rounds {
        pass(core, out);
    }
    (ALLOCS.load(Ordering::Relaxed) - before) as f64 / f64::from(rounds * BATCH)
}

fn bench_fanout(c: &mut Criterion) {
    // Each channel is set up once (joining 10,000 members is a 50M-message join storm).
    let mut setups: Vec<(usize, ChatCore, BenchOutbox)> = SIZES
        .iter()
        .map(|&n| {
            let (core, out) = setup(n);
            (n, core, out)
        })
        .collect();
    let allocs: Vec<(usize, f64)> = setups
        .iter_mut()
        .map(|(n, core, out)| (*n, allocations_per_publish(core, out)))
        .collect();
    let base = allocs.first().map_or(0.0, |&(_, a)| a);
    println!("fan-out allocations per publish (core + encode + queue + flush):");
    for &(n, a) in &allocs {
        println!(
            "  {n:>6} members: {a:>8.1} allocations per publish ({:.4} per recipient)",
            a / n as f64
        );
    }
    for &(n, a) in &allocs {
        // At most one allocation per extra recipient (a queue entry); anything more means
        // the message is copied or something else allocates per recipient.
        assert!(
            a - base <= (n - SIZES[0]) as f64,
            "allocations per publish grow with the member count: {a} at {n} vs {base} at {}",
            SIZES[0]
        );
    }
    let constant = allocs.iter().all(|&(_, a)| (a - base).abs() < 0.5);
    println!(
        "  => {}",
        if constant {
            "constant: no per-recipient allocation"
        } else {
            "grows by at most one allocation per recipient (its queue's buffer, freed when the \
             queue empties)"
        }
    );

    // Several chunks per recipient per pass: the queues' overflow deques are reused, not
    // allocated per recipient and pass.
    let batched: Vec<(usize, f64)> = setups
        .iter_mut()
        .map(|(n, core, out)| (*n, allocations_per_batched_publish(core, out)))
        .collect();
    println!("with {BATCH} publishes per flush:");
    for &(n, a) in &batched {
        println!("  {n:>6} members: {a:>8.1} allocations per publish");
    }
    let batched_base = batched.first().map_or(0.0, |&(_, a)| a);
    for &(n, a) in &batched {
        assert!(
            (a - batched_base).abs() < 0.5,
            "allocations per batched publish grow with the member count: {a} at {n} vs \
             {batched_base} at {}",
            SIZES[0]
        );
    }

    let mut g = c.benchmark_group("fanout");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);
    for (n, core, out) in &mut setups {
        g.throughput(Throughput::Elements(*n as u64));
        g.bench_function(format!("publish_to_{n}_members"), |b| {
            b.iter(|| publish(core, out))
        });
        assert!(out.sink.calls > 0 && out.sink.bytes > 0);
    }
    g.finish();
}

criterion_group!(benches, bench_fanout);
/// With `FANOUT_COUNT=N` in the environment: set up a 1,000-member channel, publish `N`
/// times (`FANOUT_BATCH` per flush, default 1) and exit, without criterion; for instruction
/// counts (`valgrind --tool=callgrind` with N and 0, subtracted), which a busy machine does
/// not disturb.
fn main() {
    if let Some(n) = std::env::var("FANOUT_COUNT")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        // FANOUT_BATCH=K: K publishes per flush (several chunks per recipient per pass).
        let batch = std::env::var("FANOUT_BATCH")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(1)
            .max(1);
        let (mut core, mut out) = setup(1_000);
        for _ in 0..n / batch {
            for _ in 0..batch {
                core.handle_line(NOW, id(0), LINE, &mut out);
            }
            out.flush();
        }
        println!(
            "{} publishes to 1000 members, {batch} per flush",
            n / batch * batch
        );
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
