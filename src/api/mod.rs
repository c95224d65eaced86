//! SHIM until the query API (issue 7) lands on main: only the `auth` surface the real-time
//! subscribe functions use. Replaced wholesale by main's `src/api/` at merge.

pub mod auth;
