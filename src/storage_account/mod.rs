//! An Azure Storage account as both the migrator (legacy tables and blobs) and the blob store
//! (results over 2 MB) reach it: connection strings (`connection`) and request signing
//! (`signing`), both pure, and the retried request with its errors (`http`).

pub mod connection;
pub mod http;
pub mod signing;
