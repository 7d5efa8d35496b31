//! The Fantaprotocol v1 reference server, embeddable as a library.
//!
//! It echoes each REQUEST's payload back in a RESPONSE, except that the payload `PING` is
//! answered `PONG`. Settings make it answer out of order (a random delay per request), announce
//! and enforce a `max_in_flight`, never answer, or fail requests with a given prefix; tests and
//! benchmarks use those to produce every situation a client must handle. Control methods send
//! GOAWAY to or drop individual connections.
//!
//! # Tasks
//!
//! The accept loop and every connection run as tasks on the runtime the server was started on.
//! A connection's task owns its socket; its frames are queued in a shared buffer that a writer
//! task flushes, so responses produced by many delayed tasks go out in few syscalls.
//! [`Server::shutdown`] stops accepting and closes every connection; dropping the `Server` does
//! the same.
//!
//! A client that breaks the protocol gets an ERROR frame with id 0 and its connection is closed;
//! the server keeps serving the others.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

use crate::protocol::{self, Decoder, Frame, FrameKind, ServerHello};
use crate::shutdown::Shutdown;
use crate::strategy::random_up_to;

/// How long a closing connection waits for its queued frames to be written.
const WRITER_FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// Default listen address of the `fanta-server` binary.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

/// Settings of a [`Server`].
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `host:port` to bind; port 0 picks a free port. Default `127.0.0.1:7878`.
    pub listen: String,
    /// If set, each response is delayed by a random duration in this inclusive range, so that
    /// responses leave in a different order than their requests arrived. Default none.
    pub delay: Option<(Duration, Duration)>,
    /// `max_in_flight` announced in HELLO and enforced per connection: a request beyond it gets
    /// an ERROR. 0, the default, means no limit.
    pub max_in_flight: u32,
    /// Largest frame `length` accepted from a client. Default 16 MiB.
    pub max_frame_length: u32,
    /// Never answer REQUEST frames (HELLO and PING are still answered). Default off.
    pub silent: bool,
    /// Requests whose payload starts with this prefix are answered with an ERROR frame whose
    /// message is the rest of the payload. Default none.
    pub fail_prefix: Option<Bytes>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: DEFAULT_LISTEN.to_string(),
            delay: None,
            max_in_flight: 0,
            max_frame_length: protocol::DEFAULT_MAX_FRAME_LENGTH,
            silent: false,
            fail_prefix: None,
        }
    }
}

impl ServerConfig {
    /// A config that listens on a free loopback port, for tests and embedding.
    pub fn loopback() -> ServerConfig {
        ServerConfig {
            listen: "127.0.0.1:0".to_string(),
            ..ServerConfig::default()
        }
    }
}

/// An instruction sent to a connection task over its control channel.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Command {
    Serve,
    /// Send GOAWAY with this reason, answer what was received, then close.
    GoAway(String),
    /// Close the socket at once, dropping requests in flight.
    Drop,
}

struct ServerShared {
    config: ServerConfig,
    shutdown: Shutdown,
    connections: Mutex<HashMap<u64, watch::Sender<Command>>>,
    next_connection: AtomicU64,
    requests: AtomicU64,
}

/// A running reference server.
pub struct Server {
    local_addr: SocketAddr,
    shared: Arc<ServerShared>,
}

impl Server {
    /// Binds `config.listen` and starts serving on the current tokio runtime.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes closes the listener, if it was bound; nothing
    /// is left serving.
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime.
    pub async fn bind(config: ServerConfig) -> std::io::Result<Server> {
        let listener = TcpListener::bind(&config.listen).await?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(ServerShared {
            config,
            shutdown: Shutdown::new(),
            connections: Mutex::new(HashMap::new()),
            next_connection: AtomicU64::new(1),
            requests: AtomicU64::new(0),
        });

        tracing::info!(addr = %local_addr, "fanta server listening");
        tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Server { local_addr, shared })
    }

    /// Binds and starts serving on the library's internal runtime; callable from any thread
    /// that is not itself running a tokio runtime.
    pub fn start(config: ServerConfig) -> std::io::Result<Server> {
        let runtime = crate::runtime::handle();
        if crate::runtime::in_runtime_context() {
            return Err(std::io::Error::other(
                "Server::start blocks; call Server::bind from inside a tokio runtime",
            ));
        }
        runtime.handle().block_on(Server::bind(config))
    }

    /// The bound address, with the port the system picked if the config asked for port 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Ids of the open connections, in accept order.
    pub fn connection_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.lock_connections().keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Sends GOAWAY on connection `id`; it answers what it already received and then closes.
    /// Returns whether the connection was open.
    pub fn goaway(&self, id: u64, reason: &str) -> bool {
        self.command(id, Command::GoAway(reason.to_string()))
    }

    /// Closes connection `id` at once, without answering its requests in flight.
    /// Returns whether the connection was open.
    pub fn drop_connection(&self, id: u64) -> bool {
        self.command(id, Command::Drop)
    }

    /// Closes every open connection at once; the listener keeps accepting.
    pub fn drop_all_connections(&self) {
        for id in self.connection_ids() {
            self.drop_connection(id);
        }
    }

    /// REQUEST frames received so far over all connections.
    pub fn requests_received(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Stops accepting and closes every connection. Idempotent.
    pub fn shutdown(&self) {
        self.shared.shutdown.trigger();
        self.drop_all_connections();
    }

    fn command(&self, id: u64, command: Command) -> bool {
        match self.lock_connections().get(&id) {
            Some(sender) => sender.send(command).is_ok(),
            None => false,
        }
    }

    fn lock_connections(&self) -> std::sync::MutexGuard<'_, HashMap<u64, watch::Sender<Command>>> {
        self.shared
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<ServerShared>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shared.shutdown.wait() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let id = shared.next_connection.fetch_add(1, Ordering::Relaxed);
                let (sender, receiver) = watch::channel(Command::Serve);
                {
                    let mut connections =
                        shared.connections.lock().unwrap_or_else(|p| p.into_inner());
                    // Checked under the lock that shutdown's sweep takes, so a connection
                    // accepted while the server stops is either swept or never registered.
                    if shared.shutdown.is_triggered() {
                        break;
                    }
                    connections.insert(id, sender);
                }
                tokio::spawn(serve_connection(stream, peer, id, receiver, shared.clone()));
            }
            Err(error) => {
                // Typically EMFILE; back off briefly instead of spinning on the error.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    tracing::info!("fanta server stopped accepting");
}

/// The writer side of one server connection, shared by its reader and its delayed responders.
struct Outbox {
    buffer: Mutex<BytesMut>,
    ready: Notify,
    in_flight: AtomicU32,
    drained: Notify,
    /// Set when the connection ends; the writer then flushes, shuts down its half and exits.
    closing: AtomicBool,
}

impl Outbox {
    fn push(&self, kind: FrameKind, id: u32, payload: &[u8]) {
        let wake = {
            let mut buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
            let wake = buffer.is_empty();
            protocol::encode_frame(&mut buffer, kind, id, payload);
            wake
        };
        if wake {
            self.ready.notify_one();
        }
    }

    fn answer(&self, id: u32, kind: FrameKind, payload: &[u8]) {
        self.push(kind, id, payload);
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.drained.notify_waiters();
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    mut control: watch::Receiver<Command>,
    shared: Arc<ServerShared>,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let outbox = Arc::new(Outbox {
        buffer: Mutex::new(BytesMut::with_capacity(16 * 1024)),
        ready: Notify::new(),
        in_flight: AtomicU32::new(0),
        drained: Notify::new(),
        closing: AtomicBool::new(false),
    });
    let mut writer_task = tokio::spawn(write_loop(writer, outbox.clone()));
    let decoder = Decoder::new(shared.config.max_frame_length);
    let mut buffer = BytesMut::with_capacity(32 * 1024);
    let mut greeted = false;

    tracing::debug!(%peer, conn = id, "connection accepted");
    let end = loop {
        match drain_frames(&decoder, &mut buffer, &mut greeted, &outbox, &shared) {
            Ok(()) => {}
            Err(message) => {
                tracing::warn!(%peer, conn = id, error = %message, "client broke the protocol, closing");
                outbox.push(FrameKind::Error, 0, message.as_bytes());
                break "protocol error";
            }
        }

        buffer.reserve(32 * 1024);
        tokio::select! {
            read = reader.read_buf(&mut buffer) => match read {
                Ok(0) => break "client closed",
                Ok(_) => {}
                Err(_) => break "read failed",
            },
            _ = shared.shutdown.wait() => {
                writer_task.abort();
                break "server shut down";
            }
            changed = control.changed() => {
                let command = if changed.is_ok() { control.borrow().clone() } else { Command::Drop };
                match command {
                    Command::Serve => {}
                    Command::Drop => {
                        writer_task.abort();
                        break "dropped";
                    }
                    Command::GoAway(reason) => {
                        outbox.push(FrameKind::Goaway, 0, reason.as_bytes());
                        wait_drained(&outbox).await;
                        break "goaway";
                    }
                }
            }
        }
    };

    // Let the writer flush what is queued (the final ERROR or the last responses) and shut its
    // half down. A peer that stopped reading gets a bounded wait, then the socket is dropped.
    outbox.closing.store(true, Ordering::Release);
    outbox.ready.notify_one();
    if tokio::time::timeout(WRITER_FLUSH_TIMEOUT, &mut writer_task)
        .await
        .is_err()
    {
        writer_task.abort();
    }
    shared
        .connections
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    tracing::debug!(%peer, conn = id, reason = end, "connection closed");
}

async fn wait_drained(outbox: &Outbox) {
    loop {
        let drained = outbox.drained.notified();
        tokio::pin!(drained);
        drained.as_mut().enable();
        if outbox.in_flight.load(Ordering::Acquire) == 0 {
            return;
        }
        drained.await;
    }
}

/// Handles every complete frame in `buffer`. Returns the message of a protocol violation.
fn drain_frames(
    decoder: &Decoder,
    buffer: &mut BytesMut,
    greeted: &mut bool,
    outbox: &Arc<Outbox>,
    shared: &Arc<ServerShared>,
) -> Result<(), String> {
    while let Some(frame) = decoder.decode(buffer).map_err(|e| e.to_string())? {
        if !*greeted {
            greet(&frame, outbox, &shared.config)?;
            *greeted = true;
            continue;
        }

        match frame.kind {
            FrameKind::Request => handle_request(frame, outbox, shared)?,
            FrameKind::Ping => outbox.push(FrameKind::Pong, frame.id, &frame.payload),
            FrameKind::Pong => {}
            other => return Err(format!("unexpected {other:?} frame from a client")),
        }
    }
    Ok(())
}

fn greet(frame: &Frame, outbox: &Outbox, config: &ServerConfig) -> Result<(), String> {
    if frame.kind != FrameKind::Hello || frame.id != 0 {
        return Err(format!(
            "expected HELLO with id 0 as the first frame, got {:?} with id {}",
            frame.kind, frame.id
        ));
    }
    protocol::decode_client_hello(&frame.payload).map_err(|e| e.to_string())?;

    let hello = ServerHello {
        version: protocol::VERSION,
        max_frame_length: config.max_frame_length,
        max_in_flight: config.max_in_flight,
    };
    outbox.push(FrameKind::Hello, 0, &hello.encode());
    Ok(())
}

fn handle_request(frame: Frame, outbox: &Arc<Outbox>, shared: &ServerShared) -> Result<(), String> {
    if frame.id == 0 {
        return Err("REQUEST with id 0".to_string());
    }
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let config = &shared.config;
    if config.silent {
        return Ok(());
    }

    let in_flight = outbox.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
    if config.max_in_flight != 0 && in_flight > config.max_in_flight {
        outbox.answer(frame.id, FrameKind::Error, b"too many requests in flight");
        return Ok(());
    }

    let (kind, payload) = response_for(&frame.payload, config);
    match config.delay {
        None => outbox.answer(frame.id, kind, &payload),
        Some((min, max)) => {
            let span = max.saturating_sub(min).as_micros() as u64;
            let delay = min + Duration::from_micros(random_up_to(span));
            let outbox = outbox.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                outbox.answer(frame.id, kind, &payload);
            });
        }
    }
    Ok(())
}

fn response_for(payload: &Bytes, config: &ServerConfig) -> (FrameKind, Bytes) {
    if payload.as_ref() == b"PING" {
        return (FrameKind::Response, Bytes::from_static(b"PONG"));
    }
    if let Some(prefix) = &config.fail_prefix {
        if payload.starts_with(prefix) {
            return (FrameKind::Error, payload.slice(prefix.len()..));
        }
    }
    (FrameKind::Response, payload.clone())
}

async fn write_loop(mut writer: OwnedWriteHalf, outbox: Arc<Outbox>) {
    let mut batch = BytesMut::with_capacity(16 * 1024);
    loop {
        outbox.ready.notified().await;
        loop {
            {
                let mut buffer = outbox.buffer.lock().unwrap_or_else(|p| p.into_inner());
                std::mem::swap(&mut *buffer, &mut batch);
            }
            if batch.is_empty() {
                break;
            }
            if writer.write_all(&batch).await.is_err() {
                return;
            }
            batch.clear();
        }
        if outbox.closing.load(Ordering::Acquire) {
            let _ = writer.shutdown().await;
            return;
        }
    }
}
