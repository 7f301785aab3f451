//! `/openapi.json`: the OpenAPI 3 description of every route.
//!
//! Written by hand, next to the filters it describes, and kept true by
//! `tests/openapi.rs`, which asks the server every method of every path (documented or not)
//! and fails when the document and the routes disagree, and by the property-based test that
//! drives requests from this document.

use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::models::SEARCH_PARAMS;

/// The document (built once).
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description})
}

fn path_param(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": schema, "description": description})
}

fn header(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "header", "required": false, "schema": {"type": "string"}, "description": description})
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": json_content(schema)})
}

fn error(description: &str) -> Value {
    json!({"description": description, "content": json_content(schema_ref("Error"))})
}

/// The error replies every authenticated route may give.
fn errors(extra: &[(&str, &str)]) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert(
        "400".into(),
        error("bad input (a parameter, a path segment, JSON syntax)"),
    );
    m.insert(
        "401".into(),
        error("no token, or an unknown or revoked one"),
    );
    for (code, what) in extra {
        m.insert((*code).into(), error(what));
    }
    m
}

fn responses(success: (&str, Value), extra: &[(&str, &str)]) -> Value {
    let mut m = errors(extra);
    m.insert(success.0.into(), success.1);
    Value::Object(m)
}

fn recording_id() -> Value {
    path_param(
        "id",
        json!({"type": "string", "format": "uuid"}),
        "the recording's id",
    )
}

fn body(schema: &str) -> Value {
    json!({"required": true, "content": json_content(schema_ref(schema))})
}

fn search_parameters() -> Vec<Value> {
    let any_form =
        "either form: 01234567890, 441234567890, +441234567890, (01234) 567890, or an extension";
    let time = json!({"type": "string", "description": "RFC 3339 time or a date (YYYY-MM-DD, in the site's time zone)"});
    let boolean = json!({"type": "boolean"});
    vec![
        query(
            "number",
            json!({"type": "string"}),
            &format!("either party, {any_form}"),
        ),
        query(
            "from",
            json!({"type": "string"}),
            &format!("the calling party, {any_form}"),
        ),
        query(
            "to",
            json!({"type": "string"}),
            &format!("the called party, {any_form}"),
        ),
        query("user", json!({"type": "string"}), "the owner's extension"),
        query("since", time.clone(), "started at or after"),
        query(
            "until",
            time,
            "started before (a date includes that whole day)",
        ),
        query(
            "direction",
            json!({"type": "string", "enum": ["inbound", "outbound", "internal"]}),
            "direction from the owner's side",
        ),
        query(
            "min_duration",
            json!({"type": "number", "minimum": 0}),
            "at least this many seconds of audio",
        ),
        query(
            "has_notes",
            boolean.clone(),
            "with (true) or without (false) notes",
        ),
        query("hold", boolean, "on hold (true) or not (false)"),
        query(
            "q",
            json!({"type": "string"}),
            "text in notes, case-insensitive",
        ),
        query(
            "state",
            json!({"type": "string", "enum": ["recording", "stored", "discarded", "failed", "deleted"]}),
            "only this state (default: stored and failed, the recordings with a file)",
        ),
        query(
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": 500, "default": 50}),
            "page size",
        ),
        query(
            "cursor",
            json!({"type": "string"}),
            "the next_cursor of the previous page",
        ),
    ]
}

fn paths() -> Value {
    let admin = "admin only (403 for a user token)";
    json!({
        "/api/v1/recordings": {
            "get": {
                "operationId": "searchRecordings",
                "summary": "Search recordings, newest first, with keyset pagination",
                "parameters": search_parameters(),
                "responses": responses(("200", ok("a page", schema_ref("SearchPage"))), &[]),
            }
        },
        "/api/v1/recordings/{id}": {
            "get": {
                "operationId": "getRecording",
                "summary": "A recording's metadata with its segments and notes",
                "parameters": [recording_id()],
                "responses": responses(("200", ok("the recording", schema_ref("RecordingDetail"))), &[("404", "no such recording that the caller may see")]),
            },
            "delete": {
                "operationId": "deleteRecording",
                "summary": "Delete a recording now, leaving a tombstone (admin)",
                "description": admin,
                "parameters": [recording_id(), query("reason", json!({"type": "string"}), "why, for the tombstone and the audit log")],
                "responses": responses(("200", ok("the tombstone", schema_ref("Recording"))), &[("403", admin), ("404", "no such recording"), ("409", "on hold, its site under legal hold (kept seven years), or in a state without a file")]),
            }
        },
        "/api/v1/recordings/{id}/audio": {
            "get": {
                "operationId": "getRecordingAudio",
                "summary": "The audio file, streamed, with HTTP Range and ETag",
                "parameters": [
                    recording_id(),
                    query("download", json!({"type": "boolean"}), "true or 1: Content-Disposition: attachment with the file name"),
                    header("Range", "bytes=first-last, bytes=first-, bytes=-suffix, or several separated by commas"),
                    header("If-Range", "the ETag the ranges were computed against"),
                    header("If-None-Match", "ETags the client holds: 304 when current"),
                ],
                "responses": {
                    "200": {"description": "the whole file", "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
                    "206": {"description": "one range, or several as multipart/byteranges", "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}, "multipart/byteranges": {"schema": {"type": "string", "format": "binary"}}}},
                    "304": {"description": "the client's copy is current"},
                    "400": error("bad input"),
                    "401": error("no valid token"),
                    "404": error("no such recording that the caller may see"),
                    "409": error("the recording has no file (still recording, discarded, deleted)"),
                    "416": error("no requested range lies within the file, or the Range header is malformed; Content-Range: bytes */length"),
                },
            }
        },
        "/api/v1/recordings/{id}/notes": {
            "post": {
                "operationId": "addNote",
                "summary": "Add a note (author and time are recorded)",
                "parameters": [recording_id()],
                "requestBody": body("NoteBody"),
                "responses": responses(("201", ok("the note", schema_ref("Note"))), &[("404", "no such recording that the caller may see"), ("413", "body too large"), ("422", "empty or too long")]),
            }
        },
        "/api/v1/recordings/{id}/hold": {
            "put": {
                "operationId": "setHold",
                "summary": "Set or release a litigation hold (admin)",
                "description": admin,
                "parameters": [recording_id()],
                "requestBody": body("HoldBody"),
                "responses": responses(("200", ok("the recording", schema_ref("Recording"))), &[("403", admin), ("404", "no such recording"), ("409", "the recording is deleted"), ("413", "body too large"), ("422", "wrong shape")]),
            }
        },
        "/api/v1/calls": {
            "get": {
                "operationId": "listCalls",
                "summary": "Calls in progress with their recording state",
                "responses": responses(("200", ok("the calls the caller may see", schema_ref("Calls"))), &[]),
            }
        },
        "/api/v1/calls/{uuid}/recording/{action}": {
            "post": {
                "operationId": "recordingAction",
                "summary": "Start, stop, pause or resume a call's recording, with the mode rules of the feature codes",
                "parameters": [
                    path_param("uuid", json!({"type": "string"}), "the call (the owner's leg)"),
                    path_param("action", json!({"type": "string", "enum": ["start", "stop", "pause", "resume"]}), "what to do"),
                ],
                "responses": responses(("200", ok("the call after the action", schema_ref("LiveCall"))), &[("404", "no such call that the caller may see"), ("409", "the mode forbids it, or the recording is not in a state it applies to"), ("502", "the switch refused"), ("503", "the switch is not connected")]),
            }
        },
        "/api/v1/me": {
            "get": {
                "operationId": "getMe",
                "summary": "The caller: user, role, token and storage used",
                "responses": responses(("200", ok("the caller", schema_ref("Me"))), &[]),
            }
        },
        "/api/v1/users": {
            "get": {
                "operationId": "listUsers",
                "summary": "The site's users and their modes (admin)",
                "description": admin,
                "responses": responses(("200", ok("the users", json!({"type": "object", "properties": {"items": {"type": "array", "items": schema_ref("User")}}}))), &[("403", admin)]),
            }
        },
        "/api/v1/users/{extension}": {
            "get": {
                "operationId": "getUser",
                "summary": "One user (admin)",
                "description": admin,
                "parameters": [path_param("extension", json!({"type": "string"}), "the user's extension")],
                "responses": responses(("200", ok("the user", schema_ref("User"))), &[("403", admin), ("404", "no such user in the site")]),
            },
            "put": {
                "operationId": "updateUser",
                "summary": "Change a user's mode, role, name or numbers (admin)",
                "description": admin,
                "parameters": [path_param("extension", json!({"type": "string"}), "the user's extension")],
                "requestBody": body("UserUpdate"),
                "responses": responses(("200", ok("the user", schema_ref("User"))), &[("403", admin), ("404", "no such user in the site"), ("409", "a number belongs to another user"), ("413", "body too large"), ("422", "a value is not acceptable")]),
            }
        },
        "/api/v1/site": {
            "get": {
                "operationId": "getSite",
                "summary": "The site's settings (admin)",
                "description": admin,
                "responses": responses(("200", ok("the site", schema_ref("Site"))), &[("403", admin)]),
            },
            "put": {
                "operationId": "updateSite",
                "summary": "Change some of the site's settings (admin)",
                "description": admin,
                "requestBody": body("SiteUpdate"),
                "responses": responses(("200", ok("the site", schema_ref("Site"))), &[("403", admin), ("413", "body too large"), ("422", "a value is not acceptable")]),
            }
        },
        "/api/v1/usage": {
            "get": {
                "operationId": "getUsage",
                "summary": "Storage used per user against the quota (a user sees their own)",
                "responses": responses(("200", ok("usage", json!({"type": "object", "properties": {"items": {"type": "array", "items": schema_ref("UserUsage")}}}))), &[]),
            }
        },
        "/api/v1/audit": {
            "get": {
                "operationId": "getAudit",
                "summary": "The site's audit log, newest first (admin)",
                "description": admin,
                "parameters": [
                    query("before", json!({"type": "integer", "minimum": 1}), "entries before this sequence number (next_before of the previous page)"),
                    query("limit", json!({"type": "integer", "minimum": 1, "maximum": 500, "default": 100}), "page size"),
                ],
                "responses": responses(("200", ok("a page", schema_ref("AuditPage"))), &[("403", admin)]),
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness",
                "security": [],
                "responses": {"200": ok("alive", schema_ref("Health"))},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: the index answers and the switch is connected",
                "security": [],
                "responses": {"200": ok("ready", schema_ref("Health")), "503": ok("not ready", schema_ref("Health"))},
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics (OpenMetrics text)",
                "security": [],
                "responses": {"200": {"description": "metrics", "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}}},
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "the OpenAPI 3 document", "content": json_content(json!({"type": "object"}))}},
            }
        },
    })
}

fn schemas() -> Value {
    let time = json!({"type": "string", "format": "date-time"});
    let opt_time = json!({"type": ["string", "null"], "format": "date-time"});
    let mode =
        json!({"type": "string", "enum": ["never", "always", "always_pausable", "on_demand"]});
    let role = json!({"type": "string", "enum": ["user", "admin"]});
    let party = json!({"type": "object", "properties": {"raw": {"type": "string"}, "normalised": {"type": "string"}}});
    let recording_props = json!({
        "id": {"type": "string", "format": "uuid"},
        "site": {"type": "string"}, "site_id": {"type": "integer"},
        "user": {"type": "string"}, "user_id": {"type": "integer"},
        "call_uuid": {"type": "string"},
        "direction": {"type": "string", "enum": ["inbound", "outbound", "internal"]},
        "from": party.clone(), "to": party,
        "started_at": time.clone(), "ended_at": opt_time.clone(),
        "duration_ms": {"type": ["integer", "null"]}, "paused_ms": {"type": "integer"},
        "size_bytes": {"type": ["integer", "null"]}, "sha256": {"type": ["string", "null"]},
        "format": {"type": "string"}, "file_name": {"type": "string"},
        "state": {"type": "string", "enum": ["recording", "stored", "discarded", "failed", "deleted"]},
        "state_reason": {"type": ["string", "null"]},
        "expires_at": opt_time.clone(), "hold": {"type": "boolean"},
        "note_count": {"type": "integer"}, "deleted_at": opt_time,
    });
    let mut detail_props = recording_props.clone();
    if let Some(m) = detail_props.as_object_mut() {
        m.insert(
            "segments".into(),
            json!({"type": "array", "items": schema_ref("Segment")}),
        );
        m.insert(
            "notes".into(),
            json!({"type": "array", "items": schema_ref("Note")}),
        );
    }
    let site_props = json!({
        "enabled": {"type": "boolean"},
        "default_mode": mode.clone(),
        "retention_days": {"type": "integer", "minimum": 1, "maximum": 36525},
        "legal_hold": {"type": "boolean"},
        "pause_behavior": {"type": "string", "enum": ["silence", "skip"]},
        "min_seconds": {"type": "integer", "minimum": 0, "maximum": 3600},
        "timezone": {"type": "string", "description": "IANA name, e.g. Europe/London"},
        "country_code": {"type": "integer", "minimum": 1, "maximum": 999},
        "national_prefix": {"type": "string", "maxLength": 4},
        "quota_bytes": {"type": "integer", "minimum": 1},
        "quota_policy": {"type": "string", "enum": ["alert", "evict_oldest"]},
    });
    let mut site_full = site_props.clone();
    if let Some(m) = site_full.as_object_mut() {
        m.insert("id".into(), json!({"type": "integer"}));
        m.insert("name".into(), json!({"type": "string"}));
    }
    json!({
        "Error": {
            "type": "object", "required": ["error"],
            "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}},
        },
        "Recording": {"type": "object", "properties": recording_props},
        "RecordingDetail": {"type": "object", "properties": detail_props},
        "Segment": {"type": "object", "properties": {
            "kind": {"type": "string", "enum": ["start", "pause", "resume", "stop"]},
            "at": time.clone(),
            "source": {"type": "string", "enum": ["handset", "api", "policy"]},
            "actor": {"type": "string"},
        }},
        "Note": {"type": "object", "properties": {"id": {"type": "integer"}, "author": {"type": "string"}, "at": time.clone(), "text": {"type": "string"}}},
        "NoteBody": {"type": "object", "required": ["text"], "additionalProperties": false, "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 10000}}},
        "HoldBody": {"type": "object", "required": ["hold"], "additionalProperties": false, "properties": {"hold": {"type": "boolean"}}},
        "SearchPage": {"type": "object", "properties": {"items": {"type": "array", "items": schema_ref("Recording")}, "next_cursor": {"type": ["string", "null"]}}},
        "LiveCall": {"type": "object", "properties": {
            "call_uuid": {"type": "string"}, "site": {"type": "string"}, "user": {"type": "string"},
            "direction": {"type": "string", "enum": ["inbound", "outbound", "internal"]},
            "from": {"type": "string"}, "to": {"type": "string"}, "answered_at": time.clone(),
            "on_hold": {"type": "boolean"},
            "recording": {"type": "string", "enum": ["off", "recording", "paused"]},
            "recording_id": {"type": ["string", "null"]},
        }},
        "Calls": {"type": "object", "properties": {"items": {"type": "array", "items": schema_ref("LiveCall")}}},
        "User": {"type": "object", "properties": {
            "id": {"type": "integer"}, "site_id": {"type": "integer"}, "site": {"type": "string"},
            "extension": {"type": "string"}, "display_name": {"type": ["string", "null"]},
            "mode": mode.clone(), "role": role.clone(),
            "numbers": {"type": "array", "items": {"type": "object", "properties": {"raw": {"type": "string"}, "normalised": {"type": "string"}}}},
            "created_at": time.clone(),
        }},
        "UserUpdate": {"type": "object", "additionalProperties": false, "properties": {
            "mode": mode, "role": role,
            "display_name": {"type": ["string", "null"]},
            "numbers": {"type": "array", "items": {"type": "string"}},
        }},
        "Site": {"type": "object", "properties": site_full},
        "SiteUpdate": {"type": "object", "additionalProperties": false, "properties": site_props},
        "UserUsage": {"type": "object", "properties": {
            "user_id": {"type": "integer"}, "site": {"type": "string"}, "extension": {"type": "string"},
            "bytes": {"type": "integer"}, "files": {"type": "integer"}, "quota_bytes": {"type": "integer"},
            "quota_policy": {"type": "string", "enum": ["alert", "evict_oldest"]}, "over_quota": {"type": "boolean"},
        }},
        "Me": {"type": "object", "properties": {"user": schema_ref("User"), "role": {"type": "string"}, "token_id": {"type": "integer"}, "usage": schema_ref("UserUsage")}},
        "AuditEntry": {"type": "object", "properties": {
            "seq": {"type": "integer"}, "at": time, "site_id": {"type": ["integer", "null"]},
            "actor": {"type": "string"}, "action": {"type": "string"}, "target": {"type": "string"},
            "detail": {"type": "string", "description": "JSON"}, "hash": {"type": "string"},
        }},
        "AuditPage": {"type": "object", "properties": {"entries": {"type": "array", "items": schema_ref("AuditEntry")}, "next_before": {"type": ["integer", "null"]}}},
        "Health": {"type": "object", "properties": {"status": {"type": "string", "enum": ["ok", "unavailable"]}, "index": {"type": "boolean"}, "esl_connected": {"type": "boolean"}}},
    })
}

fn build() -> Value {
    debug_assert_eq!(search_parameters().len(), SEARCH_PARAMS.len());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "callrec",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Call recordings of a FreeSWITCH site: search, play, download, annotate, hold, and the calls in progress. Errors are {\"error\": {\"code\", \"message\"}}.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "a token from `callrec token create`"}},
            "schemas": schemas(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_parameters_documented_are_the_ones_parsed() {
        let doc = document();
        let params: Vec<&str> = doc["paths"]["/api/v1/recordings"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(params, SEARCH_PARAMS);
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("#/components/schemas/") {
            let tail = &rest[i + "#/components/schemas/".len()..];
            let name: String = tail.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(
                doc["components"]["schemas"].get(&name).is_some(),
                "dangling $ref {name}"
            );
            rest = tail;
        }
    }
}
