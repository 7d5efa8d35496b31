//! Open-loop latency: requests sent at a fixed arrival rate, at 10%, 50% and 90% of the pool's
//! measured maximum, with p50, p99 and p99.9 from an HDR histogram.
//!
//! Latency is counted from each request's intended send time, not from when it was actually
//! sent (the method of wrk2). A stall therefore delays every request scheduled behind it and
//! shows up in the percentiles, instead of being hidden by a sender that waited. Variants:
//!
//! - `pool`: the routing pool with 4 connections, round_robin.
//! - `direct`: the hand-written pipelined client on one connection (the reference).
//!
//! The maximum is the closed-loop rate of the pool with 64 callers, measured at the start of
//! this program against the same server. A pacing thread sleeps until each send time (timer
//! slack lowered to 1 microsecond) and spawns the request on the caller runtime. Its wake-up
//! delay is part of every figure, in both variants alike.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::json::Json;
use common::pipelined::PipelinedClient;
use common::{Options, PAYLOAD, REQUEST_TIMEOUT};
use fanta_core::{Pool, PoolConfig};
use hdrhistogram::Histogram;

const POOL_CONNECTIONS: usize = 4;
const LOAD_LEVELS: [f64; 3] = [0.1, 0.5, 0.9];

enum Client {
    Pool(Pool),
    Direct(PipelinedClient),
}

impl Client {
    async fn request(&self) {
        let length = match self {
            Client::Pool(pool) => pool
                .request(PAYLOAD)
                .await
                .expect("pool request failed")
                .len(),
            Client::Direct(client) => client.request(PAYLOAD).await.len(),
        };
        assert_eq!(length, PAYLOAD.len(), "echo has the wrong length");
    }
}

/// Closed-loop requests per second of `client` with `callers` callers.
async fn max_rate(client: &Arc<Client>, callers: usize, duration: Duration) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (client, stop, completed) = (client.clone(), stop.clone(), completed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    client.request().await;
                    completed.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    tokio::time::sleep(duration / 4).await;
    let start_count = completed.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(duration).await;
    let rate =
        (completed.load(Ordering::Relaxed) - start_count) as f64 / start.elapsed().as_secs_f64();

    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("caller task panicked");
    }
    rate
}

/// Lowers this thread's timer slack so that a sleep ends within microseconds of its deadline
/// instead of the default 50 microseconds.
fn lower_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and changes only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong);
    }
}

/// Sleeps until shortly before `deadline`, then yields the processor until it passes.
///
/// A sleep alone ends 5 to 60 microseconds late on a loaded 2-core machine, which is more than
/// the gaps between sends at high rates. Yielding instead of spinning gives the processor to
/// the server and client threads whenever they have work.
fn wait_until(deadline: Instant) {
    const SLEEP_MARGIN: Duration = Duration::from_micros(100);
    let now = Instant::now();
    if deadline > now + SLEEP_MARGIN {
        std::thread::sleep(deadline - now - SLEEP_MARGIN);
    }
    while Instant::now() < deadline {
        std::thread::yield_now();
    }
}

/// The outcome of one open-loop run.
struct OpenLoopResult {
    histogram: Histogram<u64>,
    sent: u64,
    /// Largest delay of an actual send behind its intended time.
    max_send_lag: Duration,
}

/// Sends requests at `rate` per second for `duration` and records each one's latency from its
/// intended send time, in nanoseconds.
fn open_loop(
    runtime: &tokio::runtime::Runtime,
    client: &Arc<Client>,
    rate: f64,
    duration: Duration,
) -> OpenLoopResult {
    let histogram = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 120_000_000_000, 3).expect("invalid histogram bounds"),
    ));
    let completed = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let total = (rate * duration.as_secs_f64()).ceil() as u64;

    let handle = runtime.handle().clone();
    let pacer = {
        let (client, histogram, completed) = (client.clone(), histogram.clone(), completed.clone());
        std::thread::spawn(move || {
            lower_timer_slack();
            let start = Instant::now() + Duration::from_millis(10);
            let mut max_send_lag = Duration::ZERO;
            for index in 0..total {
                let intended = start + interval.mul_f64(index as f64);
                wait_until(intended);
                max_send_lag = max_send_lag.max(Instant::now() - intended);

                let (client, histogram, completed) =
                    (client.clone(), histogram.clone(), completed.clone());
                handle.spawn(async move {
                    client.request().await;
                    let latency = intended.elapsed().as_nanos() as u64;
                    histogram.lock().unwrap().saturating_record(latency.max(1));
                    completed.fetch_add(1, Ordering::Relaxed);
                });
            }
            max_send_lag
        })
    };
    let max_send_lag = pacer.join().expect("pacing thread panicked");

    let deadline = Instant::now() + REQUEST_TIMEOUT;
    while completed.load(Ordering::Relaxed) < total {
        assert!(
            Instant::now() < deadline,
            "open-loop requests did not complete"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let histogram = histogram.lock().unwrap().clone();
    OpenLoopResult {
        histogram,
        sent: total,
        max_send_lag,
    }
}

impl OpenLoopResult {
    fn merge(&mut self, other: OpenLoopResult) {
        self.histogram
            .add(&other.histogram)
            .expect("histograms with equal bounds always merge");
        self.sent += other.sent;
        self.max_send_lag = self.max_send_lag.max(other.max_send_lag);
    }
}

fn micros(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1_000.0
}

fn main() {
    let options: Options = common::parse_options();
    let profile = options.profile;
    let duration = Duration::from_millis(profile.pick(300, 3_000, 10_000));
    let max_duration = Duration::from_millis(profile.pick(300, 1_500, 3_000));
    let segments: u32 = profile.pick(1, 6, 10);

    let runtime = common::caller_runtime();
    let address = options.server.clone();
    let (pool, direct) = runtime.block_on(async {
        let pool = Pool::open(
            PoolConfig::new([address.as_str()])
                .connections_per_address(POOL_CONNECTIONS)
                .strategy("round_robin")
                .timeout(REQUEST_TIMEOUT),
        )
        .expect("failed to open the pool");
        assert!(
            pool.wait_connected(POOL_CONNECTIONS, Duration::from_secs(10))
                .await,
            "pool did not connect"
        );
        let direct = PipelinedClient::connect(&address, 1).await;
        (
            Arc::new(Client::Pool(pool)),
            Arc::new(Client::Direct(direct)),
        )
    });

    let maximum = runtime.block_on(max_rate(&pool, 64, max_duration));
    eprintln!("latency: pool maximum {maximum:.0} req/s with 64 callers");

    let variants = [("pool", &pool), ("direct", &direct)];
    let mut points = Vec::new();
    for level in LOAD_LEVELS {
        let rate = maximum * level;

        // Alternate the variants in segments, so that a slow spell hits both.
        let mut results: Vec<Option<OpenLoopResult>> = vec![None, None];
        for _ in 0..segments {
            for (index, (_, client)) in variants.iter().enumerate() {
                let segment = open_loop(&runtime, client, rate, duration / segments);
                match &mut results[index] {
                    Some(total) => total.merge(segment),
                    empty => *empty = Some(segment),
                }
            }
        }

        for ((name, _), result) in variants.iter().zip(results) {
            let result = result.expect("no segment ran");
            let histogram = &result.histogram;
            eprintln!(
                "latency: {name:>6} at {:>3.0}% ({rate:.0} req/s): p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us",
                level * 100.0,
                micros(histogram, 0.5),
                micros(histogram, 0.99),
                micros(histogram, 0.999)
            );
            points.push(
                Json::object()
                    .with("variant", *name)
                    .with("load", level)
                    .with("rate", rate)
                    .with("requests", result.sent)
                    .with("p50_us", micros(histogram, 0.5))
                    .with("p90_us", micros(histogram, 0.9))
                    .with("p99_us", micros(histogram, 0.99))
                    .with("p999_us", micros(histogram, 0.999))
                    .with("max_us", histogram.max() as f64 / 1_000.0)
                    .with("max_send_lag_us", result.max_send_lag.as_secs_f64() * 1e6),
            );
        }
    }

    let result = Json::object()
        .with("section", "latency")
        .with("profile", profile.name())
        .with("pool_connections", POOL_CONNECTIONS)
        .with("payload_bytes", PAYLOAD.len())
        .with("maximum_rate", maximum)
        .with("maximum_callers", 64usize)
        .with("seconds_per_point", duration.as_secs_f64())
        .with("segments_per_point", segments)
        .with("reference", "direct")
        .with("points", points);
    println!("{}", result.render());
}
