//! Converts the API's OpenAPI document (`docs/openapi.yaml`, the contract the product keeps)
//! to compact JSON at build time, so `GET /v1/openapi.json` serves bytes prepared once and
//! no function links a YAML parser.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let source = manifest.join("../docs/openapi.yaml");
    println!("cargo:rerun-if-changed={}", source.display());
    let text = std::fs::read_to_string(&source)
        .unwrap_or_else(|e| panic!("reading {}: {e}", source.display()));
    let document: serde_json::Value = serde_yaml::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", source.display()));
    let json = serde_json::to_vec(&document).expect("a JSON value serialises");
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("openapi.json");
    std::fs::write(&out, json).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}
