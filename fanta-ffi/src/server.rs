//! `fanta_server`: the embedded reference server, for tests and examples without another
//! process.

use std::ffi::{c_char, CString};

use fanta_core::{Server, ServerConfig};

use crate::guard::{borrow, c_string_lossy, guard, guard_value, out, utf8, Failure};
use crate::status::FantaStatus;

/// A running Fantaprotocol v1 reference server inside this process.
///
/// It echoes each request's payload in the response, except that it responds to the payload
/// `PING` with `PONG`. It runs on libfanta's library threads.
///
/// - `fanta_server_start()`: binds a port and starts serving.
/// - `fanta_server_address()`: the bound `host:port`, for `fanta_config_add_address()`.
/// - `fanta_server_requests_received()`: requests received so far.
/// - `fanta_server_drop_connections()`: closes every client connection, as a crash would.
/// - `fanta_server_stop()`: stops accepting and closes every connection.
/// - `fanta_server_free()`: stops the server and frees it.
///
/// Every function except `fanta_server_free()` may be called from any thread at once.
/// In a process forked after the server started, the server's threads are missing:
/// `fanta_server_stop()` and `fanta_server_drop_connections()` return `FANTA_STATUS_FORKED`,
/// and `fanta_server_free()` releases nothing.
pub struct FantaServer {
    server: Server,
    /// The bound address as a C string, lent out by `fanta_server_address()`.
    address: CString,
    /// The process that started the server.
    started_in: u32,
}

impl FantaServer {
    fn check_not_forked(&self) -> Result<(), Failure> {
        if std::process::id() != self.started_in {
            return Err(fanta_core::Error::Forked.into());
        }
        Ok(())
    }
}

/// Starts a reference server listening on `listen`, a `host:port` (port 0 picks a free port),
/// or on a free loopback port (`127.0.0.1:0`) if `listen` is NULL.
///
/// `listen` is borrowed for the duration of the call. On success, writes the server to
/// `*server_out`; the caller owns it and frees it with `fanta_server_free()`. On failure,
/// `*server_out` is left unchanged.
///
/// Returns:
/// - `FANTA_STATUS_OK`: the server is accepting connections;
/// - `FANTA_STATUS_INVALID_ARGUMENT`: `server_out` is NULL or `listen` is not UTF-8;
/// - `FANTA_STATUS_IO`: the address could not be bound (in use, not local, not of the form
///   `host:port`), or the call was made from a completion callback, where it cannot block.
///
/// Thread-safety: may be called from any thread except a completion callback.
#[no_mangle]
pub extern "C" fn fanta_server_start(
    listen: *const c_char,
    server_out: *mut *mut FantaServer,
) -> FantaStatus {
    guard("fanta_server_start", || {
        let server_out = out(server_out, "server_out")?;
        let mut config = ServerConfig::loopback();
        if !listen.is_null() {
            // SAFETY: the caller passes a NUL-terminated string that outlives this call.
            config.listen = unsafe { utf8(listen, "listen")? }.to_owned();
        }

        let listen = config.listen.clone();
        let server = Server::start(config).map_err(|error| {
            Failure::new(
                FantaStatus::Io,
                format!("failed to start a server on {listen:?}: {error}"),
            )
        })?;
        let address = c_string_lossy(&server.local_addr().to_string());
        let server = Box::new(FantaServer {
            server,
            address,
            started_in: std::process::id(),
        });

        // SAFETY: `out` checked that server_out is not NULL; the caller guarantees it is
        // writable.
        unsafe { server_out.write(Box::into_raw(server)) };
        Ok(())
    })
}

/// Writes the server's bound address, such as `"127.0.0.1:40123"`, to `*address_out`.
///
/// The string belongs to the server and stays valid until `fanta_server_free()`; do not free
/// it. It remains readable after `fanta_server_stop()`.
///
/// Returns `FANTA_STATUS_OK`, or `FANTA_STATUS_INVALID_ARGUMENT` if `server` or `address_out`
/// is NULL.
///
/// Thread-safety: may be called from any thread, concurrently with other calls on `server`
/// except `fanta_server_free()`.
#[no_mangle]
pub extern "C" fn fanta_server_address(
    server: *const FantaServer,
    address_out: *mut *const c_char,
) -> FantaStatus {
    guard("fanta_server_address", || {
        // SAFETY: a non-NULL server is live until fanta_server_free.
        let server = unsafe { borrow(server, "server")? };
        let address_out = out(address_out, "address_out")?;
        // SAFETY: `out` checked that address_out is not NULL; the caller guarantees it is
        // writable.
        unsafe { address_out.write(server.address.as_ptr()) };
        Ok(())
    })
}

/// Writes the number of requests the server has received so far, over all connections, to
/// `*count_out`.
///
/// Returns `FANTA_STATUS_OK`, or `FANTA_STATUS_INVALID_ARGUMENT` if `server` or `count_out` is
/// NULL.
///
/// Thread-safety: may be called from any thread, concurrently with other calls on `server`
/// except `fanta_server_free()`.
#[no_mangle]
pub extern "C" fn fanta_server_requests_received(
    server: *const FantaServer,
    count_out: *mut u64,
) -> FantaStatus {
    guard("fanta_server_requests_received", || {
        // SAFETY: a non-NULL server is live until fanta_server_free.
        let server = unsafe { borrow(server, "server")? };
        let count_out = out(count_out, "count_out")?;
        // SAFETY: `out` checked that count_out is not NULL; the caller guarantees it is writable.
        unsafe { count_out.write(server.server.requests_received()) };
        Ok(())
    })
}

/// Closes every client connection at once without responding to the requests in flight, as a
/// server crash would. The server keeps accepting new connections.
///
/// Returns `FANTA_STATUS_OK`, `FANTA_STATUS_INVALID_ARGUMENT` if `server` is NULL, or
/// `FANTA_STATUS_FORKED` in a process forked after the server started.
///
/// Thread-safety: may be called from any thread, concurrently with other calls on `server`
/// except `fanta_server_free()`.
#[no_mangle]
pub extern "C" fn fanta_server_drop_connections(server: *const FantaServer) -> FantaStatus {
    guard("fanta_server_drop_connections", || {
        // SAFETY: a non-NULL server is live until fanta_server_free.
        let server = unsafe { borrow(server, "server")? };
        server.check_not_forked()?;
        server.server.drop_all_connections();
        Ok(())
    })
}

/// Stops the server: it stops accepting and closes every connection without responding to the
/// requests in flight. Idempotent. The server must still be freed with `fanta_server_free()`.
///
/// Returns `FANTA_STATUS_OK`, `FANTA_STATUS_INVALID_ARGUMENT` if `server` is NULL, or
/// `FANTA_STATUS_FORKED` in a process forked after the server started.
///
/// Thread-safety: may be called from any thread, concurrently with other calls on `server`
/// except `fanta_server_free()`.
#[no_mangle]
pub extern "C" fn fanta_server_stop(server: *const FantaServer) -> FantaStatus {
    guard("fanta_server_stop", || {
        // SAFETY: a non-NULL server is live until fanta_server_free.
        let server = unsafe { borrow(server, "server")? };
        server.check_not_forked()?;
        server.server.shutdown();
        Ok(())
    })
}

/// Stops the server as `fanta_server_stop()` does and frees it. NULL is ignored.
///
/// Thread-safety: must be the last call on `server`; no other thread may be using it.
#[no_mangle]
pub extern "C" fn fanta_server_free(server: *mut FantaServer) {
    guard_value("fanta_server_free", (), || {
        if server.is_null() {
            return Ok(());
        }
        // SAFETY: a non-NULL server came from Box::into_raw in fanta_server_start, and the
        // caller gives up its last use here.
        let server = unsafe { Box::from_raw(server) };
        if server.check_not_forked().is_err() {
            // Stopping takes a lock that a parent thread may have held at the moment of the
            // fork. The memory is the parent's copy; leave it.
            std::mem::forget(server);
        }
        Ok(())
    })
}
