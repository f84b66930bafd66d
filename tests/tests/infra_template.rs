//! The deployment template (`infra/template.yaml`) checked against the code, so neither
//! drifts from the other:
//!
//! - every function directory (`functions/<name>/`) has a template function and back;
//! - the operations of the OpenAPI document (`docs/openapi.yaml`) are exactly the routes
//!   of the route table (but for the [`NOT_YET_IMPLEMENTED`] ones), and each function's
//!   HttpApi events are exactly its routes in `ROUTES` (the `web` function's: the pages'
//!   `PAGE_ROUTES`, and the `$default` route);
//! - the table's keys, indexes and TTL are the store's (`store::schema`);
//! - each function's IAM policy allows exactly the DynamoDB actions its code performs, as
//!   recorded by a `RecordingStore` while a scenario drives every endpoint through that
//!   function's own `App` (for `web`, every endpoint through its `App` as its pages call
//!   them: the whole route table, in-process); `ses:SendEmail` exactly where the function sent mail; SSM and
//!   KMS exactly for the secret parameters it is given;
//! - the environment the template sets is enough for the configuration to load.
//!
//! When a check fails because code changed, fix the template (or extend the scenario
//! when it does not reach the new code yet): never loosen these checks.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use accounts::app::App;
use accounts::app::config::Config;
use accounts::clock::{Clock, ManualClock};
use accounts::credentials::totp::{self, TotpSecret};
use accounts::http::ApiRequest;
use accounts::mail::outbox::Outbox;
use accounts::mail::{Email, Mailer};
use accounts::routes::{self, Function, KeysNeeded, NO_ROUTE_FUNCTION, ROUTES};
use accounts::store::Store;
use accounts::store::dynamo::{CallCounter, DynamoStore, client_with_counter};
use accounts::store::memory::MemoryStore;
use accounts::store::recording::{Permission, RecordingStore, Target};
use accounts::store::{EXPIRES_AT, Item, Key, PK, SK, Write, schema};
use accounts::web::PAGE_ROUTES;
use api_tests::{BASE_URL, Mail, PASSWORD, required_env};
use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, header};
use serde_json::{Value as Json, json};

/// Operations of `docs/openapi.yaml` that no function serves yet, as `(METHOD, path)`.
/// Remove each one as its issue lands (the test fails while a listed route is in `ROUTES`).
const NOT_YET_IMPLEMENTED: &[(&str, &str)] = &[];

// ------------------------------------------------------------------------------------
// Reading the template
// ------------------------------------------------------------------------------------

fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("the tests package lives in the workspace")
        .to_path_buf()
}

/// The template as JSON, with CloudFormation's short tags in their long form
/// (`!Ref x` is `{"Ref": x}`, `!Sub s` is `{"Fn::Sub": s}`, `!GetAtt a.b` is
/// `{"Fn::GetAtt": [a, b]}`).
fn template() -> Json {
    let path = workspace_root().join("infra/template.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    to_json(yaml)
}

fn to_json(value: serde_yaml::Value) -> Json {
    use serde_yaml::Value as Yaml;
    match value {
        Yaml::Null => Json::Null,
        Yaml::Bool(b) => Json::Bool(b),
        Yaml::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => json!(i),
            (None, Some(f)) => json!(f),
            _ => Json::String(n.to_string()),
        },
        Yaml::String(s) => Json::String(s),
        Yaml::Sequence(items) => Json::Array(items.into_iter().map(to_json).collect()),
        Yaml::Mapping(map) => Json::Object(
            map.into_iter()
                .map(|(key, value)| {
                    let key = match key {
                        Yaml::String(s) => s,
                        other => panic!("template keys are strings, not {other:?}"),
                    };
                    (key, to_json(value))
                })
                .collect(),
        ),
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!').to_owned();
            let value = to_json(tagged.value);
            match name.as_str() {
                "Ref" | "Condition" => json!({ name: value }),
                "GetAtt" => match value {
                    Json::String(path) => {
                        let (resource, attribute) = path
                            .split_once('.')
                            .unwrap_or_else(|| panic!("!GetAtt {path} needs a dot"));
                        json!({ "Fn::GetAtt": [resource, attribute] })
                    }
                    other => json!({ "Fn::GetAtt": other }),
                },
                _ => json!({ format!("Fn::{name}"): value }),
            }
        }
    }
}

/// A value or each value of a list.
fn list(value: &Json) -> Vec<&Json> {
    match value {
        Json::Array(items) => items.iter().collect(),
        Json::Null => Vec::new(),
        other => vec![other],
    }
}

fn text(value: &Json) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, found {value}"))
}

/// One `AWS::Serverless::Function` of the template.
struct TemplateFunction {
    logical_id: String,
    /// `Metadata.BuildProperties.Binary`: the directory under `functions/`.
    binary: String,
    metadata: Json,
    properties: Json,
}

impl TemplateFunction {
    /// `(METHOD, path)` of every HttpApi event.
    fn routes(&self) -> Vec<(String, String)> {
        let Some(events) = self.properties["Events"].as_object() else {
            return Vec::new();
        };
        events
            .iter()
            .filter(|(_, event)| event["Type"] == "HttpApi")
            .map(|(name, event)| {
                let properties = &event["Properties"];
                assert_eq!(
                    properties["ApiId"],
                    json!({"Ref": "HttpApi"}),
                    "{}.{name} must be on the HttpApi",
                    self.logical_id
                );
                assert_eq!(
                    properties["PayloadFormatVersion"], "2.0",
                    "{}.{name}: the Lambda adapter reads payload format 2.0",
                    self.logical_id
                );
                // No Path and no Method: SAM makes it the `$default` route.
                if properties.get("Path").is_none() && properties.get("Method").is_none() {
                    return ("ANY".to_owned(), "$default".to_owned());
                }
                (
                    text(&properties["Method"]).to_uppercase(),
                    text(&properties["Path"]).to_owned(),
                )
            })
            .collect()
    }

    /// Every statement of its inline policies; anything else (managed policies, SAM
    /// policy templates) cannot be checked and is refused.
    fn statements(&self) -> Vec<&Json> {
        list(&self.properties["Policies"])
            .into_iter()
            .flat_map(|policy| {
                assert!(
                    policy.get("Statement").is_some(),
                    "{}: policies must be inline documents the cross-check can read, not {policy}",
                    self.logical_id
                );
                list(&policy["Statement"])
            })
            .collect()
    }

    /// `(action, statement)` for every allowed action.
    fn allowed(&self) -> Vec<(String, &Json)> {
        let mut allowed = Vec::new();
        for statement in self.statements() {
            assert_eq!(
                statement["Effect"], "Allow",
                "{}: only Allow statements are expected",
                self.logical_id
            );
            for action in list(&statement["Action"]) {
                let action = text(action);
                assert!(
                    !action.contains('*'),
                    "{}: no wildcard actions ({action})",
                    self.logical_id
                );
                allowed.push((action.to_owned(), statement));
            }
        }
        allowed
    }

    /// The DynamoDB permissions its policy grants, by target.
    fn table_permissions(&self) -> BTreeSet<Permission> {
        let mut permissions = BTreeSet::new();
        for (action, statement) in self.allowed() {
            if !action.starts_with("dynamodb:") {
                continue;
            }
            for resource in list(&statement["Resource"]) {
                let target = table_target(resource).unwrap_or_else(|| {
                    panic!(
                        "{}: {action} on {resource}: DynamoDB actions may only name the table \
                         (!GetAtt Table.Arn) or an index (!Sub \"${{Table.Arn}}/index/<name>\")",
                        self.logical_id
                    )
                });
                permissions.insert(Permission {
                    action: action.clone(),
                    target,
                });
            }
        }
        permissions
    }

    fn allows(&self, wanted: &str) -> bool {
        self.allowed().iter().any(|(action, _)| action == wanted)
    }

    /// The resources of every statement allowing `action`.
    fn resources_of(&self, wanted: &str) -> Vec<Json> {
        self.allowed()
            .into_iter()
            .filter(|(action, _)| action == wanted)
            .flat_map(|(_, statement)| list(&statement["Resource"]).into_iter().cloned())
            .collect()
    }

    /// The function's own environment variables (the template's Globals add more).
    fn own_environment(&self) -> serde_json::Map<String, Json> {
        self.properties["Environment"]["Variables"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    }
}

/// A JSON value as text with object keys sorted, to compare and order values.
fn canonical(value: &Json) -> String {
    match value {
        Json::Object(map) => {
            let mut entries: Vec<(&String, &Json)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(key, value)| format!("{}:{}", Json::String(key.clone()), canonical(value)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Json::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", inner.join(","))
        }
        other => other.to_string(),
    }
}

/// The values as a set of their canonical texts.
fn set_of<'a>(values: impl IntoIterator<Item = &'a Json>) -> BTreeSet<String> {
    values.into_iter().map(canonical).collect()
}

fn table_target(resource: &Json) -> Option<Target> {
    if *resource == json!({"Fn::GetAtt": ["Table", "Arn"]}) {
        return Some(Target::Table);
    }
    let index = resource
        .get("Fn::Sub")?
        .as_str()?
        .strip_prefix("${Table.Arn}/index/")?;
    schema::index(index).map(|index| Target::Index(index.name))
}

fn template_functions(template: &Json) -> Vec<TemplateFunction> {
    template["Resources"]
        .as_object()
        .expect("Resources")
        .iter()
        .filter(|(_, resource)| resource["Type"] == "AWS::Serverless::Function")
        .map(|(logical_id, resource)| {
            let metadata = resource["Metadata"].clone();
            let binary = metadata["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{logical_id}: Metadata.BuildProperties.Binary"))
                .to_owned();
            TemplateFunction {
                logical_id: logical_id.clone(),
                binary,
                metadata,
                properties: resource["Properties"].clone(),
            }
        })
        .collect()
}

fn template_function<'a>(functions: &'a [TemplateFunction], name: &str) -> &'a TemplateFunction {
    functions
        .iter()
        .find(|f| f.binary == name)
        .unwrap_or_else(|| panic!("the template has no function built from functions/{name}"))
}

fn global_environment(template: &Json) -> serde_json::Map<String, Json> {
    template["Globals"]["Function"]["Environment"]["Variables"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// The directories under `functions/` that hold a crate.
fn function_directories() -> BTreeSet<String> {
    let dir = workspace_root().join("functions");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir:?}: {e}"))
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
}

fn route_key(method: &Method, path: &str) -> (String, String) {
    (method.as_str().to_owned(), path.to_owned())
}

// ------------------------------------------------------------------------------------
// Structure: functions, routes, table
// ------------------------------------------------------------------------------------

#[test]
fn every_function_directory_has_a_template_function_and_back() {
    let template = template();
    let functions = template_functions(&template);
    let in_template: BTreeSet<String> = functions.iter().map(|f| f.binary.clone()).collect();
    assert_eq!(
        in_template.len(),
        functions.len(),
        "two template functions build the same binary"
    );
    assert_eq!(
        function_directories(),
        in_template,
        "functions/<name>/ directories (left) and template functions (right) differ"
    );
    for function in Function::ALL {
        assert!(
            in_template.contains(function.name()),
            "Function::{function:?} has no template function"
        );
    }
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"], json!(["arm64"]));
    assert_eq!(globals["Handler"], "bootstrap");
    for function in &functions {
        assert_eq!(
            function.metadata["BuildMethod"], "rust-cargolambda",
            "{}",
            function.logical_id
        );
        // The package's own directory: cargo then resolves features for that package
        // alone (from the workspace root, `--bin` would unify them with the test crates').
        assert_eq!(
            function.properties["CodeUri"],
            format!("../functions/{}", function.binary),
            "{}: CodeUri is the function's directory",
            function.logical_id
        );
        assert_eq!(
            function.logical_id,
            format!("{}Function", camel(&function.binary)),
            "function resources are named <Name>Function"
        );
        for suffix in ["LogGroup", "ThrottlesAlarm", "ErrorsAlarm"] {
            let id = format!("{}{suffix}", camel(&function.binary));
            assert!(
                template["Resources"].get(&id).is_some(),
                "{}: the template has no {id}",
                function.logical_id
            );
        }
        assert_eq!(
            function.properties["LoggingConfig"]["LogGroup"],
            json!({"Ref": format!("{}LogGroup", camel(&function.binary))}),
            "{}: logs go to its own log group",
            function.logical_id
        );
    }
}

/// `two-factor` -> `TwoFactor`.
fn camel(name: &str) -> String {
    name.split(['-', '_'])
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn each_function_serves_exactly_its_routes() {
    let template = template();
    let functions = template_functions(&template);
    let mut mapped: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for function in &functions {
        for route in function.routes() {
            mapped
                .entry(route)
                .or_default()
                .push(function.logical_id.clone());
        }
    }
    for (route, owners) in &mapped {
        assert_eq!(
            owners.len(),
            1,
            "{route:?} is mapped more than once: {owners:?}"
        );
    }
    for function in &functions {
        let mut expected: BTreeSet<(String, String)> = ROUTES
            .iter()
            .filter(|route| route.endpoint.function().name() == function.binary)
            .map(|route| route_key(&route.method, route.path))
            .collect();
        if function.binary == Function::Web.name() {
            expected.extend(
                PAGE_ROUTES
                    .iter()
                    .map(|route| route_key(&route.method, route.path)),
            );
        }
        if function.binary == NO_ROUTE_FUNCTION.name() {
            expected.insert(("ANY".to_owned(), "$default".to_owned()));
        }
        let actual: BTreeSet<(String, String)> = function.routes().into_iter().collect();
        assert_eq!(
            actual, expected,
            "{}: template events (left) differ from its routes in ROUTES or PAGE_ROUTES (right)",
            function.logical_id
        );
    }
    let page_routes: Vec<(String, String)> = PAGE_ROUTES
        .iter()
        .map(|route| route_key(&route.method, route.path))
        .collect();
    let mut all: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|route| route_key(&route.method, route.path))
        .collect();
    for route in &page_routes {
        assert!(
            !all.contains(route),
            "{route:?} is both a page and an API route"
        );
        assert!(
            !accounts::web::is_api_path(&route.1),
            "{route:?} is a page route on an API path"
        );
    }
    all.extend(page_routes);
    all.insert(("ANY".to_owned(), "$default".to_owned()));
    assert_eq!(
        mapped.keys().cloned().collect::<BTreeSet<_>>(),
        all,
        "every route of ROUTES and PAGE_ROUTES is mapped once, and the $default route"
    );
}

/// `(METHOD, path)` of every operation of the OpenAPI document (`docs/openapi.yaml`).
fn documented_routes() -> BTreeSet<(String, String)> {
    let path = workspace_root().join("docs/openapi.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let document: Json = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let paths = document["paths"]
        .as_object()
        .expect("the document has paths");
    let mut routes = BTreeSet::new();
    for (path, item) in paths {
        for method in item.as_object().expect("a path item").keys() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

#[test]
fn the_route_table_and_the_api_document_name_the_same_routes() {
    let documented = documented_routes();
    assert!(documented.len() > 20, "no operations found: {documented:?}");
    let table: Vec<(String, String)> = ROUTES
        .iter()
        .map(|route| route_key(&route.method, route.path))
        .collect();
    let in_table: BTreeSet<(String, String)> = table.iter().cloned().collect();
    assert_eq!(table.len(), in_table.len(), "a route is in ROUTES twice");
    let pending: BTreeSet<(String, String)> = NOT_YET_IMPLEMENTED
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    for route in &pending {
        assert!(
            !in_table.contains(route),
            "{route:?} is in ROUTES now: remove it from NOT_YET_IMPLEMENTED in {}",
            file!()
        );
        assert!(
            documented.contains(route),
            "NOT_YET_IMPLEMENTED lists {route:?}, which the document does not describe"
        );
    }
    let served: BTreeSet<(String, String)> = in_table.union(&pending).cloned().collect();
    let undocumented: Vec<_> = in_table.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "ROUTES and docs/openapi.yaml differ: routes the document lacks {undocumented:?}, \
         documented operations no function serves {unserved:?}"
    );
}

#[test]
fn the_table_is_the_one_the_store_expects() {
    let template = template();
    let table = &template["Resources"]["Table"];
    assert_eq!(table["Type"], "AWS::DynamoDB::Table");
    assert_eq!(table["DeletionPolicy"], "Retain");
    assert_eq!(table["UpdateReplacePolicy"], "Retain");
    let properties = &table["Properties"];
    assert_eq!(properties["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(properties["DeletionProtectionEnabled"], true);
    assert_eq!(
        properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(
        properties["TimeToLiveSpecification"],
        json!({"AttributeName": EXPIRES_AT, "Enabled": true})
    );
    let key_schema = |pk: &str, sk: &str| {
        json!([
            {"AttributeName": pk, "KeyType": "HASH"},
            {"AttributeName": sk, "KeyType": "RANGE"},
        ])
    };
    assert_eq!(properties["KeySchema"], key_schema(PK, SK));

    // As DynamoStore::create_table_if_missing makes it: every key attribute a string,
    // every index projecting all attributes.
    let mut attributes: BTreeSet<&str> = BTreeSet::from([PK, SK]);
    for index in schema::INDEXES {
        attributes.insert(index.pk);
        attributes.insert(index.sk);
    }
    let expected_attributes: Vec<Json> = attributes
        .iter()
        .map(|name| json!({"AttributeName": name, "AttributeType": "S"}))
        .collect();
    let expected_attributes = set_of(&expected_attributes);
    let actual_attributes = set_of(list(&properties["AttributeDefinitions"]));
    assert_eq!(actual_attributes, expected_attributes);

    let expected_indexes: Vec<Json> = schema::INDEXES
        .iter()
        .map(|index| {
            json!({
                "IndexName": index.name,
                "KeySchema": key_schema(index.pk, index.sk),
                "Projection": {"ProjectionType": "ALL"},
            })
        })
        .collect();
    assert_eq!(
        set_of(list(&properties["GlobalSecondaryIndexes"])),
        set_of(&expected_indexes),
        "GSIs are schema::INDEXES"
    );
}

#[test]
fn the_template_environment_is_a_valid_configuration() {
    let template = template();
    let globals = global_environment(&template);
    for function in template_functions(&template) {
        let mut environment = globals.clone();
        environment.extend(function.own_environment());
        // A literal value is used as is; a reference stands for a valid deployment value.
        // A secret read from SSM at cold start stands in for its variable when the
        // variable's `_PARAMETER` is set.
        let value_of = |name: &str| -> Option<String> {
            let value = environment
                .get(name)
                .or_else(|| environment.get(&format!("{name}_PARAMETER")))?;
            Some(match value {
                Json::String(literal) => literal.clone(),
                _ if name.ends_with("_URL") => "https://app.example.com".to_owned(),
                // A parameter the template's AllowedPattern holds to a list of origins.
                _ if name.ends_with("_ORIGINS") => "https://shop.example.com".to_owned(),
                _ => "from-the-template".to_owned(),
            })
        };
        let config = Config::from_lookup(value_of);
        assert!(
            config.is_ok(),
            "{}: the environment the template sets does not load: {}",
            function.logical_id,
            config.err().map(|e| e.to_string()).unwrap_or_default()
        );
        for (name, _) in environment.iter() {
            assert!(
                ![
                    "JWT_SIGNING_KEY",
                    "JWT_PREVIOUS_SIGNING_KEY",
                    "TOTP_ENCRYPTION_KEY"
                ]
                .contains(&name.as_str()),
                "{}: {name} must come from SSM (set {name}_PARAMETER), never the environment",
                function.logical_id
            );
        }
    }
    for name in [
        "APP_BASE_URL",
        "TABLE_NAME",
        "MAIL_FROM",
        "SES_CONFIGURATION_SET",
    ] {
        assert!(globals.contains_key(name), "Globals set {name}");
    }
    assert_eq!(
        globals["APP_BASE_URL"],
        json!({"Fn::Sub": "https://${AppDomain}"})
    );
    assert_eq!(globals["TABLE_NAME"], json!({"Ref": "Table"}));
}

/// The ARN of an SSM parameter whose name is `name` (as the template writes it).
fn parameter_arn(name: &Json) -> Json {
    if let Some([condition, given, otherwise]) = name
        .get("Fn::If")
        .and_then(Json::as_array)
        .map(Vec::as_slice)
        && *otherwise == json!({"Ref": "AWS::NoValue"})
    {
        return json!({"Fn::If": [condition, parameter_arn(given), otherwise]});
    }
    json!({"Fn::Sub": [
        "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${Name}",
        {"Name": name},
    ]})
}

/// The shared keys a template function needs: an HTTP function's `keys_needed`; the
/// scheduled cleanup starts with `KeysNeeded::default()` (`functions/cleanup/src/main.rs`).
fn keys_needed(binary: &str) -> KeysNeeded {
    Function::ALL
        .iter()
        .find(|function| function.name() == binary)
        .map(|function| function.keys_needed())
        .unwrap_or_default()
}

#[test]
fn only_the_function_that_issues_access_tokens_holds_the_signing_key() {
    let template = template();
    for function in template_functions(&template) {
        let environment = function.own_environment();
        let signs = Function::ALL
            .iter()
            .any(|f| f.name() == function.binary && f.signs_access_tokens());
        assert_eq!(
            environment.contains_key("JWT_SIGNING_KEY_PARAMETER"),
            signs,
            "{}: the private signing key is given only to the function that issues tokens",
            function.logical_id
        );
        let verifies = keys_needed(&function.binary).verification_keys;
        assert!(
            !(signs && verifies),
            "{}: a function that signs needs no separate verification keys",
            function.logical_id
        );
    }
    let signers: Vec<&str> = Function::ALL
        .iter()
        .filter(|f| f.signs_access_tokens())
        .map(|f| f.name())
        .collect();
    // The web pages log in through the login flow in-process, so they sign too.
    assert_eq!(signers, ["login", "web"]);
}

#[test]
fn secrets_are_readable_exactly_where_they_are_used() {
    let template = template();
    let globals = global_environment(&template);
    assert!(
        !globals.keys().any(|name| name.ends_with("_PARAMETER")),
        "secret parameter names are given per function, never globally"
    );
    for function in template_functions(&template) {
        let environment = function.own_environment();
        let keys = keys_needed(&function.binary);
        for (variable, needed) in [
            ("JWT_SIGNING_KEY_PARAMETER", keys.signing_key),
            ("JWT_PREVIOUS_SIGNING_KEY_PARAMETER", keys.signing_key),
            ("JWT_VERIFICATION_KEYS_PARAMETER", keys.verification_keys),
            ("TOTP_ENCRYPTION_KEY_PARAMETER", keys.totp_key),
            ("TOTP_PREVIOUS_ENCRYPTION_KEY_PARAMETER", keys.totp_key),
        ] {
            assert_eq!(
                environment.contains_key(variable),
                needed,
                "{}: {variable} is set exactly when the function needs the key ({keys:?})",
                function.logical_id
            );
        }
        let parameters: Vec<&Json> = environment
            .iter()
            .filter(|(name, _)| name.ends_with("_PARAMETER"))
            .map(|(_, value)| value)
            .collect();
        let expected: Vec<Json> = parameters.iter().map(|name| parameter_arn(name)).collect();
        let expected = set_of(&expected);
        let granted = set_of(&function.resources_of("ssm:GetParameters"));
        assert_eq!(
            granted, expected,
            "{}: ssm:GetParameters must name exactly the *_PARAMETER variables' parameters",
            function.logical_id
        );
        let ssm_actions: Vec<String> = function
            .allowed()
            .into_iter()
            .map(|(action, _)| action)
            .filter(|action| action.starts_with("ssm:"))
            .collect();
        assert!(
            ssm_actions.iter().all(|a| a == "ssm:GetParameters"),
            "{}: only ssm:GetParameters (one call at cold start), not {ssm_actions:?}",
            function.logical_id
        );
        // Every key parameter is a SecureString but the public verification keys.
        let reads_secure_strings = environment
            .keys()
            .any(|name| name.ends_with("_PARAMETER") && name != "JWT_VERIFICATION_KEYS_PARAMETER");
        assert_eq!(
            function.allows("kms:Decrypt"),
            reads_secure_strings,
            "{}: kms:Decrypt exactly when it reads SecureStrings",
            function.logical_id
        );
        for (action, statement) in function.allowed() {
            if action == "kms:Decrypt" {
                assert_eq!(
                    statement["Condition"]["StringEquals"]["kms:ViaService"],
                    json!({"Fn::Sub": "ssm.${AWS::Region}.amazonaws.com"}),
                    "{}: kms:Decrypt only through SSM",
                    function.logical_id
                );
            }
        }
    }
}

// ------------------------------------------------------------------------------------
// What each function's code does, recorded
// ------------------------------------------------------------------------------------

/// Counts the mail one function sends, passing it on to the shared outbox.
struct CountingMailer {
    outbox: Arc<Outbox>,
    sent: Mutex<usize>,
}

#[async_trait]
impl Mailer for CountingMailer {
    async fn send(&self, email: Email) -> anyhow::Result<()> {
        *self.sent.lock().expect("the counter") += 1;
        self.outbox.send(email).await
    }
}

/// One function as deployed: its own cold-start state over the shared table.
struct Deployed {
    app: App,
    store: Arc<RecordingStore>,
    mailer: Arc<CountingMailer>,
    /// DynamoDB requests actually sent (DynamoDB backend only).
    calls: Option<Arc<CallCounter>>,
}

/// How the scenario's requests reach the functions.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// As API Gateway routes them: each to the function that owns its route.
    ApiGateway,
    /// As the web pages send them: all to the `web` function's `App`, through the whole
    /// route table in-process (`routes::dispatch(app, None, ..)`, what
    /// `accounts::web::api::Call::send` does). The pages reach the store only this way.
    WebPages,
}

/// Every function (one per directory under `functions/`), each with its own recorder,
/// over one table.
struct Deployment {
    entry: Entry,
    functions: BTreeMap<String, Deployed>,
    /// The table itself, unrecorded, to set up what a scenario needs.
    table: Arc<dyn Store>,
    outbox: Arc<Outbox>,
    clock: Arc<ManualClock>,
    covered: Mutex<BTreeSet<String>>,
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Json,
}

impl Deployment {
    /// Builds every function's `App` over stores from `store_for` (called once per
    /// function), sharing one signing key, one TOTP key, one clock and one outbox.
    async fn new<F, Fut>(
        entry: Entry,
        clock: Arc<ManualClock>,
        table_name: &str,
        table: Arc<dyn Store>,
        store_for: F,
    ) -> Deployment
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = (Arc<dyn Store>, Option<Arc<CallCounter>>)>,
    {
        let signing_key =
            accounts::credentials::access_token::generate_ed25519_pem().expect("a signing key");
        let verification_keys = accounts::credentials::access_token::AccessTokens::from_pem(
            &signing_key,
            None,
            "issuer",
            "audience",
        )
        .ok()
        .and_then(|tokens| tokens.public_pem())
        .expect("the signing key's public half");
        let totp_key = base64_of(&[7u8; 32]);
        let settings = [
            ("APP_BASE_URL", BASE_URL),
            ("TABLE_NAME", table_name),
            ("MAIL_FROM", "Account Security <no-reply@accounts.test>"),
            ("ENUMERATION_FLOOR_MS", "1"),
        ];
        let outbox = Arc::new(Outbox::new(clock.clone()));
        let mut functions = BTreeMap::new();
        for name in function_directories() {
            // Each function gets exactly the keys it needs, as in AWS: the scenario then
            // proves that, say, `account` works with the public keys alone.
            let needs = keys_needed(&name);
            let mut keys = Vec::new();
            if needs.signing_key {
                keys.push(("JWT_SIGNING_KEY", signing_key.as_str()));
            }
            if needs.verification_keys {
                keys.push(("JWT_VERIFICATION_KEYS", verification_keys.as_str()));
            }
            if needs.totp_key {
                keys.push(("TOTP_ENCRYPTION_KEY", totp_key.as_str()));
            }
            // Google and Apple (the local providers) for the function that signs in with
            // them, as the template configures it.
            if name == "login" {
                keys.extend(api_tests::oidc::overrides().iter().copied());
            }
            let config = Config::from_lookup(|key| {
                settings
                    .iter()
                    .chain(keys.iter())
                    .find(|(setting, _)| *setting == key)
                    .map(|(_, value)| (*value).to_owned())
            })
            .expect("the test configuration is valid");
            let (inner, calls) = store_for(name.clone()).await;
            let store = RecordingStore::new(inner);
            let mailer = Arc::new(CountingMailer {
                outbox: outbox.clone(),
                sent: Mutex::new(0),
            });
            let app = App::new(config, store.clone(), mailer.clone(), clock.clone())
                .expect("build the app");
            functions.insert(
                name,
                Deployed {
                    app,
                    store,
                    mailer,
                    calls,
                },
            );
        }
        Deployment {
            entry,
            functions,
            table,
            outbox,
            clock,
            covered: Mutex::new(BTreeSet::new()),
        }
    }

    fn function(&self, name: &str) -> &Deployed {
        self.functions
            .get(name)
            .unwrap_or_else(|| panic!("functions/{name} is not deployed"))
    }

    /// Sends one request to the function that owns its route, as API Gateway would (or to
    /// the web function, as its pages would: [`Entry`]).
    async fn call(
        &self,
        method: Method,
        target: &str,
        bearer: Option<&str>,
        body: Option<Json>,
    ) -> Answer {
        let mut headers = HeaderMap::new();
        if let Some(token) = bearer {
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value"),
            );
        }
        let body = match body {
            Some(body) => {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        self.call_raw(method, target, headers, body).await
    }

    /// Sends one request with these headers and body to the function that owns its route.
    async fn call_raw(
        &self,
        method: Method,
        target: &str,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Answer {
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query.to_owned())),
            None => (target, None),
        };
        let (endpoint, _) = routes::resolve(&method, path)
            .unwrap_or_else(|_| panic!("{method} {path} is not a route"));
        let function = endpoint.function();
        self.covered
            .lock()
            .expect("the coverage")
            .insert(format!("{endpoint:?}"));
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static("infra-cross-check/1"),
        );
        let request = ApiRequest::new(
            method,
            path,
            query,
            headers,
            body,
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)),
        );
        let response = match self.entry {
            Entry::ApiGateway => {
                let app = &self.function(function.name()).app;
                routes::dispatch(app, Some(function), request).await
            }
            Entry::WebPages => {
                let app = &self.function(Function::Web.name()).app;
                routes::dispatch(app, None, request).await
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body();
        let body = if bytes.is_empty() {
            Json::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn post(&self, path: &str, body: Json) -> Answer {
        self.call(Method::POST, path, None, Some(body)).await
    }

    fn last_mail_to(&self, address: &str) -> Mail {
        let sent = self
            .outbox
            .to(address)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no mail to {address}"));
        Mail {
            to: sent.to,
            subject: sent.subject,
            text: sent.text,
            html: sent.html,
        }
    }

    fn link_token(&self, address: &str, page: &str) -> String {
        self.last_mail_to(address)
            .link_token(page)
            .unwrap_or_else(|| panic!("no {page} link in the last mail to {address}"))
    }

    /// Logs in with a password; the answer is tokens or a second-factor challenge.
    async fn log_in(&self, login: &str, password: &str) -> Json {
        let answer = self
            .post(
                "/v1/login",
                json!({ "login": login, "password": password, "remember_me": false }),
            )
            .await;
        expect(&answer, 200, "login");
        answer.body
    }

    /// Logs in with a password and, when asked, the second factor `method` with `code`.
    async fn log_in_with(&self, login: &str, password: &str, method: &str, code: &str) -> Json {
        let challenge = self.log_in(login, password).await;
        assert_eq!(challenge["mfa_required"], true, "{challenge}");
        let answer = self
            .post(
                "/v1/login/mfa",
                json!({
                    "mfa_token": field(&challenge, "mfa_token"), "method": method, "code": code,
                }),
            )
            .await;
        expect(&answer, 200, &format!("login with {method}"));
        answer.body
    }

    /// The current code of an authenticator app, one not used before: every call moves
    /// the clock to the next 30-second step first.
    fn next_totp_code(&self, secret: &TotpSecret) -> String {
        self.clock.advance(30);
        totp::code_at(secret, self.clock.now())
            .expect("a TOTP code")
            .expose()
            .to_owned()
    }

    /// Runs one scheduled function as EventBridge would invoke it.
    async fn run_scheduled(&self, name: &str) {
        let app = &self.function(name).app;
        match name {
            "cleanup" => {
                let event = fixture("eventbridge-scheduled.json");
                let report = accounts::flows::cleanup::handle_scheduled_event(
                    app,
                    &event,
                    Duration::from_secs(300),
                )
                .await
                .expect("the cleanup runs");
                assert!(report.complete, "{report:?}");
                assert!(report.unverified_accounts_deleted >= 1, "{report:?}");
                assert!(report.expired_items_deleted >= 120, "{report:?}");
            }
            "mail-events" => {
                // SES reports on the scenario's verified account (a complaint, then a
                // bounce, then a complaint the bounce outranks) and on an address nobody has.
                let account = "cross.check@example.com";
                let events = [
                    ("complaint", account, 1),
                    ("bounce-permanent", account, 1),
                    ("complaint", account, 0),
                    ("bounce-permanent", "nobody@example.com", 0),
                    ("delivery-delay", account, 0),
                ];
                for (name, recipient, marked) in events {
                    let text = std::fs::read_to_string(format!(
                        "{}/fixtures/ses-events/{name}.json",
                        env!("CARGO_MANIFEST_DIR")
                    ))
                    .expect("an SES event fixture");
                    let event: Json = serde_json::from_str(&text.replace("RECIPIENT", recipient))
                        .expect("an SES event");
                    let report = accounts::flows::mail_events::handle_event(app, &event)
                        .await
                        .expect("the mail-events function handles the event");
                    assert_eq!(report.marked, marked, "{name} for {recipient}: {report:?}");
                }
            }
            other => panic!(
                "functions/{other} serves no route: teach Deployment::run_scheduled to invoke it"
            ),
        }
    }
}

/// An endpoint of sign-in with Google or Apple (by its `Debug` name), which the web pages
/// do not reach yet.
fn is_provider_endpoint(endpoint: &str) -> bool {
    endpoint.contains("Oauth") || ["Account(Identities)", "Account(Unlink)"].contains(&endpoint)
}

fn fixture(name: &str) -> Json {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn expect(answer: &Answer, status: u16, what: &str) {
    assert_eq!(answer.status, status, "{what}: {answer:?}");
}

/// A refusal for what the request says (4xx), whatever its exact code.
fn expect_refused(answer: &Answer, what: &str) {
    assert!(
        (400..500).contains(&answer.status) && answer.status != 404,
        "{what}: {answer:?}"
    );
}

fn field<'a>(value: &'a Json, name: &str) -> &'a str {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {value}"))
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An authenticator app's view of a base32 secret (RFC 4648, padding optional).
fn totp_secret(base32: &str) -> TotpSecret {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits: u64 = 0;
    let mut count = 0;
    let mut bytes = Vec::new();
    for c in base32.trim_end_matches('=').bytes() {
        let value = ALPHABET
            .iter()
            .position(|&a| a == c.to_ascii_uppercase())
            .unwrap_or_else(|| panic!("{base32} is not base32"));
        bits = (bits << 5) | value as u64;
        count += 5;
        if count >= 8 {
            count -= 8;
            bytes.push((bits >> count) as u8);
        }
    }
    TotpSecret::from_bytes(&bytes).expect("a TOTP secret")
}

const NEW_PASSWORD: &str = "marmalade-sextant-41";
const RESET_PASSWORD: &str = "obsidian-lantern-73";
const FINAL_PASSWORD: &str = "porcelain-harbour-52";

/// Drives every endpoint of every function through the paths that touch the table
/// differently (success, refusal, reuse, lockout, paging, second factors), as API
/// Gateway would route them, then runs the scheduled functions over what is left.
/// Signs in with the local Google-like and Apple-like providers through every OAuth
/// route; `email` is a verified account whose password is [`PASSWORD`].
async fn sign_in_with_providers(d: &Deployment, email: &str) {
    use api_tests::oidc::{Person, authorize_at};
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client");
    // Starts at `provider`, logs `person` in there, and gives the answer to the callback.
    let sign_in = |provider: &'static str, person: Person| {
        let http = http.clone();
        async move {
            let started = d
                .call(
                    Method::GET,
                    &format!("/v1/oauth/{provider}/start?return_to=%2Fjobs"),
                    None,
                    None,
                )
                .await;
            expect(&started, 302, "start a sign-in");
            let location = started.headers[header::LOCATION]
                .to_str()
                .expect("a Location")
                .to_owned();
            let cookie = started.headers[header::SET_COOKIE]
                .to_str()
                .expect("a cookie")
                .split(';')
                .next()
                .expect("the cookie's pair")
                .to_owned();
            let auth = authorize_at(&http, provider, &location, cookie, &person).await;
            let mut headers = HeaderMap::new();
            headers.insert(
                header::COOKIE,
                HeaderValue::from_str(&auth.cookie).expect("a cookie header"),
            );
            let form = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("code", &auth.code)
                .append_pair("state", &auth.state)
                .finish();
            let path = format!("/v1/oauth/{provider}/callback");
            match provider {
                "apple" => {
                    headers.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/x-www-form-urlencoded"),
                    );
                    d.call_raw(Method::POST, &path, headers, Bytes::from(form))
                        .await
                }
                _ => {
                    d.call_raw(
                        Method::GET,
                        &format!("{path}?{form}"),
                        headers,
                        Bytes::new(),
                    )
                    .await
                }
            }
        }
    };
    let answer = sign_in("google", Person::gmail()).await;
    expect(&answer, 200, "a new person at Google");
    let signup = json!({ "token": field(&answer.body, "token"), "account_type": "client" });
    let created = d.post("/v1/oauth/signup", signup).await;
    expect(&created, 201, "a new account through Google");
    let access = field(&created.body, "access_token").to_owned();
    let listed = d
        .call(Method::GET, "/v1/account/identities", Some(&access), None)
        .await;
    expect(&listed, 200, "the identities");
    let last = d
        .call(
            Method::DELETE,
            "/v1/account/identities/google",
            Some(&access),
            None,
        )
        .await;
    expect(&last, 409, "the last way in stays");

    let mut owner = Person::with_email(email);
    owner.hd = email.rsplit_once('@').map(|(_, domain)| domain.to_owned());
    let answer = sign_in("google", owner).await;
    expect(&answer, 200, "Google with an existing account's address");
    let link = json!({ "token": field(&answer.body, "token"), "password": PASSWORD });
    let linked = d.post("/v1/oauth/link", link).await;
    expect(&linked, 200, "link by the password");
    let access = field(&linked.body, "access_token").to_owned();
    let unlinked = d
        .call(
            Method::DELETE,
            "/v1/account/identities/google",
            Some(&access),
            None,
        )
        .await;
    expect(&unlinked, 204, "unlink while the password stays");

    let answer = sign_in("apple", Person::gmail()).await;
    expect(&answer, 200, "a new person at Apple (form_post)");
}

async fn drive_every_function(d: &Deployment) {
    let typo = "cross.check@exampel.com";
    let email = "cross.check@example.com";
    let other = "second.account@example.com";
    let stale = "never.verified@example.com";

    // signup: a new account, the same address again, a corrected address.
    expect(
        &d.call(Method::GET, "/v1/health", None, None).await,
        200,
        "health",
    );
    expect(
        &d.call(Method::GET, "/v1/openapi.json", None, None).await,
        200,
        "the API document",
    );
    let signup = json!({
        "email": typo, "password": PASSWORD, "account_type": "freelancer",
        "username": "cross_check",
    });
    expect(&d.post("/v1/signup", signup).await, 202, "signup");
    let again = json!({ "email": typo, "password": PASSWORD, "account_type": "client" });
    expect(&d.post("/v1/signup", again).await, 202, "signup again");
    let correct = json!({ "email": typo, "password": PASSWORD, "new_email": email });
    expect(
        &d.post("/v1/signup/correct-email", correct).await,
        202,
        "correct the address",
    );
    let never = json!({
        "email": stale, "password": PASSWORD, "account_type": "agency", "username": "stale_one",
    });
    expect(
        &d.post("/v1/signup", never).await,
        202,
        "a signup never verified",
    );

    // verify: a wrong code, the right code; another account by link after a resend.
    let code = d.last_mail_to(email).code().expect("a verification code");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    expect(
        &d.post("/v1/email/verify", json!({ "email": email, "code": wrong }))
            .await,
        400,
        "verify with a wrong code",
    );
    expect(
        &d.post("/v1/email/verify", json!({ "email": email, "code": code }))
            .await,
        200,
        "verify by code",
    );

    // Google and Apple: a new account, one linked to `email` by its password, the
    // identities listed, the last way in kept and a linked one unlinked. Before the
    // scenario moves its clock: the local providers check the Apple client secret's
    // `iat` against their own clock (60 s of leeway). Only through API Gateway: the web
    // pages do not offer the providers yet, so the web function holds none of their
    // secrets.
    if matches!(d.entry, Entry::ApiGateway) {
        sign_in_with_providers(d, email).await;
    }
    let signup = json!({ "email": other, "password": PASSWORD, "account_type": "client" });
    expect(&d.post("/v1/signup", signup).await, 202, "second signup");
    d.clock.advance(61);
    expect(
        &d.post("/v1/email/verify/resend", json!({ "email": other }))
            .await,
        202,
        "resend",
    );
    let token = d.link_token(other, "/verify-email");
    expect(
        &d.post("/v1/email/verify", json!({ "token": token })).await,
        200,
        "verify by link",
    );

    // login: success, a wrong password, an unknown login, a lockout.
    let first = d.log_in(email, PASSWORD).await;
    let wrong_password = json!({ "login": email, "password": "not-the-password-1" });
    expect(
        &d.post("/v1/login", wrong_password).await,
        401,
        "wrong password",
    );
    let unknown = json!({ "login": "nobody@example.com", "password": PASSWORD });
    expect(&d.post("/v1/login", unknown).await, 401, "unknown login");
    let mut locked = false;
    for _ in 0..8 {
        let answer = d
            .post(
                "/v1/login",
                json!({ "login": other, "password": "not-the-password-1" }),
            )
            .await;
        if answer.status == 429 {
            locked = true;
            break;
        }
        expect(&answer, 401, "a failed login before the lockout");
    }
    assert!(locked, "five failures lock the account");
    let refused = json!({ "login": other, "password": PASSWORD });
    expect(&d.post("/v1/login", refused).await, 429, "locked out");

    // tokens: refresh, reuse of a spent refresh token, logout, the public keys.
    let refresh = json!({ "refresh_token": field(&first, "refresh_token") });
    expect(
        &d.post("/v1/token/refresh", refresh.clone()).await,
        200,
        "refresh",
    );
    expect(
        &d.post("/v1/token/refresh", refresh).await,
        401,
        "reuse of a spent refresh token",
    );
    let garbage = json!({ "refresh_token": "not-a-refresh-token" });
    expect_refused(
        &d.post("/v1/token/refresh", garbage).await,
        "refresh with an unknown token",
    );
    let second = d.log_in(email, PASSWORD).await;
    let logout = json!({ "refresh_token": field(&second, "refresh_token") });
    expect(&d.post("/v1/logout", logout.clone()).await, 204, "logout");
    expect(&d.post("/v1/logout", logout).await, 204, "logout again");
    expect(
        &d.call(Method::GET, "/.well-known/jwks.json", None, None)
            .await,
        200,
        "jwks",
    );

    // account: the view, sessions, ending one and the others, the history in pages,
    // a new password.
    let main = d.log_in(email, PASSWORD).await;
    let access = field(&main, "access_token").to_owned();
    let bearer = Some(access.as_str());
    expect(
        &d.call(Method::GET, "/v1/account", bearer, None).await,
        200,
        "account",
    );
    expect(
        &d.call(Method::GET, "/v1/account/sessions", bearer, None)
            .await,
        200,
        "sessions",
    );
    let doomed = d.log_in(email, PASSWORD).await;
    let path = format!("/v1/account/sessions/{}", field(&doomed, "session_id"));
    expect(
        &d.call(Method::DELETE, &path, bearer, None).await,
        204,
        "end one session",
    );
    d.log_in(email, PASSWORD).await;
    expect(
        &d.call(
            Method::POST,
            "/v1/account/sessions/revoke-others",
            bearer,
            None,
        )
        .await,
        204,
        "end the other sessions",
    );
    let page = d
        .call(
            Method::GET,
            "/v1/account/login-history?limit=1",
            bearer,
            None,
        )
        .await;
    expect(&page, 200, "login history");
    let link = page
        .headers
        .get(header::LINK)
        .and_then(|v| v.to_str().ok())
        .expect("a next link")
        .to_owned();
    let next = link
        .trim_start_matches('<')
        .split('>')
        .next()
        .expect("a link target")
        .to_owned();
    expect(
        &d.call(Method::GET, &next, bearer, None).await,
        200,
        "the next history page",
    );
    let unknown = "/v1/account/sessions/no-such-session";
    expect(
        &d.call(Method::DELETE, unknown, bearer, None).await,
        404,
        "end an unknown session",
    );
    let wrong = json!({ "current_password": "not-the-password-1", "new_password": NEW_PASSWORD });
    expect_refused(
        &d.call(Method::POST, "/v1/account/password", bearer, Some(wrong))
            .await,
        "change the password with a wrong current one",
    );
    let change = json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD });
    expect(
        &d.call(Method::POST, "/v1/account/password", bearer, Some(change))
            .await,
        200,
        "change the password",
    );

    // reset: a forgotten password by link.
    expect(
        &d.post("/v1/password/forgot", json!({ "login": email }))
            .await,
        202,
        "forgot password",
    );
    expect(
        &d.post(
            "/v1/password/forgot",
            json!({ "login": "nobody@example.com" }),
        )
        .await,
        202,
        "forgot password of nobody",
    );
    let token = d.link_token(email, "/reset-password");
    let reset = json!({ "token": token, "new_password": RESET_PASSWORD });
    expect(
        &d.post("/v1/password/reset", reset).await,
        200,
        "reset the password",
    );

    // security question: the list, setting one, resetting it by link.
    let fresh = d.log_in(email, RESET_PASSWORD).await;
    let access = field(&fresh, "access_token").to_owned();
    let bearer = Some(access.as_str());
    let questions = d
        .call(Method::GET, "/v1/security-questions", None, None)
        .await;
    expect(&questions, 200, "security questions");
    let question = questions.body[0]["id"].clone();
    let wrong = json!({
        "current_password": "not-the-password-1", "question_id": question, "answer": "Blue Heron",
    });
    expect_refused(
        &d.call(
            Method::PUT,
            "/v1/account/security-question",
            bearer,
            Some(wrong),
        )
        .await,
        "set a security question with a wrong password",
    );
    let set = json!({
        "current_password": RESET_PASSWORD, "question_id": question, "answer": "Blue Heron",
    });
    expect(
        &d.call(
            Method::PUT,
            "/v1/account/security-question",
            bearer,
            Some(set),
        )
        .await,
        200,
        "set a security question",
    );
    expect(
        &d.post("/v1/security-question/forgot", json!({ "login": email }))
            .await,
        202,
        "forgot the security answer",
    );
    let token = d.link_token(email, "/reset-security-question");
    let reset = json!({
        "token": token, "password": RESET_PASSWORD, "question_id": question,
        "answer": "Green Finch",
    });
    expect(
        &d.post("/v1/security-question/reset", reset).await,
        200,
        "reset the security question",
    );

    // two-factor: an authenticator app, then logins with each second factor.
    let session = d.log_in(email, RESET_PASSWORD).await;
    let access = field(&session, "access_token").to_owned();
    let bearer = Some(access.as_str());
    let wrong_password = json!({ "current_password": "not-the-password-1" });
    expect(
        &d.call(
            Method::POST,
            "/v1/2fa/totp/setup",
            bearer,
            Some(wrong_password),
        )
        .await,
        401,
        "set up an authenticator app with a wrong password",
    );
    let password = json!({ "current_password": RESET_PASSWORD });
    let setup = d
        .call(Method::POST, "/v1/2fa/totp/setup", bearer, Some(password))
        .await;
    expect(&setup, 200, "set up an authenticator app");
    let secret = totp_secret(field(&setup.body, "secret"));
    let wrong = json!({ "code": "000000" });
    expect_refused(
        &d.call(Method::POST, "/v1/2fa/totp/confirm", bearer, Some(wrong))
            .await,
        "confirm with a wrong code",
    );
    let confirm = json!({ "code": d.next_totp_code(&secret) });
    let confirmed = d
        .call(Method::POST, "/v1/2fa/totp/confirm", bearer, Some(confirm))
        .await;
    expect(&confirmed, 200, "confirm the authenticator app");
    let backup_code = confirmed.body["backup_codes"][0]
        .as_str()
        .expect("backup codes")
        .to_owned();
    let challenge = d.log_in(email, RESET_PASSWORD).await;
    let wrong = json!({
        "mfa_token": field(&challenge, "mfa_token"), "method": "totp", "code": "000000",
    });
    expect(
        &d.post("/v1/login/mfa", wrong).await,
        401,
        "a wrong second factor",
    );
    let code = d.next_totp_code(&secret);
    d.log_in_with(email, RESET_PASSWORD, "totp", &code).await;
    let by_question = d
        .log_in_with(email, RESET_PASSWORD, "security_question", "Green Finch")
        .await;
    let regenerate = json!({ "current_password": RESET_PASSWORD });
    expect(
        &d.call(
            Method::POST,
            "/v1/2fa/backup-codes",
            Some(field(&by_question, "access_token")),
            Some(regenerate),
        )
        .await,
        403,
        "new backup codes from a session of the security question",
    );
    let session = d
        .log_in_with(email, RESET_PASSWORD, "backup_code", &backup_code)
        .await;
    let access = field(&session, "access_token").to_owned();
    let bearer = Some(access.as_str());
    let wrong = json!({ "current_password": "not-the-password-1" });
    expect_refused(
        &d.call(Method::POST, "/v1/2fa/backup-codes", bearer, Some(wrong))
            .await,
        "new backup codes with a wrong password",
    );
    let regenerate = json!({ "current_password": RESET_PASSWORD });
    expect(
        &d.call(
            Method::POST,
            "/v1/2fa/backup-codes",
            bearer,
            Some(regenerate),
        )
        .await,
        200,
        "new backup codes",
    );

    // reset with two-step verification: refused without a second factor, then done.
    expect(
        &d.post("/v1/password/forgot", json!({ "login": email }))
            .await,
        202,
        "forgot password again",
    );
    let token = d.link_token(email, "/reset-password");
    let without = json!({ "token": token, "new_password": FINAL_PASSWORD });
    expect(
        &d.post("/v1/password/reset", without).await,
        403,
        "a reset without the second factor",
    );
    let wrong = json!({
        "token": token, "new_password": FINAL_PASSWORD,
        "mfa": { "method": "totp", "code": "000000" },
    });
    expect_refused(
        &d.post("/v1/password/reset", wrong).await,
        "a reset with a wrong second factor",
    );
    let with = json!({
        "token": token, "new_password": FINAL_PASSWORD,
        "mfa": { "method": "totp", "code": d.next_totp_code(&secret) },
    });
    expect(
        &d.post("/v1/password/reset", with).await,
        200,
        "a reset with the second factor",
    );

    // two-factor off again.
    let code = d.next_totp_code(&secret);
    let session = d.log_in_with(email, FINAL_PASSWORD, "totp", &code).await;
    let access = field(&session, "access_token").to_owned();
    let wrong = json!({ "current_password": FINAL_PASSWORD, "code": "000000" });
    expect_refused(
        &d.call(
            Method::DELETE,
            "/v1/2fa/totp",
            Some(access.as_str()),
            Some(wrong),
        )
        .await,
        "turn two-step verification off with a wrong code",
    );
    let disable = json!({ "current_password": FINAL_PASSWORD, "code": d.next_totp_code(&secret) });
    expect(
        &d.call(
            Method::DELETE,
            "/v1/2fa/totp",
            Some(access.as_str()),
            Some(disable),
        )
        .await,
        200,
        "turn two-step verification off",
    );

    let covered = d.covered.lock().expect("the coverage").clone();
    let uncovered: BTreeSet<String> = ROUTES
        .iter()
        .map(|route| format!("{:?}", route.endpoint))
        .filter(|endpoint| !covered.contains(endpoint))
        .filter(|endpoint| matches!(d.entry, Entry::ApiGateway) || !is_provider_endpoint(endpoint))
        .collect();
    assert!(
        uncovered.is_empty(),
        "the scenario does not reach these endpoints yet; extend drive_every_function: {uncovered:?}"
    );

    // The scheduled jobs, a week later: the unverified signup is stale, the sessions
    // and back-offs above have expired, and more expired items than one query page
    // holds wait in one partition of the expiry index (so the job pages through it).
    let expired_at = d.clock.now() - 1;
    for i in 0..120 {
        let item = Item::new(&Key::new(format!("USER#seed-{i:03}"), "SESSION#seed"))
            .with(EXPIRES_AT, expired_at);
        d.table
            .write(Write::put(schema::index_expiry(item)))
            .await
            .expect("seed an expired item");
    }
    d.clock.advance(8 * 86_400);
    let scheduled: Vec<String> = d
        .functions
        .keys()
        .filter(|name| !Function::ALL.iter().any(|f| f.name() == name.as_str()))
        .cloned()
        .collect();
    for name in scheduled {
        d.run_scheduled(&name).await;
    }
}

fn describe(permissions: &BTreeSet<Permission>) -> Vec<String> {
    permissions
        .iter()
        .map(|p| match p.target {
            Target::Table => format!("{} on the table", p.action),
            Target::Index(index) => format!("{} on index {index}", p.action),
        })
        .collect()
}

/// Whether an item of this key is one that lives until something deletes it: an account,
/// or a claim of an address or username that belongs to one.
fn kept_until_deleted(item: &Item) -> bool {
    let key = item.key().expect("a stored item has a key");
    match key.sk.as_str() {
        "PROFILE" => true,
        // A username held for a pending signup expires; a real claim does not.
        "CLAIM" => item.s("pending_hash").is_none() || key.pk.starts_with("EMAIL#"),
        // An identity links an account until it is unlinked, as a claim does.
        "LINK" => key.pk.starts_with("IDENTITY#"),
        sk if sk.starts_with("IDENTITY#") => true,
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_the_functions_write_expires_but_accounts_and_their_claims() {
    let clock = ManualClock::starting_now();
    let memory = Arc::new(MemoryStore::new(clock.clone()));
    let table: Arc<dyn Store> = memory.clone();
    let shared = table.clone();
    let deployment = Deployment::new(
        Entry::ApiGateway,
        clock.clone(),
        "accounts-expiry-check",
        table,
        |_| {
            let table = shared.clone();
            async move { (table, None) }
        },
    )
    .await;
    drive_every_function(&deployment).await;
    let items = memory.raw_items();
    assert!(items.len() > 20, "the scenario left {} items", items.len());
    let without: Vec<String> = items
        .iter()
        .filter(|item| !kept_until_deleted(item) && item.n(EXPIRES_AT).is_none())
        .map(|item| format!("{:?}", item.key()))
        .collect();
    assert!(without.is_empty(), "items that never expire: {without:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_function_may_do_exactly_what_its_code_does() {
    let driven = |entry: Entry| async move {
        let clock = ManualClock::starting_now();
        let table: Arc<dyn Store> = Arc::new(MemoryStore::new(clock.clone()));
        let shared = table.clone();
        let deployment =
            Deployment::new(entry, clock.clone(), "accounts-cross-check", table, |_| {
                let table = shared.clone();
                async move { (table, None) }
            })
            .await;
        drive_every_function(&deployment).await;
        deployment
    };
    let api = driven(Entry::ApiGateway).await;
    let pages = driven(Entry::WebPages).await;
    // Each function as its requests reach it: the web function's through its pages,
    // every other one's through API Gateway (which sends the web function no API route).
    let web = Function::Web.name();
    let reached = api
        .functions
        .iter()
        .filter(|(name, _)| name.as_str() != web)
        .chain(
            pages
                .functions
                .iter()
                .filter(|(name, _)| name.as_str() == web),
        );

    let template = template();
    let functions = template_functions(&template);
    let mut problems = Vec::new();
    for (name, deployed) in reached {
        let function = template_function(&functions, name);
        let performed = deployed.store.permissions();
        let granted = function.table_permissions();
        assert!(
            !performed.is_empty(),
            "{name}: the scenario never reached its code"
        );
        if performed != granted {
            problems.push(format!(
                "{}: the code performs {:?}\n  but the template grants {:?}\n  \
                 missing: {:?}\n  never performed (extend the scenario if the code can do it): {:?}",
                function.logical_id,
                describe(&performed),
                describe(&granted),
                describe(&performed.difference(&granted).cloned().collect()),
                describe(&granted.difference(&performed).cloned().collect()),
            ));
        }
        let sent = *deployed.mailer.sent.lock().expect("the counter");
        let may_send = function.allows("ses:SendEmail");
        if may_send != (sent > 0) {
            problems.push(format!(
                "{}: sent {sent} emails in the scenario, and ses:SendEmail is {}",
                function.logical_id,
                if may_send { "allowed" } else { "not allowed" }
            ));
        }
        for resource in function.resources_of("ses:SendEmail") {
            assert_ne!(
                resource,
                json!("*"),
                "{}: ses:SendEmail on *",
                function.logical_id
            );
        }
        for (action, _) in function.allowed() {
            let service = action.split(':').next().unwrap_or_default();
            assert!(
                ["dynamodb", "ses", "ssm", "kms"].contains(&service),
                "{}: unexpected permission {action}",
                function.logical_id
            );
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The recorder must predict every request the DynamoDB store really sends, or the
/// policies derived from it would miss one: the same scenario on DynamoDB Local, each
/// function with its own client, compared operation by operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorder_predicts_every_dynamodb_request() {
    let endpoint = required_env("AWS_ENDPOINT_URL_DYNAMODB");
    let sdk = accounts::aws::sdk_config_from_process_environment()
        .expect("the SDK settings from the environment")
        .to_builder()
        .endpoint_url(endpoint)
        .build();
    let table_name = format!("infra-{}", uuid::Uuid::new_v4().simple());
    let clock = ManualClock::starting_now();
    let (client, _) = client_with_counter(&sdk);
    let table = DynamoStore::new(client, table_name.clone(), clock.clone());
    table
        .create_table_if_missing()
        .await
        .expect("create the table");
    let deployment = Deployment::new(
        Entry::ApiGateway,
        clock.clone(),
        &table_name,
        Arc::new(table),
        |_| {
            let (client, calls) = client_with_counter(&sdk);
            let store: Arc<dyn Store> =
                Arc::new(DynamoStore::new(client, table_name.clone(), clock.clone()));
            async move { (store, Some(calls)) }
        },
    )
    .await;
    drive_every_function(&deployment).await;

    // The web function's requests reach the same flows over the same DynamoStore, and are
    // routed to the other functions here (as API Gateway routes them): it has nothing of
    // its own to predict.
    let routed = deployment
        .functions
        .iter()
        .filter(|(name, _)| name.as_str() != Function::Web.name());
    for (name, deployed) in routed {
        let sent: BTreeSet<String> = deployed
            .calls
            .as_ref()
            .expect("a call counter")
            .snapshot()
            .into_keys()
            .collect();
        let predicted: BTreeSet<String> = deployed
            .store
            .operations()
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert!(!sent.is_empty(), "{name} sent no request");
        let unpredicted: Vec<&String> = sent.difference(&predicted).collect();
        assert!(
            unpredicted.is_empty(),
            "{name}: DynamoStore sent {unpredicted:?}, which RecordingStore did not predict \
             (sent {sent:?}, predicted {predicted:?}): teach shared/src/store/recording.rs"
        );
    }
}
