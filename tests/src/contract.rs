//! The API document as a test oracle: every answer the test server gives is checked
//! against `docs/openapi.yaml` (its status is documented for the operation, its required
//! headers are there and well-formed, its content type is a documented one and its body
//! matches that schema). [`crate::TestApp`] records what does not conform and fails the
//! test that received it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use http::{HeaderMap, Method};
use jsonschema::Validator;
use serde_json::{Value, json};

/// The parsed document and the validators built from it so far.
pub struct Contract {
    document: Value,
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

/// The document, read once per test binary.
pub fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.yaml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let document = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        Contract {
            document,
            validators: Mutex::new(HashMap::new()),
        }
    })
}

/// The schema every problem document matches, whatever the operation.
const PROBLEM: &str = "#/components/schemas/Problem";

impl Contract {
    /// The document as JSON.
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// Checks one answer to `method path`; `Err` says how it departs from the document.
    /// Paths outside the API (the local server's pages) are not checked.
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), String> {
        if !(path.starts_with("/v1/") || path.starts_with("/.well-known/")) {
            return Ok(());
        }
        let path = if path.len() > 1 {
            path.trim_end_matches('/')
        } else {
            path
        };
        let Some((template, item)) = self.path_item(path) else {
            // Not a route: API Gateway's `$default` answers, as the product's 404.
            return self.expect_problem(status, 404, headers, body);
        };
        let Some(operation) = item.get(method.as_str().to_ascii_lowercase()) else {
            return self.expect_problem(status, 405, headers, body);
        };
        let what = format!("{method} {template} answered {status}");
        let response = operation["responses"]
            .get(status.to_string())
            .map(|r| self.resolve(r))
            .ok_or_else(|| format!("{what}, which the document does not list"))?;
        self.check_headers(&what, response, headers)?;
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned());
        match (response.get("content"), content_type) {
            (None, None) if body.is_empty() => Ok(()),
            (None, _) => Err(format!("{what} with a body the document does not describe")),
            (Some(_), None) => Err(format!("{what} without a Content-Type")),
            (Some(content), Some(content_type)) => {
                let media = content.get(&content_type).ok_or_else(|| {
                    format!("{what} as {content_type}, which the document does not list")
                })?;
                let pointer = format!(
                    "#/paths/{}/{}/responses/{status}/content/{}/schema",
                    escape(template),
                    method.as_str().to_ascii_lowercase(),
                    escape(&content_type)
                );
                let schema = media.get("schema").cloned().unwrap_or(json!({}));
                self.validate(&what, &pointer, &schema, body)
            }
        }
    }

    /// The path template that matches `path` (`{name}` matches one segment) and its item.
    fn path_item(&self, path: &str) -> Option<(&str, &Value)> {
        let paths = self.document["paths"].as_object()?;
        paths.iter().find_map(|(template, item)| {
            let mut want = template.split('/');
            let mut have = path.split('/');
            loop {
                match (want.next(), have.next()) {
                    (None, None) => return Some((template.as_str(), item)),
                    (Some(w), Some(h))
                        if w == h || (w.starts_with('{') && w.ends_with('}') && !h.is_empty()) => {}
                    _ => return None,
                }
            }
        })
    }

    /// Follows a `$ref` to a component (responses and headers may be references).
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => self
                .document
                .pointer(reference.trim_start_matches('#'))
                .unwrap_or(value),
            None => value,
        }
    }

    fn check_headers(
        &self,
        what: &str,
        response: &Value,
        headers: &HeaderMap,
    ) -> Result<(), String> {
        let Some(documented) = response.get("headers").and_then(Value::as_object) else {
            return Ok(());
        };
        for (name, header) in documented {
            let header = self.resolve(header);
            let value = headers.get(name.as_str()).and_then(|v| v.to_str().ok());
            let required = header["required"].as_bool().unwrap_or(false);
            let Some(value) = value else {
                if required {
                    return Err(format!("{what} without its {name} header"));
                }
                continue;
            };
            let schema = &header["schema"];
            let parsed = match schema["type"].as_str() {
                Some("integer") => match value.parse::<i64>() {
                    Ok(n) => json!(n),
                    Err(_) => return Err(format!("{what} with {name}: {value:?}, not an integer")),
                },
                _ => json!(value),
            };
            let validator = self.validator(&format!("header {name} {schema}"), schema)?;
            if let Err(error) = validator.validate(&parsed) {
                return Err(format!("{what} with {name}: {value:?}: {error}"));
            }
        }
        Ok(())
    }

    /// A problem document of `expected` status, for answers outside any operation.
    fn expect_problem(
        &self,
        status: u16,
        expected: u16,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), String> {
        let what = format!("a request outside the documented operations answered {status}");
        if status != expected {
            return Err(format!("{what}, not {expected}"));
        }
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if content_type != "application/problem+json" {
            return Err(format!("{what} as {content_type:?}"));
        }
        self.validate(&what, PROBLEM, &json!({ "$ref": PROBLEM }), body)
    }

    fn validate(&self, what: &str, key: &str, schema: &Value, body: &[u8]) -> Result<(), String> {
        let instance: Value = serde_json::from_slice(body)
            .map_err(|e| format!("{what} with a body that is not JSON: {e}"))?;
        let validator = self.validator(key, schema)?;
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        match errors.is_empty() {
            true => Ok(()),
            false => Err(format!(
                "{what} with a body outside its schema: {}\n  body: {instance}",
                errors.join("; ")
            )),
        }
    }

    /// A validator for `schema` (which may refer to `#/components/...`), built once per key.
    fn validator(&self, key: &str, schema: &Value) -> Result<Arc<Validator>, String> {
        let mut cache = self.validators.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(validator) = cache.get(key) {
            return Ok(validator.clone());
        }
        // The schema as the root of a resource that also holds the document's components,
        // so its `$ref`s resolve as they do inside the document.
        let mut root = match schema {
            Value::Object(object) => object.clone(),
            Value::Bool(true) => serde_json::Map::new(),
            other => return Err(format!("{key}: a schema that is not an object: {other}")),
        };
        root.insert("components".into(), self.document["components"].clone());
        let validator = jsonschema::draft202012::new(&Value::Object(root))
            .map_err(|e| format!("{key}: the document's schema does not compile: {e}"))?;
        let validator = Arc::new(validator);
        cache.insert(key.to_owned(), validator.clone());
        Ok(validator)
    }
}

/// A JSON-pointer segment (`/` and `~` escaped), for the validator cache's keys.
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// What the test server answered outside the document, shared between the server's
/// observer and the [`crate::TestApp`] that reports it.
#[derive(Clone, Default)]
pub struct Violations(Arc<Mutex<Vec<String>>>);

impl Violations {
    pub fn record(&self, violation: String) {
        eprintln!("contract violation: {violation}");
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(violation);
    }

    /// Every violation so far, emptied.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
