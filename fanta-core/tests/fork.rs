//! A process that forks after using a pool. Alone in its own test binary because fork() copies
//! only the calling thread, and other tests' threads must not be mid-request when it does.

mod common;

use std::time::{Duration, Instant};

use common::open_pool;
use fanta_core::{Error, Server, ServerConfig};

/// Exit codes the child uses to report what it saw.
const CHILD_OK: i32 = 0;
const CHILD_OLD_POOL_NOT_FORKED: i32 = 10;
const CHILD_NEW_POOL_FAILED: i32 = 11;

#[test]
fn forked_child_gets_error_then_fresh_pool_works() {
    let server = Server::start(ServerConfig::loopback()).unwrap();
    let address = server.local_addr().to_string();
    let pool = open_pool(&address, 2);
    assert_eq!(
        &pool.request_blocking(b"parent", None).unwrap()[..],
        b"parent"
    );

    // SAFETY: the child only calls into fanta (which detects the fork) and then _exit()s; it
    // never returns into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = run_child(&pool, &address);
        // SAFETY: _exit ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }

    let status = wait_with_deadline(pid, Duration::from_secs(10));
    assert_eq!(status, Some(CHILD_OK), "child exit status");

    // The parent's pool is unaffected.
    assert_eq!(
        &pool.request_blocking(b"again", None).unwrap()[..],
        b"again"
    );
}

fn run_child(inherited: &fanta_core::Pool, address: &str) -> i32 {
    if inherited.request_blocking(b"child", None) != Err(Error::Forked) {
        return CHILD_OLD_POOL_NOT_FORKED;
    }
    // Reading stats must not touch locks that the parent's threads may have held.
    if inherited.stats().connected != 0 {
        return CHILD_OLD_POOL_NOT_FORKED;
    }
    let fresh = open_pool(address, 1);
    match fresh.request_blocking(b"fresh", Some(Duration::from_secs(5))) {
        Ok(response) if &response[..] == b"fresh" => CHILD_OK,
        _ => CHILD_NEW_POOL_FAILED,
    }
}

/// Waits for `pid`; returns its exit code, or `None` (after killing it) if it hung.
fn wait_with_deadline(pid: libc::pid_t, deadline: Duration) -> Option<i32> {
    let started = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: pid is our own child; status is a valid out-pointer.
        let waited = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if waited == pid {
            return libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        }
        if started.elapsed() > deadline {
            // SAFETY: as above.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
