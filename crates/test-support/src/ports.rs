//! Loopback ports for servers a test starts.

/// A port nothing listens on right now (bound and released: a tiny window remains in which
/// another process could take it, which is why servers that can bind port 0 do that instead).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}
