//! Black-box tests: the real binary, spawned as a process, over real sockets.

mod api;
mod cli;
mod handler;
mod helpers;
mod infra;
mod metrics;
mod observability;
mod package;
mod serve;
mod signalr;
