//! libfanta's core: a routing pool for multiplexed request/response connections.
//!
//! A *checkout pool* lends each connection to one caller at a time. A *routing pool* lets many
//! callers share each connection at once, because the protocol tags every request with an id
//! and responses may come back in any order. libfanta keeps a small set of long-lived TCP
//! connections speaking Fantaprotocol v1 and routes each request to one of them:
//!
//! 1. A connection registers in the pool's [`registry`] once its HELLO exchange completes, and
//!    unregisters the moment it disconnects, receives GOAWAY or its task dies.
//! 2. A caller loads the registry snapshot (no lock, no allocation), and a [`strategy`] picks a
//!    connection with room for another request.
//! 3. The caller takes a request id on that [`connection`] and queues its frame; the
//!    connection's writer sends queued frames from many callers in one syscall.
//! 4. The connection's reader matches each response to its caller by id.
//!
//! A [`supervisor`] per connection slot reconnects with exponential backoff and full jitter.
//! Every request has a deadline and ends with exactly one response or one [`Error`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), fanta_core::Error> {
//! use fanta_core::{Pool, PoolConfig};
//!
//! let pool = Pool::open(PoolConfig::new(["127.0.0.1:7878"]).connections_per_address(4))?;
//! let response = pool.request(b"PING").await?;
//! assert_eq!(&response[..], b"PONG");
//! # Ok(()) }
//! ```
//!
//! The [`server`] module is the reference server, also built as the `fanta-server` binary.

pub mod config;
pub mod connection;
pub mod error;
pub mod pool;
pub mod protocol;
pub mod registry;
pub mod runtime;
pub mod server;
pub mod stats;
pub mod strategy;

mod shutdown;
mod supervisor;

pub use bytes::Bytes;
pub use config::{Backoff, PoolConfig};
pub use error::{Error, ErrorKind};
pub use pool::{Pool, RequestFuture, RequestHandle};
pub use server::{Server, ServerConfig};
pub use stats::{ConnectionState, ConnectionStats, ErrorCounts, Stats};
pub use strategy::Strategy;

/// The crate version, as in Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
