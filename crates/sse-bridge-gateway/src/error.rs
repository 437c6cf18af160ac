//! The gateway's HTTP errors: a status and `{"detail": "..."}` (PROTOCOL §3.1).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sse_bridge_core::protocol::InvalidRequest;
use sse_bridge_core::session::threads::ThreadError;
use sse_bridge_core::session::{CancelError, FollowError, NameTaken, StartError};
use sse_bridge_core::thread::ThreadRefusal;

/// Every way a request can fail before its stream starts.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("request body exceeds the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("could not read the request body: {0}")]
    UnreadableBody(String),
    #[error(transparent)]
    InvalidRequest(#[from] InvalidRequest),
    #[error("service unavailable: {0}")]
    Unavailable(StartError),
    #[error("invalid Last-Event-ID: {0}")]
    InvalidCursor(String),
    #[error("unknown or expired session")]
    UnknownSession,
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("too many live sessions for this principal; retry when one has ended")]
    TooManySessions,
    #[error(transparent)]
    NameTaken(NameTaken),
    #[error("the session log is unavailable: {0}")]
    LogUnavailable(sse_bridge_core::BrokerError),
    #[error("not found")]
    NotFound,
    /// A run refused by its thread (PROTOCOL §8): 404, 409, 410 or 422.
    #[error(transparent)]
    Thread(ThreadRefusal),
    #[error(transparent)]
    ThreadUnavailable(ThreadError),
    #[error("method not allowed")]
    MethodNotAllowed,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnreadableBody(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidRequest(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) | ApiError::LogUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::InvalidCursor(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::TooManySessions => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NameTaken(_) => StatusCode::CONFLICT,
            ApiError::UnknownSession => StatusCode::NOT_FOUND,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Thread(refusal) => match refusal {
                ThreadRefusal::NotFound => StatusCode::NOT_FOUND,
                ThreadRefusal::Taken | ThreadRefusal::AlreadyAnswered(_) => StatusCode::CONFLICT,
                ThreadRefusal::Unknown(_) => StatusCode::UNPROCESSABLE_ENTITY,
                ThreadRefusal::Expired(_) => StatusCode::GONE,
            },
            ApiError::ThreadUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }
}

impl From<StartError> for ApiError {
    fn from(error: StartError) -> Self {
        match error {
            StartError::PrincipalAtCapacity => ApiError::TooManySessions,
            StartError::NameTaken(taken) => ApiError::NameTaken(taken),
            StartError::Thread(error) => error.into(),
            error => ApiError::Unavailable(error),
        }
    }
}

impl From<ThreadError> for ApiError {
    fn from(error: ThreadError) -> Self {
        match error {
            ThreadError::Refused(refusal) => ApiError::Thread(refusal),
            error => ApiError::ThreadUnavailable(error),
        }
    }
}

impl From<FollowError> for ApiError {
    fn from(error: FollowError) -> Self {
        match error {
            FollowError::Unknown => ApiError::UnknownSession,
            FollowError::Unavailable(error) => error.into(),
        }
    }
}

impl From<CancelError> for ApiError {
    fn from(error: CancelError) -> Self {
        match error {
            CancelError::Unknown => ApiError::UnknownSession,
            CancelError::Unavailable(error) => ApiError::LogUnavailable(error),
        }
    }
}

/// Seconds a client over its session limit is told to wait.
const RETRY_AFTER_SECONDS: &str = "5";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "detail": self.to_string() }));
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        match self {
            ApiError::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManySessions => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECONDS),
                );
            }
            _ => {}
        }
        response
    }
}
