//! Black-box tests: the real binary, spawned as a process, over real sockets.

mod api;
mod cli;
mod console;
mod cosmos;
mod entities;
mod fault;
mod fault_cosmos;
mod fault_delivery;
use bifrost_test_support::cosmos_emulator;
mod handler;
mod helpers;
mod host_front;
mod infra;
mod limits;
mod metrics;
mod migrate;
mod observability;
mod openapi;
mod package;
mod serve;
mod signalr;
