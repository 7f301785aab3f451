//! `/openapi.json` is true: every documented operation is answered by a route (never "no
//! such route", never "method not allowed", and with a status the document lists), every
//! method the document does not list for a path is a 405 naming the methods it takes
//! (`Allow`), `OPTIONS` is a 204 with the same `Allow`, and paths it does not list are 404.
//! And every reply is what the document says: real replies of every operation, successes
//! and errors, nulls included, are checked against their schemas, with every required field
//! present, no field the schema does not name, and the types, formats and enums it gives.

mod support;

use std::collections::BTreeSet;

use callrec_model::NewRecording;
use callrec_model::{CallRecording, Direction, RecordingId, RecordingMode};
use serde_json::{Value, json};
use support::{World, error_code, t0};

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
            let allow: BTreeSet<String> = resp
                .headers()
                .get("allow")
                .map(|v| v.to_str().unwrap().split(", ").map(str::to_owned).collect())
                .unwrap_or_default();
            let mut expected_allow: BTreeSet<String> = documented.iter().cloned().collect();
            if documented.iter().any(|m| m == "GET") {
                expected_allow.insert("HEAD".to_owned());
            }
            expected_allow.insert("OPTIONS".to_owned());
            if method == "OPTIONS" {
                assert_eq!(status, 204, "OPTIONS {template}: {body}");
                assert_eq!(allow, expected_allow, "OPTIONS {template}");
            } else if method == "HEAD" && documented.iter().any(|m| m == "GET") {
                // The server answers HEAD as GET before routing (tests/serve.rs); these
                // requests go to the routes directly.
            } else if documented.contains(&method.to_string()) {
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
                assert_eq!(allow, expected_allow, "405 {method} {template}: Allow");
            }
        }
    }
    assert_eq!(checked, 29, "operations checked");

    // `/` and the portal's other pages are HTML for browsers, outside the API's document.
    for undocumented in [
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

// ---- replies against their schemas ---------------------------------------------------

/// A small JSON Schema checker for what utoipa writes (OpenAPI 3.1): `$ref`, `allOf` (an
/// object's parts merged: its properties are the union), `oneOf`, `type` (one or several),
/// `enum`, `format` (`date-time`, `uuid`, `int32`, `int64`), bounds, `items`, `properties`
/// and `required`. Stricter than JSON Schema on one point: an object with documented
/// properties may carry no other field, whatever `additionalProperties` says, because an
/// undocumented field in a reply is the drift this test is for.
struct Schemas<'a> {
    doc: &'a Value,
}

impl<'a> Schemas<'a> {
    fn resolve<'s>(&'s self, schema: &'s Value) -> &'s Value {
        match schema["$ref"].as_str() {
            Some(r) => {
                let name = r
                    .strip_prefix("#/components/schemas/")
                    .unwrap_or_else(|| panic!("a $ref outside the components: {r}"));
                let target = &self.doc["components"]["schemas"][name];
                assert!(!target.is_null(), "dangling $ref {r}");
                self.resolve(target)
            }
            None => schema,
        }
    }

    /// Every error found in `value` against `schema`, each naming where.
    fn check(&self, schema: &Value, value: &Value, at: &str) -> Vec<String> {
        let mut errors = Vec::new();
        self.check_into(schema, value, at, &mut errors);
        errors
    }

    fn check_into(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let s = self.resolve(schema);
        for keyword in s.as_object().into_iter().flat_map(|o| o.keys()) {
            // A keyword this checker would ignore could hide a mismatch: refuse it.
            assert!(
                KNOWN_KEYWORDS.contains(&keyword.as_str()),
                "{at}: the schema uses `{keyword}`, which this checker does not check: {s}"
            );
        }
        if let Some(parts) = s["allOf"].as_array() {
            let parts: Vec<&Value> = parts.iter().map(|p| self.resolve(p)).collect();
            if parts.iter().all(|p| p["properties"].is_object()) {
                let mut properties = serde_json::Map::new();
                let mut required = Vec::new();
                for p in parts {
                    properties.extend(p["properties"].as_object().unwrap().clone());
                    required.extend(p["required"].as_array().cloned().unwrap_or_default());
                }
                let merged =
                    json!({"type": "object", "properties": properties, "required": required});
                return self.check_into(&merged, value, at, errors);
            }
            for p in parts {
                self.check_into(p, value, at, errors);
            }
        }
        if let Some(options) = s["oneOf"].as_array() {
            let fits = options
                .iter()
                .filter(|o| self.check(o, value, at).is_empty())
                .count();
            if fits != 1 {
                errors.push(format!(
                    "{at}: {value} fits {fits} of the oneOf {options:?}"
                ));
            }
        }
        if let Some(types) = types(s)
            && !types.iter().any(|t| is_type(value, t))
        {
            errors.push(format!("{at}: {value} is not of type {types:?}"));
            return;
        }
        if let Some(values) = s["enum"].as_array()
            && !values.contains(value)
        {
            errors.push(format!("{at}: {value} is not one of {values:?}"));
        }
        match value {
            Value::String(text) => {
                let fits = match s["format"].as_str() {
                    Some("date-time") => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
                    Some("uuid") => uuid::Uuid::parse_str(text).is_ok(),
                    _ => true,
                };
                if !fits {
                    errors.push(format!("{at}: {text:?} is not a {}", s["format"]));
                }
                let chars = text.chars().count() as u64;
                if s["minLength"].as_u64().is_some_and(|n| chars < n)
                    || s["maxLength"].as_u64().is_some_and(|n| chars > n)
                {
                    errors.push(format!("{at}: {text:?} has a length out of bounds"));
                }
            }
            Value::Number(n) => {
                let x = n.as_f64().unwrap();
                let fits = match s["format"].as_str() {
                    Some("int32") => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
                    Some("int64") => n.as_i64().is_some() || n.as_u64().is_some(),
                    _ => true,
                };
                if !fits
                    || s["minimum"].as_f64().is_some_and(|m| x < m)
                    || s["maximum"].as_f64().is_some_and(|m| x > m)
                {
                    errors.push(format!("{at}: {n} is out of the schema's range: {s}"));
                }
            }
            Value::Array(items) => {
                if let Some(item) = s.get("items") {
                    for (i, v) in items.iter().enumerate() {
                        self.check_into(item, v, &format!("{at}[{i}]"), errors);
                    }
                }
            }
            Value::Object(fields) => {
                let Some(properties) = s["properties"].as_object() else {
                    // A free-form object: only the document itself is one.
                    return;
                };
                for name in s["required"].as_array().into_iter().flatten() {
                    let name = name.as_str().unwrap();
                    if !fields.contains_key(name) {
                        errors.push(format!("{at}: required field `{name}` is missing"));
                    }
                }
                for (name, v) in fields {
                    match properties.get(name) {
                        Some(p) => self.check_into(p, v, &format!("{at}.{name}"), errors),
                        None => errors.push(format!(
                            "{at}: field `{name}` is not in the schema (it has: {:?})",
                            properties.keys().collect::<Vec<_>>()
                        )),
                    }
                }
            }
            Value::Null | Value::Bool(_) => {}
        }
    }
}

/// The keywords [`Schemas`] checks, and those that say nothing about a reply.
const KNOWN_KEYWORDS: &[&str] = &[
    "$ref",
    "allOf",
    "oneOf",
    "type",
    "enum",
    "format",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "items",
    "properties",
    "required",
    "additionalProperties",
    "description",
    "default",
];

fn types(schema: &Value) -> Option<Vec<&str>> {
    match &schema["type"] {
        Value::String(t) => Some(vec![t.as_str()]),
        Value::Array(ts) => Some(ts.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

fn is_type(value: &Value, t: &str) -> bool {
    match t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        other => panic!("a type this checker does not know: {other}"),
    }
}

/// Whether a reply's `Content-Type` is one the document lists (`audio/*` covers `audio/wav`).
fn media_type_listed(content_type: &str, listed: &serde_json::Map<String, Value>) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    listed.keys().any(|m| match m.strip_suffix("/*") {
        Some(top) => essence.split('/').next() == Some(top),
        None => m == essence,
    })
}

/// Requests sent through the routes, each reply checked against the document.
struct Exchange<'w> {
    w: &'w World,
    doc: &'static Value,
    /// `METHOD template status` of every reply checked.
    seen: BTreeSet<String>,
    failures: Vec<String>,
}

impl<'w> Exchange<'w> {
    fn new(w: &'w World) -> Self {
        Exchange {
            w,
            doc: callrec_api::openapi_document(),
            seen: BTreeSet::new(),
            failures: Vec::new(),
        }
    }

    /// Send `req` (a request of the operation `method template`), check the reply against
    /// the document, and return its status and JSON (`Null` when not JSON).
    async fn send(
        &mut self,
        method: &str,
        template: &str,
        req: warp::test::RequestBuilder,
    ) -> (u16, Value) {
        let resp = self.w.send(req).await;
        let status = resp.status().as_u16();
        let op = &self.doc["paths"][template][method.to_lowercase()];
        assert!(op.is_object(), "{method} {template} is not documented");
        let what = format!("{method} {template} {status}");
        self.seen.insert(what.clone());
        let body: Value = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
        let Some(documented) = op["responses"].get(status.to_string()) else {
            self.failures
                .push(format!("{what}: the status is not documented: {body}"));
            return (status, body);
        };
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        match (content_type, documented["content"].as_object()) {
            (None, None) => {}
            (None, Some(_)) => self.failures.push(format!(
                "{what}: no Content-Type, but the document lists content"
            )),
            (Some(ct), None) => self
                .failures
                .push(format!("{what}: {ct}, but the document lists no content")),
            (Some(ct), Some(listed)) => {
                if !media_type_listed(&ct, listed) {
                    self.failures.push(format!(
                        "{what}: Content-Type {ct} is not one of {:?}",
                        listed.keys().collect::<Vec<_>>()
                    ));
                } else if ct.starts_with("application/json") {
                    let schema = &listed["application/json"]["schema"];
                    let errors = Schemas { doc: self.doc }.check(schema, &body, "reply");
                    for e in errors {
                        self.failures.push(format!("{what}: {e}"));
                    }
                }
            }
        }
        (status, body)
    }
}

fn rec_path(id: &impl std::fmt::Display, rest: &str) -> String {
    format!("/api/v1/recordings/{id}{rest}")
}

#[tokio::test]
async fn every_reply_matches_its_schema() {
    let mut w = World::new();
    let (alice, admin) = (w.alice.clone(), w.admin.clone());
    let (kept, _) = w.record(&alice.user, "1001", "02079460000", t0(), 2000);
    let (doomed, _) = w.record(&alice.user, "1001", "02079460009", t0(), 1000);
    let (held, _) = w.record(&alice.user, "02079460111", "1001", t0(), 1000);
    // One still being recorded: no end, no size, no hash, no expiry (all `null`).
    let open = NewRecording {
        id: RecordingId::new(),
        user: alice.user.id,
        call_uuid: "call-open".into(),
        direction: Direction::Inbound,
        from: "02079460222".into(),
        to: "1001".into(),
        started_at: t0(),
        format: "wav".into(),
        spool_path: w.spool.join("open.wav"),
    };
    w.store
        .write(move |s| s.create_recording(&open, "daemon"))
        .await
        .unwrap();
    // Two calls: one not recorded (no recording id), one recorded.
    let mut call = w.live_call(&alice.user, "call-a", RecordingMode::AlwaysPausable);
    call.call_uuid = "call-b".into();
    call.recording = CallRecording::Recording;
    call.recording_id = Some(kept.id.clone());
    w.daemon.add_call(call, RecordingMode::AlwaysPausable);

    w.store
        .write_blocking(|s| s.sync_config_webhooks(&["http://127.0.0.1:9/config".to_owned()]))
        .unwrap();
    let mut x = Exchange::new(&w);
    let (a, ad) = (&alice, &admin);
    let get = |who: &support::Person, path: &str| w.req(who, "GET", path);
    let with_json = |who: &support::Person, method: &str, path: &str, body: Value| {
        w.req(who, method, path)
            .header("content-type", "application/json")
            .body(body.to_string())
    };

    // Recordings.
    let t = "/api/v1/recordings";
    let (_, page) = x.send("GET", t, get(ad, t)).await;
    assert!(page["next_cursor"].is_null(), "{page}");
    let (_, page) = x.send("GET", t, get(ad, &format!("{t}?limit=1"))).await;
    assert!(page["next_cursor"].is_string(), "{page}");
    let (_, page) = x
        .send("GET", t, get(a, &format!("{t}?state=recording")))
        .await;
    let open = &page["items"][0];
    assert!(
        open["ended_at"].is_null() && open["sha256"].is_null(),
        "{page}"
    );
    x.send("GET", t, get(ad, &format!("{t}?limit=0"))).await;
    let t = "/api/v1/recordings/{id}/notes";
    let note = json!({"text": "called back"});
    let (s, _) = x
        .send(
            "POST",
            t,
            with_json(a, "POST", &rec_path(&kept.id, "/notes"), note),
        )
        .await;
    assert_eq!(s, 201);
    let empty = json!({"text": ""});
    x.send(
        "POST",
        t,
        with_json(a, "POST", &rec_path(&kept.id, "/notes"), empty),
    )
    .await;
    let huge = json!({"text": "x".repeat(100_000)});
    x.send(
        "POST",
        t,
        with_json(a, "POST", &rec_path(&kept.id, "/notes"), huge),
    )
    .await;
    let unknown = RecordingId::new();
    let some = json!({"text": "x"});
    x.send(
        "POST",
        t,
        with_json(a, "POST", &rec_path(&unknown, "/notes"), some),
    )
    .await;
    let t = "/api/v1/recordings/{id}";
    let (_, detail) = x.send("GET", t, get(a, &rec_path(&kept.id, ""))).await;
    assert_eq!(
        detail["notes"].as_array().map(Vec::len),
        Some(1),
        "{detail}"
    );
    x.send("GET", t, get(a, &rec_path(&unknown, ""))).await;
    let t = "/api/v1/recordings/{id}/hold";
    let hold = json!({"hold": true});
    x.send(
        "PUT",
        t,
        with_json(ad, "PUT", &rec_path(&held.id, "/hold"), hold.clone()),
    )
    .await;
    x.send(
        "PUT",
        t,
        with_json(a, "PUT", &rec_path(&held.id, "/hold"), hold.clone()),
    )
    .await;
    x.send(
        "PUT",
        t,
        with_json(ad, "PUT", &rec_path(&unknown, "/hold"), hold.clone()),
    )
    .await;
    let (s, _) = x
        .send(
            "PUT",
            t,
            with_json(
                ad,
                "PUT",
                &rec_path(&held.id, "/hold"),
                json!({"hold": "yes"}),
            ),
        )
        .await;
    assert_eq!(s, 422);
    let huge = json!({"hold": true, "x": "y".repeat(100_000)});
    x.send(
        "PUT",
        t,
        with_json(ad, "PUT", &rec_path(&held.id, "/hold"), huge),
    )
    .await;
    let t = "/api/v1/erasures";
    let dry = json!({"number": "01632960123", "reason": "SAR", "dry_run": true});
    let (s, report) = x
        .send("POST", t, with_json(ad, "POST", t, dry.clone()))
        .await;
    assert_eq!(s, 200, "{report}");
    x.send("POST", t, with_json(a, "POST", t, dry)).await;
    let (s, _) = x
        .send("POST", t, with_json(ad, "POST", t, json!({"number": 5})))
        .await;
    assert_eq!(s, 422);
    let (s, _) = x
        .send(
            "POST",
            t,
            with_json(ad, "POST", t, json!({"number": "0", "reason": " "})),
        )
        .await;
    assert_eq!(s, 422);
    let huge = json!({"number": "1", "reason": "y".repeat(100_000)});
    x.send("POST", t, with_json(ad, "POST", t, huge)).await;
    let t = "/api/v1/exports";
    let sar = json!({"number": "01632960123", "reason": "SAR"});
    let (s, _) = x
        .send("POST", t, with_json(ad, "POST", t, sar.clone()))
        .await;
    assert_eq!(s, 200);
    x.send("POST", t, with_json(a, "POST", t, sar)).await;
    let (s, _) = x
        .send(
            "POST",
            t,
            with_json(ad, "POST", t, json!({"number": "1", "reason": ""})),
        )
        .await;
    assert_eq!(s, 422);
    let huge = json!({"number": "1", "reason": "y".repeat(100_000)});
    x.send("POST", t, with_json(ad, "POST", t, huge)).await;
    // Webhooks.
    let t = "/api/v1/webhooks";
    let hook = json!({"url": "https://hooks.example/callrec", "secret": "0123456789abcdef"});
    let (s, made) = x
        .send("POST", t, with_json(ad, "POST", t, hook.clone()))
        .await;
    assert_eq!(s, 201, "{made}");
    let (s, _) = x
        .send("POST", t, with_json(ad, "POST", t, hook.clone()))
        .await;
    assert_eq!(s, 409);
    x.send("POST", t, with_json(a, "POST", t, hook)).await;
    let (s, _) = x
        .send(
            "POST",
            t,
            with_json(
                ad,
                "POST",
                t,
                json!({"url": "ftp://x", "secret": "0123456789abcdef"}),
            ),
        )
        .await;
    assert_eq!(s, 422);
    let huge = json!({"url": "https://h", "secret": "y".repeat(100_000)});
    x.send("POST", t, with_json(ad, "POST", t, huge)).await;
    let (_, list) = x.send("GET", t, get(ad, t)).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2), "{list}");
    x.send("GET", t, get(a, t)).await;
    let config_id = list["items"][0]["id"].as_i64().unwrap();
    let t = "/api/v1/webhooks/{id}";
    let one = |id: &Value| format!("/api/v1/webhooks/{id}");
    let (s, _) = x
        .send("DELETE", t, w.req(ad, "DELETE", &one(&json!(config_id))))
        .await;
    assert_eq!(s, 409);
    x.send("DELETE", t, w.req(a, "DELETE", &one(&made["id"])))
        .await;
    let (s, _) = x
        .send("DELETE", t, w.req(ad, "DELETE", &one(&made["id"])))
        .await;
    assert_eq!(s, 204);
    let (s, _) = x
        .send("DELETE", t, w.req(ad, "DELETE", &one(&json!(999))))
        .await;
    assert_eq!(s, 404);
    let t = "/api/v1/recordings/{id}";
    let (s, _) = x
        .send("DELETE", t, w.req(ad, "DELETE", &rec_path(&held.id, "")))
        .await;
    assert_eq!(s, 409);
    let (s, tombstone) = x
        .send(
            "DELETE",
            t,
            w.req(ad, "DELETE", &rec_path(&doomed.id, "?reason=test")),
        )
        .await;
    assert_eq!(s, 200);
    assert!(tombstone["deleted_at"].is_string(), "{tombstone}");
    x.send("DELETE", t, w.req(a, "DELETE", &rec_path(&kept.id, "")))
        .await;
    x.send("DELETE", t, w.req(ad, "DELETE", &rec_path(&unknown, "")))
        .await;
    let t = "/api/v1/recordings/{id}/hold";
    x.send(
        "PUT",
        t,
        with_json(ad, "PUT", &rec_path(&doomed.id, "/hold"), hold),
    )
    .await;
    let t = "/api/v1/recordings/{id}/audio";
    let audio = rec_path(&kept.id, "/audio");
    let (_, _) = x.send("GET", t, get(a, &audio)).await;
    x.send("GET", t, get(a, &format!("{audio}?download=1")))
        .await;
    x.send("GET", t, get(a, &audio).header("range", "bytes=0-99"))
        .await;
    x.send("GET", t, get(a, &audio).header("range", "bytes=0-9,20-29"))
        .await;
    x.send("GET", t, get(a, &audio).header("range", "bytes=999999999-"))
        .await;
    x.send(
        "GET",
        t,
        get(a, &audio).header(
            "if-none-match",
            format!("\"{}\"", kept.sha256.clone().unwrap()),
        ),
    )
    .await;
    x.send("GET", t, get(a, &rec_path(&doomed.id, "/audio")))
        .await;
    x.send("GET", t, get(a, &rec_path(&unknown, "/audio")))
        .await;

    // Calls.
    let t = "/api/v1/calls";
    let (_, calls) = x.send("GET", t, get(a, t)).await;
    assert_eq!(calls["items"].as_array().map(Vec::len), Some(2), "{calls}");
    let t = "/api/v1/calls/{uuid}/recording/{action}";
    let act = |uuid: &str, action: &str| format!("/api/v1/calls/{uuid}/recording/{action}");
    let (s, _) = x
        .send("POST", t, w.req(a, "POST", &act("call-a", "pause")))
        .await;
    assert_eq!(s, 200);
    x.send("POST", t, w.req(a, "POST", &act("call-a", "pause")))
        .await;
    x.send("POST", t, w.req(a, "POST", &act("call-z", "pause")))
        .await;
    w.daemon.set_connected(false);
    x.send("POST", t, w.req(a, "POST", &act("call-a", "resume")))
        .await;
    let (s, ready) = x.send("GET", "/readyz", w.anon("GET", "/readyz")).await;
    assert_eq!((s, &ready["status"]), (503, &json!("unavailable")));
    w.daemon.set_connected(true);

    // People and settings.
    x.send("GET", "/api/v1/me", get(a, "/api/v1/me")).await;
    x.send("GET", "/api/v1/users", get(ad, "/api/v1/users"))
        .await;
    x.send("GET", "/api/v1/users", get(a, "/api/v1/users"))
        .await;
    let t = "/api/v1/users/{extension}";
    x.send("GET", t, get(ad, "/api/v1/users/1001")).await;
    x.send("GET", t, get(a, "/api/v1/users/1001")).await;
    x.send("GET", t, get(ad, "/api/v1/users/7777")).await;
    let user = "/api/v1/users/1001";
    let (_, named) = x
        .send(
            "PUT",
            t,
            with_json(ad, "PUT", user, json!({"display_name": "Alice"})),
        )
        .await;
    assert_eq!(named["display_name"], "Alice");
    let (_, unnamed) = x
        .send(
            "PUT",
            t,
            with_json(ad, "PUT", user, json!({"display_name": null})),
        )
        .await;
    assert!(unnamed["display_name"].is_null(), "{unnamed}");
    let bobs = json!({"numbers": ["02079460002"]});
    x.send("PUT", t, with_json(ad, "PUT", user, bobs)).await;
    x.send(
        "PUT",
        t,
        with_json(ad, "PUT", user, json!({"mode": "sideways"})),
    )
    .await;
    x.send("PUT", t, with_json(a, "PUT", user, json!({}))).await;
    x.send(
        "PUT",
        t,
        with_json(ad, "PUT", "/api/v1/users/7777", json!({})),
    )
    .await;
    x.send(
        "PUT",
        t,
        with_json(ad, "PUT", user, json!({"x": "y".repeat(100_000)})),
    )
    .await;
    let t = "/api/v1/site";
    x.send("GET", t, get(ad, t)).await;
    x.send("GET", t, get(a, t)).await;
    x.send(
        "PUT",
        t,
        with_json(ad, "PUT", t, json!({"retention_days": 90})),
    )
    .await;
    x.send(
        "PUT",
        t,
        with_json(ad, "PUT", t, json!({"retention_days": 0})),
    )
    .await;
    x.send("PUT", t, with_json(a, "PUT", t, json!({}))).await;
    x.send(
        "PUT",
        t,
        with_json(ad, "PUT", t, json!({"x": "y".repeat(100_000)})),
    )
    .await;
    x.send("GET", "/api/v1/usage", get(a, "/api/v1/usage"))
        .await;
    x.send("GET", "/api/v1/usage", get(ad, "/api/v1/usage"))
        .await;
    let t = "/api/v1/changes";
    let (_, page) = x
        .send("GET", t, get(ad, &format!("{t}?after=0&limit=2")))
        .await;
    assert_eq!(page["changes"].as_array().map(Vec::len), Some(2), "{page}");
    let t = "/api/v1/recordings/export.zip";
    let (s, _) = x.send("GET", t, get(a, t)).await;
    assert_eq!(s, 200);
    x.send("GET", t, get(a, &format!("{t}?limit=5"))).await;
    let t = "/api/v1/archive/runs";
    let run = json!({
        "client": "nas", "started_at": "2024-05-01T10:00:00Z",
        "finished_at": "2024-05-01T10:01:00Z", "downloaded": 1, "skipped": 0,
        "failed": 1, "bytes": 1000, "last_seq": 3, "errors": ["hash mismatch"]
    });
    let (s, _) = x.send("POST", t, with_json(a, "POST", t, run)).await;
    assert_eq!(s, 201);
    x.send("POST", t, with_json(a, "POST", t, json!({"client": ""})))
        .await;
    x.send(
        "POST",
        t,
        with_json(a, "POST", t, json!({"x": "y".repeat(100_000)})),
    )
    .await;
    let (s, clients) = x.send("GET", t, get(ad, t)).await;
    assert_eq!(s, 200);
    assert_eq!(clients["items"][0]["last_run"]["failed"], 1, "{clients}");
    x.send("GET", t, get(a, t)).await;
    let t = "/api/v1/audit";
    let (_, page) = x.send("GET", t, get(ad, &format!("{t}?limit=1"))).await;
    assert!(page["next_before"].is_i64(), "{page}");
    let (_, page) = x.send("GET", t, get(ad, &format!("{t}?limit=500"))).await;
    assert!(page["next_before"].is_null(), "{page}");
    x.send("GET", t, get(a, t)).await;

    // Operations.
    for t in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let (s, _) = x.send("GET", t, w.anon("GET", t)).await;
        assert_eq!(s, 200, "{t}");
    }
    // `/metrics` with `[api] metrics_allow` set, to a client it does not list.
    let guarded = World::with_config(callrec_api::ApiConfig {
        metrics_allow: vec!["192.0.2.0/24".parse().unwrap()],
        ..callrec_api::ApiConfig::default()
    });
    let mut gx = Exchange::new(&guarded);
    let (s, _) = gx
        .send("GET", "/metrics", guarded.anon("GET", "/metrics"))
        .await;
    assert_eq!(s, 403);
    x.failures.append(&mut gx.failures);
    x.seen.append(&mut gx.seen);

    // Every /api/v1 operation: without a token, and with a parameter it does not take.
    let doc = callrec_api::openapi_document();
    for (template, item) in doc["paths"].as_object().unwrap() {
        if !template.starts_with("/api/v1/") {
            continue;
        }
        let path = template
            .replace("{id}", kept.id.as_str())
            .replace("{extension}", "1001")
            .replace("{uuid}", "call-a")
            .replace("{action}", "resume");
        for method in item.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            let (s, _) = x.send(&method, template, w.anon(&method, &path)).await;
            assert_eq!(s, 401, "{method} {template}");
            let bogus = format!("{path}?bogus=1");
            let (s, _) = x.send(&method, template, w.req(ad, &method, &bogus)).await;
            assert_eq!(s, 400, "{method} {template}");
            let long = format!(
                "{path}?q={}",
                "a".repeat(callrec_api::server::MAX_URI_BYTES)
            );
            let (s, _) = x.send(&method, template, w.req(ad, &method, &long)).await;
            assert_eq!(s, 414, "{method} {template}");
            let mut crowded = w.req(ad, &method, &path);
            for i in 0..callrec_api::server::MAX_HEADERS {
                crowded = crowded.header(format!("x-filler-{i}"), "1");
            }
            let (s, _) = x.send(&method, template, crowded).await;
            assert_eq!(s, 431, "{method} {template}");
        }
    }

    assert!(
        x.failures.is_empty(),
        "replies that do not match the document:\n{}",
        x.failures.join("\n")
    );
    // Every status the document lists was seen, but the one a test double cannot give.
    let untested = ["POST /api/v1/calls/{uuid}/recording/{action} 502"];
    let mut missing = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for status in op["responses"].as_object().unwrap().keys() {
                let what = format!("{} {template} {status}", method.to_uppercase());
                if !x.seen.contains(&what) && !untested.contains(&what.as_str()) {
                    missing.push(what);
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "documented but never seen here: {missing:#?}"
    );
}
