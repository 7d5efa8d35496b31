//! A minimal hand-written pipelined Fantaprotocol client: the practical limit that the pool is
//! measured against.
//!
//! It keeps what a multiplexing client cannot do without: request ids, a table of waiting
//! callers, one writer and one reader task per connection, and writes batched from many callers.
//! It leaves out everything else the pool does: deadlines, reconnection, capacity checks,
//! counters, ERROR frames and PING. A server error or a closed socket ends the benchmark with a
//! panic.
//!
//! Frames are encoded from the layout in docs/PROTOCOL.md, without using fanta-core's codec, so
//! that the comparison does not share code with the pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};

pub const KIND_HELLO: u8 = 0;
pub const KIND_REQUEST: u8 = 1;
pub const KIND_RESPONSE: u8 = 2;

/// Bytes of a frame before its payload: length (u32), kind (u8), id (u32).
pub const HEADER_LEN: usize = 9;

/// Appends one frame to `out`.
pub fn encode_frame(out: &mut Vec<u8>, kind: u8, id: u32, payload: &[u8]) {
    let length = (payload.len() + 5) as u32;
    out.extend_from_slice(&length.to_be_bytes());
    out.push(kind);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
}

/// One decoded frame.
pub struct Frame {
    pub kind: u8,
    pub id: u32,
    pub payload: Bytes,
}

/// Splits the first complete frame off `buffer`, or returns `None` if it is not all there yet.
pub fn decode_frame(buffer: &mut BytesMut) -> Option<Frame> {
    if buffer.len() < 4 {
        return None;
    }
    let length = u32::from_be_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]) as usize;
    assert!(
        length >= 5,
        "server sent a frame length of {length}, below 5"
    );
    if buffer.len() < 4 + length {
        return None;
    }

    buffer.advance(4);
    let mut frame = buffer.split_to(length);
    let kind = frame[0];
    let id = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]);
    frame.advance(5);
    Some(Frame {
        kind,
        id,
        payload: frame.freeze(),
    })
}

/// Connects to `address` and completes the HELLO exchange.
pub async fn connect(address: String) -> TcpStream {
    let address = address.as_str();
    let mut stream = TcpStream::connect(address)
        .await
        .unwrap_or_else(|error| panic!("failed to connect to {address}: {error}"));
    stream.set_nodelay(true).expect("failed to set TCP_NODELAY");

    let mut hello = Vec::new();
    encode_frame(&mut hello, KIND_HELLO, 0, &1u16.to_be_bytes());
    stream
        .write_all(&hello)
        .await
        .expect("failed to send HELLO");

    let mut header = [0u8; 4];
    stream
        .read_exact(&mut header)
        .await
        .expect("failed to read the server's HELLO");
    let length = u32::from_be_bytes(header) as usize;
    let mut rest = vec![0u8; length];
    stream
        .read_exact(&mut rest)
        .await
        .expect("failed to read the server's HELLO");
    assert_eq!(rest[0], KIND_HELLO, "server's first frame is not HELLO");
    stream
}

/// Sends one request on a connection that carries one request at a time and reads its response.
pub async fn request_unpipelined(stream: &mut TcpStream, id: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER_LEN + payload.len());
    encode_frame(&mut frame, KIND_REQUEST, id, payload);
    stream
        .write_all(&frame)
        .await
        .expect("failed to send a request");

    let mut header = [0u8; HEADER_LEN];
    stream
        .read_exact(&mut header)
        .await
        .expect("failed to read a response");
    let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    assert_eq!(
        header[4], KIND_RESPONSE,
        "server sent kind {} where RESPONSE was expected",
        header[4]
    );
    let mut response = vec![0u8; length - 5];
    stream
        .read_exact(&mut response)
        .await
        .expect("failed to read a response");
    response
}

/// Callers waiting on one connection, and the frames not yet written.
struct Shared {
    /// Indexed by request id minus one; `None` for a free id.
    waiting: Vec<Option<oneshot::Sender<Bytes>>>,
    free_ids: Vec<u32>,
    outgoing: Vec<u8>,
}

struct Connection {
    shared: Mutex<Shared>,
    /// Wakes the writer when `outgoing` goes from empty to non-empty.
    write_ready: Notify,
}

/// The hand-written client: a fixed set of connections, taken in turn.
#[derive(Clone)]
pub struct PipelinedClient {
    connections: Arc<Vec<Arc<Connection>>>,
    next: Arc<AtomicUsize>,
}

impl PipelinedClient {
    /// Opens `count` connections to `address` and starts their reader and writer tasks on the
    /// current runtime.
    pub async fn connect(address: &str, count: usize) -> PipelinedClient {
        PipelinedClient::connect_on(&tokio::runtime::Handle::current(), address, count).await
    }

    /// Like [`PipelinedClient::connect`], but the sockets and their reader and writer tasks
    /// belong to `io_runtime`, as the pool's belong to its own runtime.
    pub async fn connect_on(
        io_runtime: &tokio::runtime::Handle,
        address: &str,
        count: usize,
    ) -> PipelinedClient {
        let mut connections = Vec::with_capacity(count);
        for _ in 0..count {
            // A socket registers with the reactor of the runtime that creates it.
            let connecting = io_runtime.spawn(connect(address.to_string()));
            let stream = connecting.await.expect("connect task panicked");
            let (reader, writer) = stream.into_split();
            let connection = Arc::new(Connection {
                shared: Mutex::new(Shared {
                    waiting: Vec::new(),
                    free_ids: Vec::new(),
                    outgoing: Vec::with_capacity(16 * 1024),
                }),
                write_ready: Notify::new(),
            });
            io_runtime.spawn(write_loop(connection.clone(), writer));
            io_runtime.spawn(read_loop(connection.clone(), reader));
            connections.push(connection);
        }
        PipelinedClient {
            connections: Arc::new(connections),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Sends `payload` on the next connection in turn and returns the response payload.
    pub async fn request(&self, payload: &[u8]) -> Bytes {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        let connection = &self.connections[ticket % self.connections.len()];

        let (sender, receiver) = oneshot::channel();
        let wake_writer = {
            let mut shared = connection.shared.lock().unwrap();
            let id = match shared.free_ids.pop() {
                Some(id) => {
                    shared.waiting[id as usize - 1] = Some(sender);
                    id
                }
                None => {
                    shared.waiting.push(Some(sender));
                    shared.waiting.len() as u32
                }
            };
            let wake_writer = shared.outgoing.is_empty();
            encode_frame(&mut shared.outgoing, KIND_REQUEST, id, payload);
            wake_writer
        };

        if wake_writer {
            connection.write_ready.notify_one();
        }
        receiver
            .await
            .expect("connection closed with the request in flight")
    }
}

async fn write_loop(connection: Arc<Connection>, mut writer: OwnedWriteHalf) {
    let mut batch = Vec::with_capacity(16 * 1024);
    loop {
        connection.write_ready.notified().await;
        std::mem::swap(&mut connection.shared.lock().unwrap().outgoing, &mut batch);
        if batch.is_empty() {
            continue;
        }
        if writer.write_all(&batch).await.is_err() {
            return;
        }
        batch.clear();
    }
}

async fn read_loop(connection: Arc<Connection>, mut reader: OwnedReadHalf) {
    let mut buffer = BytesMut::with_capacity(64 * 1024);
    let mut ready = Vec::new();
    loop {
        buffer.reserve(16 * 1024);
        match reader.read_buf(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }

        // Take every answered caller under one lock, then complete them after releasing it.
        {
            let mut shared = connection.shared.lock().unwrap();
            while let Some(frame) = decode_frame(&mut buffer) {
                assert_eq!(
                    frame.kind, KIND_RESPONSE,
                    "server sent kind {} where RESPONSE was expected",
                    frame.kind
                );
                let sender = shared.waiting[frame.id as usize - 1]
                    .take()
                    .expect("response for an id not in flight");
                shared.free_ids.push(frame.id);
                ready.push((sender, frame.payload));
            }
        }
        for (sender, payload) in ready.drain(..) {
            let _ = sender.send(payload);
        }
    }
}
