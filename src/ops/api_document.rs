//! `GET /api/openapi.json`: the OpenAPI 3.1 document of every HTTP function, generated from the
//! function list it is given (the registry hands over its own, so this feature never imports
//! it) and cached for the life of the process.

use std::sync::OnceLock;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::runtime::function::FunctionSpec;
use crate::runtime::openapi;
use crate::runtime::{AppContext, HttpHandler, HttpRequest, HttpResponse, Operation};

pub struct ApiDocument {
    functions: fn() -> Vec<FunctionSpec>,
    rendered: OnceLock<Result<Value, String>>,
}

impl ApiDocument {
    /// `functions` lists every function the document describes (this one included).
    pub fn new(functions: fn() -> Vec<FunctionSpec>) -> Self {
        ApiDocument {
            functions,
            rendered: OnceLock::new(),
        }
    }

    /// The document, generated on first use.
    pub fn document(&self) -> Result<&Value, &str> {
        self.rendered
            .get_or_init(|| {
                openapi::document(&(self.functions)(), env!("CARGO_PKG_VERSION"))
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(String::as_str)
    }
}

/// An OpenAPI 3.1 document.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct OpenApiDocument(pub Value);

impl JsonSchema for OpenApiDocument {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OpenApiDocument".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "required": ["openapi", "info", "paths"],
            "description": "An OpenAPI 3.1 document (https://spec.openapis.org/oas/v3.1.1).",
        })
    }
}

#[async_trait]
impl HttpHandler for ApiDocument {
    async fn handle(&self, _ctx: &AppContext, _request: HttpRequest) -> HttpResponse {
        match self.document() {
            Ok(document) => HttpResponse::json(200, document),
            Err(reason) => {
                tracing::error!(%reason, "the OpenAPI document cannot be generated");
                HttpResponse::error(500, format!("the API description is broken: {reason}"))
            }
        }
    }

    fn operation(&self) -> Operation {
        Operation::new("ops", "This API, described")
            .description("The OpenAPI 3.1 document of every route, generated from the code's function registry and response types (for openapi-typescript / openapi-fetch). No principal needed.")
            .ok::<OpenApiDocument>("The document.")
            .errors(&[500])
    }
}
