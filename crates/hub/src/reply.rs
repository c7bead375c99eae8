//! The hub's error answers: JSON `{ "error": "…" }` with a status. A message never
//! echoes a credential; an internal failure is logged and answered without its detail.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error answer: `status` with `{ "error": message }`.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// A failure of the hub itself: logged, and answered 500 without saying what failed.
pub(crate) fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!("{e}");
    error(StatusCode::INTERNAL_SERVER_ERROR, "the hub could not complete the request; see its log")
}
