//! libfanta's C API: an opaque-handle C ABI over the fanta-core routing pool.
//!
//! This crate builds `libfanta.so` (soname `libfanta.so.0`) and `libfanta.a`; the declarations
//! are in `include/fanta.h`, which cbindgen generates from this crate (see `tests/header.rs`).
//! Every behaviour lives in fanta-core; this crate checks arguments, converts types and states
//! ownership.
//!
//! # Conventions
//!
//! - Every symbol starts with `fanta_`. Handles (`fanta_config`, `fanta_pool`,
//!   `fanta_response`, `fanta_server`) are opaque, made by a `_new`, `_open` or `_start`
//!   function and released by the matching `_free` function, which ignores NULL. Stats are plain
//!   structs that the caller owns.
//! - Functions that can fail return a `fanta_status`; outputs come last, as pointers, and are
//!   written only on success. `fanta_last_error_message()` then returns the failure's message,
//!   kept per thread, so threads never see each other's errors.
//! - Every export runs in one wrapper (`guard`) that catches panics, returning
//!   `FANTA_STATUS_PANIC`, and every pointer argument is checked: NULL, or an argument that is
//!   otherwise invalid, returns `FANTA_STATUS_INVALID_ARGUMENT` with a message naming it. A
//!   non-NULL handle must come from its constructor and not be freed yet; that cannot be
//!   checked.
//! - `const` handle parameters mark calls that may run on many threads at once.
//!
//! # Threads
//!
//! libfanta runs the connections of all pools on its own threads, started on first use. Any
//! number of application threads may call `fanta_pool_request()` on one pool at once.
//! Completion callbacks of `fanta_pool_submit()` run on libfanta's threads; blocking calls made
//! from there return `FANTA_STATUS_BLOCKING_IN_RUNTIME` instead of blocking.
//!
//! # Fork
//!
//! `fork()` copies only the calling thread, so a child process has none of libfanta's threads.
//! In the child, pools opened before the fork return `FANTA_STATUS_FORKED` from every request,
//! and their `_free` functions release nothing. A pool opened in the child starts fresh
//! library threads and works normally.
//!
//! # Installing
//!
//! `fanta-ffi/install.sh PREFIX` builds the release library and installs `lib/libfanta.so*`,
//! `lib/libfanta.a`, `include/fanta/fanta.h` and `lib/pkgconfig/fanta.pc`, the layout that
//! cargo-c (`cargo cinstall`) produces, so that `cc app.c $(pkg-config --cflags --libs fanta)`
//! builds a program. The script exists because installing cargo-c itself compiles cargo and
//! about 350 other crates: `cargo install cargo-c --version 0.10.24 --locked` had not finished
//! after 7 minutes on a 2-core machine, too long for a CI run that installs everything on a
//! fresh machine. The newest cargo-c (0.10.26) also needs rustc 1.97, newer than this
//! workspace's toolchain.

mod config;
mod guard;
mod pool;
mod server;
mod stats;
mod status;

use std::ffi::c_char;

pub use config::FantaConfig;
pub use pool::{FantaCompletionCallback, FantaPool, FantaResponse};
pub use server::FantaServer;
pub use stats::{FantaConnectionState, FantaConnectionStats, FantaErrorCounts, FantaStats};
pub use status::FantaStatus;

/// Returns the version of the linked libfanta, such as `"0.1.0"`.
///
/// Compare it with `FANTA_VERSION_STRING` to detect a program running against another version
/// of the library than the header it was compiled with.
///
/// Ownership: the string is static; do not free it. It is never NULL.
/// Thread-safety: may be called from any thread.
#[no_mangle]
pub extern "C" fn fanta_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Returns the version of the linked libfanta as one number,
/// `major * 1000000 + minor * 1000 + patch`, the same formula as `FANTA_VERSION`. Takes no
/// pointer and cannot fail.
///
/// Thread-safety: may be called from any thread.
#[no_mangle]
pub extern "C" fn fanta_version_number() -> u32 {
    version_number(
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
    )
}

/// Combines version components as `FANTA_VERSION` does; a component that is not a number
/// counts as 0.
pub fn version_number(major: &str, minor: &str, patch: &str) -> u32 {
    let component = |text: &str| text.parse::<u32>().unwrap_or(0);
    component(major) * 1_000_000 + component(minor) * 1_000 + component(patch)
}
