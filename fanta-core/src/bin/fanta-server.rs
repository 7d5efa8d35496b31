//! `fanta-server`: the Fantaprotocol v1 reference server as a command.
//!
//! Prints `listening on HOST:PORT` on stdout once bound, then serves until SIGINT or SIGTERM.
//! Logs go to stderr; set `RUST_LOG` (for example `RUST_LOG=debug`) to see more.

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use fanta_core::server::{Server, ServerConfig, DEFAULT_LISTEN};

const USAGE: &str = "\
usage: fanta-server [OPTIONS]

Serves Fantaprotocol v1: echoes each request's payload, answers the payload PING with PONG.

options:
  --listen HOST:PORT        address to bind (default 127.0.0.1:7878; port 0 picks a free port)
  --delay-ms MIN[-MAX]      delay each response by a random number of milliseconds in MIN..=MAX,
                            so that responses leave out of order (default: no delay)
  --max-in-flight N         announce and enforce at most N requests in flight per connection
                            (default 0: no limit)
  --max-frame-length BYTES  largest frame length accepted from a client (default 16777216)
  --silent                  never answer requests (HELLO and PING are still answered)
  --fail-prefix PREFIX      answer requests whose payload starts with PREFIX with an ERROR frame
                            carrying the rest of the payload as its message
  -h, --help                print this help
";

fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(Some(config)) => config,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("fanta-server: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("fanta-server: failed to start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };

    runtime.block_on(async {
        let server = match Server::bind(config.clone()).await {
            Ok(server) => server,
            Err(error) => {
                eprintln!(
                    "fanta-server: failed to listen on {}: {error}",
                    config.listen
                );
                return ExitCode::FAILURE;
            }
        };
        println!("listening on {}", server.local_addr());
        use std::io::Write;
        let _ = std::io::stdout().flush();

        wait_for_signal().await;
        server.shutdown();
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Parses the command line; `Ok(None)` means help was requested.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<ServerConfig>, String> {
    let mut config = ServerConfig {
        listen: DEFAULT_LISTEN.to_string(),
        ..ServerConfig::default()
    };

    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("missing value for {name}"))
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" => config.listen = value("--listen")?,
            "--delay-ms" => config.delay = Some(parse_delay(&value("--delay-ms")?)?),
            "--max-in-flight" => {
                config.max_in_flight = parse_number("--max-in-flight", &value("--max-in-flight")?)?
            }
            "--max-frame-length" => {
                let max = parse_number("--max-frame-length", &value("--max-frame-length")?)?;
                if max < 64 {
                    return Err(format!(
                        "--max-frame-length: expected at least 64, got {max}"
                    ));
                }
                config.max_frame_length = max;
            }
            "--silent" => config.silent = true,
            "--fail-prefix" => {
                config.fail_prefix = Some(Bytes::from(value("--fail-prefix")?.into_bytes()))
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(Some(config))
}

fn parse_number(name: &str, text: &str) -> Result<u32, String> {
    text.parse()
        .map_err(|_| format!("{name}: expected a whole number, got {text:?}"))
}

fn parse_delay(text: &str) -> Result<(Duration, Duration), String> {
    let (min, max) = match text.split_once('-') {
        Some((min, max)) => (min, max),
        None => (text, text),
    };
    let min = parse_number("--delay-ms", min)?;
    let max = parse_number("--delay-ms", max)?;
    if min > max {
        return Err(format!("--delay-ms: expected MIN <= MAX, got {min}-{max}"));
    }
    Ok((
        Duration::from_millis(u64::from(min)),
        Duration::from_millis(u64::from(max)),
    ))
}
