//! Loopback ports for servers a test starts.
//!
//! A port found free here is free only until someone binds it, and tests run in parallel with
//! servers that bind port 0 (Azurite, Node) and clients whose connections take local ports: all
//! of those come from the kernel's ephemeral range. So the ports handed out here come from below
//! that range, in turn (a process-wide counter, so two tests never get the same one), each
//! checked free when handed out. Servers that can bind port 0 and say which port they got
//! should do that instead.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out (above the registered ports most local services use).
const LOWEST: u16 = 20_000;
/// Where the kernel's ephemeral range starts when `/proc` does not say.
const DEFAULT_EPHEMERAL_START: u16 = 32_768;

static HANDED_OUT: AtomicU32 = AtomicU32::new(0);

/// A loopback port nothing listens on right now, below the ephemeral range.
pub fn free_port() -> u16 {
    let end = ephemeral_start();
    if end <= LOWEST + 100 {
        // An unusual range: fall back on the kernel's choice.
        return kernel_free_port();
    }
    let span = u32::from(end - LOWEST);
    // Processes started one after another (test binaries) begin at different places.
    let offset = std::process::id() % span;
    for _ in 0..span {
        let turn = HANDED_OUT.fetch_add(1, Ordering::Relaxed);
        let port = LOWEST + ((offset + turn) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    kernel_free_port()
}

/// The first port of the kernel's ephemeral range (`ip_local_port_range`).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(DEFAULT_EPHEMERAL_START)
}

/// A port the kernel says is free (bound and released: another process may take it next).
fn kernel_free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_free_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len());
        for port in ports {
            assert!((LOWEST..ephemeral_start()).contains(&port), "{port}");
            assert_bindable(port);
        }
    }

    /// `port` can be bound, at once or within a second: a child another test is spawning holds
    /// copies of this process's descriptors (the listener `free_port` just closed among them)
    /// from its fork until its exec, so for that moment the port is still taken.
    fn assert_bindable(port: u16) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        loop {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(_) => return,
                Err(e) if std::time::Instant::now() >= deadline => panic!("port {port}: {e}"),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
    }
}
