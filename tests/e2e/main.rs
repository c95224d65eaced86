//! Black-box tests: the real binary, spawned as a process, over real sockets.

mod cli;
mod cosmos;
#[path = "../support/cosmos_emulator.rs"]
mod cosmos_emulator;
mod handler;
mod helpers;
mod package;
mod serve;
