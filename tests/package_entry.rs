//! The package's JS entry makes the `NotInitialized` HmsError itself, because before
//! `init()` there is no WebAssembly to ask (docs/PACKAGE.md, "Before init()"). Its fields
//! are copied into pkg/loader.js; this test fails when they and the Rust error table
//! disagree.
#![cfg(not(target_arch = "wasm32"))]

use hms_client::error::{ErrorAction, ErrorName, SdkError};
use serde_json::{json, Value};

/// pkg/loader.js's `const NOT_INITIALIZED = { key: value, ... };` (one line, JSON values).
fn loader_fields() -> Value {
    let src = include_str!("../pkg/loader.js");
    let line = src
        .lines()
        .find(|l| l.starts_with("const NOT_INITIALIZED = {"))
        .expect("pkg/loader.js defines `const NOT_INITIALIZED = { ... };` on one line");
    let body = line
        .split_once('{')
        .and_then(|(_, rest)| rest.rsplit_once('}'))
        .map(|(body, _)| body)
        .expect("an object literal");
    let fields: Vec<String> = body
        .split(',')
        .map(|field| {
            let (key, value) = field.split_once(':').expect("`key: value`");
            format!("{:?}: {}", key.trim(), value.trim())
        })
        .collect();
    serde_json::from_str(&format!("{{{}}}", fields.join(", "))).expect("values JSON can read")
}

#[test]
fn the_js_entrys_not_initialized_error_is_the_rust_tables() {
    let rust = SdkError::new(ErrorName::NotInitialized, ErrorAction::Init, "not initialized");
    let mut want = serde_json::to_value(rust.details()).expect("details serialize");
    want["name"] = json!(rust.name().as_str());
    assert_eq!(loader_fields(), want, "pkg/loader.js's NOT_INITIALIZED and src/error.rs disagree");
}
