//! An idiomatic tokio chat server, as a benchmark baseline (tokio is a dev-dependency only).
//!
//! A reader task and a writer task per connection, an mpsc channel per client (the writer's
//! inbox), and a `tokio::sync::broadcast` channel per chat channel. Same telnet text subset as
//! `baseline_mio`: greeting, nickname → `Thanks`, `/join #ch` → joined line, chat lines fanned
//! out as `H:MMPM-@nick: text\r\n` to the channel (sender included). A receiver that lags
//! behind the broadcast ring loses messages (tokio's `Lagged`), which the load generator
//! reports as loss.
//!
//! `baseline_tokio [--flavor current_thread|multi] [--workers N] [--port P]`; the port also
//! comes from `$PEER_PORT` (default 0). Prints `telnet listening on 127.0.0.1:PORT` to stderr.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};

/// Messages kept in each channel's broadcast ring.
const BROADCAST_CAPACITY: usize = 1024;

type Msg = Arc<[u8]>;

/// What a connection's reader sends to its writer.
enum Out {
    Line(Msg),
    /// Start forwarding this chat channel (replaces the previous one).
    Subscribe(broadcast::Receiver<Msg>),
}

#[derive(Default)]
struct Shared {
    channels: Mutex<HashMap<String, broadcast::Sender<Msg>>>,
    users: AtomicUsize,
}

fn kitchen() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (h, m) = ((secs / 3600) % 24, (secs / 60) % 60);
    let h12 = if h % 12 == 0 { 12 } else { h % 12 };
    format!("{h12}:{m:02}{}", if h < 12 { "AM" } else { "PM" })
}

fn msg(s: String) -> Msg {
    Arc::from(s.into_bytes())
}

async fn reader(rd: OwnedReadHalf, tx: mpsc::UnboundedSender<Out>, shared: Arc<Shared>) {
    let mut rd = BufReader::new(rd);
    let mut buf = Vec::new();
    let mut nick: Option<String> = None;
    let mut channel: Option<broadcast::Sender<Msg>> = None;
    loop {
        buf.clear();
        match rd.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim_end_matches(['\r', '\n']);
        let Some(name) = &nick else {
            let _ = tx.send(Out::Line(msg(format!(
                "Thanks {line}, now please type /join #channel to join a channel or /help to get all commands\r\n"
            ))));
            shared.users.fetch_add(1, Ordering::Relaxed);
            nick = Some(line.to_owned());
            continue;
        };
        if let Some(ch) = line.strip_prefix("/join #") {
            let sender = {
                let mut map = shared.channels.lock().unwrap_or_else(|e| e.into_inner());
                map.entry(ch.to_owned())
                    .or_insert_with(|| broadcast::channel(BROADCAST_CAPACITY).0)
                    .clone()
            };
            let others = sender.receiver_count();
            let _ = tx.send(Out::Line(msg(format!(
                "There are {others} other users in this channel.\r\n"
            ))));
            let _ = tx.send(Out::Subscribe(sender.subscribe()));
            let _ = sender.send(msg(format!(
                "{}-@{name} just joined channel #{ch}\r\n",
                kitchen()
            )));
            channel = Some(sender);
        } else if let Some(sender) = &channel {
            let _ = sender.send(msg(format!("{}-@{name}: {line}\r\n", kitchen())));
        }
    }
    if nick.is_some() {
        shared.users.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn writer(wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Out>) {
    let mut wr = BufWriter::new(wr);
    let mut sub: Option<broadcast::Receiver<Msg>> = None;
    loop {
        let m = tokio::select! {
            out = rx.recv() => match out {
                Some(Out::Line(m)) => m,
                Some(Out::Subscribe(r)) => { sub = Some(r); continue; }
                None => return,
            },
            r = async { sub.as_mut()?.recv().await.ok() }, if sub.is_some() => match r {
                Some(m) => m,
                // Lagged (messages lost) or closed: keep going with what is left.
                None => continue,
            },
        };
        if wr.write_all(&m).await.is_err() {
            return;
        }
        // Batch whatever else is ready into the same write.
        while let Some(Ok(m)) = sub.as_mut().map(|s| s.try_recv()) {
            if wr.write_all(&m).await.is_err() {
                return;
            }
        }
        if wr.flush().await.is_err() {
            return;
        }
    }
}

async fn serve(sock: TcpStream, shared: Arc<Shared>) {
    let _ = sock.set_nodelay(true);
    let (rd, wr) = sock.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let users = shared.users.load(Ordering::Relaxed);
    let _ = tx.send(Out::Line(msg(format!(
        "Welcome to chat server. There are {users} other users on this server. please enter a nickname\r\n"
    ))));
    let w = tokio::spawn(writer(wr, rx));
    reader(rd, tx, shared).await;
    w.abort();
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let flavor = arg("--flavor").unwrap_or_else(|| "current_thread".into());
    let workers: usize = arg("--workers").and_then(|w| w.parse().ok()).unwrap_or(2);
    let port: u16 = arg("--port")
        .or_else(|| std::env::var("PEER_PORT").ok())
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let rt = match flavor.as_str() {
        "current_thread" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        "multi" => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .enable_all()
            .build()?,
        other => {
            eprintln!("unknown --flavor {other:?} (current_thread or multi)");
            std::process::exit(2);
        }
    };
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        eprintln!("telnet listening on {}", listener.local_addr()?);
        let shared = Arc::new(Shared::default());
        loop {
            match listener.accept().await {
                Ok((sock, _)) => {
                    tokio::spawn(serve(sock, shared.clone()));
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    })
}
