//! Helpers shared by the benchmark programs: command-line options, JSON output, resident
//! memory, and a minimal hand-written pipelined Fantaprotocol client.
//!
//! Each benchmark program is started by `benches/run.sh` with `--server HOST:PORT` (a release
//! `fanta-server` in its own process) and `--profile smoke|quick|full`, and prints one JSON
//! object on stdout. Progress goes to stderr.

#![allow(dead_code)]

pub mod json;
pub mod pipelined;

use std::time::Duration;

/// How long and how often a benchmark measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Tiny counts that only check that every path still runs.
    Smoke,
    /// About 3 minutes for the whole suite on 2 cores.
    Quick,
    /// Under 20 minutes for the whole suite on 2 cores.
    Full,
}

impl Profile {
    /// Picks the value for this profile.
    pub fn pick<T>(self, smoke: T, quick: T, full: T) -> T {
        match self {
            Profile::Smoke => smoke,
            Profile::Quick => quick,
            Profile::Full => full,
        }
    }

    pub fn name(self) -> &'static str {
        self.pick("smoke", "quick", "full")
    }
}

/// Options common to all benchmark programs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Address of the echoing server.
    pub server: String,
    /// Address of a server started with `--silent`, for the in-flight memory test.
    pub silent_server: Option<String>,
    pub profile: Profile,
    /// The part of a multi-part program to run (the memory program runs one per process).
    pub part: Option<String>,
}

/// Parses the options, ignoring the `--bench` flag that `cargo bench` appends.
///
/// # Panics
///
/// Exits the process with status 2 and a message on a missing or invalid option.
pub fn parse_options() -> Options {
    let mut server = None;
    let mut silent_server = None;
    let mut profile = Profile::Quick;
    let mut part = None;

    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| fail(&format!("missing value for {arg}")))
        };
        match arg.as_str() {
            "--bench" => {}
            "--server" => server = Some(value()),
            "--silent-server" => silent_server = Some(value()),
            "--part" => part = Some(value()),
            "--profile" => {
                profile = match value().as_str() {
                    "smoke" => Profile::Smoke,
                    "quick" => Profile::Quick,
                    "full" => Profile::Full,
                    other => fail(&format!(
                        "--profile: expected smoke, quick or full, got {other:?}"
                    )),
                }
            }
            other => fail(&format!("unknown option {other:?}")),
        }
    }

    Options {
        server: server.unwrap_or_else(|| fail("missing --server HOST:PORT")),
        silent_server,
        profile,
        part,
    }
}

fn fail(message: &str) -> ! {
    eprintln!("benchmark: {message}");
    std::process::exit(2);
}

/// Resident set size of this process in bytes, from `/proc/self/statm`.
pub fn resident_bytes() -> u64 {
    let statm =
        std::fs::read_to_string("/proc/self/statm").expect("failed to read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("unexpected /proc/self/statm format");
    // SAFETY: sysconf has no preconditions.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page_size
}

/// Builds the runtime that runs the benchmark's callers, the same for every variant.
pub fn caller_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-caller")
        .enable_all()
        .build()
        .expect("failed to start the caller runtime")
}

/// The median of `values`, which must not be empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    }
}

/// The 16-byte payload every throughput and latency benchmark sends.
pub const PAYLOAD: &[u8; 16] = b"fanta-bench-0016";

/// Deadline long enough that no benchmark request times out on a loaded machine.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
