//! Pool settings, their defaults and their validation.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::connection::MAX_SLOTS;
use crate::error::Error;
use crate::protocol::DEFAULT_MAX_FRAME_LENGTH;
use crate::strategy::{self, Strategy};

/// Default deadline of a request: 10 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default connections opened to each address: 4.
pub const DEFAULT_CONNECTIONS_PER_ADDRESS: usize = 4;
/// Default cap on requests in flight per connection: 1024.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 1024;
/// Default bound on TCP connect plus HELLO exchange: 5 seconds.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Most connections one address may be given.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 1024;

/// Reconnection delays: exponential growth capped at `max`, with full jitter.
///
/// The delay before attempt `n` (counting from 0 after the last successful connect) is drawn
/// uniformly from `0..=min(max, initial * multiplier^n)`. Full jitter spreads the reconnects of
/// many clients after a server restart instead of having them arrive in waves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// Upper bound of the first delay. Default 50 ms; at least 1 ms.
    pub initial: Duration,
    /// Upper bound of every delay. Default 5 s; at least `initial`, at most one year. A
    /// connection must stay up this long before the next disconnect starts again from
    /// `initial`.
    pub max: Duration,
    /// Growth factor of the upper bound per failed attempt. Default 2.0; at least 1.0.
    pub multiplier: f64,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(5),
            multiplier: 2.0,
        }
    }
}

impl Backoff {
    /// The upper bound of the delay before attempt `attempt`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = self.multiplier.powi(attempt.min(64) as i32);
        let ceiling = self.initial.as_secs_f64() * factor;
        if !ceiling.is_finite() || ceiling >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(ceiling)
        }
    }

    /// A delay drawn uniformly from `0..=ceiling(attempt)`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt).as_micros() as u64;
        Duration::from_micros(strategy::random_up_to(ceiling))
    }

    fn validate(&self) -> Result<(), Error> {
        if self.initial < Duration::from_millis(1) {
            return Err(Error::invalid(format!(
                "backoff_initial: expected at least 1 ms, got {:?}",
                self.initial
            )));
        }
        if self.max > MAX_TIMEOUT {
            return Err(Error::invalid(format!(
                "backoff_max: expected at most one year, got {:?}",
                self.max
            )));
        }
        if self.max < self.initial {
            return Err(Error::invalid(format!(
                "backoff_max: expected at least backoff_initial ({:?}), got {:?}",
                self.initial, self.max
            )));
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(Error::invalid(format!(
                "backoff_multiplier: expected a finite number of at least 1.0, got {}",
                self.multiplier
            )));
        }
        Ok(())
    }
}

/// The strategy that routes requests: a built-in one by name, or one the application supplies.
#[derive(Clone)]
pub enum StrategyChoice {
    /// A built-in strategy by name: `"round_robin"` or `"random"`.
    Named(String),
    /// A strategy supplied by the application.
    Custom(Arc<dyn Strategy>),
}

impl fmt::Debug for StrategyChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StrategyChoice::Named(name) => write!(f, "{name:?}"),
            StrategyChoice::Custom(strategy) => write!(f, "custom {:?}", strategy.name()),
        }
    }
}

/// Settings of a [`crate::Pool`]. Setters take and return the config, so calls chain; nothing is
/// checked until [`crate::Pool::open`], which rejects an invalid value with
/// [`Error::InvalidArgument`] naming the setting.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    pub(crate) addresses: Vec<String>,
    pub(crate) connections_per_address: usize,
    pub(crate) strategy: StrategyChoice,
    pub(crate) timeout: Duration,
    pub(crate) max_in_flight: u32,
    pub(crate) max_frame_length: u32,
    pub(crate) connect_timeout: Duration,
    pub(crate) backoff: Backoff,
    pub(crate) wait_for_connection: bool,
}

impl PoolConfig {
    /// Creates a config for the given `host:port` addresses with every other setting at its
    /// default.
    pub fn new<I, S>(addresses: I) -> PoolConfig
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        PoolConfig {
            addresses: addresses.into_iter().map(Into::into).collect(),
            connections_per_address: DEFAULT_CONNECTIONS_PER_ADDRESS,
            strategy: StrategyChoice::Named("round_robin".into()),
            timeout: DEFAULT_TIMEOUT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_frame_length: DEFAULT_MAX_FRAME_LENGTH,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            backoff: Backoff::default(),
            wait_for_connection: true,
        }
    }

    /// Connections opened to each address. Default 4; 1 to 1024.
    pub fn connections_per_address(mut self, count: usize) -> Self {
        self.connections_per_address = count;
        self
    }

    /// A built-in strategy by name: `"round_robin"` (default) or `"random"`.
    pub fn strategy(mut self, name: impl Into<String>) -> Self {
        self.strategy = StrategyChoice::Named(name.into());
        self
    }

    /// An application-defined strategy.
    pub fn custom_strategy(mut self, strategy: Arc<dyn Strategy>) -> Self {
        self.strategy = StrategyChoice::Custom(strategy);
        self
    }

    /// Default deadline of each request, from the call until its response. Default 10 s; more
    /// than zero and at most one year. A request may override it. It also bounds how long a
    /// connection drains after GOAWAY before its remaining requests fail as disconnected.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Cap on requests in flight per connection; the effective cap is the smaller of this and
    /// the server's announced `max_in_flight`. Default 1024; 1 to 1,048,575.
    pub fn max_in_flight(mut self, max: u32) -> Self {
        self.max_in_flight = max;
        self
    }

    /// Largest frame `length` accepted from a server, in bytes. Default 16 MiB; 64 bytes to
    /// 4 GiB - 1.
    pub fn max_frame_length(mut self, max: u32) -> Self {
        self.max_frame_length = max;
        self
    }

    /// Bound on a TCP connect plus HELLO exchange. Default 5 s; more than zero and at most one
    /// year.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Reconnection delays; see [`Backoff`].
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Whether a request waits, up to its deadline, for a routable connection when none is
    /// (`true`, the default), or fails at once with [`Error::NoConnection`] (`false`).
    pub fn wait_for_connection(mut self, wait: bool) -> Self {
        self.wait_for_connection = wait;
        self
    }

    pub fn addresses(&self) -> &[String] {
        &self.addresses
    }

    pub fn default_timeout(&self) -> Duration {
        self.timeout
    }

    /// Checks every setting and builds the strategy.
    pub(crate) fn validate(&self) -> Result<Arc<dyn Strategy>, Error> {
        if self.addresses.is_empty() {
            return Err(Error::invalid(
                "addresses: expected at least one \"host:port\", got none",
            ));
        }
        for address in &self.addresses {
            validate_address(address)?;
        }
        if !(1..=MAX_CONNECTIONS_PER_ADDRESS).contains(&self.connections_per_address) {
            return Err(Error::invalid(format!(
                "connections_per_address: expected 1 to {MAX_CONNECTIONS_PER_ADDRESS}, got {}",
                self.connections_per_address
            )));
        }
        validate_timeout("timeout", self.timeout)?;
        validate_timeout("connect_timeout", self.connect_timeout)?;
        if !(1..=MAX_SLOTS).contains(&self.max_in_flight) {
            return Err(Error::invalid(format!(
                "max_in_flight: expected 1 to {MAX_SLOTS}, got {}",
                self.max_in_flight
            )));
        }
        if self.max_frame_length < 64 {
            return Err(Error::invalid(format!(
                "max_frame_length: expected at least 64 bytes, got {}",
                self.max_frame_length
            )));
        }
        self.backoff.validate()?;

        match &self.strategy {
            StrategyChoice::Named(name) => strategy::by_name(name),
            StrategyChoice::Custom(strategy) => Ok(strategy.clone()),
        }
    }
}

/// Checks the shape of a `host:port` address; resolution happens at connect time.
pub(crate) fn validate_address(address: &str) -> Result<(), Error> {
    let invalid = || {
        Error::invalid(format!(
            "address: expected \"host:port\" with a port from 1 to 65535, got {address:?}"
        ))
    };

    let (host, port) = address.rsplit_once(':').ok_or_else(invalid)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(invalid());
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(()),
        _ => Err(invalid()),
    }
}

/// Largest accepted deadline: 1 year. Beyond that, deadline arithmetic on `Instant` could
/// overflow, and no real request wants it.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

pub(crate) fn validate_timeout(setting: &str, timeout: Duration) -> Result<(), Error> {
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        return Err(Error::invalid(format!(
            "{setting}: expected more than 0 and at most one year, got {timeout:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        assert!(PoolConfig::new(["127.0.0.1:7878"]).validate().is_ok());
    }

    #[test]
    fn invalid_settings_name_the_setting() {
        let cases = [
            (PoolConfig::new(Vec::<String>::new()), "addresses"),
            (PoolConfig::new(["nohost"]), "address"),
            (PoolConfig::new(["h:0"]), "address"),
            (
                PoolConfig::new(["h:1"]).connections_per_address(0),
                "connections_per_address",
            ),
            (PoolConfig::new(["h:1"]).timeout(Duration::ZERO), "timeout"),
            (PoolConfig::new(["h:1"]).max_in_flight(0), "max_in_flight"),
            (
                PoolConfig::new(["h:1"]).max_frame_length(10),
                "max_frame_length",
            ),
            (PoolConfig::new(["h:1"]).strategy("fastest"), "strategy"),
            (
                PoolConfig::new(["h:1"]).backoff(Backoff {
                    multiplier: 0.5,
                    ..Backoff::default()
                }),
                "backoff_multiplier",
            ),
        ];
        for (config, setting) in cases {
            let message = config.validate().unwrap_err().to_string();
            assert!(
                message.contains(setting),
                "message {message:?} does not name {setting}"
            );
        }
    }

    #[test]
    fn ipv6_address_accepted() {
        assert!(validate_address("[::1]:7878").is_ok());
    }

    #[test]
    fn backoff_ceiling_grows_then_caps() {
        let backoff = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(100),
            multiplier: 2.0,
        };
        assert_eq!(backoff.ceiling(0), Duration::from_millis(10));
        assert_eq!(backoff.ceiling(2), Duration::from_millis(40));
        assert_eq!(backoff.ceiling(10), Duration::from_millis(100));
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_millis(100));
        for attempt in 0..20 {
            assert!(backoff.delay(attempt) <= backoff.ceiling(attempt));
        }
    }
}
