//! Helpers shared by the integration tests: server processes and hand-driven raw servers.
//!
//! Everything listens on 127.0.0.1 with a port picked by the system.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fanta_core::protocol::{self, FrameKind, ServerHello};
use fanta_core::{Pool, PoolConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A `fanta-server` child process, killed on drop.
pub struct ServerProcess {
    child: Child,
    pub address: String,
}

impl ServerProcess {
    /// Starts the `fanta-server` binary with `args` and waits for its `listening on` line.
    pub fn start(args: &[&str]) -> ServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fanta-server"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("failed to start fanta-server");

        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("failed to read fanta-server output");
        let address = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from fanta-server: {line:?}"))
            .to_string();
        ServerProcess { child, address }
    }

    /// Kills the process and waits for it to exit.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `condition` every millisecond until it is true or `timeout` passes. Returns whether
/// it became true.
pub async fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    condition()
}

/// Opens a pool against `address` with test-friendly backoff.
pub fn open_pool(address: &str, connections: usize) -> Pool {
    Pool::open(
        PoolConfig::new([address])
            .connections_per_address(connections)
            .backoff(fanta_core::Backoff {
                initial: Duration::from_millis(5),
                max: Duration::from_millis(50),
                multiplier: 2.0,
            }),
    )
    .expect("valid pool config")
}

/// A listener whose connections the test drives byte by byte.
pub struct RawServer {
    pub listener: TcpListener,
    pub address: String,
}

impl RawServer {
    pub async fn bind() -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        RawServer { listener, address }
    }

    /// Accepts one connection and completes the HELLO exchange with the given limits.
    pub async fn accept_with_hello(&self, max_in_flight: u32) -> TcpStream {
        let (mut stream, _) = self.listener.accept().await.unwrap();
        let frame = read_frame(&mut stream).await.expect("client HELLO");
        assert_eq!(frame.0, FrameKind::Hello as u8);

        let hello = ServerHello {
            version: protocol::VERSION,
            max_frame_length: protocol::DEFAULT_MAX_FRAME_LENGTH,
            max_in_flight,
        };
        write_frame(&mut stream, FrameKind::Hello as u8, 0, &hello.encode()).await;
        stream
    }
}

/// Reads one frame as `(kind, id, payload)`; `None` at end of stream.
pub async fn read_frame(stream: &mut TcpStream) -> Option<(u8, u32, Vec<u8>)> {
    let mut header = [0u8; 9];
    stream.read_exact(&mut header).await.ok()?;
    let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let id = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
    let mut payload = vec![0u8; length as usize - 5];
    stream.read_exact(&mut payload).await.ok()?;
    Some((header[4], id, payload))
}

pub async fn write_frame(stream: &mut TcpStream, kind: u8, id: u32, payload: &[u8]) {
    let mut bytes = Vec::with_capacity(9 + payload.len());
    bytes.extend_from_slice(&(payload.len() as u32 + 5).to_be_bytes());
    bytes.push(kind);
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes.extend_from_slice(payload);
    stream.write_all(&bytes).await.unwrap();
}
