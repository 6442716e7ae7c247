//! The OpenAPI document against the real routes: it lists exactly
//! `http::ROUTES` (from which the router is built), every operation answers on
//! a live server with a status the document lists, and no other method is
//! served on its paths.

use std::collections::BTreeSet;

use bug_escape_exporter::http::ROUTES;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_json::from_str(bug_escape_exporter::http::read::OPENAPI).expect("the document is JSON")
}

/// `(METHOD, path)` of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| (m.to_uppercase(), path.clone()))
        })
        .collect()
}

#[test]
fn the_document_lists_exactly_the_served_routes_and_resolves_its_refs() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented = operations(&doc);
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, served, "document vs http::ROUTES");
    // Every `$ref` points at something, and every operation lists responses
    // and answers errors with the one error body.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    out.push(r.clone());
                }
                o.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in &all {
        let pointer = r.strip_prefix('#').expect("local ref");
        assert!(doc.pointer(pointer).is_some(), "dangling {r}");
    }
    for (method, path) in &documented {
        let op = &doc["paths"][path][method.to_lowercase()];
        let responses = op["responses"].as_object().expect("responses");
        assert!(responses.contains_key("200"), "{method} {path}");
        for (status, resp) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let resp = match resp.get("$ref").and_then(Value::as_str) {
                    Some(r) => doc.pointer(&r[1..]).unwrap(),
                    None => resp,
                };
                assert_eq!(
                    resp["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/Error",
                    "{method} {path} {status}"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_documented_operation_answers_with_a_documented_status() {
    let (app, _dir) = spawn_app().await;
    // D-3 stays when D-1 is deleted: release 1.0 has escapes to list.
    app.events(json!([
        {"id": "D-1", "stage": "qa", "release": "1.0"},
        {"id": "D-3", "stage": "production", "release": "1.0"},
    ]))
    .await;
    let doc = document();
    for (method, path) in operations(&doc) {
        let url_path = path
            .replace("{source}", "generic")
            .replace("{id}", "D-1")
            .replace("{product}", "default")
            .replace("{release}", "1.0");
        let body = match (method.as_str(), path.as_str()) {
            ("POST", "/api/v1/events") => Some(json!({"id": "D-2", "stage": "production"})),
            ("POST", "/api/v1/releases") => {
                Some(json!({"release": "1.0", "released_at": "2026-01-01T00:00:00Z"}))
            }
            ("POST", _) => Some(json!({})),
            _ => None,
        };
        let mut req = app
            .client
            .request(method.parse().unwrap(), format!("{}{url_path}", app.base));
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert!(
            status != 404 && status != 405,
            "{method} {path} is not served: {status} {text}"
        );
        let listed = doc["paths"][&path][method.to_lowercase()]["responses"]
            .get(status.to_string())
            .is_some();
        assert!(
            listed,
            "{method} {path} answered {status}, not in the document: {text}"
        );
        // Unconfigured webhooks answer 503; the others succeed.
        let expected = if path.starts_with("/webhooks/") {
            503
        } else {
            200
        };
        assert_eq!(status, expected, "{method} {path}: {text}");
    }
    // No other method is served on a documented path.
    for path in doc["paths"].as_object().unwrap().keys() {
        let url_path = path
            .replace("{source}", "generic")
            .replace("{id}", "D-1")
            .replace("{product}", "default")
            .replace("{release}", "1.0");
        for method in ["PUT", "PATCH"] {
            let resp = app
                .client
                .request(method.parse().unwrap(), format!("{}{url_path}", app.base))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 405, "{method} {path}");
        }
    }
    app.stop().await;
}
