//! Human in the loop for workers (PROTOCOL §8): tool calls with ids, the
//! `interrupt` that ends a run waiting for outside input, and the answers a
//! resumed run gets.
//!
//! A run that needs a person (or the client's own tool) ends with
//! [`SessionHandle::interrupt`]; the client's answer starts a *new* run of
//! the same job handler, whose job carries the answers and the interrupts
//! they answer ([`SessionHandle::resumed`]). Nothing has to be kept between
//! the two runs: each interrupt this module makes carries the tool call it
//! is about (`metadata`), so a stateless worker continues from the job.
//!
//! ```no_run
//! # use sse_bridge_worker::hitl::{Decision, ToolCall};
//! # use sse_bridge_worker::SessionHandle;
//! # async fn handle(session: &SessionHandle) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! if let Some((call, decision)) = session.resumed().and_then(|r| r.decision()) {
//!     match decision {
//!         Decision::Approved => session.end_tool_call(&call, serde_json::json!({"sent": true})).await?,
//!         Decision::Denied { reason } => session.deny_tool_call(&call, reason.as_deref()).await?,
//!     };
//!     // … answer, then FinalAnswerStreamEnd
//! } else {
//!     let call = ToolCall::new("send_report", serde_json::json!({"to": "finance"}));
//!     session.ask_approval(&call, "Send the report to finance?").await?; // the run ends here
//! }
//! # Ok(()) }
//! ```

use serde_json::{Map, Value, json};
use sse_bridge_core::Job;
use sse_bridge_core::protocol::event_type;
use sse_bridge_core::thread::{ResumeEntry, ResumeStatus};

use crate::publish::{PublishError, Published};
use crate::runner::SessionHandle;

/// A tool call, named by an id every format keeps (no pairing by name).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub input: Value,
}

impl ToolCall {
    /// A call of tool `name` with a fresh id (`call-<uuid>`).
    pub fn new(name: &str, input: Value) -> Self {
        ToolCall {
            id: format!("call-{}", uuid::Uuid::new_v4().simple()),
            name: name.to_owned(),
            input,
        }
    }

    /// The call an interrupt made by this module is about.
    fn from_interrupt(interrupt: &Value) -> Option<Self> {
        let metadata = interrupt.get("metadata")?;
        Some(ToolCall {
            id: interrupt.get("tool_call_id")?.as_str()?.to_owned(),
            name: metadata.get("tool_name")?.as_str()?.to_owned(),
            input: metadata.get("tool_input").cloned().unwrap_or(Value::Null),
        })
    }
}

/// One interrupt of an `interrupt` event.
#[derive(Debug, Clone, PartialEq)]
pub struct Interrupt {
    fields: Map<String, Value>,
}

impl Interrupt {
    /// An interrupt for `reason` (`tool_call`, `input_required`,
    /// `confirmation`, …) with a fresh id (`int-<uuid>`).
    pub fn new(reason: &str) -> Self {
        let mut fields = Map::new();
        fields.insert(
            "id".into(),
            format!("int-{}", uuid::Uuid::new_v4().simple()).into(),
        );
        fields.insert("reason".into(), reason.into());
        Interrupt { fields }
    }

    /// The question shown to the person.
    pub fn message(self, message: &str) -> Self {
        self.with("message", message.into())
    }

    /// About `call`: its id, and (in `metadata`) its name and input, so the
    /// resumed run knows the call without keeping anything.
    pub fn for_tool_call(self, call: &ToolCall) -> Self {
        self.with("tool_call_id", call.id.clone().into()).with(
            "metadata",
            json!({"tool_name": call.name, "tool_input": call.input}),
        )
    }

    /// Any other field of PROTOCOL §8 (`response_schema`, `expires_at`, …).
    pub fn with(mut self, field: &str, value: Value) -> Self {
        self.fields.insert(field.to_owned(), value);
        self
    }

    pub fn id(&self) -> &str {
        self.fields["id"].as_str().unwrap_or_default()
    }
}

/// What a person decided about a tool call that asked for approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Approved,
    /// Denied (`{"approved": false}`), or the interrupt was cancelled.
    Denied {
        reason: Option<String>,
    },
}

/// The answers of a resumed run: each answered interrupt (as the worker
/// sent it) with its resume entry.
#[derive(Debug, Clone)]
pub struct Resumed<'a> {
    job: &'a Job,
    answers: Vec<(Value, ResumeEntry)>,
}

impl<'a> Resumed<'a> {
    fn of(job: &'a Job) -> Option<Self> {
        let entries = job.request.resume().ok().flatten()?;
        let interrupts = job.interrupts.as_deref().unwrap_or_default();
        let answers = entries
            .into_iter()
            .filter_map(|entry| {
                let interrupt = interrupts
                    .iter()
                    .find(|i| i.get("id").and_then(Value::as_str) == Some(&entry.interrupt_id))?;
                Some((interrupt.clone(), entry))
            })
            .collect();
        Some(Resumed { job, answers })
    }

    /// Every answered interrupt with its entry.
    pub fn answers(&self) -> &[(Value, ResumeEntry)] {
        &self.answers
    }

    /// The interrupted run's request.
    pub fn parent_request(&self) -> Option<&Map<String, Value>> {
        self.job.parent_request.as_ref()
    }

    /// The first tool call asked about with [`SessionHandle::ask_approval`],
    /// and what was decided.
    pub fn decision(&self) -> Option<(ToolCall, Decision)> {
        self.answers.iter().find_map(|(interrupt, entry)| {
            let call = ToolCall::from_interrupt(interrupt)?;
            let approved = entry.payload.get("approved").and_then(Value::as_bool)?;
            let decision = match (entry.status, approved) {
                (ResumeStatus::Resolved, true) => Decision::Approved,
                _ => Decision::Denied {
                    reason: entry
                        .payload
                        .get("reason")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                },
            };
            Some((call, decision))
        })
    }

    /// The first client tool's call ([`SessionHandle::call_client_tool`])
    /// and its output (`None` when the client cancelled it).
    pub fn client_output(&self) -> Option<(ToolCall, Option<Value>)> {
        self.answers.iter().find_map(|(interrupt, entry)| {
            let call = ToolCall::from_interrupt(interrupt)?;
            let is_client = interrupt["metadata"]["executor"] == "client";
            is_client.then(|| {
                let output =
                    (entry.status == ResumeStatus::Resolved).then(|| entry.payload.clone());
                (call, output)
            })
        })
    }
}

impl SessionHandle {
    /// The answers, when this run resumes an interrupted one.
    pub fn resumed(&self) -> Option<Resumed<'_>> {
        Resumed::of(self.job())
    }

    /// Ends the run waiting for outside input: the terminal `interrupt`.
    /// Return from the handler after it.
    pub async fn interrupt(&self, interrupts: Vec<Interrupt>) -> Result<Published, PublishError> {
        let interrupts: Vec<Value> = interrupts
            .into_iter()
            .map(|i| Value::Object(i.fields))
            .collect();
        self.publish(event_type::INTERRUPT, json!({ "interrupts": interrupts }))
            .await
    }

    /// `AgentToolCallStart` of `call`.
    pub async fn start_tool_call(&self, call: &ToolCall) -> Result<Published, PublishError> {
        self.publish(
            event_type::TOOL_CALL_START,
            json!({"tool_call_id": call.id, "tool_name": call.name, "tool_input": call.input}),
        )
        .await
    }

    /// `AgentToolCallEnd` of `call` with its output.
    pub async fn end_tool_call(
        &self,
        call: &ToolCall,
        output: Value,
    ) -> Result<Published, PublishError> {
        self.publish(
            event_type::TOOL_CALL_END,
            json!({"tool_call_id": call.id, "tool_name": call.name, "output": output}),
        )
        .await
    }

    /// `AgentToolCallEnd` of `call` that failed with `error`.
    pub async fn fail_tool_call(
        &self,
        call: &ToolCall,
        error: &str,
    ) -> Result<Published, PublishError> {
        self.publish(
            event_type::TOOL_CALL_END,
            json!({"tool_call_id": call.id, "tool_name": call.name, "error": error}),
        )
        .await
    }

    /// `AgentToolCallEnd` of a call whose approval was denied (`denied: true`).
    pub async fn deny_tool_call(
        &self,
        call: &ToolCall,
        reason: Option<&str>,
    ) -> Result<Published, PublishError> {
        let error = reason.map_or_else(|| "denied".to_owned(), |r| format!("denied: {r}"));
        self.publish(
            event_type::TOOL_CALL_END,
            json!({"tool_call_id": call.id, "tool_name": call.name, "denied": true, "error": error}),
        )
        .await
    }

    /// Asks a person whether `call` may run: the call starts, and the run
    /// ends with an interrupt about it. The resumed run reads the
    /// [`Resumed::decision`] and ends the same call (never starts it again).
    pub async fn ask_approval(
        &self,
        call: &ToolCall,
        message: &str,
    ) -> Result<Published, PublishError> {
        self.start_tool_call(call).await?;
        let interrupt = Interrupt::new("tool_call")
            .message(message)
            .for_tool_call(call);
        self.interrupt(vec![interrupt]).await
    }

    /// Hands `call` to the client (`"executor": "client"`): the run ends with
    /// an interrupt about it; the resumed run reads [`Resumed::client_output`].
    pub async fn call_client_tool(&self, call: &ToolCall) -> Result<Published, PublishError> {
        self.publish(
            event_type::TOOL_CALL_START,
            json!({"tool_call_id": call.id, "tool_name": call.name, "tool_input": call.input, "executor": "client"}),
        )
        .await?;
        let interrupt = Interrupt::new("tool_call").for_tool_call(call).with(
            "metadata",
            json!({"tool_name": call.name, "tool_input": call.input, "executor": "client"}),
        );
        self.interrupt(vec![interrupt]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sse_bridge_core::{SessionId, SessionRequest};

    fn resumed_job(interrupt: &Interrupt, payload: Value, status: &str) -> Job {
        let request = SessionRequest::from_value(json!({
            "thread_id": "t", "resume": [{"interrupt_id": interrupt.id(), "status": status, "payload": payload}]
        }))
        .unwrap();
        let mut job = Job::new(SessionId::new(), request);
        job.interrupts = Some(vec![Value::Object(interrupt.fields.clone())]);
        job
    }

    #[test]
    fn an_approval_is_read_back_with_its_tool_call() {
        let call = ToolCall::new("send_report", json!({"to": "finance"}));
        assert!(call.id.starts_with("call-"));
        let asked = Interrupt::new("tool_call")
            .message("Send?")
            .for_tool_call(&call);
        let job = resumed_job(&asked, json!({"approved": true}), "resolved");
        let (back, decision) = Resumed::of(&job).unwrap().decision().unwrap();
        assert_eq!((back, decision), (call.clone(), Decision::Approved));

        let job = resumed_job(
            &asked,
            json!({"approved": false, "reason": "not today"}),
            "resolved",
        );
        let decision = Resumed::of(&job).unwrap().decision().unwrap().1;
        assert_eq!(
            decision,
            Decision::Denied {
                reason: Some("not today".into())
            }
        );
        let job = resumed_job(&asked, json!({"approved": true}), "cancelled");
        assert_eq!(
            Resumed::of(&job).unwrap().decision().unwrap().1,
            Decision::Denied { reason: None }
        );
    }

    #[test]
    fn a_client_tool_gives_its_output_and_a_plain_job_resumes_nothing() {
        let call = ToolCall::new("browser_time", json!({}));
        let asked = Interrupt::new("tool_call").for_tool_call(&call).with(
            "metadata",
            json!({"tool_name": "browser_time", "tool_input": {}, "executor": "client"}),
        );
        let job = resumed_job(&asked, json!("10:00"), "resolved");
        let (back, output) = Resumed::of(&job).unwrap().client_output().unwrap();
        assert_eq!((back.id, output), (call.id, Some(json!("10:00"))));
        let plain = Job::new(
            SessionId::new(),
            SessionRequest::from_value(json!({"user_query": "q"})).unwrap(),
        );
        assert!(Resumed::of(&plain).is_none());
    }
}
