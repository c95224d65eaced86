//! The OpenAPI 3.1 document of the HTTP functions, derived from a function list: each HTTP
//! function's route and methods, and the `Operation` its handler describes (whose body schemas
//! `schemars` generates from the Rust types). Pure; nothing here is written by hand per route.

use schemars::generate::SchemaSettings;
use schemars::SchemaGenerator;
use serde_json::{json, Map, Value};

use super::function::{FunctionSpec, Handler, Trigger};
use super::operation::{Access, Operation, ParameterIn};

/// The security scheme name of the EasyAuth principal header.
pub const PRINCIPAL_SCHEME: &str = "clientPrincipal";
/// Every route is served under this prefix (the Functions host's default `routePrefix`).
pub const ROUTE_PREFIX: &str = "/api";

const DESCRIPTION: &str = "Bifrost's execution data: the execution list and details, logs \
(resumable by `afterSequence`), variables, results, daily metrics, and the SignalR negotiate and \
group subscriptions of the live stream. Callers are identified by the EasyAuth principal in \
`X-MS-CLIENT-PRINCIPAL` (base64 JSON, set by App Service / Static Web Apps authentication); \
platform administrators pick an organization with `X-Organization-Id`. Every error is \
`{\"error\": message}` with the status listed per operation.";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenApiError {
    #[error("{method} {path} is declared by two functions")]
    DuplicateOperation { method: String, path: String },
    #[error(
        "{function}: parameter {name:?} is declared in the path but the route has no {{{name}}}"
    )]
    UnknownPathParameter { function: String, name: String },
    #[error("{function}: status {status} is described twice")]
    DuplicateStatus { function: String, status: u16 },
    #[error("{function}: describes no successful (2xx) answer")]
    NoSuccess { function: String },
    #[error("schema {0:?} differs between request and response bodies")]
    SchemaConflict(String),
}

/// The `{name}` segments of a route, in order.
pub fn route_parameters(route: &str) -> Vec<&str> {
    route
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| name.trim_start_matches('*'))
        .collect()
}

fn generator(serialize: bool) -> SchemaGenerator {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
    });
    if serialize {
        settings.for_serialize().into_generator()
    } else {
        settings.for_deserialize().into_generator()
    }
}

/// Response bodies are described as they are serialized, request bodies and parameters as they
/// are read.
struct Generators {
    responses: SchemaGenerator,
    requests: SchemaGenerator,
}

/// The whole document: `paths` from every HTTP function, `components.schemas` from the types
/// their operations name.
pub fn document(functions: &[FunctionSpec], version: &str) -> Result<Value, OpenApiError> {
    let mut generators = Generators {
        responses: generator(true),
        requests: generator(false),
    };
    let mut paths = Map::new();
    for spec in functions {
        let (Trigger::Http(trigger), Handler::Http(handler)) = (&spec.trigger, &spec.handler)
        else {
            continue;
        };
        let path = format!("{ROUTE_PREFIX}/{}", trigger.route);
        let operation = handler.operation();
        let mut item = paths
            .remove(&path)
            .and_then(|v| match v {
                Value::Object(map) => Some(map),
                _ => None,
            })
            .unwrap_or_default();
        for method in trigger.methods {
            let method = method.to_ascii_lowercase();
            if item.contains_key(&method) {
                return Err(OpenApiError::DuplicateOperation { method, path });
            }
            let operation_id = if trigger.methods.len() == 1 {
                spec.name.to_owned()
            } else {
                format!("{}_{method}", spec.name)
            };
            let rendered = render_operation(
                &mut generators,
                spec.name,
                &operation_id,
                trigger.route,
                &operation,
            )?;
            item.insert(method, rendered);
        }
        paths.insert(path, Value::Object(item));
    }

    let mut schemas = generators.responses.take_definitions(true);
    for (name, schema) in generators.requests.take_definitions(true) {
        match schemas.get(&name) {
            Some(existing) if *existing != schema => {
                return Err(OpenApiError::SchemaConflict(name))
            }
            _ => {
                schemas.insert(name, schema);
            }
        }
    }
    schemas.sort_keys();

    Ok(json!({
        "openapi": "3.1.1",
        "info": {
            "title": "bifrost-workers API",
            "version": version,
            "description": DESCRIPTION,
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                PRINCIPAL_SCHEME: {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-MS-CLIENT-PRINCIPAL",
                    "description": "The EasyAuth client principal: base64 of JSON, either Static Web Apps' {userId, userDetails, userRoles} or App Service's {auth_typ, claims: [{typ, val}]}. The role PlatformAdmin makes the caller a platform administrator; anyone else needs a membership record.",
                },
            },
        },
    }))
}

fn render_operation(
    generators: &mut Generators,
    function: &str,
    operation_id: &str,
    route: &str,
    operation: &Operation,
) -> Result<Value, OpenApiError> {
    let route_params = route_parameters(route);
    let mut parameters = Vec::new();
    for name in &route_params {
        let declared = operation
            .parameters
            .iter()
            .find(|p| p.location == ParameterIn::Path && p.name == *name);
        let description = declared.map_or("", |p| p.description);
        let schema = match declared {
            Some(p) => p.schema.generate(&mut generators.requests),
            None => generators.requests.subschema_for::<String>(),
        };
        parameters.push(json!({
            "name": name, "in": "path", "required": true,
            "description": description, "schema": schema,
        }));
    }
    for parameter in &operation.parameters {
        match parameter.location {
            ParameterIn::Path if !route_params.contains(&parameter.name) => {
                return Err(OpenApiError::UnknownPathParameter {
                    function: function.to_owned(),
                    name: parameter.name.to_owned(),
                })
            }
            ParameterIn::Path => continue,
            location => parameters.push(json!({
                "name": parameter.name,
                "in": location.as_str(),
                "required": parameter.required,
                "description": parameter.description,
                "schema": parameter.schema.generate(&mut generators.requests),
            })),
        }
    }
    if operation.access == Access::Principal {
        parameters.push(json!({
            "name": "X-Organization-Id",
            "in": "header",
            "required": false,
            "description": "Platform administrators: the organization to read (its uuid, or GLOBAL; default GLOBAL). Members: one of their own organizations (default: their first); another one is 403.",
            "schema": generators.requests.subschema_for::<String>(),
        }));
    }

    let mut responses = Map::new();
    for response in &operation.responses {
        let status = response.status.to_string();
        if responses.contains_key(&status) {
            return Err(OpenApiError::DuplicateStatus {
                function: function.to_owned(),
                status: response.status,
            });
        }
        let mut rendered = json!({
            "description": response.description,
            "content": {
                "application/json": { "schema": response.body.generate(&mut generators.responses) },
            },
        });
        if !response.headers.is_empty() {
            let headers: Map<String, Value> = response
                .headers
                .iter()
                .map(|h| {
                    let schema = h.schema.generate(&mut generators.responses);
                    (
                        h.name.to_owned(),
                        json!({ "description": h.description, "schema": schema }),
                    )
                })
                .collect();
            rendered["headers"] = Value::Object(headers);
        }
        responses.insert(status, rendered);
    }
    if !operation
        .responses
        .iter()
        .any(|r| (200..300).contains(&r.status))
    {
        return Err(OpenApiError::NoSuccess {
            function: function.to_owned(),
        });
    }
    // Statuses in numeric order, so the document reads like the code's list.
    responses.sort_keys();

    let mut rendered = json!({
        "operationId": operation_id,
        "summary": operation.summary,
        "tags": [operation.tag],
        "parameters": parameters,
        "responses": responses,
        "security": match operation.access {
            Access::Principal => json!([{ PRINCIPAL_SCHEME: [] }]),
            Access::Anonymous => json!([]),
        },
    });
    if !operation.description.is_empty() {
        rendered["description"] = json!(operation.description);
    }
    if let Some(body) = &operation.request_body {
        rendered["requestBody"] = json!({
            "description": body.description,
            "required": body.required,
            "content": {
                "application/json": { "schema": body.schema.generate(&mut generators.requests) },
            },
        });
    }
    Ok(rendered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_parameters_are_the_braced_segments() {
        assert_eq!(
            route_parameters("executions/{id}/logs"),
            vec!["id"],
            "one parameter"
        );
        assert!(route_parameters("metrics/daily").is_empty());
        assert_eq!(route_parameters("a/{x}/b/{*rest}"), vec!["x", "rest"]);
    }
}
