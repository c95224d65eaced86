//! `handler` mode: the Azure Functions custom handler. The host owns the triggers and posts each
//! invocation to this process; `protocol` is the wire format (pure), `server` the HTTP server.

pub mod documents;
#[cfg(test)]
mod fuzz;
pub mod protocol;
pub mod server;
#[cfg(test)]
mod tests;

pub use server::run;
