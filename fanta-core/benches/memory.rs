//! Memory: resident memory per idle connection, per request in flight, and before and after
//! millions of requests.
//!
//! One part runs per process (`--part idle|in_flight|growth`), because memory freed by one
//! part stays resident and would hide the next part's growth. Each part reports two figures:
//!
//! - the change of this process's resident set size (`/proc/self/statm`), which is what the
//!   operating system charges, including allocator slack and thread stacks;
//! - the change of live heap bytes, counted by a wrapping global allocator, which is exact
//!   but leaves out kernel socket buffers and memory the allocator keeps after a free.
//!
//! Parts:
//!
//! - `idle`: opens a pool of 1,000 connections (100 in smoke mode) to the echo server next to
//!   a pool of one, and divides the difference by the connection count.
//! - `in_flight`: queues 100,000 requests (1,000 in smoke mode) on 4 connections to a server
//!   started with `--silent`, which sends no responses, and divides by the request count. Each
//!   request's future, which the pool boxes, is counted; the vector holding the futures is
//!   allocated and touched before the first measurement, so it is not.
//! - `growth`: sends 200,000 warm-up requests from 64 callers, then 10 million more (1 million
//!   in quick mode, 20,000 in smoke mode), and reports both figures before and after.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use common::json::Json;
use common::{resident_bytes, Options, PAYLOAD};
use fanta_core::{Pool, PoolConfig, RequestFuture};

static LIVE_HEAP_BYTES: AtomicI64 = AtomicI64::new(0);

/// While set, allocations are also tallied by size, to attribute the in-flight cost.
static TALLY_SIZES: AtomicBool = AtomicBool::new(false);
/// Allocation counts by size in 8-byte steps; the last bucket takes every larger size.
static SIZE_TALLY: [AtomicU64; 129] = [const { AtomicU64::new(0) }; 129];

fn tally(size: usize) {
    if TALLY_SIZES.load(Ordering::Relaxed) {
        SIZE_TALLY[(size.div_ceil(8)).min(128)].fetch_add(1, Ordering::Relaxed);
    }
}

/// The system allocator, keeping a running total of bytes allocated and not yet freed.
struct CountingAllocator;

// SAFETY: every method forwards to `System` unchanged and only updates an atomic counter,
// which neither allocates nor re-enters the allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            LIVE_HEAP_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
            tally(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: `pointer` was allocated by `System` with `layout`, as the caller guarantees.
        unsafe { System.dealloc(pointer, layout) };
        LIVE_HEAP_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and `new_size` meets `GlobalAlloc::realloc`'s contract.
        let new_pointer = unsafe { System.realloc(pointer, layout, new_size) };
        if !new_pointer.is_null() {
            LIVE_HEAP_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        new_pointer
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Resident and live heap bytes at one moment.
#[derive(Clone, Copy)]
struct Usage {
    resident: u64,
    heap: i64,
}

/// Measures after a short pause, so that background tasks finish what the last step started.
fn usage_after_settling() -> Usage {
    std::thread::sleep(Duration::from_millis(300));
    Usage {
        resident: resident_bytes(),
        heap: LIVE_HEAP_BYTES.load(Ordering::Relaxed),
    }
}

fn open_pool(
    address: &str,
    connections: usize,
    configure: impl FnOnce(PoolConfig) -> PoolConfig,
) -> Pool {
    let config = configure(PoolConfig::new([address]).connections_per_address(connections));
    let pool = Pool::open(config).expect("failed to open the pool");
    let connected = pool
        .wait_connected_blocking(connections, Duration::from_secs(60))
        .expect("wait_connected_blocking failed");
    assert!(
        connected,
        "pool did not connect {connections} connections to {address}"
    );
    pool
}

fn per_unit(before: Usage, after: Usage, units: usize) -> Json {
    Json::object()
        .with(
            "resident_bytes_per_unit",
            (after.resident as f64 - before.resident as f64) / units as f64,
        )
        .with(
            "heap_bytes_per_unit",
            (after.heap - before.heap) as f64 / units as f64,
        )
        .with("resident_before", before.resident)
        .with("resident_after", after.resident)
}

fn idle_connections(options: &Options) -> Json {
    let connections = options.profile.pick(100, 1_000, 1_000);

    // A pool of one connection first, so that the runtime and its threads exist before the
    // first measurement.
    let _warm = open_pool(&options.server, 1, |config| config);
    let before = usage_after_settling();
    let pool = open_pool(&options.server, connections, |config| config);
    let after = usage_after_settling();
    eprintln!(
        "memory: {connections} idle connections: {:.0} resident bytes, {:.0} heap bytes each",
        (after.resident as f64 - before.resident as f64) / connections as f64,
        (after.heap - before.heap) as f64 / connections as f64
    );
    drop(pool);

    per_unit(before, after, connections)
        .with("part", "idle")
        .with("connections", connections)
}

fn in_flight_requests(options: &Options) -> Json {
    let address = options
        .silent_server
        .as_deref()
        .expect("the in_flight part needs --silent-server HOST:PORT");
    let requests: usize = options.profile.pick(1_000, 100_000, 100_000);
    let connections: usize = 4;
    let pool = open_pool(address, connections, |config| {
        config
            .max_in_flight(requests.div_ceil(connections) as u32 + 1)
            .timeout(Duration::from_secs(600))
    });

    let mut futures: Vec<Option<RequestFuture<'_>>> = Vec::with_capacity(requests);
    futures.resize_with(requests, || None);
    let before = usage_after_settling();

    // Polling each future once routes its request and queues the frame; the server never
    // answers, so every request stays in flight until the futures are dropped.
    let mut context = Context::from_waker(Waker::noop());
    TALLY_SIZES.store(true, Ordering::Relaxed);
    for slot in futures.iter_mut() {
        let mut future = pool.request(PAYLOAD);
        assert!(
            Pin::new(&mut future).poll(&mut context).is_pending(),
            "silent server answered"
        );
        *slot = Some(future);
    }
    TALLY_SIZES.store(false, Ordering::Relaxed);
    let allocation_sizes = allocation_sizes_per_request(requests);
    let deadline = Instant::now() + Duration::from_secs(30);
    while pool.stats().in_flight < requests as u64 {
        assert!(
            Instant::now() < deadline,
            "requests did not all go in flight"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let after = usage_after_settling();
    eprintln!(
        "memory: {requests} requests in flight: {:.0} resident bytes, {:.0} heap bytes each",
        (after.resident as f64 - before.resident as f64) / requests as f64,
        (after.heap - before.heap) as f64 / requests as f64
    );
    drop(futures);
    pool.close();

    per_unit(before, after, requests)
        .with("part", "in_flight")
        .with("allocations_by_size", allocation_sizes)
        .with("requests", requests)
        .with("connections", connections)
}

/// Returns the allocations per request made while the requests were queued, by size, largest
/// share first. Sizes are rounded up to 8 bytes; the last bucket is "more than 1016 bytes".
fn allocation_sizes_per_request(requests: usize) -> Json {
    let mut buckets: Vec<(usize, f64)> = SIZE_TALLY
        .iter()
        .enumerate()
        .map(|(bucket, count)| {
            (
                bucket * 8,
                count.load(Ordering::Relaxed) as f64 / requests as f64,
            )
        })
        .filter(|&(_, per_request)| per_request >= 0.01)
        .collect();
    buckets.sort_by(|a, b| (b.0 as f64 * b.1).total_cmp(&(a.0 as f64 * a.1)));
    for (size, per_request) in &buckets {
        eprintln!("memory:   {per_request:.2} allocations of {size} bytes per request");
    }
    buckets
        .into_iter()
        .map(|(size, per_request)| {
            Json::object()
                .with("bytes", size)
                .with("per_request", per_request)
        })
        .collect::<Vec<_>>()
        .into()
}

/// Sends `count` requests from `callers` closed-loop callers.
async fn send_requests(pool: &Arc<Pool>, callers: usize, count: u64) {
    let issued = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (pool, issued) = (pool.clone(), issued.clone());
            tokio::spawn(async move {
                while issued.fetch_add(1, Ordering::Relaxed) < count {
                    pool.request(PAYLOAD).await.expect("pool request failed");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("caller task panicked");
    }
}

fn growth(options: &Options) -> Json {
    let profile = options.profile;
    let warmup: u64 = profile.pick(5_000, 200_000, 200_000);
    let requests: u64 = profile.pick(20_000, 1_000_000, 10_000_000);
    let callers = 64;

    let runtime = common::caller_runtime();
    let pool = Arc::new(open_pool(&options.server, 4, |config| config));
    runtime.block_on(send_requests(&pool, callers, warmup));
    let before = usage_after_settling();

    let start = Instant::now();
    runtime.block_on(send_requests(&pool, callers, requests));
    let elapsed = start.elapsed();
    let after = usage_after_settling();
    let stats = pool.stats();
    eprintln!(
        "memory: {requests} requests in {:.1} s: resident {} -> {} bytes, heap {} -> {} bytes",
        elapsed.as_secs_f64(),
        before.resident,
        after.resident,
        before.heap,
        after.heap
    );

    Json::object()
        .with("part", "growth")
        .with("warmup_requests", warmup)
        .with("requests", requests)
        .with("callers", callers)
        .with("seconds", elapsed.as_secs_f64())
        .with("errors", stats.errors.total())
        .with("resident_before", before.resident)
        .with("resident_after", after.resident)
        .with("heap_before", before.heap as f64)
        .with("heap_after", after.heap as f64)
}

fn main() {
    let options = common::parse_options();
    let part = match options.part.as_deref() {
        Some("idle") => idle_connections(&options),
        Some("in_flight") => in_flight_requests(&options),
        Some("growth") => growth(&options),
        other => {
            eprintln!("memory: --part: expected idle, in_flight or growth, got {other:?}");
            std::process::exit(2);
        }
    };
    let result = part
        .with("section", "memory")
        .with("profile", options.profile.name());
    println!("{}", result.render());
}
