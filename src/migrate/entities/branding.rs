//! `Config` `{GLOBAL|org}` `branding` → `branding` `branding` in the row's scope. The logo URLs
//! are copied as they are: they point into the legacy account's `branding` blob container.

use super::document::EntityDocument;
use super::row::{scope_of, text, timestamp, Row, RowError};
use crate::model::{BrandingDoc, EntityKind};

const TABLE: &str = "Config";
const KNOWN: [&str; 5] = [
    "SquareLogoUrl",
    "RectangleLogoUrl",
    "PrimaryColor",
    "UpdatedBy",
    "UpdatedAt",
];

pub fn branding(row: &Row) -> Result<EntityDocument, RowError> {
    let fail = |reason: String| RowError::new(TABLE, row, reason);
    let doc = BrandingDoc {
        id: "branding".into(),
        doc_type: EntityKind::Branding,
        scope: scope_of(TABLE, row)?,
        square_logo_url: text(row, "SquareLogoUrl"),
        rectangle_logo_url: text(row, "RectangleLogoUrl"),
        primary_color: text(row, "PrimaryColor"),
        updated_by: text(row, "UpdatedBy"),
        updated_at: timestamp(row, "UpdatedAt").map_err(fail)?,
    };
    EntityDocument::new(TABLE, row, &KNOWN, &doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::entities::row::row;
    use serde_json::json;

    #[test]
    fn branding_keeps_its_scope_and_blob_urls() {
        let doc = branding(&row(json!({
            "PartitionKey": "GLOBAL", "RowKey": "branding", "PrimaryColor": "#0af",
            "SquareLogoUrl": "https://acct.blob.core.windows.net/branding/GLOBAL/square-logo.png",
            "UpdatedBy": "ada@example.com", "UpdatedAt": "2025-10-26T10:00:00"
        })))
        .unwrap();
        assert_eq!(
            doc.body,
            json!({
                "id": "branding", "type": "branding", "scope": "GLOBAL",
                "squareLogoUrl": "https://acct.blob.core.windows.net/branding/GLOBAL/square-logo.png",
                "rectangleLogoUrl": null, "primaryColor": "#0af", "updatedBy": "ada@example.com",
                "updatedAt": "2025-10-26T10:00:00.000000Z"
            })
        );
    }
}
