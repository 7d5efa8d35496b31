//! The HELLO exchange and the session task that serves one connection.
//!
//! The session task owns the socket and the connection's registry entry. It ends on the first
//! of: a read or write failure, the server closing the socket, a protocol violation, a
//! connection-level ERROR, the end of a GOAWAY drain, or pool shutdown. On every one of those
//! exits it drops the registry entry first and then fails the waiting callers, so no caller is
//! routed to a connection whose waiters have already been failed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::Connection;
use crate::error::Error;
use crate::protocol::{self, Decoder, FrameKind, ProtocolError, ServerHello};
use crate::registry::{Group, Registration};
use crate::shutdown::Shutdown;

/// The cause recorded when a connection closes after a completed GOAWAY drain.
pub(crate) const GOAWAY_DRAINED: &str = "server sent GOAWAY";

/// Read buffer growth step; also the initial capacity.
const READ_CHUNK: usize = 32 * 1024;

/// A write buffer that grew past this after a large frame is replaced by a small one.
const WRITE_BUFFER_SHRINK_THRESHOLD: usize = 4 * 1024 * 1024;

/// The result of a completed HELLO exchange.
pub(crate) struct Handshake {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub hello: ServerHello,
    /// Bytes read after the server's HELLO; they belong to the next frames.
    pub leftover: BytesMut,
}

/// The cause of a failed connection attempt. It is only logged, never returned to a caller.
#[derive(Debug)]
pub(crate) enum HandshakeError {
    Connect(std::io::Error),
    Io(std::io::Error),
    Closed,
    TimedOut,
    Protocol(ProtocolError),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Connect(e) => write!(f, "connect failed: {e}"),
            HandshakeError::Io(e) => write!(f, "HELLO exchange failed: {e}"),
            HandshakeError::Closed => f.write_str("server closed the connection during HELLO"),
            HandshakeError::TimedOut => f.write_str("connect and HELLO timed out"),
            HandshakeError::Protocol(e) => write!(f, "invalid HELLO: {e}"),
        }
    }
}

/// Connects to `addr`, sends the client HELLO and waits for the server's.
///
/// The whole exchange is bounded by `timeout`. The connection is only usable, and only
/// registered, after the server's HELLO arrived with version 1.
pub(crate) async fn handshake(
    addr: &str,
    decoder: &Decoder,
    timeout: Duration,
) -> Result<Handshake, HandshakeError> {
    match tokio::time::timeout(timeout, handshake_inner(addr, decoder)).await {
        Ok(result) => result,
        Err(_) => Err(HandshakeError::TimedOut),
    }
}

async fn handshake_inner(addr: &str, decoder: &Decoder) -> Result<Handshake, HandshakeError> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(HandshakeError::Connect)?;
    // Frames are batched by the writer already; Nagle's delay would only add latency.
    stream.set_nodelay(true).map_err(HandshakeError::Io)?;
    let peer = stream.peer_addr().map_err(HandshakeError::Io)?;

    let mut hello = BytesMut::with_capacity(16);
    protocol::encode_frame(
        &mut hello,
        FrameKind::Hello,
        0,
        &protocol::client_hello_payload(),
    );
    stream.write_all(&hello).await.map_err(HandshakeError::Io)?;

    let mut buffer = BytesMut::with_capacity(READ_CHUNK);
    let frame = loop {
        if let Some(frame) = decoder
            .decode(&mut buffer)
            .map_err(HandshakeError::Protocol)?
        {
            break frame;
        }
        let read = stream
            .read_buf(&mut buffer)
            .await
            .map_err(HandshakeError::Io)?;
        if read == 0 {
            return Err(HandshakeError::Closed);
        }
    };

    if frame.kind != FrameKind::Hello || frame.id != 0 {
        return Err(HandshakeError::Protocol(ProtocolError::UnexpectedFrame {
            kind: frame.kind,
            id: frame.id,
        }));
    }
    let hello = ServerHello::decode(&frame.payload).map_err(HandshakeError::Protocol)?;

    Ok(Handshake {
        stream,
        peer,
        hello,
        leftover: buffer,
    })
}

/// Serves `connection` over `stream` until it ends, and returns the cause.
///
/// Registers the connection in `group` for the session's lifetime. When this returns, or when
/// the task running it panics or is aborted, the registration is gone. The supervisor then calls
/// [`Connection::close`] again, which fails any callers that a panic left waiting.
pub(crate) async fn run_session(
    stream: TcpStream,
    leftover: BytesMut,
    connection: Arc<Connection>,
    group: Group<Arc<Connection>>,
    decoder: Decoder,
    shutdown: Arc<Shutdown>,
    drain_timeout: Duration,
) -> Error {
    let (mut reader, mut writer) = stream.into_split();
    let mut registration = Some(group.register(connection.clone()));

    let cause = tokio::select! {
        cause = read_loop(&mut reader, leftover, &connection, &mut registration, &decoder, drain_timeout) => cause,
        cause = write_loop(&mut writer, &connection) => cause,
        cause = deadline_loop(&connection) => cause,
        _ = shutdown.wait() => Error::PoolClosed,
        _ = connection.fault.notified() => panic!("panic injected into the connection task"),
    };

    // Unregister before failing the waiters: a caller that picks this connection between the
    // two steps would otherwise be queued after the failures were sent.
    drop(registration);
    connection.close(cause.clone());
    cause
}

async fn read_loop(
    reader: &mut OwnedReadHalf,
    leftover: BytesMut,
    connection: &Connection,
    registration: &mut Option<Registration<Arc<Connection>>>,
    decoder: &Decoder,
    drain_timeout: Duration,
) -> Error {
    let mut buffer = leftover;
    // Set on GOAWAY: by then every request still in flight gets its response or is failed.
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    // Results decoded from one read, delivered under one lock; kept to reuse their capacity.
    let mut batch = Vec::new();
    let mut taken = Vec::new();

    loop {
        loop {
            let decoded = decoder.decode(&mut buffer);
            if !matches!(decoded, Ok(Some(ref frame)) if is_result(frame)) {
                // Results queued before any other frame, or the end of the data, go out first.
                connection.complete_batch(&mut batch, &mut taken);
            }
            let frame = match decoded {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(addr = %connection.address(), conn = connection.slot(), %error, "protocol error, closing connection");
                    return Error::Protocol(error);
                }
            };

            match frame.kind {
                FrameKind::Response => batch.push((frame.id, Ok(frame.payload))),
                FrameKind::Error if frame.id == 0 => {
                    let message = String::from_utf8_lossy(&frame.payload).into_owned();
                    tracing::warn!(addr = %connection.address(), conn = connection.slot(), error = %message, "server failed the connection");
                    return Error::Disconnected(format!("server closed the connection: {message}"));
                }
                FrameKind::Error => {
                    let message = String::from_utf8_lossy(&frame.payload).into_owned();
                    batch.push((frame.id, Err(Error::Server(message))));
                }
                FrameKind::Ping => {
                    connection.queue_frame(FrameKind::Pong, frame.id, &frame.payload)
                }
                FrameKind::Pong => {}
                FrameKind::Goaway => {
                    let reason = String::from_utf8_lossy(&frame.payload);
                    tracing::info!(addr = %connection.address(), conn = connection.slot(), %reason, in_flight = connection.in_flight(), "GOAWAY received, draining connection");
                    // Leave the registry first, then refuse requests that loaded an old snapshot.
                    registration.take();
                    connection.stop_accepting();
                    drain_deadline = Some(tokio::time::Instant::now() + drain_timeout);
                }
                FrameKind::Hello | FrameKind::Request => {
                    let error = ProtocolError::UnexpectedFrame {
                        kind: frame.kind,
                        id: frame.id,
                    };
                    tracing::warn!(addr = %connection.address(), conn = connection.slot(), %error, "protocol error, closing connection");
                    return Error::Protocol(error);
                }
            }
        }

        if drain_deadline.is_some() && connection.in_flight() == 0 {
            return Error::Disconnected(GOAWAY_DRAINED.into());
        }

        buffer.reserve(READ_CHUNK);
        let read = match drain_deadline {
            None => reader.read_buf(&mut buffer).await,
            Some(deadline) => {
                match tokio::time::timeout_at(deadline, reader.read_buf(&mut buffer)).await {
                    Ok(read) => read,
                    Err(_) => {
                        tracing::warn!(addr = %connection.address(), conn = connection.slot(), in_flight = connection.in_flight(), "GOAWAY drain timed out, closing connection");
                        return Error::Disconnected(
                            "server did not finish its GOAWAY drain in time".into(),
                        );
                    }
                }
            }
        };
        match read {
            Ok(0) => return Error::Disconnected("server closed the connection".into()),
            Ok(_) => {}
            Err(error) => return Error::Disconnected(format!("read failed: {error}")),
        }
    }
}

/// Fails requests at their deadlines, with one timer for the whole connection. Never returns.
async fn deadline_loop(connection: &Connection) -> Error {
    loop {
        let Some(deadline) = connection.next_deadline() else {
            connection.deadline_changed.notified().await;
            continue;
        };
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => connection.expire_due(),
            // An earlier deadline was queued; re-arm for it.
            _ = connection.deadline_changed.notified() => {}
        }
    }
}

/// Whether `frame` answers one request (a RESPONSE, or an ERROR with a non-zero id).
fn is_result(frame: &crate::protocol::Frame) -> bool {
    match frame.kind {
        FrameKind::Response => true,
        FrameKind::Error => frame.id != 0,
        _ => false,
    }
}

async fn write_loop(writer: &mut OwnedWriteHalf, connection: &Connection) -> Error {
    let mut buffer = BytesMut::with_capacity(READ_CHUNK);

    loop {
        connection.write_ready.notified().await;

        // Keep writing until the queue is empty: callers that queued frames while a write was
        // in progress did not notify, because the buffer they appended to was not empty.
        loop {
            connection.take_write_buffer(&mut buffer);
            if buffer.is_empty() {
                break;
            }
            if let Err(error) = writer.write_all(&buffer).await {
                return Error::Disconnected(format!("write failed: {error}"));
            }

            if buffer.capacity() > WRITE_BUFFER_SHRINK_THRESHOLD {
                buffer = BytesMut::with_capacity(READ_CHUNK);
            } else {
                buffer.clear();
            }
        }
    }
}
