//! Every way a request can fail, and the one place ([`recover`]) that turns a failure into
//! the JSON error shape of SPEC §5: `{"error": {"code": "...", "message": "..."}}`.
//!
//! Filters and handlers reject with an [`ApiError`]; warp's own rejections (no route, wrong
//! method, an unreadable body) are mapped here too, so no reply ever leaves in another shape.
//! Input a client got wrong is always a 4xx; a 5xx means the server or the switch failed.

use std::convert::Infallible;

use callrec_store::{ErrorKind, StoreError};
use warp::http::{HeaderValue, StatusCode, header};
use warp::reject::Rejection;
use warp::reply::{Reply, Response};

use callrec_model::ActionError;

use crate::replies::{ErrorDetail, ErrorReply};

/// A failed request: the status, a stable machine-readable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable code clients branch on, e.g. `not_found`, `on_hold`.
    pub code: &'static str,
    /// What went wrong, in words.
    pub message: String,
    /// For a 416: the length of the file, sent as `Content-Range: bytes */len`.
    pub unsatisfiable_len: Option<u64>,
}

impl warp::reject::Reject for ApiError {}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            unsatisfiable_len: None,
        }
    }

    /// 400: the request is malformed (a query parameter, a path segment, the JSON syntax).
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401: no token, or one that is unknown or revoked.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: the token is valid but its role does not allow this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: nothing of that name that the caller may see.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 413: the request body is larger than the limit.
    pub fn too_large(limit: u64) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    /// 416: no requested range lies within the file.
    pub fn unsatisfiable(message: impl Into<String>, len: u64) -> Self {
        ApiError {
            unsatisfiable_len: Some(len),
            ..ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                message,
            )
        }
    }

    /// 422: well-formed JSON whose values are not acceptable.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }

    /// 500: a fault of the server, logged with its detail; the client gets a short message.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The JSON reply.
    pub fn into_response(self) -> Response {
        let body = ErrorReply {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(len) = self.unsatisfiable_len
            && let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}"))
        {
            headers.insert(header::CONTENT_RANGE, v);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let message = e.to_string();
        match (&e, e.kind()) {
            (StoreError::OnHold(_), _) => ApiError::new(StatusCode::CONFLICT, "on_hold", message),
            (StoreError::WrongState { .. }, _) => {
                ApiError::new(StatusCode::CONFLICT, "wrong_state", message)
            }
            (StoreError::BadCursor(_), _) => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_cursor", message)
            }
            (_, ErrorKind::NotFound) => ApiError::not_found(message),
            (_, ErrorKind::Conflict) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            (_, ErrorKind::Invalid) => ApiError::unprocessable(message),
            (_, ErrorKind::Forbidden) => ApiError::forbidden(message),
            (_, ErrorKind::DiskFull) | (_, ErrorKind::Busy) | (_, ErrorKind::Io) => {
                tracing::warn!(error = %e, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!(
                        "the store cannot serve this just now; retry later ({})",
                        e.kind().as_str()
                    ),
                )
            }
            (_, ErrorKind::Internal) => {
                tracing::error!(error = %e, "store failure");
                ApiError::internal("the store failed; the server log has the details")
            }
        }
    }
}

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> Self {
        let message = e.to_string();
        match e {
            ActionError::UnknownCall(_) => ApiError::not_found(message),
            ActionError::NoOwner(_) | ActionError::Refused { .. } => {
                ApiError::new(StatusCode::CONFLICT, "not_allowed", message)
            }
            ActionError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "wrong_state", message)
            }
            ActionError::SwitchUnavailable { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
            ActionError::SwitchRefused { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "switch_error", message)
            }
        }
    }
}

/// A rejection carrying `e`.
pub fn reject(e: impl Into<ApiError>) -> Rejection {
    warp::reject::custom(e.into())
}

/// The one `recover`: every rejection becomes the JSON error shape.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    Ok(classify(&rejection).into_response())
}

/// The error a rejection stands for.
pub fn classify(rejection: &Rejection) -> ApiError {
    if let Some(e) = rejection.find::<ApiError>() {
        return e.clone();
    }
    if rejection.is_not_found() {
        return ApiError::new(StatusCode::NOT_FOUND, "no_such_route", "no such route");
    }
    if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method",
        );
    }
    if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        return ApiError::bad_request("the query string cannot be decoded");
    }
    if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        );
    }
    if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        return ApiError::bad_request(format!("header {} is invalid", e.name()));
    }
    if let Some(e) = rejection.find::<warp::reject::MissingHeader>() {
        return ApiError::bad_request(format!("header {} is missing", e.name()));
    }
    tracing::error!(?rejection, "unhandled rejection");
    ApiError::internal("unhandled rejection")
}

#[cfg(test)]
mod tests {
    use super::*;
    use callrec_model::RecordingId;

    #[test]
    fn a_held_recording_is_a_conflict_with_its_own_code() {
        let e = ApiError::from(StoreError::OnHold(RecordingId::new()));
        assert_eq!((e.status, e.code), (StatusCode::CONFLICT, "on_hold"));
    }

    #[test]
    fn an_unknown_recording_is_not_found_and_a_forbidden_op_is_403() {
        let e = ApiError::from(StoreError::UnknownRecording(RecordingId::new()));
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let e = ApiError::from(StoreError::Forbidden {
            actor: "1001@default".into(),
            op: "set a hold",
        });
        assert_eq!(e.status, StatusCode::FORBIDDEN);
    }

    #[test]
    fn a_mode_that_forbids_an_action_is_a_conflict_and_a_down_switch_is_503() {
        let e = ApiError::from(ActionError::Refused {
            action: "pause",
            mode: callrec_model::RecordingMode::Always,
        });
        assert_eq!((e.status, e.code), (StatusCode::CONFLICT, "not_allowed"));
        let e = ApiError::from(ActionError::Conflict {
            action: "resume",
            reason: "not paused",
        });
        assert_eq!((e.status, e.code), (StatusCode::CONFLICT, "wrong_state"));
        let e = ApiError::from(ActionError::UnknownCall("x".into()));
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let e = ApiError::from(ActionError::SwitchUnavailable { action: "pause" });
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
