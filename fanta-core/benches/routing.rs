//! Routing cost: nanoseconds and heap allocations per pick over 16 registered connections, from
//! 1 and 2 threads.
//!
//! The 16 connections are a real pool's, all open to the one benchmark server. Each pick loads
//! the registry snapshot and calls a strategy for an index, as the request path does. Variants:
//!
//! - `baseline_atomic`: one shared `fetch_add` plus one snapshot load, the floor that any
//!   shared-counter strategy pays (the reference).
//! - `round_robin`, `random`: the built-in strategies, called through `dyn Strategy` as the pool
//!   calls them.
//! - `mutex_list`: a mutex-guarded connection list with a cursor, the design where every request
//!   passes through one central pool object.
//!
//! Allocations are counted per thread by a wrapping global allocator, so the pool's idle
//! runtime threads do not add to the count.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::json::Json;
use common::{median, Options};
use fanta_core::connection::Connection;
use fanta_core::registry::Group;
use fanta_core::strategy::{self, Strategy};
use fanta_core::{Pool, PoolConfig};

const CONNECTIONS: usize = 16;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting allocations made by each thread.
struct CountingAllocator;

// SAFETY: every method forwards to `System` unchanged. The thread-local counter has a const
// initializer, so updating it never allocates and never re-enters the allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: `pointer` was allocated by `System` with `layout`, as the caller guarantees.
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: as for `dealloc`, and `new_size` meets `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations_on_this_thread() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// The state the variants pick from: the pool's registry group and the same connections in a list.
struct Fixture {
    group: Group<Arc<Connection>>,
    counter: AtomicUsize,
    round_robin: Arc<dyn Strategy>,
    random: Arc<dyn Strategy>,
    mutex_list: Mutex<MutexList>,
}

/// The central-pool design: one lock around the connection list and its cursor.
struct MutexList {
    connections: Vec<Arc<Connection>>,
    cursor: usize,
}

impl MutexList {
    fn pick(&mut self) -> Option<usize> {
        let len = self.connections.len();
        for offset in 0..len {
            let index = (self.cursor + offset) % len;
            if self.connections[index].has_capacity() {
                self.cursor = index + 1;
                return Some(index);
            }
        }
        None
    }
}

#[derive(Clone, Copy)]
enum Variant {
    BaselineAtomic,
    RoundRobin,
    Random,
    MutexList,
}

impl Variant {
    const ALL: [Variant; 4] = [
        Variant::BaselineAtomic,
        Variant::RoundRobin,
        Variant::Random,
        Variant::MutexList,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::BaselineAtomic => "baseline_atomic",
            Variant::RoundRobin => "round_robin",
            Variant::Random => "random",
            Variant::MutexList => "mutex_list",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Variant::BaselineAtomic => "one shared fetch_add plus one snapshot load",
            Variant::RoundRobin => "RoundRobin::pick on the snapshot",
            Variant::Random => "Random::pick on the snapshot",
            Variant::MutexList => "mutex-guarded list with a cursor",
        }
    }
}

/// Runs `iterations` picks of `variant` and returns how many allocations they made.
#[inline(never)]
fn run_picks(fixture: &Fixture, variant: Variant, iterations: u64) -> u64 {
    let before = allocations_on_this_thread();
    match variant {
        Variant::BaselineAtomic => {
            for _ in 0..iterations {
                let snapshot = fixture.group.load();
                let ticket = fixture.counter.fetch_add(1, Ordering::Relaxed);
                black_box((snapshot.len(), ticket));
            }
        }
        Variant::RoundRobin => {
            for _ in 0..iterations {
                let snapshot = fixture.group.load();
                black_box(fixture.round_robin.pick(&snapshot));
            }
        }
        Variant::Random => {
            for _ in 0..iterations {
                let snapshot = fixture.group.load();
                black_box(fixture.random.pick(&snapshot));
            }
        }
        Variant::MutexList => {
            for _ in 0..iterations {
                black_box(fixture.mutex_list.lock().unwrap().pick());
            }
        }
    }
    allocations_on_this_thread() - before
}

/// Runs `iterations` picks on each of `threads` threads at once. Returns the nanoseconds per
/// pick as measured on one thread (the slowest thread's time over its picks) and the allocations
/// per pick over all threads.
fn measure(fixture: &Fixture, variant: Variant, threads: usize, iterations: u64) -> (f64, f64) {
    let barrier = Barrier::new(threads);
    let results: Vec<(Duration, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    // The first snapshot load on a new thread allocates arc-swap's per-thread
                    // debt node once. Warming up keeps that one-time cost out of the count.
                    run_picks(fixture, variant, 1000);
                    barrier.wait();
                    let start = Instant::now();
                    let allocations = run_picks(fixture, variant, iterations);
                    (start.elapsed(), allocations)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let slowest = results.iter().map(|(elapsed, _)| *elapsed).max().unwrap();
    let allocations: u64 = results.iter().map(|(_, count)| count).sum();
    (
        slowest.as_nanos() as f64 / iterations as f64,
        allocations as f64 / (iterations * threads as u64) as f64,
    )
}

fn main() {
    let options: Options = common::parse_options();
    let profile = options.profile;
    let iterations: u64 = profile.pick(20_000, 2_000_000, 5_000_000);
    let rounds = profile.pick(1, 5, 11);

    let pool = Pool::open(
        PoolConfig::new([options.server.as_str()])
            .connections_per_address(CONNECTIONS)
            .strategy("round_robin"),
    )
    .expect("failed to open the pool");
    assert!(
        pool.wait_connected_blocking(CONNECTIONS, Duration::from_secs(10))
            .expect("wait_connected_blocking failed"),
        "pool did not connect {CONNECTIONS} connections"
    );

    let group = pool.registry_group().clone();
    let connections: Vec<Arc<Connection>> = group
        .load()
        .iter()
        .map(|entry| entry.value().clone())
        .collect();
    assert_eq!(connections.len(), CONNECTIONS);
    let fixture = Fixture {
        group,
        counter: AtomicUsize::new(0),
        round_robin: strategy::by_name("round_robin").unwrap(),
        random: strategy::by_name("random").unwrap(),
        mutex_list: Mutex::new(MutexList {
            connections,
            cursor: 0,
        }),
    };

    let mut results = Vec::new();
    for threads in [1usize, 2] {
        let mut nanos = vec![Vec::new(); Variant::ALL.len()];
        let mut allocations = vec![0.0f64; Variant::ALL.len()];
        for round in 0..rounds {
            for offset in 0..Variant::ALL.len() {
                let index = (offset + round) % Variant::ALL.len();
                let (ns, allocs) = measure(&fixture, Variant::ALL[index], threads, iterations);
                nanos[index].push(ns);
                allocations[index] = allocations[index].max(allocs);
            }
        }

        for (index, variant) in Variant::ALL.iter().enumerate() {
            let ns = median(&nanos[index]);
            eprintln!(
                "routing: {threads} thread(s) {:>16}: {ns:6.2} ns/pick, {} allocations/pick",
                variant.name(),
                allocations[index]
            );
            results.push(
                Json::object()
                    .with("name", variant.name())
                    .with("description", variant.description())
                    .with("threads", threads)
                    .with("ns_per_pick", ns)
                    .with(
                        "samples",
                        nanos[index]
                            .iter()
                            .map(|&n| Json::from(n))
                            .collect::<Vec<_>>(),
                    )
                    .with("allocations_per_pick", allocations[index]),
            );
        }
    }
    pool.close();

    let result = Json::object()
        .with("section", "routing")
        .with("profile", profile.name())
        .with("connections", CONNECTIONS)
        .with("iterations_per_sample", iterations)
        .with("rounds", rounds)
        .with("reference", "baseline_atomic")
        .with("variants", results);
    println!("{}", result.render());
}
