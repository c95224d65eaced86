//! Operations: what a running system tells about itself: its health (`GET /api/health`), its
//! API (`GET /api/openapi.json`), and the dead letters waiting for a replay (`deadletters`: the
//! logic the command and the admin routes share; `deadletter_routes`: the routes).

pub mod api_document;
pub mod deadletter_routes;
pub mod deadletters;
pub mod health;

pub use api_document::ApiDocument;
pub use deadletter_routes::{ListDeadLetters, ReplayDeadLetters};
pub use deadletters::{
    detail as dead_letter_detail, replay as replay_dead_letters, replay_targets,
    select as select_dead_letters, DeadLetterSummary, ReplayReport, ReplayTarget, Selection,
};
pub use health::Health;
