//! `fanta_config`: the settings a pool is opened with.
//!
//! The setters only store values; `fanta_pool_open()` hands them to fanta-core, which checks
//! them and rejects an invalid one naming the setting. A setting that was never set keeps
//! fanta-core's default.

use std::ffi::c_char;
use std::time::Duration;

use fanta_core::{Backoff, PoolConfig};

use crate::guard::{borrow_mut, guard, guard_value, out, utf8, Failure};
use crate::status::FantaStatus;

/// Settings for `fanta_pool_open()`, built with `fanta_config_new()` and the
/// `fanta_config_*` setters, freed with `fanta_config_free()`.
///
/// - `fanta_config_new()`: creates a config with no addresses and every default.
/// - `fanta_config_add_address()`: adds a `host:port` to connect to.
/// - `fanta_config_set_*()`: change one setting each; the setting's default and valid range
///   are on each setter.
/// - `fanta_config_free()`: frees it.
///
/// Values are checked by `fanta_pool_open()`, not by the setters, which check only their
/// pointers. A config is not thread-safe: do not call a setter on it while another thread uses
/// it. One config may open any number of pools.
#[derive(Debug, Default)]
pub struct FantaConfig {
    addresses: Vec<String>,
    connections_per_address: Option<usize>,
    strategy: Option<String>,
    timeout: Option<Duration>,
    max_in_flight: Option<u32>,
    max_frame_length: Option<u32>,
    connect_timeout: Option<Duration>,
    backoff: Option<Backoff>,
    wait_for_connection: Option<bool>,
}

impl FantaConfig {
    /// Builds the fanta-core config, leaving every unset setting at its default.
    pub(crate) fn to_pool_config(&self) -> PoolConfig {
        let mut config = PoolConfig::new(self.addresses.iter().cloned());
        if let Some(count) = self.connections_per_address {
            config = config.connections_per_address(count);
        }
        if let Some(name) = &self.strategy {
            config = config.strategy(name.clone());
        }
        if let Some(timeout) = self.timeout {
            config = config.timeout(timeout);
        }
        if let Some(max) = self.max_in_flight {
            config = config.max_in_flight(max);
        }
        if let Some(max) = self.max_frame_length {
            config = config.max_frame_length(max);
        }
        if let Some(timeout) = self.connect_timeout {
            config = config.connect_timeout(timeout);
        }
        if let Some(backoff) = self.backoff {
            config = config.backoff(backoff);
        }
        if let Some(wait) = self.wait_for_connection {
            config = config.wait_for_connection(wait);
        }
        config
    }
}

/// Creates an empty config: no addresses, every setting at its default.
///
/// On success, writes a new config to `*config_out`; the caller owns it and frees it with
/// `fanta_config_free()`. On failure, `*config_out` is left unchanged.
///
/// Returns `FANTA_STATUS_OK`, or `FANTA_STATUS_INVALID_ARGUMENT` if `config_out` is NULL.
/// Thread-safety: may be called from any thread.
#[no_mangle]
pub extern "C" fn fanta_config_new(config_out: *mut *mut FantaConfig) -> FantaStatus {
    guard("fanta_config_new", || {
        let config_out = out(config_out, "config_out")?;
        let config = Box::into_raw(Box::<FantaConfig>::default());
        // SAFETY: `out` checked that config_out is not NULL; the caller guarantees it is
        // writable.
        unsafe { config_out.write(config) };
        Ok(())
    })
}

/// Frees a config made by `fanta_config_new()`. NULL is ignored.
///
/// Pools opened from the config keep their own copy of the settings, so the config may be
/// freed while they are open. `config` must not be used after this call.
///
/// Thread-safety: must be the last call on `config`; no other thread may be using it.
#[no_mangle]
pub extern "C" fn fanta_config_free(config: *mut FantaConfig) {
    guard_value("fanta_config_free", (), || {
        if !config.is_null() {
            // SAFETY: a non-NULL config came from Box::into_raw in fanta_config_new and the
            // caller gives up its last use here.
            drop(unsafe { Box::from_raw(config) });
        }
        Ok(())
    })
}

/// Runs `apply` on the config behind `config`, inside the export wrapper.
fn update<F>(function: &str, config: *mut FantaConfig, apply: F) -> FantaStatus
where
    F: FnOnce(&mut FantaConfig) -> Result<(), Failure>,
{
    guard(function, || {
        // SAFETY: a non-NULL config is a live FantaConfig that the caller does not use from
        // another thread during this call, as the type's documentation requires.
        let config = unsafe { borrow_mut(config, "config")? };
        apply(config)
    })
}

/// Adds an address to connect to: `"host:port"`, with an IPv6 host in brackets
/// (`"[::1]:7878"`). A pool needs at least one; each gets `connections_per_address`
/// connections.
///
/// `address` is copied; the caller keeps ownership of it.
///
/// Returns `FANTA_STATUS_OK`, or `FANTA_STATUS_INVALID_ARGUMENT` if `config` or `address` is
/// NULL or `address` is not UTF-8. The address's form is checked by `fanta_pool_open()`.
/// Thread-safety: no other thread may use `config` during this call.
#[no_mangle]
pub extern "C" fn fanta_config_add_address(
    config: *mut FantaConfig,
    address: *const c_char,
) -> FantaStatus {
    update("fanta_config_add_address", config, |config| {
        // SAFETY: the caller passes a NUL-terminated string that outlives this call.
        let address = unsafe { utf8(address, "address")? };
        config.addresses.push(address.to_owned());
        Ok(())
    })
}

/// Sets the connections opened to each address. Default 4; valid 1 to 1024.
///
/// Returns `FANTA_STATUS_OK`, or `FANTA_STATUS_INVALID_ARGUMENT` if `config` is NULL.
/// Thread-safety: no other thread may use `config` during this call.
#[no_mangle]
pub extern "C" fn fanta_config_set_connections_per_address(
    config: *mut FantaConfig,
    count: usize,
) -> FantaStatus {
    update(
        "fanta_config_set_connections_per_address",
        config,
        |config| {
            config.connections_per_address = Some(count);
            Ok(())
        },
    )
}

/// Sets the routing strategy by name: `"round_robin"` (the default) or `"random"`.
///
/// `name` is copied; the caller keeps ownership of it.
///
/// Returns `FANTA_STATUS_OK`, or `FANTA_STATUS_INVALID_ARGUMENT` if `config` or `name` is NULL
/// or `name` is not UTF-8. An unknown name is rejected by `fanta_pool_open()`.
/// Thread-safety: no other thread may use `config` during this call.
#[no_mangle]
pub extern "C" fn fanta_config_set_strategy(
    config: *mut FantaConfig,
    name: *const c_char,
) -> FantaStatus {
    update("fanta_config_set_strategy", config, |config| {
        // SAFETY: the caller passes a NUL-terminated string that outlives this call.
        let name = unsafe { utf8(name, "name")? };
        config.strategy = Some(name.to_owned());
        Ok(())
    })
}

/// Sets the default deadline of a request, in milliseconds, from the call until its response.
/// Default 10000 (10 s); valid 1 ms to one year. A request may pass its own deadline.
///
/// Returns `FANTA_STATUS_OK`, or `FANTA_STATUS_INVALID_ARGUMENT` if `config` is NULL.
/// Thread-safety: no other thread may use `config` during this call.
#[no_mangle]
pub extern "C" fn fanta_config_set_timeout_ms(
    config: *mut FantaConfig,
    timeout_ms: u64,
) -> FantaStatus {
    update("fanta_config_set_timeout_ms", config, |config| {
        config.timeout = Some(Duration::from_millis(timeout_ms));
        Ok(())
    })
}

/// Sets the cap on requests in flight per connection. The cap in effect is the smaller of this
/// and the server's announced limit. Default 1024; valid 1 to 1048575.
///
/// Returns `FANTA_STATUS_OK`, or `FANTA_STATUS_INVALID_ARGUMENT` if `config` is NULL.
/// Thread-safety: no other thread may use `config` during this call.
#[no_mangle]
pub extern "C" fn fanta_config_set_max_in_flight(
    config: *mut FantaConfig,
    max_in_flight: u32,
) -> FantaStatus {
    update("fanta_config_set_max_in_flight", config, |config| {
        config.max_in_flight = Some(max_in_flight);
        Ok(())
    })
}

/// Sets the largest frame accepted from a server, in bytes. Default 16 MiB; valid 64 to
/// 4294967295.
///
/// Returns `FANTA_STATUS_OK`, or `FANTA_STATUS_INVALID_ARGUMENT` if `config` is NULL.
/// Thread-safety: no other thread may use `config` during this call.
#[no_mangle]
pub extern "C" fn fanta_config_set_max_frame_length(
    config: *mut FantaConfig,
    max_frame_length: u32,
) -> FantaStatus {
    update("fanta_config_set_max_frame_length", config, |config| {
        config.max_frame_length = Some(max_frame_length);
        Ok(())
    })
}

/// Sets the bound on one connection attempt (TCP connect plus the protocol's HELLO exchange),
/// in milliseconds. Default 5000 (5 s); valid 1 ms to one year.
///
/// Returns `FANTA_STATUS_OK`, or `FANTA_STATUS_INVALID_ARGUMENT` if `config` is NULL.
/// Thread-safety: no other thread may use `config` during this call.
#[no_mangle]
pub extern "C" fn fanta_config_set_connect_timeout_ms(
    config: *mut FantaConfig,
    timeout_ms: u64,
) -> FantaStatus {
    update("fanta_config_set_connect_timeout_ms", config, |config| {
        config.connect_timeout = Some(Duration::from_millis(timeout_ms));
        Ok(())
    })
}

/// Sets the reconnection delays. The delay before attempt `n` after a disconnect is drawn
/// uniformly from 0 to `min(max_ms, initial_ms * multiplier^n)` milliseconds.
///
/// Defaults: `initial_ms` 50 (valid: at least 1), `max_ms` 5000 (valid: at least
/// `initial_ms`), `multiplier` 2.0 (valid: finite and at least 1.0).
///
/// Returns `FANTA_STATUS_OK`, or `FANTA_STATUS_INVALID_ARGUMENT` if `config` is NULL.
/// Thread-safety: no other thread may use `config` during this call.
#[no_mangle]
pub extern "C" fn fanta_config_set_backoff(
    config: *mut FantaConfig,
    initial_ms: u64,
    max_ms: u64,
    multiplier: f64,
) -> FantaStatus {
    update("fanta_config_set_backoff", config, |config| {
        config.backoff = Some(Backoff {
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_millis(max_ms),
            multiplier,
        });
        Ok(())
    })
}

/// Sets what a request does when no connection is routable: wait for one up to its deadline
/// (`true`, the default), or fail at once with `FANTA_STATUS_NO_CONNECTION` (`false`).
///
/// Returns `FANTA_STATUS_OK`, or `FANTA_STATUS_INVALID_ARGUMENT` if `config` is NULL.
/// Thread-safety: no other thread may use `config` during this call.
#[no_mangle]
pub extern "C" fn fanta_config_set_wait_for_connection(
    config: *mut FantaConfig,
    wait: bool,
) -> FantaStatus {
    update("fanta_config_set_wait_for_connection", config, |config| {
        config.wait_for_connection = Some(wait);
        Ok(())
    })
}
