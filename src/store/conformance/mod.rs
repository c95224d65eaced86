//! One behaviour suite for every `Store` backend, and the one place it is wired to them.
//!
//! The checks (`documents`, `queries`, `feed`, `ttl`; what they share in `support`) each take
//! the store under test and, where time matters, the `ManualClock` it reads; every check starts
//! from an empty store. `conformance!` below lists every check once and makes it one test per
//! backend (`backends`): `store::conformance::sqlite::…`, `…::cosmos_emulator::…` (the SDK's
//! in-memory emulator behind `bifrost-test-support`'s HTTP front-end, one fresh server per
//! check) and `…::cosmos_account::…` (a real account, in a fresh database per check, when
//! `COSMOS_ENDPOINT` and `COSMOS_KEY` are set; otherwise each of those tests prints why it is
//! skipped and passes).
//!
//! So a check cannot be run on one backend and forgotten on another: a listed check runs on
//! every backend, and a check that is written but not listed fails the build (`dead_code` is
//! denied here). A backend that cannot run a check is excepted in the check's entry, with the
//! reason; its test is still generated, ignored with that reason (`cargo test -- --ignored`
//! shows what happens when it runs anyway).

#![deny(dead_code)]

mod backends;
mod documents;
mod feed;
mod queries;
mod support;
mod ttl;

/// `name => file::check` makes the test `name` in each backend's module. After it, in this
/// order and each optional: `(clock)`, when the check takes the store's clock to move it;
/// `threads N`, the fewest runtime worker threads the check needs (a backend may need more);
/// `except { backend: "reason", … }`, the backends that cannot run it and why (in the order
/// `sqlite`, `cosmos_emulator`, `cosmos_account`).
macro_rules! conformance {
    ($(
        $name:ident => $file:ident :: $check:ident $( ( $clock:ident ) )?
        $( , threads $threads:literal )?
        $( , except {
            $( sqlite: $on_sqlite:literal , )?
            $( cosmos_emulator: $on_emulator:literal , )?
            $( cosmos_account: $on_account:literal , )?
        } )?
        ;
    )*) => {
        conformance!(@backend sqlite, Sqlite, $(
            [$name, $file::$check, ($($clock)?), ($($threads)?), ($($($on_sqlite)?)?)]
        )*);
        conformance!(@backend cosmos_emulator, CosmosEmulator, $(
            [$name, $file::$check, ($($clock)?), ($($threads)?), ($($($on_emulator)?)?)]
        )*);
        conformance!(@backend cosmos_account, CosmosAccount, $(
            [$name, $file::$check, ($($clock)?), ($($threads)?), ($($($on_account)?)?)]
        )*);
    };
    (@backend $backend:ident, $Backend:ident, $(
        [$name:ident, $file:ident :: $check:ident, ($($clock:ident)?), ($($threads:literal)?), ($($reason:literal)?)]
    )*) => {
        mod $backend {
            use super::backends::{self, Backend};
            $(
                #[test]
                $( #[ignore = $reason] )?
                fn $name() {
                    backends::runtime::<backends::$Backend>(&[$($threads)?]).block_on(async {
                        let Some(subject) = backends::$Backend::open().await else {
                            return;
                        };
                        super::$file::$check(subject.store() $(, subject.$clock())?).await;
                        subject.close().await;
                    });
                }
            )*
        }
    };
}

conformance! {
    crud_and_etags => documents::crud_and_etags;
    patches => documents::patches, threads 2;
    invalid_and_oversized_documents => documents::invalid_and_oversized_documents;
    concurrent_writers => documents::concurrent_writers_and_optimistic_concurrency, threads 4;
    transactional_batch => documents::transactional_batch_is_all_or_nothing;
    queries_with_parameters => queries::queries_with_parameters;
    ordering_with_ties => queries::ordering_with_ties;
    pagination => queries::pagination_is_complete_and_stable;
    partition_isolation => queries::partition_isolation;
    change_feed => feed::change_feed_order_dedupe_and_resume;
    upsert_all => feed::upsert_all_writes_every_document_in_order;
    change_feed_steps_over_expired => feed::change_feed_steps_over_expired_documents(clock), except {
        cosmos_emulator: "documents must expire, and the emulator stores `ttl` but never expires them",
        cosmos_account: "documents must expire on a clock the test moves; the service expires them in the background on its own",
    };
    ttl => ttl::ttl_expires_documents(clock), except {
        cosmos_emulator: "the emulator stores `ttl` but never expires documents (`ttl_fields` checks what it can show)",
        cosmos_account: "the service expires documents in the background on its own clock, which a test cannot move (`ttl_fields` checks what it can show)",
    };
    ttl_fields => ttl::ttl_fields_are_validated_and_kept;
}
