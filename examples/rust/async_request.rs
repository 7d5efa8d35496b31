//! Routes requests through a pool with the async API.
//!
//! Starts an embedded reference server on a free loopback port, opens a pool of four
//! connections to it, sends 1,000 concurrent requests and checks each response.
//!
//! Run with `cargo run -p fanta-core --example async_request`.

use std::sync::Arc;
use std::time::Duration;

use fanta_core::{Error, Pool, PoolConfig, Server, ServerConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::bind(ServerConfig::loopback()).await?;
    let address = server.local_addr().to_string();

    let config = PoolConfig::new([address.as_str()])
        .connections_per_address(4)
        .strategy("round_robin")
        .timeout(Duration::from_secs(2));
    let pool = Arc::new(Pool::open(config)?);

    // The pool connects in the background; a request made before that waits for a connection.
    let pong = pool.request(b"PING").await?;
    assert_eq!(&pong[..], b"PONG");

    let mut tasks = Vec::new();
    for i in 0..1_000u32 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let payload = format!("request {i}");
            let response = pool.request(payload.as_bytes()).await?;
            assert_eq!(response, payload.as_bytes());
            Ok::<_, Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }

    // A per-request deadline overrides the pool's default.
    match pool
        .request_with_timeout(b"quick", Duration::from_millis(500))
        .await
    {
        Ok(response) => println!("response: {}", String::from_utf8_lossy(&response)),
        Err(Error::Timeout) => println!("timed out"),
        Err(error) => return Err(error.into()),
    }

    let stats = pool.stats();
    println!(
        "completed {} requests over {} connections, {} errors",
        stats.completed,
        stats.connected,
        stats.errors.total()
    );
    pool.close();
    Ok(())
}
