//! `fanta_pool`: opening a pool, blocking and asynchronous requests, closing.

use std::ffi::{c_char, c_void, CString};
use std::time::Duration;

use fanta_core::{Bytes, Error, Pool};

use crate::config::FantaConfig;
use crate::guard::{borrow, bytes, c_string_lossy, guard, guard_value, out, Failure};
use crate::status::FantaStatus;

/// A routing connection pool, opened with `fanta_pool_open()`.
///
/// - `fanta_pool_open()`: opens a pool from a config.
/// - `fanta_pool_request()`: sends a request and blocks until its response.
/// - `fanta_pool_submit()`: sends a request and returns at once; a callback receives the result.
/// - `fanta_pool_wait_connected()`: blocks until some connections are up.
/// - `fanta_pool_stats()`, `fanta_pool_connection_stats()`: counters and connection states.
/// - `fanta_pool_close()`: fails every pending request and stops the pool.
/// - `fanta_pool_free()`: closes the pool and frees it.
///
/// Every function on a pool may be called from any number of threads at once, except
/// `fanta_pool_free()`, which must be the last call on the pool.
///
/// # Fork
///
/// A pool's connections run on library threads, which `fork()` does not copy. In a child
/// process, every call on a pool opened before the fork returns `FANTA_STATUS_FORKED` at once
/// (`fanta_pool_close()` and `fanta_pool_free()` succeed but release nothing, because the pool's
/// memory is the parent's copy). A pool opened in the child works normally.
pub struct FantaPool {
    pool: Pool,
    /// Each configured address as a C string, lent out by `fanta_pool_connection_stats()`.
    addresses: Vec<(String, CString)>,
    /// The process that opened the pool; in any other process the pool's threads are missing.
    opened_in: u32,
}

impl FantaPool {
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    pub(crate) fn address(&self, address: &str) -> *const c_char {
        self.addresses
            .iter()
            .find(|(configured, _)| configured == address)
            .map_or(c"".as_ptr(), |(_, converted)| converted.as_ptr())
    }

    /// Fails with `FANTA_STATUS_FORKED` in a process other than the one that opened the pool,
    /// for the calls whose fanta-core counterpart would take locks that a parent thread may
    /// have held at the moment of the fork.
    pub(crate) fn check_not_forked(&self) -> Result<(), Failure> {
        if self.is_forked() {
            return Err(Error::Forked.into());
        }
        Ok(())
    }

    fn is_forked(&self) -> bool {
        std::process::id() != self.opened_in
    }
}

/// Converts a deadline argument: 0 selects the pool's default deadline.
fn timeout_from_ms(timeout_ms: u64) -> Option<Duration> {
    (timeout_ms != 0).then(|| Duration::from_millis(timeout_ms))
}

/// Opens a pool from `config` and starts connecting in the background.
///
/// Returns before any connection is made, so the pool may be opened before its servers are up.
/// Requests wait for a connection (see `fanta_config_set_wait_for_connection()`), and
/// `fanta_pool_wait_connected()` waits explicitly.
///
/// The pool copies the settings; `config` stays owned by the caller and may be freed or reused
/// at once. On success, writes the pool to `*pool_out`; the caller owns it and frees it with
/// `fanta_pool_free()`. On failure, `*pool_out` is left unchanged.
///
/// Returns:
/// - `FANTA_STATUS_OK` on success;
/// - `FANTA_STATUS_INVALID_ARGUMENT` if `config` or `pool_out` is NULL, or a setting is
///   invalid: no address, an address not of the form `host:port`, a value out of range, or an
///   unknown strategy. The message names the setting, the expected range and the value given.
///
/// Thread-safety: may be called from any thread, also from a completion callback.
#[no_mangle]
pub extern "C" fn fanta_pool_open(
    config: *const FantaConfig,
    pool_out: *mut *mut FantaPool,
) -> FantaStatus {
    guard("fanta_pool_open", || {
        // SAFETY: a non-NULL config is a live FantaConfig that no thread mutates during this
        // call, as its documentation requires.
        let config = unsafe { borrow(config, "config")? };
        let pool_out = out(pool_out, "pool_out")?;

        let pool_config = config.to_pool_config();
        let addresses = pool_config
            .addresses()
            .iter()
            .map(|address| (address.clone(), c_string_lossy(address)))
            .collect();
        let pool = Pool::open(pool_config)?;
        let pool = Box::new(FantaPool {
            pool,
            addresses,
            opened_in: std::process::id(),
        });

        // SAFETY: `out` checked that pool_out is not NULL; the caller guarantees it is writable.
        unsafe { pool_out.write(Box::into_raw(pool)) };
        Ok(())
    })
}

/// Closes a pool: stops connecting, closes every connection, and fails every request in flight
/// or waiting for a connection with `FANTA_STATUS_POOL_CLOSED`. Later requests fail with the
/// same status. Idempotent.
///
/// Does not free the pool. The completion callbacks of asynchronous requests that are queued on
/// a connection run with `FANTA_STATUS_POOL_CLOSED` on the calling thread, before this function
/// returns. Those still waiting for a connection run on library threads, possibly after it
/// returns.
///
/// Returns `FANTA_STATUS_OK`, or `FANTA_STATUS_INVALID_ARGUMENT` if `pool` is NULL.
/// Thread-safety: may be called from any thread, concurrently with requests on the same pool,
/// and from inside a completion callback.
#[no_mangle]
pub extern "C" fn fanta_pool_close(pool: *const FantaPool) -> FantaStatus {
    guard("fanta_pool_close", || {
        // SAFETY: a non-NULL pool is live until fanta_pool_free, which must not run concurrently.
        let pool = unsafe { borrow(pool, "pool")? };
        if !pool.is_forked() {
            pool.pool.close();
        }
        Ok(())
    })
}

/// Closes the pool as `fanta_pool_close()` does, then frees it. NULL is ignored.
///
/// Pending asynchronous requests still get their completion, with `FANTA_STATUS_POOL_CLOSED`,
/// possibly after this function returns: keep each `user_data` valid until its callback has
/// run. Responses already returned by `fanta_pool_request()` stay valid; they are freed with
/// `fanta_response_free()` as usual.
///
/// Thread-safety: must be the last call on `pool`; no other thread may be using it. May be
/// called from inside a completion callback of another pool, or of this pool if no other
/// thread uses it.
#[no_mangle]
pub extern "C" fn fanta_pool_free(pool: *mut FantaPool) {
    guard_value("fanta_pool_free", (), || {
        if pool.is_null() {
            return Ok(());
        }
        // SAFETY: a non-NULL pool came from Box::into_raw in fanta_pool_open, and the caller
        // gives up its last use here.
        let pool = unsafe { Box::from_raw(pool) };
        if pool.is_forked() {
            // The parent's threads may have held the pool's locks at the moment of the fork, so
            // dropping it here could deadlock. Its memory is the parent's copy; leave it.
            std::mem::forget(pool);
        }
        Ok(())
    })
}

/// A response returned by `fanta_pool_request()`, owned by the caller.
///
/// - `fanta_response_data()`: the response bytes.
/// - `fanta_response_len()`: their length.
/// - `fanta_response_free()`: frees the response.
///
/// A response is immutable, so its functions may be called from any thread at once. It does
/// not depend on its pool and may outlive it.
pub struct FantaResponse {
    payload: Bytes,
}

/// Sends `payload` through the pool and blocks the calling thread until the response arrives,
/// the deadline passes, or the request fails.
///
/// `payload` is `payload_len` bytes, borrowed only for the duration of the call; it may be NULL
/// when `payload_len` is 0. `timeout_ms` is the deadline in milliseconds from now, or 0 for the
/// pool's default.
///
/// On success, writes a new response to `*response_out`; the caller owns it, reads it with
/// `fanta_response_data()` and `fanta_response_len()`, and frees it with
/// `fanta_response_free()`. On failure, `*response_out` is left unchanged and
/// `fanta_last_error_message()` returns the cause.
///
/// Returns:
/// - `FANTA_STATUS_OK`: `*response_out` contains the response;
/// - `FANTA_STATUS_TIMEOUT`: the deadline passed; the server may still process the request;
/// - `FANTA_STATUS_DISCONNECTED`: the connection closed with the request in flight;
/// - `FANTA_STATUS_NO_CONNECTION`: no connection was routable (see
///   `fanta_config_set_wait_for_connection()`);
/// - `FANTA_STATUS_SERVER`: the server rejected the request with an error response; the message
///   contains the server's text;
/// - `FANTA_STATUS_PROTOCOL`: the connection broke the protocol and was closed;
/// - `FANTA_STATUS_POOL_CLOSED`: the pool was closed before or during the request;
/// - `FANTA_STATUS_INVALID_ARGUMENT`: `pool` or `response_out` is NULL, `payload` is NULL with
///   a non-zero length, the payload is larger than the server accepts, or `timeout_ms` is
///   more than one year;
/// - `FANTA_STATUS_BLOCKING_IN_RUNTIME`: called from inside a completion callback;
/// - `FANTA_STATUS_FORKED`: the pool was opened before this process forked.
///
/// Thread-safety: any number of threads may call this on one pool at once; they share its
/// connections. It must not be called from a completion callback, where it returns
/// `FANTA_STATUS_BLOCKING_IN_RUNTIME` instead of blocking.
#[no_mangle]
pub extern "C" fn fanta_pool_request(
    pool: *const FantaPool,
    payload: *const u8,
    payload_len: usize,
    timeout_ms: u64,
    response_out: *mut *mut FantaResponse,
) -> FantaStatus {
    guard("fanta_pool_request", || {
        // SAFETY: a non-NULL pool is live until fanta_pool_free, which must not run concurrently.
        let pool = unsafe { borrow(pool, "pool")? };
        // SAFETY: the caller guarantees payload_len readable bytes for the duration of the call.
        let payload = unsafe { bytes(payload, payload_len, "payload")? };
        let response_out = out(response_out, "response_out")?;

        let payload = pool
            .pool
            .request_blocking(payload, timeout_from_ms(timeout_ms))?;

        let response = Box::into_raw(Box::new(FantaResponse { payload }));
        // SAFETY: `out` checked that response_out is not NULL; the caller guarantees it is
        // writable.
        unsafe { response_out.write(response) };
        Ok(())
    })
}

/// Returns a pointer to the bytes of `response`, or NULL if `response` is NULL. An empty
/// response may return any non-NULL pointer, which must not be read.
///
/// Ownership: the bytes belong to `response` and stay valid until `fanta_response_free()`.
/// Thread-safety: may be called from any thread, also concurrently on the same response.
#[no_mangle]
pub extern "C" fn fanta_response_data(response: *const FantaResponse) -> *const u8 {
    guard_value("fanta_response_data", std::ptr::null(), || {
        // SAFETY: a non-NULL response is live until fanta_response_free.
        let response = unsafe { borrow(response, "response")? };
        Ok(response.payload.as_ptr())
    })
}

/// Returns the length in bytes of `response`, or 0 if `response` is NULL.
///
/// Thread-safety: may be called from any thread, also concurrently on the same response.
#[no_mangle]
pub extern "C" fn fanta_response_len(response: *const FantaResponse) -> usize {
    guard_value("fanta_response_len", 0, || {
        // SAFETY: a non-NULL response is live until fanta_response_free.
        let response = unsafe { borrow(response, "response")? };
        Ok(response.payload.len())
    })
}

/// Frees a response returned by `fanta_pool_request()`. NULL is ignored.
///
/// `response` and the pointer from `fanta_response_data()` must not be used after this call.
///
/// Thread-safety: may be called from any thread, also after the pool was freed, but must be the
/// last call on `response`.
#[no_mangle]
pub extern "C" fn fanta_response_free(response: *mut FantaResponse) {
    guard_value("fanta_response_free", (), || {
        if !response.is_null() {
            // SAFETY: a non-NULL response came from Box::into_raw in fanta_pool_request, and
            // the caller gives up its last use here.
            drop(unsafe { Box::from_raw(response) });
        }
        Ok(())
    })
}

/// The completion callback of `fanta_pool_submit()`.
///
/// Arguments:
/// - `user_data`: the pointer given to `fanta_pool_submit()`, passed through untouched;
/// - `status`: `FANTA_STATUS_OK`, or one of the request failures listed at
///   `fanta_pool_request()` (`TIMEOUT`, `DISCONNECTED`, `NO_CONNECTION`, `SERVER`, `PROTOCOL`,
///   `POOL_CLOSED`, `FORKED`), or `FANTA_STATUS_CANCELLED` if libfanta dropped the request
///   before it ran, which the current API has no call for;
/// - `response`, `response_len`: on success, the response bytes, borrowed for the duration of
///   the callback only (copy them to keep them); on failure, NULL and 0;
/// - `error_message`: on failure, a NUL-terminated message, borrowed for the duration of the
///   callback only; on success, NULL.
///
/// The callback runs on a library runtime thread, except that a callback with
/// `FANTA_STATUS_POOL_CLOSED` may run on the application thread inside `fanta_pool_close()` or
/// `fanta_pool_free()`. The callbacks of different requests may run at the same time on
/// different threads.
/// It must return quickly and must not block: while it runs, its thread serves no connection.
/// It must return normally, without a C++ exception or `longjmp()` leaving it.
/// Blocking libfanta calls made from it (`fanta_pool_request()`,
/// `fanta_pool_wait_connected()`, `fanta_server_start()`) fail at once with
/// `FANTA_STATUS_BLOCKING_IN_RUNTIME` or `FANTA_STATUS_IO` instead of blocking.
/// `fanta_pool_submit()`, `fanta_pool_close()` and the stats functions may be called from it.
pub type FantaCompletionCallback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        status: FantaStatus,
        response: *const u8,
        response_len: usize,
        error_message: *const c_char,
    ),
>;

/// The user data pointer of a submitted request, moved to the runtime thread that completes it.
struct UserData(*mut c_void);

// SAFETY: libfanta never dereferences the pointer. It only passes it to the callback on another
// thread, and fanta_pool_submit's documentation requires the caller to allow that.
unsafe impl Send for UserData {}

/// Sends `payload` through the pool without blocking; `callback` receives the result later.
///
/// `payload` is `payload_len` bytes and is copied before this function returns, so the caller
/// may free or reuse it at once. It may be NULL when `payload_len` is 0. `timeout_ms` is the
/// deadline in milliseconds from now, or 0 for the pool's default. `user_data` is passed to
/// `callback` as it is; libfanta never reads it.
///
/// If this returns `FANTA_STATUS_OK`, `callback` runs exactly once, normally on a library
/// runtime thread (see `fanta_completion_callback`): with the response, or with the failure, including on
/// timeout, disconnect and `fanta_pool_close()`. The callback may run before this function
/// returns. If this returns anything else, `callback` never runs for this call.
///
/// Returns:
/// - `FANTA_STATUS_OK`: the request was accepted;
/// - `FANTA_STATUS_INVALID_ARGUMENT`: `pool` or `callback` is NULL, `payload` is NULL with a
///   non-zero length, or `timeout_ms` is more than one year;
/// - `FANTA_STATUS_POOL_CLOSED`: the pool is closed;
/// - `FANTA_STATUS_FORKED`: the pool was opened before this process forked.
///
/// Thread-safety: any number of threads may call this on one pool at once, also from inside a
/// completion callback. `user_data` must stay valid, and be safe to use from the callback's
/// thread, until the callback has run.
#[no_mangle]
pub extern "C" fn fanta_pool_submit(
    pool: *const FantaPool,
    payload: *const u8,
    payload_len: usize,
    timeout_ms: u64,
    callback: FantaCompletionCallback,
    user_data: *mut c_void,
) -> FantaStatus {
    guard("fanta_pool_submit", || {
        // SAFETY: a non-NULL pool is live until fanta_pool_free, which must not run concurrently.
        let pool = unsafe { borrow(pool, "pool")? };
        // SAFETY: the caller guarantees payload_len readable bytes for the duration of the call.
        let payload = unsafe { bytes(payload, payload_len, "payload")? };
        let callback = callback.ok_or_else(|| Failure::invalid("callback is NULL"))?;

        let user_data = UserData(user_data);
        let payload = Bytes::copy_from_slice(payload);
        pool.pool
            .submit(payload, timeout_from_ms(timeout_ms), move |result| {
                complete(callback, user_data, result)
            })?;
        Ok(())
    })
}

/// Calls the C completion callback with `result`, lending it the bytes or the message.
fn complete(
    callback: unsafe extern "C" fn(*mut c_void, FantaStatus, *const u8, usize, *const c_char),
    user_data: UserData,
    result: Result<Bytes, Error>,
) {
    match result {
        Ok(response) => {
            // SAFETY: fanta_pool_submit's caller supplied a callback with this signature and a
            // user_data valid until it runs; the response outlives the call.
            unsafe {
                callback(
                    user_data.0,
                    FantaStatus::Ok,
                    response.as_ptr(),
                    response.len(),
                    std::ptr::null(),
                )
            }
        }
        Err(error) => {
            let message = c_string_lossy(&error.to_string());
            // SAFETY: as above; the message outlives the call.
            unsafe {
                callback(
                    user_data.0,
                    error.kind().into(),
                    std::ptr::null(),
                    0,
                    message.as_ptr(),
                )
            }
        }
    }
}

/// Blocks until at least `count` connections are routable or `timeout_ms` milliseconds pass.
///
/// On success, writes to `*connected_out` whether the count was reached (`true`) or the time
/// ran out (`false`). Useful before a burst of requests, or in tests.
///
/// Returns:
/// - `FANTA_STATUS_OK`: `*connected_out` is set;
/// - `FANTA_STATUS_INVALID_ARGUMENT`: `pool` or `connected_out` is NULL;
/// - `FANTA_STATUS_BLOCKING_IN_RUNTIME`: called from inside a completion callback;
/// - `FANTA_STATUS_FORKED`: the pool was opened before this process forked.
///
/// Thread-safety: may be called from any thread except a completion callback.
#[no_mangle]
pub extern "C" fn fanta_pool_wait_connected(
    pool: *const FantaPool,
    count: usize,
    timeout_ms: u64,
    connected_out: *mut bool,
) -> FantaStatus {
    guard("fanta_pool_wait_connected", || {
        // SAFETY: a non-NULL pool is live until fanta_pool_free, which must not run concurrently.
        let pool = unsafe { borrow(pool, "pool")? };
        let connected_out = out(connected_out, "connected_out")?;

        let connected = pool
            .pool
            .wait_connected_blocking(count, Duration::from_millis(timeout_ms))?;

        // SAFETY: `out` checked that connected_out is not NULL; the caller guarantees it is
        // writable.
        unsafe { connected_out.write(connected) };
        Ok(())
    })
}
