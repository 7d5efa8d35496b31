//! End-to-end behaviour of the pool against real servers on loopback.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, open_pool, read_frame, write_frame, RawServer, ServerProcess};
use fanta_core::protocol::FrameKind;
use fanta_core::{
    Backoff, ConnectionState, Error, ErrorKind, Pool, PoolConfig, Server, ServerConfig,
};

fn fast_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(50),
        multiplier: 2.0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_get_their_own_payloads() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0", "--delay-ms", "0-2"]);
    let pool = Arc::new(open_pool(&server.address, 4));
    assert!(pool.wait_connected(4, Duration::from_secs(5)).await);

    const CALLERS: usize = 64;
    const REQUESTS: usize = 100_000;
    let mut tasks = Vec::new();
    for caller in 0..CALLERS {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut mismatches = 0;
            for i in 0..REQUESTS / CALLERS + usize::from(caller < REQUESTS % CALLERS) {
                let payload = format!("caller {caller} request {i}");
                let response = pool.request(payload.as_bytes()).await.unwrap();
                if response != payload.as_bytes() {
                    mismatches += 1;
                }
            }
            mismatches
        }));
    }

    let mut mismatches = 0;
    for task in tasks {
        mismatches += task.await.unwrap();
    }
    assert_eq!(mismatches, 0);

    let stats = pool.stats();
    assert_eq!(stats.completed, REQUESTS as u64);
    assert_eq!(stats.errors.total(), 0);
    assert_eq!(stats.late_responses, 0);
    assert_eq!(stats.connected, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_arrive_out_of_order_but_match() {
    let server = Server::bind(ServerConfig {
        delay: Some((Duration::ZERO, Duration::from_millis(20))),
        ..ServerConfig::loopback()
    })
    .await
    .unwrap();
    let pool = Arc::new(open_pool(&server.local_addr().to_string(), 1));

    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let response = pool.request(i.to_be_bytes()).await.unwrap();
            (i, response, started.elapsed())
        }));
    }
    for task in tasks {
        let (i, response, _) = task.await.unwrap();
        assert_eq!(&response[..], &i.to_be_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_fails_in_flight_requests_quickly() {
    let server = Server::bind(ServerConfig {
        silent: true,
        ..ServerConfig::loopback()
    })
    .await
    .unwrap();
    let address = server.local_addr().to_string();
    let pool = Arc::new(open_pool(&address, 2));
    assert!(pool.wait_connected(2, Duration::from_secs(5)).await);

    let mut tasks = Vec::new();
    for i in 0..50u32 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let result = pool.request(i.to_be_bytes()).await;
            (result, Instant::now())
        }));
    }
    assert!(eventually(Duration::from_secs(5), || pool.stats().in_flight == 50).await);

    let old_entries: Vec<u64> = pool
        .registry_group()
        .load()
        .iter()
        .map(|e| e.id())
        .collect();
    let dropped_at = Instant::now();
    server.drop_all_connections();
    // The closed connections leave the registry; their reconnected successors may already be
    // registered under new entry ids.
    let old_entries_gone = || {
        let snapshot = pool.registry_group().load();
        !snapshot
            .iter()
            .any(|entry| old_entries.contains(&entry.id()))
    };
    assert!(
        eventually(Duration::from_millis(100), old_entries_gone).await,
        "connections stayed registered after the server closed them"
    );

    for task in tasks {
        let (result, failed_at) = task.await.unwrap();
        assert!(
            matches!(result, Err(Error::Disconnected(_))),
            "expected a disconnect, got {result:?}"
        );
        let latency = failed_at.duration_since(dropped_at);
        assert!(
            latency < Duration::from_millis(100),
            "failed after {latency:?}"
        );
    }

    // The listener still accepts, so both connections come back.
    assert!(pool.wait_connected(2, Duration::from_secs(5)).await);
    assert!(pool.stats().reconnects >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_on_same_port_is_served_again() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0"]);
    let address = server.address.clone();
    let backoff = Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(300),
        multiplier: 2.0,
    };
    let pool = Pool::open(
        PoolConfig::new([address.as_str()])
            .connections_per_address(2)
            .backoff(backoff)
            .timeout(Duration::from_secs(5)),
    )
    .unwrap();
    assert_eq!(&pool.request(b"before").await.unwrap()[..], b"before");

    server.kill();
    assert!(eventually(Duration::from_secs(2), || pool.connected() == 0).await);
    // Several failed attempts let the backoff reach its maximum.
    tokio::time::sleep(Duration::from_millis(800)).await;

    let restarted_at = Instant::now();
    let _server = ServerProcess::start(&["--listen", &address]);
    assert!(pool.wait_connected(2, Duration::from_secs(5)).await);
    let elapsed = restarted_at.elapsed();
    // A full-jitter delay is at most the maximum backoff; allow for connect and HELLO time.
    assert!(
        elapsed < backoff.max + Duration::from_millis(200),
        "reconnect took {elapsed:?}"
    );
    assert_eq!(&pool.request(b"after").await.unwrap()[..], b"after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_before_server_fails_fast_without_waiting() {
    let placeholder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = placeholder.local_addr().unwrap().to_string();
    drop(placeholder);

    let pool = Pool::open(
        PoolConfig::new([address.as_str()])
            .connections_per_address(2)
            .wait_for_connection(false)
            .backoff(fast_backoff()),
    )
    .unwrap();

    let started = Instant::now();
    let result = pool.request(b"early").await;
    assert_eq!(result, Err(Error::NoConnection));
    assert!(started.elapsed() < Duration::from_millis(50));

    let _server = ServerProcess::start(&["--listen", &address]);
    assert!(pool.wait_connected(1, Duration::from_secs(5)).await);
    assert_eq!(&pool.request(b"late").await.unwrap()[..], b"late");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_before_server_waits_within_deadline() {
    let placeholder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = placeholder.local_addr().unwrap().to_string();
    drop(placeholder);

    let pool = Arc::new(
        Pool::open(
            PoolConfig::new([address.as_str()])
                .connections_per_address(2)
                .backoff(fast_backoff()),
        )
        .unwrap(),
    );

    // Nothing comes up: the request waits its whole deadline and reports no connection.
    let started = Instant::now();
    let result = pool
        .request_with_timeout(b"nobody", Duration::from_millis(200))
        .await;
    assert_eq!(result, Err(Error::NoConnection));
    assert!(started.elapsed() >= Duration::from_millis(200));

    // The server comes up while the request waits: it succeeds within its deadline.
    let waiting = {
        let pool = pool.clone();
        tokio::spawn(async move {
            pool.request_with_timeout(b"waited", Duration::from_secs(5))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _server = ServerProcess::start(&["--listen", &address]);
    assert_eq!(&waiting.await.unwrap().unwrap()[..], b"waited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_stops_routing_and_drains() {
    let server = Server::bind(ServerConfig {
        delay: Some((Duration::from_millis(200), Duration::from_millis(200))),
        ..ServerConfig::loopback()
    })
    .await
    .unwrap();
    let pool = Arc::new(open_pool(&server.local_addr().to_string(), 2));
    assert!(pool.wait_connected(2, Duration::from_secs(5)).await);

    let mut in_flight = Vec::new();
    for i in 0..20u32 {
        let pool = pool.clone();
        in_flight.push(tokio::spawn(
            async move { pool.request(i.to_be_bytes()).await },
        ));
    }
    assert!(eventually(Duration::from_secs(2), || pool.stats().in_flight == 20).await);

    let first = server.connection_ids()[0];
    assert!(server.goaway(first, "maintenance"));
    assert!(eventually(Duration::from_secs(1), || pool.connected() == 1).await);
    let draining_slot = pool
        .stats()
        .connections
        .iter()
        .position(|c| c.state == ConnectionState::Draining)
        .expect("one connection is draining");

    // New requests all go to the other connection while the first drains.
    let other_slot = 1 - draining_slot;
    let before = pool.stats().connections;
    let mut new_requests = Vec::new();
    for i in 0..10u32 {
        let pool = pool.clone();
        new_requests.push(tokio::spawn(async move {
            pool.request(format!("new {i}")).await
        }));
    }
    let expected = before[other_slot].in_flight + 10;
    assert!(
        eventually(Duration::from_secs(1), || pool.stats().connections
            [other_slot]
            .in_flight
            == expected)
        .await,
        "new requests did not all go to the connection that is not draining"
    );
    assert!(pool.stats().connections[draining_slot].in_flight <= before[draining_slot].in_flight);
    for task in new_requests {
        task.await.unwrap().expect("new request completes");
    }

    for (i, task) in in_flight.into_iter().enumerate() {
        let response = task.await.unwrap().expect("in-flight request completes");
        assert_eq!(&response[..], &(i as u32).to_be_bytes());
    }
    assert!(pool.wait_connected(2, Duration::from_secs(5)).await);
}

/// Serves one connection that answers the first REQUEST with `reply`, then reads until close.
async fn serve_malformed_once(server: &RawServer, reply: &[u8]) {
    let mut stream = server.accept_with_hello(0).await;
    let _request = read_frame(&mut stream).await;
    use tokio::io::AsyncWriteExt;
    let _ = stream.write_all(reply).await;
    let _ = read_frame(&mut stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_connection_with_protocol_error() {
    let oversized = {
        let mut frame = 2_000u32.to_be_bytes().to_vec();
        frame.extend_from_slice(&[FrameKind::Response as u8, 0, 0, 0, 1]);
        frame
    };
    let cases: [(&str, Vec<u8>); 3] = [
        ("length below 5", vec![0, 0, 0, 4, 2, 0, 0, 0]),
        ("length above maximum", oversized),
        ("unknown kind", vec![0, 0, 0, 5, 42, 0, 0, 0, 1]),
    ];

    for (case, reply) in cases {
        let server = RawServer::bind().await;
        let pool = Pool::open(
            PoolConfig::new([server.address.as_str()])
                .connections_per_address(1)
                .max_frame_length(1_024)
                .backoff(fast_backoff()),
        )
        .unwrap();

        let request = pool.request(b"hello");
        let (result, ()) = tokio::join!(request, serve_malformed_once(&server, &reply));
        assert!(
            matches!(result, Err(Error::Protocol(_))),
            "{case}: expected a protocol error, got {result:?}"
        );

        // The pool reconnects to the same listener.
        let reconnected = tokio::time::timeout(Duration::from_secs(5), server.accept_with_hello(0))
            .await
            .is_ok();
        assert!(reconnected, "{case}: no reconnect after the protocol error");
        assert_eq!(pool.stats().errors.get(ErrorKind::Protocol), 1, "{case}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_answering_server_times_out_at_deadline() {
    let server = Server::bind(ServerConfig {
        silent: true,
        ..ServerConfig::loopback()
    })
    .await
    .unwrap();
    let pool = Arc::new(open_pool(&server.local_addr().to_string(), 2));
    assert!(pool.wait_connected(2, Duration::from_secs(5)).await);

    let deadline = Duration::from_millis(300);
    let mut tasks = Vec::new();
    for i in 0..20u32 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let result = pool.request_with_timeout(i.to_be_bytes(), deadline).await;
            (result, started.elapsed())
        }));
    }
    for task in tasks {
        let (result, elapsed) = task.await.unwrap();
        assert_eq!(result, Err(Error::Timeout));
        assert!(elapsed >= deadline, "timed out early, after {elapsed:?}");
        assert!(
            elapsed <= deadline + deadline / 5,
            "timed out late, after {elapsed:?}"
        );
    }
    assert_eq!(pool.stats().errors.get(ErrorKind::Timeout), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_responses_are_dropped_and_counted() {
    let server = RawServer::bind().await;
    let pool = Arc::new(
        Pool::open(
            PoolConfig::new([server.address.as_str()])
                .connections_per_address(1)
                .backoff(fast_backoff()),
        )
        .unwrap(),
    );
    let mut stream = server.accept_with_hello(0).await;

    // The first request times out; its id stays reserved.
    let late = pool.request_with_timeout(b"first", Duration::from_millis(50));
    let (result, frame) = tokio::join!(late, read_frame(&mut stream));
    assert_eq!(result, Err(Error::Timeout));
    let (_, late_id, _) = frame.unwrap();

    // A second request is in flight when the late answer to the first arrives.
    let second = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.request(b"second").await })
    };
    let (_, second_id, payload) = read_frame(&mut stream).await.unwrap();
    assert_eq!(payload, b"second");
    assert_ne!(
        second_id, late_id,
        "the id of a timed-out request was reused"
    );

    write_frame(
        &mut stream,
        FrameKind::Response as u8,
        late_id,
        b"late answer",
    )
    .await;
    // An answer for an id that was never sent is dropped too.
    write_frame(
        &mut stream,
        FrameKind::Response as u8,
        0x00ff_ffff,
        b"stray",
    )
    .await;
    write_frame(&mut stream, FrameKind::Response as u8, second_id, b"second").await;

    assert_eq!(&second.await.unwrap().unwrap()[..], b"second");
    assert!(eventually(Duration::from_secs(1), || pool.stats().late_responses == 2).await);
    assert_eq!(pool.stats().in_flight, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_frame_carries_message() {
    let server = Server::bind(ServerConfig {
        fail_prefix: Some(fanta_core::Bytes::from_static(b"FAIL:")),
        ..ServerConfig::loopback()
    })
    .await
    .unwrap();
    let pool = open_pool(&server.local_addr().to_string(), 1);

    let result = pool.request(b"FAIL:no such key").await;
    assert_eq!(result, Err(Error::Server("no such key".into())));
    assert_eq!(&pool.request(b"fine").await.unwrap()[..], b"fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_stays_fair_while_one_connection_flaps() {
    let server = Server::bind(ServerConfig::loopback()).await.unwrap();
    let pool = open_pool(&server.local_addr().to_string(), 8);
    assert!(pool.wait_connected(8, Duration::from_secs(5)).await);
    assert_eq!(pool.strategy().name(), "round_robin");

    let flapping = server.connection_ids()[0];
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flapper = {
        let stop = stop.clone();
        let server = Arc::new(server);
        let handle = server.clone();
        let task = tokio::spawn(async move {
            let mut target = flapping;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                handle.drop_connection(target);
                tokio::time::sleep(Duration::from_millis(30)).await;
                // The reconnected slot gets a new server-side id: the newest one.
                if let Some(&newest) = handle.connection_ids().last() {
                    target = newest;
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        });
        (task, server)
    };

    // 100,000 picks spread over about a second, so that membership changes many times. Each
    // slot's expected share grows by 1/len for every snapshot it is present in.
    let mut picks = [0u64; 8];
    let mut expected = [0f64; 8];
    let mut present = [0u64; 8];
    let mut membership_sizes = std::collections::BTreeSet::new();
    for _ in 0..100 {
        for _ in 0..1_000 {
            let snapshot = pool.registry_group().load();
            membership_sizes.insert(snapshot.len());
            for entry in snapshot.iter() {
                let slot = entry.value().slot();
                expected[slot] += 1.0 / snapshot.len() as f64;
                present[slot] += 1;
            }
            if let Some(index) = pool.strategy().pick(&snapshot) {
                picks[snapshot[index].value().slot()] += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flapper.0.await.unwrap();

    assert!(
        membership_sizes.len() > 1,
        "membership never changed: {membership_sizes:?}"
    );
    assert_eq!(picks.iter().sum::<u64>(), 100_000);

    // Among connections that were live for every pick, the most- and least-picked differ by
    // at most 10%.
    let always_live: Vec<u64> = (0..8)
        .filter(|&slot| present[slot] == 100_000)
        .map(|slot| picks[slot])
        .collect();
    assert!(
        always_live.len() >= 6,
        "too many slots flapped: {present:?}"
    );
    let most = *always_live.iter().max().unwrap();
    let least = *always_live.iter().min().unwrap();
    assert!(
        (most - least) * 10 <= most,
        "live connections were picked unevenly: {picks:?}"
    );

    // Every slot, the flapping one included, got its share of the picks made while it was live.
    for slot in 0..8 {
        let ratio = picks[slot] as f64 / expected[slot];
        assert!(
            (0.9..=1.1).contains(&ratio),
            "slot {slot} got {} picks for an expected {:.0}",
            picks[slot],
            expected[slot]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_connections_are_not_routed_to() {
    let server = Server::bind(ServerConfig {
        max_in_flight: 3,
        delay: Some((Duration::from_millis(5), Duration::from_millis(10))),
        ..ServerConfig::loopback()
    })
    .await
    .unwrap();
    let pool = Arc::new(open_pool(&server.local_addr().to_string(), 2));
    assert!(pool.wait_connected(2, Duration::from_secs(5)).await);

    // 40 concurrent callers over 2 x 3 slots: the rest wait for capacity, none exceeds the
    // server's limit (which would be answered with an ERROR).
    let mut tasks = Vec::new();
    for i in 0..40u32 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(
            async move { pool.request(i.to_be_bytes()).await },
        ));
    }
    let mut peak = 0;
    while tasks.iter().any(|task| !task.is_finished()) {
        peak = peak.max(
            pool.stats()
                .connections
                .iter()
                .map(|c| c.in_flight)
                .max()
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    for (i, task) in tasks.into_iter().enumerate() {
        assert_eq!(&task.await.unwrap().unwrap()[..], &(i as u32).to_be_bytes());
    }
    assert!(peak <= 3, "a connection carried {peak} requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_session_is_restarted() {
    let server = Server::bind(ServerConfig {
        silent: true,
        ..ServerConfig::loopback()
    })
    .await
    .unwrap();
    let pool = Arc::new(open_pool(&server.local_addr().to_string(), 1));
    assert!(pool.wait_connected(1, Duration::from_secs(5)).await);

    let waiting = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.request(b"stuck").await })
    };
    assert!(eventually(Duration::from_secs(2), || pool.stats().in_flight == 1).await);

    pool.inject_session_panic(0);
    let result = waiting.await.unwrap();
    assert!(
        matches!(result, Err(Error::Disconnected(_))),
        "got {result:?}"
    );
    assert!(eventually(Duration::from_secs(2), || pool.stats().reconnects == 1).await);
    assert!(pool.wait_connected(1, Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_call_inside_runtime_is_rejected() {
    let server = Server::bind(ServerConfig::loopback()).await.unwrap();
    let pool = open_pool(&server.local_addr().to_string(), 1);
    assert_eq!(
        pool.request_blocking(b"x", None),
        Err(Error::BlockingInRuntime)
    );
}

#[test]
fn blocking_api_serves_many_threads() {
    let server = Server::start(ServerConfig::loopback()).unwrap();
    let pool = Arc::new(open_pool(&server.local_addr().to_string(), 4));
    assert!(pool
        .wait_connected_blocking(4, Duration::from_secs(5))
        .unwrap());

    let threads: Vec<_> = (0..8)
        .map(|thread| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for i in 0..1_000 {
                    let payload = format!("{thread}:{i}");
                    let response = pool.request_blocking(payload.as_bytes(), None).unwrap();
                    assert_eq!(response, payload.as_bytes());
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(pool.stats().completed, 8_000);
}

#[test]
fn submit_completes_exactly_once() {
    let server = Server::start(ServerConfig::loopback()).unwrap();
    let pool = open_pool(&server.local_addr().to_string(), 2);
    let (sender, receiver) = std::sync::mpsc::channel();

    for i in 0..1_000u32 {
        let sender = sender.clone();
        pool.submit(i.to_be_bytes().to_vec(), None, move |result| {
            sender.send((i, result)).unwrap();
        })
        .unwrap();
    }
    drop(sender);

    let mut seen = vec![false; 1_000];
    for (i, result) in receiver {
        assert_eq!(&result.unwrap()[..], &i.to_be_bytes());
        assert!(!seen[i as usize], "request {i} completed twice");
        seen[i as usize] = true;
    }
    assert!(seen.iter().all(|&s| s));
}

#[test]
fn invalid_timeout_is_rejected() {
    let pool = open_pool("127.0.0.1:9", 1);
    let error = pool
        .request_blocking(b"x", Some(Duration::ZERO))
        .unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(ref m) if m.contains("timeout")));
}

#[test]
fn oversized_payload_is_rejected_before_sending() {
    let server = Server::start(ServerConfig {
        max_frame_length: 1_024,
        ..ServerConfig::loopback()
    })
    .unwrap();
    let pool = open_pool(&server.local_addr().to_string(), 1);
    assert!(pool
        .wait_connected_blocking(1, Duration::from_secs(5))
        .unwrap());

    let error = pool.request_blocking(&[0u8; 2_000], None).unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(ref m) if m.contains("maximum")));
    assert_eq!(
        &pool.request_blocking(&[7u8; 1_000], None).unwrap()[..],
        &[7u8; 1_000][..]
    );
}

#[test]
fn dropping_pool_without_close_fails_waiters() {
    let server = Server::start(ServerConfig {
        silent: true,
        ..ServerConfig::loopback()
    })
    .unwrap();
    let pool = open_pool(&server.local_addr().to_string(), 1);
    assert!(pool
        .wait_connected_blocking(1, Duration::from_secs(5))
        .unwrap());

    let (sender, receiver) = std::sync::mpsc::channel();
    for _ in 0..10 {
        let sender = sender.clone();
        pool.submit(&b"x"[..], Some(Duration::from_secs(30)), move |result| {
            sender.send(result).unwrap();
        })
        .unwrap();
    }
    drop(sender);
    std::thread::sleep(Duration::from_millis(100));

    let dropped_at = Instant::now();
    drop(pool);
    let results: Vec<_> = receiver.iter().collect();
    assert_eq!(results.len(), 10);
    assert!(results.iter().all(|r| *r == Err(Error::PoolClosed)));
    assert!(dropped_at.elapsed() < Duration::from_millis(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_error_frame_fails_in_flight_as_disconnected() {
    let server = RawServer::bind().await;
    let pool = Pool::open(
        PoolConfig::new([server.address.as_str()])
            .connections_per_address(1)
            .backoff(fast_backoff()),
    )
    .unwrap();

    let request = pool.request(b"doomed");
    let serve = async {
        let mut stream = server.accept_with_hello(0).await;
        let _request = read_frame(&mut stream).await;
        write_frame(&mut stream, FrameKind::Error as u8, 0, b"shutting down").await;
        stream
    };
    let (result, _stream) = tokio::join!(request, serve);
    match result {
        Err(Error::Disconnected(cause)) => assert!(cause.contains("shutting down"), "{cause}"),
        other => panic!("expected a disconnect, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_ping_gets_pong_with_same_payload() {
    let server = RawServer::bind().await;
    let pool = open_pool(&server.address, 1);
    let mut stream = server.accept_with_hello(0).await;

    write_frame(&mut stream, FrameKind::Ping as u8, 77, b"are you there").await;
    let (kind, id, payload) = read_frame(&mut stream).await.unwrap();
    assert_eq!(kind, FrameKind::Pong as u8);
    assert_eq!(id, 77);
    assert_eq!(payload, b"are you there");
    assert_eq!(pool.connected(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_hello_version_is_never_registered() {
    let server = RawServer::bind().await;
    let pool = Pool::open(
        PoolConfig::new([server.address.as_str()])
            .connections_per_address(1)
            .wait_for_connection(false)
            .backoff(fast_backoff()),
    )
    .unwrap();

    for _ in 0..3 {
        let (mut stream, _) = server.listener.accept().await.unwrap();
        let _hello = read_frame(&mut stream).await;
        let mut payload = fanta_core::protocol::ServerHello {
            version: 2,
            max_frame_length: 1 << 20,
            max_in_flight: 0,
        }
        .encode();
        payload[1] = 2;
        write_frame(&mut stream, FrameKind::Hello as u8, 0, &payload).await;
        // The client closes the connection instead of registering it.
        assert!(read_frame(&mut stream).await.is_none());
        assert_eq!(pool.connected(), 0);
    }
    assert_eq!(pool.request(b"x").await, Err(Error::NoConnection));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_server_survives_malformed_client() {
    let server = ServerProcess::start(&["--listen", "127.0.0.1:0"]);
    let pool = open_pool(&server.address, 2);
    assert!(pool.wait_connected(2, Duration::from_secs(5)).await);

    let bad_inputs: [&[u8]; 3] = [
        &[0, 0, 0, 1, 0],
        &[0, 0, 0, 5, 99, 0, 0, 0, 0],
        &[0, 0, 0, 7, 1, 0, 0, 0, 1, b'h', b'i'],
    ];
    for bad in bad_inputs {
        let mut stream = tokio::net::TcpStream::connect(&server.address)
            .await
            .unwrap();
        use tokio::io::AsyncWriteExt;
        stream.write_all(bad).await.unwrap();
        let (kind, id, _message) = read_frame(&mut stream).await.expect("ERROR frame");
        assert_eq!(kind, FrameKind::Error as u8);
        assert_eq!(id, 0);
        assert!(
            read_frame(&mut stream).await.is_none(),
            "server kept the connection"
        );
    }

    assert_eq!(
        &pool.request(b"still here").await.unwrap()[..],
        b"still here"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_shutdown_closes_every_connection() {
    for round in 0..20 {
        let server = Server::bind(ServerConfig::loopback()).await.unwrap();
        let pool = open_pool(&server.local_addr().to_string(), 4);
        assert!(
            pool.wait_connected(4, Duration::from_secs(5)).await,
            "round {round}"
        );

        // The pool keeps reconnecting with a short backoff while the server stops.
        server.drop_all_connections();
        server.shutdown();
        assert!(
            eventually(Duration::from_secs(1), || pool.connected() == 0).await,
            "round {round}: connections still registered after shutdown"
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            pool.connected(),
            0,
            "round {round}: a connection was accepted after shutdown"
        );
    }
}

fn poll_once<F: std::future::Future + Unpin>(future: &mut F) -> std::task::Poll<F::Output> {
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    std::pin::Pin::new(future).poll(&mut context)
}

/// Answers every request on one connection: `slow` after 300 ms, `A` after 20 ms, the rest at
/// once.
async fn serve_echo_with_delays(server: RawServer) {
    let stream = server.accept_with_hello(0).await;
    let (mut reader, writer) = stream.into_split();
    let writer = Arc::new(tokio::sync::Mutex::new(writer));
    loop {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut header = [0u8; 9];
        if reader.read_exact(&mut header).await.is_err() {
            return;
        }
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let id = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
        let mut payload = vec![0u8; length - 5];
        reader.read_exact(&mut payload).await.unwrap();

        let writer = writer.clone();
        tokio::spawn(async move {
            let delay = match &payload[..] {
                b"slow" => 300,
                b"A" => 20,
                _ => 0,
            };
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let mut frame = (payload.len() as u32 + 5).to_be_bytes().to_vec();
            frame.push(FrameKind::Response as u8);
            frame.extend_from_slice(&id.to_be_bytes());
            frame.extend_from_slice(&payload);
            let _ = writer.lock().await.write_all(&frame).await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_request_drop_spares_slot_reuser() {
    let server = RawServer::bind().await;
    let address = server.address.clone();
    tokio::spawn(serve_echo_with_delays(server));
    let pool = Pool::open(PoolConfig::new([address]).connections_per_address(1)).unwrap();
    assert!(pool.wait_connected(1, Duration::from_secs(5)).await);

    // Request A is sent and answered, but its future is not polled again.
    let mut first = Box::pin(pool.request(b"A".to_vec()));
    assert!(poll_once(&mut first).is_pending());
    tokio::time::sleep(Duration::from_millis(100)).await;

    // 4095 more uses of the same slot bring its 12-bit reuse counter back to A's, so the next
    // request gets A's id.
    for _ in 0..4_095 {
        assert_eq!(&pool.request(b"x".to_vec()).await.unwrap()[..], b"x");
    }
    let mut second = Box::pin(pool.request(b"slow".to_vec()));
    assert!(poll_once(&mut second).is_pending());

    // Dropping A's stale future must not abandon the slot that the second request now uses.
    drop(first);
    assert_eq!(&second.await.unwrap()[..], b"slow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_drain_is_bounded_by_timeout() {
    let server = RawServer::bind().await;
    let pool = Pool::open(
        PoolConfig::new([server.address.as_str()])
            .connections_per_address(1)
            .timeout(Duration::from_millis(200))
            .backoff(fast_backoff()),
    )
    .unwrap();
    let mut stream = server.accept_with_hello(0).await;
    assert!(pool.wait_connected(1, Duration::from_secs(5)).await);

    // One request in flight, then GOAWAY; the server never responds and never closes.
    let mut pending =
        Box::pin(pool.request_with_timeout(b"never".to_vec(), Duration::from_millis(50)));
    assert!(poll_once(&mut pending).is_pending());
    let (kind, _, _) = read_frame(&mut stream).await.unwrap();
    assert_eq!(kind, FrameKind::Request as u8);
    write_frame(&mut stream, FrameKind::Goaway as u8, 0, b"restarting").await;
    assert_eq!(pending.await, Err(Error::Timeout));

    // The drain ends at the pool's timeout and the slot connects again.
    let reconnected =
        tokio::time::timeout(Duration::from_secs(2), server.accept_with_hello(0)).await;
    assert!(
        reconnected.is_ok(),
        "slot stayed draining: {:?}",
        pool.stats().connections
    );
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_server_is_retried_with_backoff() {
    let server = RawServer::bind().await;
    let pool = Pool::open(
        PoolConfig::new([server.address.as_str()])
            .connections_per_address(1)
            .backoff(Backoff {
                initial: Duration::from_millis(10),
                max: Duration::from_millis(400),
                multiplier: 2.0,
            }),
    )
    .unwrap();

    // Every connection completes HELLO and is closed at once, for one second.
    let started = Instant::now();
    let mut accepted = 0;
    while started.elapsed() < Duration::from_secs(1) {
        let next = tokio::time::timeout(Duration::from_millis(100), server.accept_with_hello(0));
        if let Ok(stream) = next.await {
            drop(stream);
            accepted += 1;
        }
    }

    // Delays with ceilings 10, 20, 40, ... ms add up to at least ~0.5 s after a handful of
    // attempts; without backoff the pool reconnects every few milliseconds.
    assert!(accepted >= 2, "the pool stopped reconnecting");
    assert!(accepted <= 25, "{accepted} reconnects in one second");
    drop(pool);
}

#[test]
fn submitted_request_cancels_and_times_out_once() {
    let server = Server::start(ServerConfig {
        silent: true,
        ..ServerConfig::loopback()
    })
    .unwrap();
    let pool = open_pool(&server.local_addr().to_string(), 1);
    assert!(pool
        .wait_connected_blocking(1, Duration::from_secs(5))
        .unwrap());
    let (sender, receiver) = std::sync::mpsc::channel();

    // Queued on the connection, then cancelled twice: one Cancelled completion.
    let cancelled = {
        let sender = sender.clone();
        pool.submit(
            &b"cancel me"[..],
            Some(Duration::from_secs(30)),
            move |result| {
                sender.send(("cancelled", result)).unwrap();
            },
        )
        .unwrap()
    };
    cancelled.cancel();
    cancelled.cancel();

    // Queued and never answered: the connection's timer fails it at its deadline.
    let started = Instant::now();
    pool.submit(
        &b"time me out"[..],
        Some(Duration::from_millis(200)),
        move |result| {
            sender.send(("timed out", result)).unwrap();
        },
    )
    .unwrap();

    let results: Vec<_> = receiver.iter().collect();
    assert_eq!(
        results,
        vec![
            ("cancelled", Err(Error::Cancelled)),
            ("timed out", Err(Error::Timeout))
        ]
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(200) && elapsed < Duration::from_millis(240),
        "{elapsed:?}"
    );
    let stats = pool.stats();
    assert_eq!(stats.errors.get(ErrorKind::Cancelled), 1);
    assert_eq!(stats.errors.get(ErrorKind::Timeout), 1);
    // Both ids stay reserved: the server still owes responses for them.
    assert_eq!(stats.in_flight, 2);
}

#[test]
fn stats_show_last_connect_error() {
    let placeholder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = placeholder.local_addr().unwrap().to_string();
    drop(placeholder);

    let pool = open_pool(&address, 1);
    let started = Instant::now();
    let last_error = loop {
        if let Some(error) = pool.stats().connections[0].last_error.clone() {
            break error;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no connect error recorded"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(last_error.contains("connect failed"), "{last_error}");
}
