//! Closing a pool with requests in flight. Alone in its own test binary, so that the count of
//! tasks on the library runtime belongs to this test only.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, open_pool};
use fanta_core::{runtime, Error, Server, ServerConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_pool_fails_in_flight_and_stops_tasks() {
    let server = Server::bind(ServerConfig {
        silent: true,
        ..ServerConfig::loopback()
    })
    .await
    .unwrap();
    let tasks_before = runtime::alive_tasks();

    let pool = Arc::new(open_pool(&server.local_addr().to_string(), 4));
    assert!(pool.wait_connected(4, Duration::from_secs(5)).await);

    let mut requests = Vec::new();
    for i in 0..1_000u32 {
        let pool = pool.clone();
        requests.push(tokio::spawn(async move {
            let result = pool
                .request_with_timeout(i.to_be_bytes(), Duration::from_secs(30))
                .await;
            (result, Instant::now())
        }));
    }
    assert!(eventually(Duration::from_secs(5), || pool.stats().in_flight == 1_000).await);
    assert!(runtime::alive_tasks() > tasks_before);

    // The request tasks hold clones; closing is what the last owner's drop does.
    let closed_at = Instant::now();
    pool.close();
    for request in requests {
        let (result, failed_at) = request.await.unwrap();
        assert_eq!(result, Err(Error::PoolClosed));
        let latency = failed_at.duration_since(closed_at);
        assert!(
            latency < Duration::from_millis(100),
            "failed after {latency:?}"
        );
    }
    assert_eq!(
        pool.stats().errors.get(fanta_core::ErrorKind::PoolClosed),
        1_000
    );
    assert_eq!(
        pool.request(b"after").await,
        Err(Error::PoolClosed),
        "a closed pool accepted a request"
    );

    drop(pool);
    assert!(
        eventually(Duration::from_secs(2), || runtime::alive_tasks()
            == tasks_before)
        .await,
        "tasks left running: {} before, {} after",
        tasks_before,
        runtime::alive_tasks()
    );
}
