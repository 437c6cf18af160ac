//! The OpenAPI description at `GET /openapi.json`, generated from the code.
//!
//! Every API route is registered through [`api`], which takes each handler
//! with its `#[utoipa::path]` attribute (in [`crate::routes`]): a route and
//! its description are one registration, so neither can exist without the
//! other. The types here describe the wire shapes for the document only;
//! the handlers validate bodies with their own parsers (`extract`), which
//! accept exactly what these schemas say and report the rest as `422`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{AppState, routes};

/// The gateway's API routes, each with its description.
pub(crate) fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::create_session))
        .routes(routes!(routes::follow_session))
        .routes(routes!(routes::cancel_session))
        .routes(routes!(routes::run_ag_ui))
        .routes(routes!(routes::replay_ag_ui_run))
        .routes(routes!(routes::chat_ai_sdk))
        .routes(routes!(routes::resume_ai_sdk_chat))
        .routes(routes!(routes::get_thread))
        .routes(routes!(routes::healthz))
        .routes(routes!(routes::readyz))
        .routes(routes!(routes::metrics))
        .routes(routes!(routes::openapi_json))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sse-bridge",
        description = "Streams AI-agent sessions from background workers to browsers as \
            Server-Sent Events: native frames, AG-UI events or the Vercel AI SDK's UI message \
            stream. The wire contract is PROTOCOL.md.",
        license(name = "MIT OR Apache-2.0")
    ),
    tags(
        (name = "sessions", description = "Create, follow, resume and cancel sessions (native format)"),
        (name = "agent-ui", description = "AG-UI (CopilotKit) and Vercel AI SDK (`useChat`) endpoints"),
        (name = "threads", description = "Conversations of several runs, and what an interrupted one waits for (human in the loop)"),
        (name = "operations", description = "Probes, metrics and this document")
    ),
    // Schemas only parameters use (bodies are collected by themselves).
    components(schemas(FormatName)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// Declares the bearer scheme the session endpoints use when
/// authentication is on (API keys or JWTs).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key or a JWT; required only when the gateway is started \
                         with --api-key, --api-keys-file or a JWT key",
                    ))
                    .build(),
            ),
        );
    }
}

/// An error answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// What is wrong, for a human.
    pub detail: String,
}

/// The error answers of every endpoint that starts a session.
#[derive(utoipa::IntoResponses)]
#[expect(dead_code, reason = "describes the wire for the document; never built")]
pub(crate) enum StartErrors {
    /// Authentication is on and the bearer token is missing or invalid.
    #[response(status = 401, headers(("www-authenticate" = String)))]
    Unauthorized(ErrorDetail),
    /// The body is larger than --body-limit.
    #[response(status = 413)]
    TooLarge(ErrorDetail),
    /// The content type is not application/json.
    #[response(status = 415)]
    NotJson(ErrorDetail),
    /// A resume names a thread that does not exist (or is not the caller's).
    #[response(status = 404)]
    NoSuchThread(ErrorDetail),
    /// A resume resolves an interrupt past its `expires_at` (cancel it instead).
    #[response(status = 410)]
    Expired(ErrorDetail),
    /// The body is not what this endpoint takes, or a resume does not answer
    /// exactly the thread's open interrupts.
    #[response(status = 422)]
    Invalid(ErrorDetail),
    /// Too many live streams for this principal.
    #[response(status = 429, headers(("retry-after" = u32)))]
    TooMany(ErrorDetail),
    /// The job could not be dispatched, or the gateway is at --max-sessions.
    #[response(status = 503)]
    Unavailable(ErrorDetail),
}

/// The error answers every follow endpoint shares.
#[derive(utoipa::IntoResponses)]
#[expect(dead_code, reason = "describes the wire for the document; never built")]
pub(crate) enum FollowErrors {
    /// Authentication is on and the bearer token is missing or invalid.
    #[response(status = 401, headers(("www-authenticate" = String)))]
    Unauthorized(ErrorDetail),
    /// Too many live streams for this principal.
    #[response(status = 429, headers(("retry-after" = u32)))]
    TooMany(ErrorDetail),
    /// The session's log is unreachable, or the gateway is at --max-sessions.
    #[response(status = 503)]
    Unavailable(ErrorDetail),
}

/// What to do with the worker when the client disconnects.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[expect(dead_code, reason = "describes the wire for the document; never built")]
pub(crate) enum OnDisconnect {
    /// Cancel it once nobody resumed the session within the cancel grace.
    Cancel,
    /// Let it finish.
    Continue,
}

/// The body of `POST /v1/react/sessions`; forwarded to the worker unchanged
/// as the job's `request` (any other member is passed through).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"user_query": "What is 2+3?", "model_alias": "demo"}))]
pub(crate) struct SessionRequestBody {
    /// The question: a string with at least one non-whitespace character.
    /// Required unless the run resumes (then the interrupted run's is used).
    #[schema(min_length = 1, pattern = r"\S")]
    pub user_query: Option<String>,
    pub model_alias: Option<String>,
    pub on_disconnect: Option<OnDisconnect>,
    /// The conversation the run belongs to (its first user owns it).
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    pub thread_id: Option<String>,
    /// Answers to every open interrupt of `thread_id`: the run resumes it.
    #[schema(min_items = 1, max_items = 64)]
    pub resume: Option<Vec<ResumeEntryBody>>,
    #[serde(flatten)]
    #[schema(additional_properties)]
    pub extra: BTreeMap<String, Value>,
}

/// How a resume entry answers its interrupt.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[expect(dead_code, reason = "describes the wire for the document; never built")]
pub(crate) enum ResumeStatus {
    Resolved,
    Cancelled,
}

/// One answer of a resume (PROTOCOL §8).
#[derive(Serialize, ToSchema)]
pub(crate) struct ResumeEntryBody {
    #[schema(min_length = 1)]
    pub interrupt_id: String,
    pub status: ResumeStatus,
    /// The answer: an approval's `{"approved": bool, "reason"?}`, a client
    /// tool's output, a value.
    pub payload: Option<Value>,
}

/// AG-UI's `ResumeEntry`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AgUiResumeEntry {
    #[schema(min_length = 1)]
    pub interrupt_id: String,
    pub status: ResumeStatus,
    pub payload: Option<Value>,
}

/// A run of a thread.
#[derive(Serialize, ToSchema)]
pub(crate) struct ThreadRun {
    pub session_id: String,
    /// `live`, `completed`, `failed`, `interrupted` or `cancelled`.
    pub status: String,
    /// Unix milliseconds.
    pub created_at: u64,
}

/// The answer of `GET /v1/threads/{thread_id}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ThreadView {
    pub thread_id: String,
    /// Oldest first (the newest 100).
    pub runs: Vec<ThreadRun>,
    /// The interrupts the newest run ended with, as its worker sent them
    /// (`id`, `reason`, `message`?, `tool_call_id`?, `response_schema`?,
    /// `expires_at`?), until a resume answers them.
    pub interrupts: Vec<Value>,
}

/// An AG-UI message (`RunAgentInput.messages`); the last `user` message
/// with text becomes the job's `user_query`.
#[derive(Serialize, ToSchema)]
pub(crate) struct AgUiMessage {
    pub id: String,
    /// `user`, `assistant`, `system`, `tool`, `developer`, ...
    pub role: String,
    /// Text, or a list of content parts (`{"type": "text", "text": ...}`).
    pub content: Option<Value>,
    #[serde(flatten)]
    #[schema(additional_properties)]
    pub extra: BTreeMap<String, Value>,
}

/// AG-UI's `RunAgentInput`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RunAgentInput {
    #[schema(min_length = 1)]
    pub thread_id: String,
    #[schema(min_length = 1)]
    pub run_id: String,
    /// Must hold a user message with text (its last one is the question).
    #[schema(min_items = 1)]
    pub messages: Vec<AgUiMessage>,
    pub tools: Option<Vec<Value>>,
    pub context: Option<Vec<Value>>,
    pub state: Option<Value>,
    pub forwarded_props: Option<Value>,
    /// Answers to the thread's open interrupts (a frontend tool's result may
    /// come as a `role: "tool"` message instead).
    pub resume: Option<Vec<AgUiResumeEntry>>,
}

/// A UI message of the AI SDK (`parts` hold its text).
#[derive(Serialize, ToSchema)]
pub(crate) struct UiMessage {
    pub id: String,
    pub role: String,
    /// Message parts; `{"type": "text", "text": ...}` carry the text.
    pub parts: Vec<Value>,
    #[serde(flatten)]
    #[schema(additional_properties)]
    pub extra: BTreeMap<String, Value>,
}

/// The AI SDK's chat request (`DefaultChatTransport`).
#[derive(Serialize, ToSchema)]
pub(crate) struct ChatRequest {
    /// The chat id: `GET /v1/ai-sdk/chat/{chat_id}/stream` finds the live message by it.
    #[schema(min_length = 1)]
    pub id: String,
    /// Must hold a user message with a text part (its last one is the question).
    #[schema(min_items = 1)]
    pub messages: Vec<UiMessage>,
    /// `submit-message` or `regenerate-message`.
    pub trigger: Option<String>,
    #[serde(flatten)]
    #[schema(additional_properties)]
    pub extra: BTreeMap<String, Value>,
}

/// One event of a `text/event-stream` answer (the schema of each item of
/// the stream, as OpenAPI 3.2's `itemSchema` puts it): `data` is one JSON
/// document — a worker event, an AG-UI event or a UI message chunk — or
/// `[DONE]` at the end of an AI SDK stream.
#[derive(Serialize, ToSchema)]
pub(crate) struct ServerSentEvent {
    pub data: String,
    pub event: Option<String>,
    /// The log entry id (`<ms>-<seq>`): what `Last-Event-ID` resumes after.
    pub id: Option<String>,
    /// Reconnection delay hint, in milliseconds.
    pub retry: Option<u64>,
}

/// An output format of the follow endpoint.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
#[expect(dead_code, reason = "describes the wire for the document; never built")]
pub(crate) enum FormatName {
    Native,
    AgUi,
    AiSdk,
}

/// The answer to `DELETE /v1/react/sessions/{session_id}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Cancelled {
    pub session_id: String,
    /// `cancelled`, or `already_ended`.
    pub status: String,
}

/// The answer of `/healthz`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    pub status: String,
}

/// The answer of `/readyz`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    /// Per backend: `ok` or what is wrong.
    pub checks: BTreeMap<String, String>,
}
