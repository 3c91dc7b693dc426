//! The API's errors: a status code and a JSON body `{"error": "..."}`, from every error the
//! center's parts return; and running blocking store work off the async threads.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::domain::Refused;
use crate::fleet::PushError;
use crate::store::{StoreError, UpdateError};
use crate::tier::FetchError;

/// An API error: a status code and a JSON body `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    /// 404: `what` is not there.
    pub(super) fn not_found(what: String) -> Self {
        Self::new(StatusCode::NOT_FOUND, what)
    }

    /// 400: the request is wrong, and `what` says how.
    pub(super) fn bad_request(what: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, what)
    }

    /// 500: the cause goes to the log, not to the caller.
    pub(super) fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("{e}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "the center failed; see its log")
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!("{e}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "the alarm store failed; see the center's log")
    }
}

/// A failed fetch from the tier below or for the tier above.
impl From<FetchError> for ApiError {
    fn from(e: FetchError) -> Self {
        let status = match &e {
            FetchError::NoWay(_) => StatusCode::NOT_FOUND,
            FetchError::Failed(_) | FetchError::Mismatch(..) => StatusCode::BAD_GATEWAY,
            FetchError::Refused(_) => StatusCode::FORBIDDEN,
        };
        Self::new(status, e.to_string())
    }
}

impl From<UpdateError<Refused>> for ApiError {
    fn from(e: UpdateError<Refused>) -> Self {
        match e {
            UpdateError::NotFound(id) => Self::not_found(format!("no alarm {id}")),
            UpdateError::Refused(r) => Self::new(StatusCode::CONFLICT, r.0),
            UpdateError::Store(e) => e.into(),
        }
    }
}

impl From<PushError> for ApiError {
    fn from(e: PushError) -> Self {
        match e {
            PushError::Store(e) => e.into(),
            PushError::AgentId(_) | PushError::TooBig(_) => Self::bad_request(e.to_string()),
            PushError::Invalid { .. } => Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            PushError::Unconfirmed(_) | PushError::Raced(_) => {
                Self::new(StatusCode::CONFLICT, e.to_string())
            }
            PushError::Sign(_) | PushError::Publish(_) => {
                tracing::error!("{e}");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}

/// Runs blocking store work off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)?
}
