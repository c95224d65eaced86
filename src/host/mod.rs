//! Custom-handler mode: the Functions host's wire protocol, the function registry and the
//! generated function.json files.

pub mod function_json;
pub mod handler;
pub mod invoke;
pub mod manifest;
pub mod protocol;
pub mod registry;
