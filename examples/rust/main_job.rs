//! The main job: many concurrent callers route requests through one pool and a summary is
//! printed.
//!
//! ```text
//! cargo run --release -p fanta-core --example main_job -- [--address HOST:PORT]
//!     [--callers N] [--requests N] [--connections N] [--strategy NAME] [--payload-bytes N]
//! ```
//!
//! Without `--address`, an embedded reference server is started on a free loopback port.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fanta_core::{Pool, PoolConfig, Server, ServerConfig};

struct Options {
    address: Option<String>,
    callers: usize,
    requests: usize,
    connections: usize,
    strategy: String,
    payload_bytes: usize,
}

const USAGE: &str = "\
usage: main_job [--address HOST:PORT] [--callers N] [--requests N] [--connections N]
                [--strategy round_robin|random] [--payload-bytes N]

Routes requests from concurrent callers through one pool and prints a summary. Without
--address, an embedded reference server is started on a free loopback port.
Defaults: 64 callers, 200000 requests, 4 connections, round_robin, 16-byte payloads.";

/// Parses the command line; `Ok(None)` means help was requested.
fn parse_options() -> Result<Option<Options>, String> {
    let mut options = Options {
        address: None,
        callers: 64,
        requests: 200_000,
        connections: 4,
        strategy: "round_robin".into(),
        payload_bytes: 16,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--address" | "--callers" | "--requests" | "--connections" | "--strategy"
            | "--payload-bytes" => {}
            other => return Err(format!("unknown option {other:?}\n\n{USAGE}")),
        }
        let value = args
            .next()
            .ok_or_else(|| format!("missing value for {arg}"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("{arg}: expected a whole number, got {value:?}"))
        };
        match arg.as_str() {
            "--address" => options.address = Some(value.clone()),
            "--callers" => options.callers = number()?.max(1),
            "--requests" => options.requests = number()?,
            "--connections" => options.connections = number()?,
            "--strategy" => options.strategy = value.clone(),
            "--payload-bytes" => options.payload_bytes = number()?.max(8),
            other => unreachable!("option {other} was checked above"),
        }
    }
    Ok(Some(options))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let options = match parse_options() {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return std::process::ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("main_job: {message}");
            return std::process::ExitCode::from(2);
        }
    };
    // Errors are printed with Display, which carries the actionable message.
    match run(options).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("main_job: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let embedded = match &options.address {
        Some(_) => None,
        None => Some(Server::bind(ServerConfig::loopback()).await?),
    };
    let address = match (&options.address, &embedded) {
        (Some(address), _) => address.clone(),
        (None, Some(server)) => server.local_addr().to_string(),
        (None, None) => unreachable!("an embedded server is started without --address"),
    };

    let pool = Arc::new(Pool::open(
        PoolConfig::new([address.as_str()])
            .connections_per_address(options.connections)
            .strategy(options.strategy.clone()),
    )?);
    if !pool
        .wait_connected(options.connections, Duration::from_secs(10))
        .await
    {
        return Err(format!(
            "could not connect {} connections to {address}",
            options.connections
        )
        .into());
    }

    println!(
        "rust: {} requests from {} concurrent callers over {} connections to {address} ({})",
        options.requests, options.callers, options.connections, options.strategy
    );
    let started = Instant::now();
    let mut callers = Vec::with_capacity(options.callers);
    for caller in 0..options.callers {
        let pool = pool.clone();
        let count = options.requests / options.callers
            + usize::from(caller < options.requests % options.callers);
        let payload_bytes = options.payload_bytes;
        callers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(count);
            let mut errors = 0u64;
            let mut payload = vec![b'.'; payload_bytes];
            for i in 0..count {
                payload[..8].copy_from_slice(&((caller as u64) << 32 | i as u64).to_be_bytes());
                let sent = Instant::now();
                match pool.request(&payload[..]).await {
                    Ok(response) if response == payload => {}
                    _ => errors += 1,
                }
                latencies.push(sent.elapsed());
            }
            (latencies, errors)
        }));
    }

    let mut latencies = Vec::with_capacity(options.requests);
    let mut errors = 0;
    for caller in callers {
        let (caller_latencies, caller_errors) = caller.await?;
        latencies.extend(caller_latencies);
        errors += caller_errors;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();

    let stats = pool.stats();
    println!("  requests:    {}", latencies.len());
    println!("  errors:      {errors}");
    println!(
        "  throughput:  {:.0} requests/s",
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  latency:     p50 {:?}, p99 {:?}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99)
    );
    for (slot, connection) in stats.connections.iter().enumerate() {
        println!(
            "  connection {slot}: {} requests ({})",
            connection.completed,
            connection.state.name()
        );
    }

    pool.close();
    if errors > 0 {
        return Err(format!("{errors} requests failed or returned the wrong payload").into());
    }
    Ok(())
}

fn percentile(sorted: &[Duration], quantile: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * quantile).round() as usize;
    sorted[index]
}
