//! Closed-loop throughput: requests per second at 1, 16, 64 and 256 concurrent callers over 4
//! connections to one server, 16-byte payloads.
//!
//! Each caller is a task on one shared caller runtime that sends a request, waits for its
//! response and sends the next. Variants:
//!
//! - `pool_round_robin`, `pool_random`: the routing pool with each built-in strategy.
//! - `pipelined`: the hand-written pipelined client in `common/pipelined.rs`, with its
//!   connections' reader and writer tasks on the callers' runtime.
//! - `pipelined_io_runtime` (the reference): the same client with its connections on a second
//!   2-thread runtime. This is the pool's layout, whose connections run on the library's own
//!   runtime, so it is the limit the pool is held to.
//! - `checkout_deadpool`: a deadpool pool of 4 connections, each carrying one request at a
//!   time, as a Rust user would build without a multiplexing client.
//!
//! Every variant keeps its connections open for the whole run. Rounds interleave the variants
//! in a rotating order, so that a slow spell of the shared machine hits all of them. The figure
//! is the median over rounds.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::json::Json;
use common::pipelined::{self, PipelinedClient};
use common::{median, Options, PAYLOAD, REQUEST_TIMEOUT};
use fanta_core::{Pool, PoolConfig};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 4;

/// One connection of the checkout pool, with the id its next request uses.
struct CheckoutConnection {
    stream: TcpStream,
    next_id: u32,
}

struct CheckoutManager {
    address: String,
}

impl deadpool::managed::Manager for CheckoutManager {
    type Type = CheckoutConnection;
    type Error = std::io::Error;

    async fn create(&self) -> Result<CheckoutConnection, std::io::Error> {
        Ok(CheckoutConnection {
            stream: pipelined::connect(self.address.clone()).await,
            next_id: 1,
        })
    }

    async fn recycle(
        &self,
        _connection: &mut CheckoutConnection,
        _metrics: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<std::io::Error> {
        Ok(())
    }
}

type CheckoutPool = deadpool::managed::Pool<CheckoutManager>;

enum Client {
    Pool(Pool),
    Pipelined(PipelinedClient),
    Checkout(CheckoutPool),
}

impl Client {
    async fn request(&self) -> usize {
        match self {
            Client::Pool(pool) => pool
                .request(PAYLOAD)
                .await
                .expect("pool request failed")
                .len(),
            Client::Pipelined(client) => client.request(PAYLOAD).await.len(),
            Client::Checkout(pool) => {
                let mut connection = pool.get().await.expect("checkout failed");
                let id = connection.next_id;
                connection.next_id = id.wrapping_add(1).max(1);
                pipelined::request_unpipelined(&mut connection.stream, id, PAYLOAD)
                    .await
                    .len()
            }
        }
    }
}

struct Variant {
    name: &'static str,
    description: &'static str,
    client: Arc<Client>,
}

async fn open_pool(address: &str, strategy: &str) -> Client {
    let pool = Pool::open(
        PoolConfig::new([address])
            .connections_per_address(CONNECTIONS)
            .strategy(strategy)
            .timeout(REQUEST_TIMEOUT),
    )
    .expect("failed to open the pool");
    assert!(
        pool.wait_connected(CONNECTIONS, Duration::from_secs(10))
            .await,
        "pool did not connect to {address}"
    );
    Client::Pool(pool)
}

async fn open_checkout(address: &str) -> Client {
    let pool = CheckoutPool::builder(CheckoutManager {
        address: address.to_string(),
    })
    .max_size(CONNECTIONS)
    .build()
    .expect("failed to build the deadpool pool");

    // Open all connections now, so that no measurement includes a connect.
    let mut checked_out = Vec::new();
    for _ in 0..CONNECTIONS {
        checked_out.push(pool.get().await.expect("checkout failed"));
    }
    drop(checked_out);
    Client::Checkout(pool)
}

/// Runs `callers` closed-loop callers for `warmup` plus `duration` and returns the requests
/// per second completed during `duration`.
async fn measure(
    client: &Arc<Client>,
    callers: usize,
    warmup: Duration,
    duration: Duration,
) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(AtomicU64::new(0));

    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let client = client.clone();
            let stop = stop.clone();
            let completed = completed.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let length = client.request().await;
                    assert_eq!(length, PAYLOAD.len(), "echo has the wrong length");
                    completed.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    tokio::time::sleep(warmup).await;
    let start_count = completed.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(duration).await;
    let end_count = completed.load(Ordering::Relaxed);
    let elapsed = start.elapsed();

    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("caller task panicked");
    }
    (end_count - start_count) as f64 / elapsed.as_secs_f64()
}

/// Sends a fixed number of requests through one variant, for a profiler (`--part
/// VARIANT[:CALLERS]`, 64 callers by default): a count instead of a duration keeps the work
/// the same under valgrind or strace.
fn profile_one(runtime: &tokio::runtime::Runtime, variants: &[Variant], part: &str) {
    const REQUESTS: u64 = 100_000;
    let (name, callers) = part.split_once(':').unwrap_or((part, "64"));
    let callers: u64 = callers
        .parse()
        .unwrap_or_else(|_| panic!("--part: expected VARIANT[:CALLERS], got {part:?}"));

    let variant = variants
        .iter()
        .find(|variant| variant.name == name)
        .unwrap_or_else(|| panic!("--part: no variant named {name:?}"));
    let start = Instant::now();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let client = variant.client.clone();
                tokio::spawn(async move {
                    for _ in 0..REQUESTS / callers {
                        client.request().await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("caller task panicked");
        }
    });
    eprintln!(
        "closed_loop: {name}: {REQUESTS} requests from {callers} callers in {:.2} s",
        start.elapsed().as_secs_f64()
    );
}

fn main() {
    let options: Options = common::parse_options();
    let profile = options.profile;
    let caller_counts: Vec<usize> =
        profile.pick(vec![1, 16], vec![1, 16, 64, 256], vec![1, 16, 64, 256]);
    let rounds = profile.pick(1, 2, 5);
    let warmup = Duration::from_millis(profile.pick(100, 200, 500));
    let duration = Duration::from_millis(profile.pick(200, 1000, 3000));

    let runtime = common::caller_runtime();
    // The I/O runtime of `pipelined_io_runtime`, sized like the pool's runtime on 2 cores.
    let io_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-io")
        .enable_all()
        .build()
        .expect("failed to start the I/O runtime");
    let address = options.server.clone();
    let variants: Vec<Variant> = runtime.block_on(async {
        vec![
            Variant {
                name: "pool_round_robin",
                description: "fanta-core Pool, round_robin",
                client: Arc::new(open_pool(&address, "round_robin").await),
            },
            Variant {
                name: "pool_random",
                description: "fanta-core Pool, random",
                client: Arc::new(open_pool(&address, "random").await),
            },
            Variant {
                name: "pipelined",
                description: "hand-written pipelined tokio client",
                client: Arc::new(Client::Pipelined(
                    PipelinedClient::connect(&address, CONNECTIONS).await,
                )),
            },
            Variant {
                name: "pipelined_io_runtime",
                description: "the same client with its connections on a separate 2-thread runtime",
                client: Arc::new(Client::Pipelined(
                    PipelinedClient::connect_on(io_runtime.handle(), &address, CONNECTIONS).await,
                )),
            },
            Variant {
                name: "checkout_deadpool",
                description: "deadpool checkout pool, one request per connection at a time",
                client: Arc::new(open_checkout(&address).await),
            },
        ]
    });

    if let Some(name) = options.part.as_deref() {
        profile_one(&runtime, &variants, name);
        return;
    }

    // samples[variant][caller count] contains one rate per round.
    let mut samples = vec![vec![Vec::new(); caller_counts.len()]; variants.len()];
    for round in 0..rounds {
        for (count_index, &callers) in caller_counts.iter().enumerate() {
            for offset in 0..variants.len() {
                let index = (offset + round + count_index) % variants.len();
                let variant = &variants[index];
                let rate = runtime.block_on(measure(&variant.client, callers, warmup, duration));
                eprintln!(
                    "closed_loop: round {round} {:>18} callers {callers:>3}: {rate:>10.0} req/s",
                    variant.name
                );
                samples[index][count_index].push(rate);
            }
        }
    }

    let variant_results: Vec<Json> = variants
        .iter()
        .zip(&samples)
        .map(|(variant, per_count)| {
            let points: Vec<Json> = caller_counts
                .iter()
                .zip(per_count)
                .map(|(&callers, rates)| {
                    Json::object()
                        .with("callers", callers)
                        .with("requests_per_second", median(rates))
                        .with(
                            "samples",
                            rates.iter().map(|&r| Json::from(r)).collect::<Vec<_>>(),
                        )
                })
                .collect();
            Json::object()
                .with("name", variant.name)
                .with("description", variant.description)
                .with("points", points)
        })
        .collect();

    let result = Json::object()
        .with("section", "closed_loop")
        .with("profile", profile.name())
        .with("connections", CONNECTIONS)
        .with("payload_bytes", PAYLOAD.len())
        .with("rounds", rounds)
        .with("warmup_seconds", warmup.as_secs_f64())
        .with("seconds_per_sample", duration.as_secs_f64())
        .with("reference", "pipelined_io_runtime")
        .with("variants", variant_results);
    println!("{}", result.render());
}
