//! A resumed run's view of its job (PROTOCOL §8): the answers to the
//! interrupts its parent ended with, each paired with the interrupt as the
//! worker sent it (`job.interrupts`), and the parent's session and request —
//! all a stateless worker needs to continue where the parent stopped.

use serde_json::{Map, Value};
use sse_bridge_core::protocol::InvalidRequest;
use sse_bridge_core::thread::{Interrupt as SentInterrupt, ResumeEntry, ResumeStatus, ThreadId};
use sse_bridge_core::{Job, SessionId};

use crate::runner::SessionHandle;
use crate::tool_call::ToolCall;

/// One answered interrupt.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The interrupt as the parent run sent it; `None` when the job does
    /// not carry it (a gateway that sends no `interrupts`).
    pub interrupt: Option<SentInterrupt>,
    pub entry: ResumeEntry,
}

impl Answer {
    pub fn interrupt_id(&self) -> &str {
        &self.entry.interrupt_id
    }

    /// The client cancelled the interrupt instead of resolving it.
    pub fn is_cancelled(&self) -> bool {
        self.entry.status == ResumeStatus::Cancelled
    }

    /// The tool call the interrupt is about, when it was made by
    /// [`Interrupt::for_tool_call`](crate::Interrupt::for_tool_call)
    /// (`tool_call_id`, and `metadata.tool_name` / `metadata.tool_input`).
    pub fn tool_call(&self) -> Option<ToolCall> {
        let interrupt = self.interrupt.as_ref()?;
        let metadata = interrupt.as_object().get("metadata")?;
        let name = metadata.get("tool_name")?.as_str()?;
        let input = metadata.get("tool_input").cloned().unwrap_or(Value::Null);
        Some(ToolCall::with_id(interrupt.tool_call_id()?, name, input))
    }

    /// `metadata[key]` of the interrupt.
    pub fn metadata(&self, key: &str) -> Option<&Value> {
        self.interrupt
            .as_ref()?
            .as_object()
            .get("metadata")?
            .get(key)
    }
}

/// What a resumed run continues: its thread, its parent, the answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Resumed {
    pub thread_id: ThreadId,
    /// The interrupted run.
    pub parent_session_id: Option<SessionId>,
    /// The interrupted run's request.
    pub parent_request: Option<Map<String, Value>>,
    /// One per answered interrupt, in the client's order.
    pub answers: Vec<Answer>,
}

/// Why a job's resume cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error(transparent)]
    Request(#[from] InvalidRequest),
    #[error("the job resumes interrupts but names no thread")]
    NoThread,
    #[error("job.interrupts[{0}] is not an object")]
    MalformedInterrupt(usize),
}

impl Resumed {
    /// The resume of `job`; `None` for a run that resumes nothing.
    pub fn of(job: &Job) -> Result<Option<Resumed>, ResumeError> {
        let Some(entries) = job.request.resume()? else {
            return Ok(None);
        };
        let thread_id = job.request.thread_id()?.ok_or(ResumeError::NoThread)?;
        let sent = sent_interrupts(job.interrupts.as_deref().unwrap_or_default())?;
        let answers = entries
            .into_iter()
            .map(|entry| Answer {
                interrupt: sent.iter().find(|i| i.id() == entry.interrupt_id).cloned(),
                entry,
            })
            .collect();
        Ok(Some(Resumed {
            thread_id,
            parent_session_id: job.parent_session_id,
            parent_request: job.parent_request.clone(),
            answers,
        }))
    }

    /// The answer to interrupt `interrupt_id`.
    pub fn answer(&self, interrupt_id: &str) -> Option<&Answer> {
        self.answers
            .iter()
            .find(|a| a.interrupt_id() == interrupt_id)
    }

    /// The answer to the interrupt about tool call `tool_call_id`.
    pub fn answer_for_tool_call(&self, tool_call_id: &str) -> Option<&Answer> {
        self.answers.iter().find(|answer| {
            answer
                .interrupt
                .as_ref()
                .and_then(SentInterrupt::tool_call_id)
                == Some(tool_call_id)
        })
    }

    /// The parent's `user_query` (a resume's own may be absent).
    pub fn parent_query(&self) -> Option<&str> {
        self.parent_request.as_ref()?.get("user_query")?.as_str()
    }
}

fn sent_interrupts(values: &[Value]) -> Result<Vec<SentInterrupt>, ResumeError> {
    values
        .iter()
        .enumerate()
        .map(|(index, value)| {
            serde_json::from_value(value.clone())
                .map_err(|_| ResumeError::MalformedInterrupt(index))
        })
        .collect()
}

impl SessionHandle {
    /// The answers, when this run resumes an interrupted one; `Ok(None)`
    /// for a fresh run.
    pub fn resumed(&self) -> Result<Option<Resumed>, ResumeError> {
        Resumed::of(self.job())
    }

    /// The thread this run belongs to, if any (`request.thread_id`).
    pub fn thread_id(&self) -> Result<Option<ThreadId>, InvalidRequest> {
        self.job().request.thread_id()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;
    use sse_bridge_core::SessionRequest;

    use super::*;

    /// A job resuming thread `t` with `entries`, whose parent sent `interrupts`.
    pub(crate) fn resuming_job(entries: Value, interrupts: Vec<Value>) -> Job {
        let body = json!({"thread_id": "t", "resume": entries});
        let mut job = Job::new(SessionId::new(), SessionRequest::from_value(body).unwrap());
        job.parent_session_id = Some(SessionId::new());
        job.parent_request = json!({"user_query": "send the report"})
            .as_object()
            .cloned();
        job.interrupts = Some(interrupts);
        job
    }

    #[test]
    fn a_fresh_run_resumes_nothing() {
        let body = json!({"user_query": "q", "thread_id": "t"});
        let job = Job::new(SessionId::new(), SessionRequest::from_value(body).unwrap());
        assert_eq!(Resumed::of(&job).unwrap(), None);
    }

    #[test]
    fn each_entry_is_paired_with_the_interrupt_it_answers() {
        let job = resuming_job(
            json!([
                {"interrupt_id": "i2", "status": "cancelled"},
                {"interrupt_id": "i1", "status": "resolved", "payload": {"approved": true}}
            ]),
            vec![
                json!({"id": "i1", "reason": "tool_call", "tool_call_id": "c1",
                       "metadata": {"tool_name": "send_report", "tool_input": {"to": "finance"}}}),
                json!({"id": "i2", "reason": "confirmation"}),
            ],
        );
        let resumed = Resumed::of(&job).unwrap().unwrap();
        assert_eq!(resumed.thread_id.as_str(), "t");
        assert_eq!(resumed.parent_session_id, job.parent_session_id);
        assert_eq!(resumed.parent_query(), Some("send the report"));
        assert_eq!(resumed.answers.len(), 2);
        assert!(resumed.answer("i2").unwrap().is_cancelled());
        let approval = resumed.answer_for_tool_call("c1").unwrap();
        assert_eq!(approval.interrupt_id(), "i1");
        assert_eq!(approval.entry.payload, json!({"approved": true}));
        assert_eq!(
            approval.tool_call(),
            Some(ToolCall::with_id(
                "c1",
                "send_report",
                json!({"to": "finance"})
            ))
        );
        assert_eq!(resumed.answer("i2").unwrap().tool_call(), None);
    }

    #[test]
    fn a_job_without_the_sent_interrupts_still_gives_the_entries() {
        let job = resuming_job(
            json!([{"interrupt_id": "i1", "status": "resolved"}]),
            vec![],
        );
        let resumed = Resumed::of(&job).unwrap().unwrap();
        assert_eq!(resumed.answers[0].interrupt, None);
        assert_eq!(resumed.answers[0].tool_call(), None);
    }

    #[test]
    fn a_sent_interrupt_that_is_not_an_object_is_an_error() {
        let job = resuming_job(
            json!([{"interrupt_id": "i1", "status": "resolved"}]),
            vec![json!({"id": "i1", "reason": "x"}), json!("i2")],
        );
        assert!(matches!(
            Resumed::of(&job),
            Err(ResumeError::MalformedInterrupt(1))
        ));
    }
}
