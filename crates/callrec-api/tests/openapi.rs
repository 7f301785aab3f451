//! `/openapi.json` is true: every documented operation is answered by a route (never "no
//! such route", never "method not allowed", and with a status the document lists), every
//! method the document does not list for a path is a 405, and paths it does not list are 404.

mod support;

use serde_json::Value;
use support::{World, error_code};

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

fn fill(template: &str) -> String {
    template
        .replace("{id}", &callrec_model::RecordingId::new().to_string())
        .replace("{extension}", "1001")
        .replace("{uuid}", "call-unknown")
        .replace("{action}", "pause")
}

#[tokio::test]
async fn the_document_and_the_routes_agree_on_every_path_and_method() {
    let w = World::new();
    let (s, served) = w.json(w.anon("GET", "/openapi.json")).await;
    assert_eq!(s, 200);
    assert_eq!(&served, callrec_api::openapi_document());
    assert!(served["openapi"].as_str().unwrap().starts_with("3."));

    let paths = served["paths"].as_object().unwrap();
    let mut checked = 0;
    for (template, item) in paths {
        let documented: Vec<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        for method in METHODS {
            let path = fill(template);
            let mut req = w.req(&w.admin, method, &path);
            if method == "POST" || method == "PUT" {
                req = req.header("content-type", "application/json").body("{}");
            }
            let resp = w.send(req).await;
            let status = resp.status().as_u16();
            let body: Value = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
            if documented.contains(&method.to_string()) {
                assert!(
                    status != 405 && !(status == 404 && body["error"]["code"] == "no_such_route"),
                    "{method} {template} is documented but no route answers it: {status} {body}"
                );
                let op = &item[method.to_lowercase()];
                assert!(
                    op["responses"].get(status.to_string()).is_some(),
                    "{method} {template} answered {status}, which the document does not list: {body}"
                );
                assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()));
                checked += 1;
            } else {
                assert_eq!(
                    status, 405,
                    "{method} {template} is not documented but answered {status}: {body}"
                );
                assert_eq!(error_code(&body), "method_not_allowed");
            }
        }
    }
    assert_eq!(checked, 20, "operations checked");

    for undocumented in [
        "/",
        "/api",
        "/api/v1",
        "/api/v1/",
        "/api/v2/recordings",
        "/api/v1/tokens",
        "/api/v1/sites",
        "/api/v1/recordings/{id}/segments",
        "/api/v1/recordings/{id}/audio/extra",
        "/api/v1/calls/{uuid}",
        "/api/v1/calls/{uuid}/recording",
        "/api/v1/users/{extension}/tokens",
        "/healthz/x",
        "/openapi.yaml",
    ] {
        for method in METHODS {
            let path = fill(undocumented);
            let (status, body) = w.json(w.req(&w.admin, method, &path)).await;
            assert_eq!(status, 404, "{method} {undocumented}: {body}");
            assert_eq!(error_code(&body), "no_such_route");
        }
    }
}
