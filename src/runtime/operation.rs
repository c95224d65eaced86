//! What an HTTP function says about itself: its parameters, request body and every response it
//! can give (status, body type, headers). `HttpHandler::operation` returns one, next to the code
//! that answers; `runtime::openapi` turns the registry's operations into the OpenAPI document.
//!
//! Schemas are never written here: a body is named by its Rust type (`Body::of::<T>()`) and its
//! JSON Schema is generated from that type's `Serialize`/`Deserialize` shape by `schemars`.

use schemars::{JsonSchema, Schema, SchemaGenerator};

use super::http::ErrorBody;

/// A schema generated on demand from a Rust type.
#[derive(Clone, Copy)]
pub struct TypeSchema(fn(&mut SchemaGenerator) -> Schema);

impl TypeSchema {
    pub fn of<T: JsonSchema>() -> Self {
        TypeSchema(|generator| generator.subschema_for::<T>())
    }

    pub fn generate(&self, generator: &mut SchemaGenerator) -> Schema {
        (self.0)(generator)
    }
}

impl std::fmt::Debug for TypeSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TypeSchema")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterIn {
    Query,
    Path,
    Header,
}

impl ParameterIn {
    pub fn as_str(self) -> &'static str {
        match self {
            ParameterIn::Query => "query",
            ParameterIn::Path => "path",
            ParameterIn::Header => "header",
        }
    }
}

/// A query, path or header parameter.
#[derive(Debug, Clone)]
pub struct Parameter {
    pub name: &'static str,
    pub location: ParameterIn,
    pub required: bool,
    pub description: &'static str,
    pub schema: TypeSchema,
}

impl Parameter {
    /// An optional query parameter of type `T`.
    pub fn query<T: JsonSchema>(name: &'static str, description: &'static str) -> Self {
        Parameter {
            name,
            location: ParameterIn::Query,
            required: false,
            description,
            schema: TypeSchema::of::<T>(),
        }
    }

    /// A `{name}` segment of the route.
    pub fn path(name: &'static str, description: &'static str) -> Self {
        Parameter {
            name,
            location: ParameterIn::Path,
            required: true,
            description,
            schema: TypeSchema::of::<String>(),
        }
    }
}

/// A response header.
#[derive(Debug, Clone)]
pub struct Header {
    pub name: &'static str,
    pub description: &'static str,
    pub schema: TypeSchema,
}

/// One status an operation answers with, and the JSON body it carries.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub description: &'static str,
    pub body: TypeSchema,
    pub headers: Vec<Header>,
}

#[derive(Debug, Clone)]
pub struct RequestBody {
    pub description: &'static str,
    pub required: bool,
    pub schema: TypeSchema,
}

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No principal needed (health, the API document).
    Anonymous,
    /// The EasyAuth principal (`X-MS-CLIENT-PRINCIPAL`), scoped by `X-Organization-Id`.
    Principal,
}

/// The description of one HTTP function. Built with the methods below, e.g.
/// `Operation::new("List executions").principal().ok::<ExecutionList>("…").errors(&[400, 401])`.
#[derive(Debug, Clone)]
pub struct Operation {
    pub summary: &'static str,
    pub description: &'static str,
    /// Groups operations in the document (`live`, `query`, `metrics`, `ops`).
    pub tag: &'static str,
    pub access: Access,
    pub parameters: Vec<Parameter>,
    pub request_body: Option<RequestBody>,
    pub responses: Vec<Response>,
}

impl Operation {
    pub fn new(tag: &'static str, summary: &'static str) -> Self {
        Operation {
            summary,
            description: "",
            tag,
            access: Access::Anonymous,
            parameters: Vec::new(),
            request_body: None,
            responses: Vec::new(),
        }
    }

    pub fn description(mut self, text: &'static str) -> Self {
        self.description = text;
        self
    }

    /// Needs the caller's principal; adds the 401 (and 403 of a foreign organization) answers.
    pub fn principal(mut self) -> Self {
        self.access = Access::Principal;
        self.errors(&[401, 403])
    }

    pub fn parameter(mut self, parameter: Parameter) -> Self {
        self.parameters.push(parameter);
        self
    }

    pub fn parameters(mut self, parameters: impl IntoIterator<Item = Parameter>) -> Self {
        self.parameters.extend(parameters);
        self
    }

    /// A required JSON request body of type `T` (as it is deserialized).
    pub fn body<T: JsonSchema>(mut self, description: &'static str) -> Self {
        self.request_body = Some(RequestBody {
            description,
            required: true,
            schema: TypeSchema::of::<T>(),
        });
        self
    }

    /// A request body of type `T` that may be left out.
    pub fn optional_body<T: JsonSchema>(mut self, description: &'static str) -> Self {
        self = self.body::<T>(description);
        if let Some(body) = &mut self.request_body {
            body.required = false;
        }
        self
    }

    /// The 200 answer with a body of type `T`.
    pub fn ok<T: JsonSchema>(self, description: &'static str) -> Self {
        self.response::<T>(200, description)
    }

    pub fn response<T: JsonSchema>(mut self, status: u16, description: &'static str) -> Self {
        self.responses.push(Response {
            status,
            description,
            body: TypeSchema::of::<T>(),
            headers: Vec::new(),
        });
        self
    }

    /// A header on the most recently added response.
    pub fn with_header<T: JsonSchema>(
        mut self,
        name: &'static str,
        description: &'static str,
    ) -> Self {
        if let Some(last) = self.responses.last_mut() {
            last.headers.push(Header {
                name,
                description,
                schema: TypeSchema::of::<T>(),
            });
        }
        self
    }

    /// The `{"error": …}` answers with these statuses (already listed ones are kept).
    pub fn errors(mut self, statuses: &[u16]) -> Self {
        for &status in statuses {
            if self.responses.iter().all(|r| r.status != status) {
                self.responses.push(Response {
                    status,
                    description: error_description(status),
                    body: TypeSchema::of::<ErrorBody>(),
                    headers: Vec::new(),
                });
            }
        }
        self
    }

    /// The answers of every route that reads the store: 500 for an unreadable document, 503
    /// while the store is unavailable.
    pub fn store_errors(self) -> Self {
        self.errors(&[500, 503])
    }
}

/// What each error status means on this API.
pub fn error_description(status: u16) -> &'static str {
    match status {
        400 => "A parameter or the body is malformed; the message names it.",
        401 => "No valid X-MS-CLIENT-PRINCIPAL header.",
        403 => "The caller may not read this (another organization, or admin-only data).",
        404 => "Not found in the caller's scope (another scope's execution is not found too).",
        413 => "The request body is too large.",
        500 => "A stored document could not be read; the detail is in the server log.",
        502 => "The SignalR service did not accept the request.",
        503 => {
            "The store or the real-time service is unavailable or not configured; retry or poll."
        }
        _ => "Error.",
    }
}
