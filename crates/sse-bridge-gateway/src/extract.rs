//! The session request extractor: content type, size limit and validation
//! in one place, so the handler receives a [`SessionRequest`] or the client
//! a precise 4xx.

use axum::body::Body;
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::header;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use sse_bridge_core::SessionRequest;

use crate::error::ApiError;

/// Largest request body accepted, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A validated `POST /v1/react/sessions` body.
pub struct SessionBody(pub SessionRequest);

impl<S> FromRequest<S> for SessionBody
where
    S: Send + Sync,
    BodyLimit: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let BodyLimit(limit) = BodyLimit::from_ref(state);
        if !is_json(&request) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        let bytes = read_limited(request.into_body(), limit).await?;
        Ok(SessionBody(SessionRequest::parse(&bytes)?))
    }
}

/// `application/json`, `application/json; charset=utf-8`, `application/*+json`.
fn is_json(request: &Request) -> bool {
    let Some(value) = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

async fn read_limited(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::PayloadTooLarge(limit))
        }
        Err(error) => Err(ApiError::UnreadableBody(error.to_string())),
    }
}
