//! The OpenAPI document served at `/api/openapi.json` against the router it describes: every
//! route of `center/src/api/mod.rs` with exactly its methods, no path the router lacks, every
//! `$ref` resolving, and every operation with a summary, a unique operationId and a 2xx answer.
//! No network: the router's source is read as text.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

const DOCUMENT: &str = include_str!("../src/api/openapi.json");
const ROUTER: &str = include_str!("../src/api/mod.rs");

/// The HTTP methods axum's method routers are named after, and OpenAPI's path-item keys.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

fn document() -> Value {
    serde_json::from_str(DOCUMENT).unwrap_or_else(|e| panic!("openapi.json is not JSON: {e}"))
}

/// Skips the string literal starting at `bytes[i]` (a `"`); returns the index after it.
fn skip_string(bytes: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    panic!("unterminated string literal in mod.rs");
}

/// Every `.route("PATH", get(..).put(..))` of `src`: path → methods named at the top level of
/// the call's second argument (handler arguments, closures and strings are nested or skipped).
fn routes(src: &str) -> BTreeMap<String, BTreeSet<String>> {
    let bytes = src.as_bytes();
    let mut out = BTreeMap::new();
    let mut search = 0;
    while let Some(found) = src[search..].find(".route(") {
        let start = search + found;
        search = start + ".route(".len();
        let line_start = src[..start].rfind('\n').map_or(0, |n| n + 1);
        if src[line_start..start].contains("//") {
            continue; // in a comment
        }
        let rest = src[search..].trim_start();
        assert!(
            rest.starts_with('"'),
            "a .route( call whose path is not a string literal: {}",
            &rest[..rest.len().min(60)]
        );
        let lit = search + (src[search..].len() - rest.len());
        let end = skip_string(bytes, lit);
        let path = src[lit + 1..end - 1].to_owned();
        let mut methods = BTreeSet::new();
        let (mut i, mut depth) = (end, 1usize);
        while depth > 0 {
            assert!(i < bytes.len(), "route {path}: the .route( call does not end");
            match bytes[i] {
                b'"' => {
                    i = skip_string(bytes, i);
                    continue;
                }
                b'(' => depth += 1,
                b')' => depth -= 1,
                c if depth == 1 && (c.is_ascii_alphabetic() || c == b'_') => {
                    let word_end = i + src[i..]
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(src.len() - i);
                    let word = &src[i..word_end];
                    // `.layer(..)` on a method router (a body limit) is no method.
                    if word != "layer" && src[word_end..].trim_start().starts_with('(') {
                        assert!(
                            METHODS.contains(&word),
                            "route {path}: method router `{word}(..)` is not understood by this test (get, post, put, delete, patch, ...)"
                        );
                        assert!(
                            methods.insert(word.to_owned()),
                            "route {path}: method {word} named twice"
                        );
                    }
                    i = word_end;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
        assert!(!methods.is_empty(), "route {path}: no method found in its .route( call");
        assert!(
            out.insert(path.clone(), methods).is_none(),
            "route {path} appears twice in the router"
        );
        search = i;
    }
    out
}

/// Every `(method, path, operation)` of the document.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let paths = doc["paths"].as_object().expect("openapi.json has no `paths` object");
    let mut out = Vec::new();
    for (path, item) in paths {
        let item = item.as_object().unwrap_or_else(|| panic!("paths[{path}] is not an object"));
        for (key, op) in item {
            if METHODS.contains(&key.as_str()) {
                out.push((key.clone(), path.clone(), op));
            }
        }
    }
    out
}

#[test]
fn the_router_is_parsed() {
    let routes = routes(ROUTER);
    assert!(routes.len() >= 10, "only {} routes found in mod.rs: {routes:?}", routes.len());
    assert_eq!(
        routes["/healthz"],
        BTreeSet::from(["get".to_owned()]),
        "a closure handler with a string inside"
    );
    assert_eq!(
        routes["/api/agents/{id}/config"],
        BTreeSet::from(["get".to_owned(), "put".to_owned()]),
        "two chained method routers"
    );
}

#[test]
fn every_route_is_documented_with_exactly_its_methods() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0", "openapi.json is not an OpenAPI 3.1.0 document");
    let routes = routes(ROUTER);
    let mut documented: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (method, path, _) in operations(&doc) {
        documented.entry(path).or_default().insert(method);
    }
    for path in doc["paths"].as_object().unwrap().keys() {
        documented.entry(path.clone()).or_default();
    }
    let mut faults = Vec::new();
    for (path, methods) in &routes {
        match documented.get(path) {
            None => {
                faults.push(format!("route {path} ({methods:?}) is not in openapi.json's paths"))
            }
            Some(doc_methods) => {
                for m in methods.difference(doc_methods) {
                    faults.push(format!(
                        "{} {path}: in the router but not documented",
                        m.to_uppercase()
                    ));
                }
                for m in doc_methods.difference(methods) {
                    faults.push(format!(
                        "{} {path}: documented but not in the router",
                        m.to_uppercase()
                    ));
                }
            }
        }
    }
    for path in documented.keys().filter(|p| !routes.contains_key(*p)) {
        faults.push(format!("path {path} is documented but the router has no such route"));
    }
    assert!(faults.is_empty(), "openapi.json and the router differ:\n{}", faults.join("\n"));
}

/// Every `$ref` in `v`, with the JSON pointer of where it is.
fn refs(v: &Value, at: String, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (k.as_str(), child) {
                    ("$ref", Value::String(target)) => out.push((here, target.clone())),
                    _ => refs(child, here, out),
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                refs(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_ref_points_at_a_schema() {
    let doc = document();
    let schemas =
        doc["components"]["schemas"].as_object().expect("openapi.json has no components/schemas");
    let mut found = Vec::new();
    refs(&doc, String::new(), &mut found);
    assert!(!found.is_empty(), "no $ref at all in openapi.json");
    let faults: Vec<String> = found
        .iter()
        .filter(|(_, target)| {
            target
                .strip_prefix("#/components/schemas/")
                .is_none_or(|name| !schemas.contains_key(name))
        })
        .map(|(at, target)| {
            format!("$ref {target:?} at {at} does not name an entry of components/schemas")
        })
        .collect();
    assert!(faults.is_empty(), "dangling references:\n{}", faults.join("\n"));
}

#[test]
fn every_operation_has_a_summary_a_unique_id_and_a_success_answer() {
    let doc = document();
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    let mut faults = Vec::new();
    for (method, path, op) in operations(&doc) {
        let name = format!("{} {path}", method.to_uppercase());
        if op["summary"].as_str().is_none_or(|s| s.trim().is_empty()) {
            faults.push(format!("{name}: no summary"));
        }
        match op["operationId"].as_str().filter(|s| !s.trim().is_empty()) {
            None => faults.push(format!("{name}: no operationId")),
            Some(id) => {
                if let Some(other) = ids.insert(id.to_owned(), name.clone()) {
                    faults.push(format!("{name}: operationId {id:?} is also that of {other}"));
                }
            }
        }
        let success =
            op["responses"].as_object().is_some_and(|r| r.keys().any(|code| code.starts_with('2')));
        if !success {
            faults.push(format!("{name}: no 2xx response"));
        }
    }
    assert!(
        faults.is_empty(),
        "operations lacking what every operation needs:\n{}",
        faults.join("\n")
    );
}
