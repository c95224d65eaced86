//! A local Cosmos DB-compatible server for trying `serve --store cosmos+http://…` by hand:
//! `cargo run --example cosmos-emulator [-- 127.0.0.1:8081]`. State lives in memory only.
//! It uses the SDK's in-memory emulator (a dev-dependency), so it is an example rather than a
//! binary: the shipped `bifrost-workers` never contains it.

use bifrost_test_support::cosmos_emulator;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".to_owned())
        .parse()?;
    let emulator = cosmos_emulator::start_on(addr).await?;
    println!("COSMOS_ENDPOINT={}", emulator.endpoint);
    println!("store URL: {}", emulator.store_url("bifrost"));
    tokio::signal::ctrl_c().await?;
    Ok(())
}
