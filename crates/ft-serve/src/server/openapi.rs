//! `GET /openapi.json`: an OpenAPI 3.1 description of the routes, with `/predict`'s request and
//! response schemas for the task served.

use serde_json::{Map, Value, json};

use super::Info;
use super::request::TaskSpec;

/// The document for `spec`'s task.
pub fn document(spec: &dyn TaskSpec, info: &Info, max_inputs: usize) -> Value {
    let field = spec.input_field();
    let mut props = Map::new();
    props.insert(field.into(), spec.input_schema());
    props.insert(
        "inputs".into(),
        json!({"type": "array", "items": spec.input_schema(), "minItems": 1, "maxItems": max_inputs}),
    );
    props.insert(
        "adapter".into(),
        json!({"type": ["string", "null"], "enum": info.adapters.iter().map(|a| Value::from(a.as_str())).chain([Value::Null]).collect::<Vec<_>>(),
               "description": "a loaded adapter; null: the base model; absent: the default adapter"}),
    );
    for (k, schema) in spec.option_schemas() {
        props.insert(k.into(), schema);
    }
    let body = json!({"type": "object", "properties": props, "additionalProperties": false,
                      "oneOf": [{"required": [field]}, {"required": ["inputs"]}]});
    let output = spec.output_schema();
    let err = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let mut content = Map::new();
    content.insert("application/json".into(), json!({"schema": body}));
    if field == "image" {
        content.insert(
            "multipart/form-data".into(),
            json!({"schema": {"type": "object", "properties": {field: {"type": "string", "format": "binary"}}}}),
        );
    }
    let mut ok = Map::new();
    ok.insert(
        "application/json".into(),
        json!({"schema": {"oneOf": [output.clone(), {"type": "array", "items": output, "description": "for \"inputs\""}]}}),
    );
    if spec.streams(&json!({"stream": true})) {
        ok.insert(
            "text/event-stream".into(),
            json!({"schema": {"type": "string", "description": "with \"stream\": true"}}),
        );
    }
    let simple = |d: &str| json!({"get": {"summary": d, "responses": {"200": {"description": "OK"}}}});
    json!({
        "openapi": "3.1.0",
        "info": {"title": format!("ft serve: {} ({})", info.model, spec.task()), "version": info.version},
        "paths": {
            "/predict": {"post": {
                "summary": format!("{} (the notebook's §12 endpoint)", spec.task()),
                "requestBody": {"required": true, "content": content},
                "responses": {"200": {"description": "predictions", "content": ok},
                              "400": err, "401": err, "408": err, "413": err, "415": err, "422": err, "429": err, "500": err, "503": err, "504": err}
            }},
            "/health": simple("liveness"),
            "/ready": simple("200 once the model is loaded, 503 before"),
            "/info": simple("model, task, labels, adapters, limits, version"),
            "/metrics": simple("Prometheus metrics"),
            "/openapi.json": simple("this document"),
        },
        "components": {"schemas": {"Error": {"type": "object", "properties": {
            "error": {"type": "string"}, "error_type": {"type": "string"}}, "required": ["error", "error_type"]}}},
    })
}
