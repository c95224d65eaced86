//! The change feed: the SDK's pull iterator (latest-version mode) over the whole container,
//! read until a page has changes or every physical partition has answered empty, and kept
//! between reads so its round-robin over partitions carries on; and the positions handed out,
//! the SDK's continuation wrapped in a token tied to its container.

use std::num::NonZeroU32;

use azure_data_cosmos::feed::{ChangeFeedPageIterator, ContinuationToken, FeedScope};
use azure_data_cosmos::models::ChangeFeedItem;
use azure_data_cosmos::options::{ChangeFeedOptions, ChangeFeedStartFrom, MaxItemCountHint};
use azure_data_cosmos::CosmosError;
use base64::Engine;
use futures_util::StreamExt;
use serde_json::Value;

use super::errors::other_error;
use super::meter::{charge_of, Meter};
use super::{normalize, operation_options, Handle};
use crate::store::{ChangeFeedPage, Container, FeedPosition, StoreError};

const FEED_TOKEN_VERSION: u64 = 1;

/// The iterator of a container's last feed read, and the position it returned.
pub(super) struct LiveFeed {
    continuation: String,
    page_size: NonZeroU32,
    pages: ChangeFeedPageIterator<ChangeFeedItem<Value>>,
}

/// Up to `max_items` changes of `container` after `from`, across its partitions (the
/// `Store::read_change_feed` of this backend).
pub(super) async fn read(
    handle: &Handle,
    meter: &Meter,
    container: Container,
    from: &FeedPosition,
    max_items: usize,
) -> Result<ChangeFeedPage, StoreError> {
    // A page holds at least one change (the SDK cannot ask for zero).
    let page_size = NonZeroU32::new(u32::try_from(max_items.max(1)).unwrap_or(u32::MAX))
        .unwrap_or(NonZeroU32::MIN);
    // One reader per container at a time; it keeps the iterator it left off with.
    let mut live = handle.feed.lock().await;
    let reusable = match (live.take(), from) {
        (Some(feed), FeedPosition::Continuation(token))
            if feed.continuation == *token && feed.page_size == page_size =>
        {
            Some(feed.pages)
        }
        _ => None,
    };
    let resumed = matches!(from, FeedPosition::Continuation(_));
    let feed_error = |e: CosmosError| {
        if resumed && e.status().is_bad_request() {
            StoreError::BadContinuation
        } else {
            other_error(e)
        }
    };
    let mut pages = match reusable {
        Some(pages) => pages,
        None => {
            let (start, resume) = match from {
                FeedPosition::Beginning => (ChangeFeedStartFrom::Beginning, None),
                FeedPosition::Now => (ChangeFeedStartFrom::Now, None),
                FeedPosition::Continuation(token) => (
                    ChangeFeedStartFrom::Beginning,
                    Some(sdk_feed_token(container, token)?),
                ),
            };
            let mut options = ChangeFeedOptions::default()
                .with_operation_options(operation_options())
                .with_max_item_count(MaxItemCountHint::Limit(page_size));
            if let Some(token) = resume {
                options = options.with_continuation_token(ContinuationToken::from_string(token));
            }
            handle
                .client
                .query_change_feed::<Value>(FeedScope::full_container(), start, Some(options))
                .await
                .map_err(feed_error)?
        }
    };
    // The iterator polls one physical partition per page, round-robin, and never ends: a
    // full round of empty pages means every partition is caught up. Its round-robin cursor
    // is not part of the continuation token, which is why the live iterator is kept: a
    // fresh one would start each call at the first partition, and a busy first partition
    // would starve the others.
    let mut empty_pages = 0;
    let mut documents = Vec::new();
    while empty_pages < handle.feed_ranges {
        let page = match pages.next().await {
            Some(page) => page.map_err(feed_error)?,
            None => return Err(StoreError::Backend("the change feed ended".into())),
        };
        meter.charge(charge_of(page.headers()));
        if page.items().is_empty() {
            empty_pages += 1;
            continue;
        }
        documents = page
            .into_items()
            .into_iter()
            .filter_map(|item: ChangeFeedItem<Value>| item.current().cloned().map(normalize))
            .collect();
        break;
    }
    let continuation = match from {
        // Nothing new: a resumed position stays exactly as it was.
        FeedPosition::Continuation(token) if documents.is_empty() => token.clone(),
        _ => {
            let token = pages
                .to_continuation_token()
                .map_err(|e| StoreError::Backend(format!("change feed position: {e}")))?;
            feed_token(container, token.as_str())
        }
    };
    tracing::debug!(%container, changes = documents.len(), "cosmos change feed read");
    *live = Some(LiveFeed {
        continuation: continuation.clone(),
        page_size,
        pages,
    });
    Ok(ChangeFeedPage {
        documents,
        continuation,
    })
}

fn feed_token(container: Container, sdk_token: &str) -> String {
    let token = serde_json::json!({"v": FEED_TOKEN_VERSION, "c": container.name(), "t": sdk_token});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

/// The SDK continuation inside one of our feed tokens, refused when it belongs to another
/// container or is not ours at all.
fn sdk_feed_token(container: Container, token: &str) -> Result<String, StoreError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| StoreError::BadContinuation)?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| StoreError::BadContinuation)?;
    if value.get("v").and_then(Value::as_u64) != Some(FEED_TOKEN_VERSION)
        || value.get("c").and_then(Value::as_str) != Some(container.name())
    {
        return Err(StoreError::BadContinuation);
    }
    value
        .get("t")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .ok_or(StoreError::BadContinuation)
}
