//! [`ThreadRecord`] and the pure rule that changes it: no I/O, no clock
//! (the caller passes "now"), so each outcome of PROTOCOL §8 is a unit test.
//!
//! * [`ThreadRecord::open_run`] — a new run on the thread. A plain run
//!   creates the thread for its principal (another principal's thread →
//!   [`ThreadRefusal::Taken`]) and abandons interrupts left open (a later
//!   resume of them is answered as already answered). A resume must answer
//!   every open interrupt exactly once: an id answered before →
//!   [`ThreadRefusal::AlreadyAnswered`] (409, what the loser of two
//!   concurrent resumes gets), an unknown id or an open one left out →
//!   [`ThreadRefusal::Unknown`] (422), `resolved` past `expires_at` →
//!   [`ThreadRefusal::Expired`] (410; cancelling it is allowed). No record
//!   or another owner → [`ThreadRefusal::NotFound`] (404).
//! * [`ThreadRecord::finish_run`] — how a run ended; an interrupted run's
//!   interrupts become the open ones if it is still the newest run.
//!
//! Bounded: the newest [`MAX_RUNS`] runs, the last [`MAX_ANSWERED`]
//! answered ids, the newest run's request (the next resume's
//! `parent_request`; at most the body limit).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Interrupt, ResumeEntry, ResumeStatus};
use crate::protocol::SessionId;

/// Runs a record keeps (the oldest are dropped past it).
pub const MAX_RUNS: usize = 100;
/// Answered interrupt ids a record remembers, to answer a late resume 409.
pub const MAX_ANSWERED: usize = 256;

/// Where a run of the thread stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Live,
    Completed,
    Failed,
    Interrupted,
    Cancelled,
}

/// One run of a thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub session_id: SessionId,
    pub status: RunStatus,
    /// Unix milliseconds.
    pub created_at: u64,
}

/// A thread as stored (JSON in the backend).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadRecord {
    /// The principal that first used the thread id.
    pub owner: String,
    /// Oldest first.
    pub runs: Vec<Run>,
    /// The interrupts the newest run ended with, until answered.
    #[serde(default)]
    pub open: Vec<Interrupt>,
    /// The run that raised the open interrupts.
    #[serde(default)]
    pub waiting: Option<SessionId>,
    /// Interrupt ids answered or abandoned, newest last.
    #[serde(default)]
    pub answered: Vec<String>,
    /// The newest run's request: a resume's `parent_request`.
    #[serde(default)]
    pub request: Option<Map<String, Value>>,
}

/// Why a run may not open on the thread (each an HTTP status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThreadRefusal {
    /// 404: no such thread, or not the caller's.
    #[error("no such thread")]
    NotFound,
    /// 409: the thread id belongs to another principal.
    #[error("this thread id belongs to another user; start the conversation under a new id")]
    Taken,
    /// 409: an entry answers an interrupt that was already answered.
    #[error(
        "interrupt {0:?} was already answered (by another resume, or abandoned by a newer run)"
    )]
    AlreadyAnswered(String),
    /// 422: an entry names no open interrupt, or an open one is left out.
    #[error("{0}")]
    Unknown(String),
    /// 410: an entry resolves an interrupt past its `expires_at`.
    #[error("interrupt {0:?} has expired; cancel it to continue the thread")]
    Expired(String),
}

impl ThreadRefusal {
    /// Metric label of a refused resume.
    pub fn label(&self) -> &'static str {
        match self {
            ThreadRefusal::NotFound => "not_found",
            ThreadRefusal::Taken => "taken",
            ThreadRefusal::AlreadyAnswered(_) => "conflict",
            ThreadRefusal::Unknown(_) => "unknown",
            ThreadRefusal::Expired(_) => "expired",
        }
    }
}

/// The run a resume continues.
#[derive(Debug, Clone, PartialEq)]
pub struct Parent {
    pub session_id: SessionId,
    /// The interrupted run's request.
    pub request: Option<Map<String, Value>>,
    /// The interrupts the resume answers, as the worker sent them.
    pub interrupts: Vec<Interrupt>,
}

/// What [`ThreadRecord::open_run`] decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    pub record: ThreadRecord,
    /// Set for a resume.
    pub parent: Option<Parent>,
}

impl ThreadRecord {
    /// Opens run `session_id` (created at `now_ms`, asked with `request`)
    /// for `owner` on the thread `existing`, answering `resume` if given.
    pub fn open_run(
        existing: Option<&ThreadRecord>,
        owner: &str,
        session_id: SessionId,
        request: &Map<String, Value>,
        resume: Option<&[ResumeEntry]>,
        now_ms: u64,
    ) -> Result<Opened, ThreadRefusal> {
        let mut record = match (existing, resume) {
            (Some(record), _) if record.owner != owner => {
                return Err(match resume {
                    Some(_) => ThreadRefusal::NotFound,
                    None => ThreadRefusal::Taken,
                });
            }
            (None, Some(_)) => return Err(ThreadRefusal::NotFound),
            (Some(record), _) => record.clone(),
            (None, None) => ThreadRecord {
                owner: owner.to_owned(),
                runs: Vec::new(),
                open: Vec::new(),
                waiting: None,
                answered: Vec::new(),
                request: None,
            },
        };
        let parent = match resume {
            Some(entries) => {
                record.check_answers(entries, now_ms)?;
                let parent = record
                    .waiting
                    .expect("open interrupts name the run that raised them");
                Some(Parent {
                    session_id: parent,
                    request: record.request.take(),
                    interrupts: record.open.clone(),
                })
            }
            None => None,
        };
        // Answered or abandoned: either way no longer open.
        let closed: Vec<String> = record.open.drain(..).map(|i| i.id().to_owned()).collect();
        record.waiting = None;
        record.answered.extend(closed);
        let excess = record.answered.len().saturating_sub(MAX_ANSWERED);
        record.answered.drain(..excess);
        record.runs.push(Run {
            session_id,
            status: RunStatus::Live,
            created_at: now_ms,
        });
        let excess = record.runs.len().saturating_sub(MAX_RUNS);
        record.runs.drain(..excess);
        record.request = Some(request.clone());
        Ok(Opened { record, parent })
    }

    /// `entries` answer every open interrupt exactly once, in time.
    fn check_answers(&self, entries: &[ResumeEntry], now_ms: u64) -> Result<(), ThreadRefusal> {
        for entry in entries {
            let id = &entry.interrupt_id;
            if self.answered.contains(id) {
                return Err(ThreadRefusal::AlreadyAnswered(id.clone()));
            }
            if !self.open.iter().any(|open| open.id() == id) {
                return Err(ThreadRefusal::Unknown(format!(
                    "interrupt {id:?} is not open on this thread"
                )));
            }
        }
        for open in &self.open {
            let Some(entry) = entries.iter().find(|e| e.interrupt_id == open.id()) else {
                return Err(ThreadRefusal::Unknown(format!(
                    "the resume must answer every open interrupt; {:?} is not answered",
                    open.id()
                )));
            };
            let expired = open.expires_at_ms().is_some_and(|at| at <= now_ms);
            if expired && entry.status == ResumeStatus::Resolved {
                return Err(ThreadRefusal::Expired(open.id().to_owned()));
            }
        }
        if self.open.is_empty() {
            return Err(ThreadRefusal::Unknown(
                "the thread has no open interrupts".into(),
            ));
        }
        Ok(())
    }

    /// Records that run `session_id` ended with `status` (and, when
    /// interrupted, `interrupts`); `false` when nothing changed (unknown
    /// run, or its end already recorded).
    pub fn finish_run(
        &mut self,
        session_id: SessionId,
        status: RunStatus,
        interrupts: Vec<Interrupt>,
    ) -> bool {
        let newest = self.runs.last().map(|run| run.session_id) == Some(session_id);
        let Some(run) = self.runs.iter_mut().find(|r| r.session_id == session_id) else {
            return false;
        };
        if run.status != RunStatus::Live {
            return false;
        }
        run.status = status;
        if status == RunStatus::Interrupted && newest {
            self.open = interrupts;
            self.waiting = Some(session_id);
        }
        true
    }

    /// Opens `parent`'s interrupts again (the run that answered them never
    /// ran): they are no longer answered.
    pub fn reopen(&mut self, parent: &Parent) {
        self.answered
            .retain(|id| !parent.interrupts.iter().any(|i| i.id() == id));
        self.open = parent.interrupts.clone();
        self.waiting = Some(parent.session_id);
        self.request = parent.request.clone();
    }

    /// The run `session_id`, if the record still holds it.
    pub fn run(&self, session_id: SessionId) -> Option<&Run> {
        self.runs.iter().find(|run| run.session_id == session_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_796_000_000_000;

    fn request(query: &str) -> Map<String, Value> {
        json!({"user_query": query}).as_object().unwrap().clone()
    }

    fn interrupts(ids: &[&str]) -> Vec<Interrupt> {
        ids.iter()
            .map(|id| serde_json::from_value(json!({"id": id, "reason": "confirmation"})).unwrap())
            .collect()
    }

    fn resolve(ids: &[&str]) -> Vec<ResumeEntry> {
        ids.iter()
            .map(|id| ResumeEntry {
                interrupt_id: (*id).to_owned(),
                status: ResumeStatus::Resolved,
                payload: json!({"approved": true}),
            })
            .collect()
    }

    /// A thread of `owner` whose only run ended with interrupts `ids`.
    fn interrupted(owner: &str, ids: &[&str]) -> (ThreadRecord, SessionId) {
        let first = SessionId::new();
        let mut record = ThreadRecord::open_run(None, owner, first, &request("q"), None, NOW)
            .unwrap()
            .record;
        assert!(record.finish_run(first, RunStatus::Interrupted, interrupts(ids)));
        (record, first)
    }

    #[test]
    fn a_resume_answering_every_open_interrupt_opens_a_run_with_its_parent() {
        let (record, first) = interrupted("key:a", &["i1", "i2"]);
        let second = SessionId::new();
        let opened = ThreadRecord::open_run(
            Some(&record),
            "key:a",
            second,
            &request("q2"),
            Some(&resolve(&["i2", "i1"])),
            NOW + 1,
        )
        .unwrap();
        let parent = opened.parent.unwrap();
        assert_eq!(parent.session_id, first);
        assert_eq!(parent.request, Some(request("q")));
        assert_eq!(parent.interrupts.len(), 2);
        assert!(opened.record.open.is_empty());
        assert_eq!(opened.record.answered, ["i1", "i2"]);
        assert_eq!(opened.record.runs.last().unwrap().status, RunStatus::Live);
        assert_eq!(opened.record.request, Some(request("q2")));
    }

    #[test]
    fn of_two_resumes_of_one_interrupt_the_second_is_a_conflict() {
        let (record, _) = interrupted("key:a", &["i1"]);
        let entries = resolve(&["i1"]);
        let first = ThreadRecord::open_run(
            Some(&record),
            "key:a",
            SessionId::new(),
            &request("q"),
            Some(&entries),
            NOW,
        )
        .unwrap();
        // The loser re-applies the rule to the winner's record.
        let second = ThreadRecord::open_run(
            Some(&first.record),
            "key:a",
            SessionId::new(),
            &request("q"),
            Some(&entries),
            NOW,
        );
        assert_eq!(second, Err(ThreadRefusal::AlreadyAnswered("i1".into())));
    }

    #[test]
    fn a_resume_must_answer_all_open_interrupts_and_only_those() {
        let (record, _) = interrupted("key:a", &["i1", "i2"]);
        let open = |entries: &[ResumeEntry]| {
            ThreadRecord::open_run(
                Some(&record),
                "key:a",
                SessionId::new(),
                &request("q"),
                Some(entries),
                NOW,
            )
        };
        assert!(
            matches!(open(&resolve(&["i1"])), Err(ThreadRefusal::Unknown(m)) if m.contains("\"i2\" is not answered"))
        );
        assert!(
            matches!(open(&resolve(&["i1", "i2", "i3"])), Err(ThreadRefusal::Unknown(m)) if m.contains("\"i3\" is not open"))
        );
    }

    #[test]
    fn an_expired_interrupt_can_be_cancelled_but_not_resolved() {
        let first = SessionId::new();
        let mut record = ThreadRecord::open_run(None, "key:a", first, &request("q"), None, NOW)
            .unwrap()
            .record;
        let expiring: Vec<Interrupt> = vec![
            serde_json::from_value(
                json!({"id": "i1", "reason": "confirmation", "expires_at": "2026-12-01T00:00:00Z"}),
            )
            .unwrap(),
        ];
        record.finish_run(first, RunStatus::Interrupted, expiring);
        let at = |entries: &[ResumeEntry], now| {
            ThreadRecord::open_run(
                Some(&record),
                "key:a",
                SessionId::new(),
                &request("q"),
                Some(entries),
                now,
            )
        };
        let deadline = 1_796_083_200_000; // 2026-12-01T00:00:00Z
        assert!(at(&resolve(&["i1"]), deadline - 1).is_ok());
        assert_eq!(
            at(&resolve(&["i1"]), deadline),
            Err(ThreadRefusal::Expired("i1".into()))
        );
        let cancel = [ResumeEntry {
            interrupt_id: "i1".into(),
            status: ResumeStatus::Cancelled,
            payload: Value::Null,
        }];
        assert!(at(&cancel, deadline + 1).is_ok());
    }

    #[test]
    fn another_principal_cannot_see_or_take_the_thread() {
        let (record, _) = interrupted("key:a", &["i1"]);
        let open = |resume: Option<&[ResumeEntry]>| {
            ThreadRecord::open_run(
                Some(&record),
                "key:b",
                SessionId::new(),
                &request("q"),
                resume,
                NOW,
            )
        };
        assert_eq!(open(Some(&resolve(&["i1"]))), Err(ThreadRefusal::NotFound));
        assert_eq!(open(None), Err(ThreadRefusal::Taken));
        let unknown = ThreadRecord::open_run(
            None,
            "key:a",
            SessionId::new(),
            &request("q"),
            Some(&resolve(&["i1"])),
            NOW,
        );
        assert_eq!(unknown, Err(ThreadRefusal::NotFound));
    }

    #[test]
    fn a_resume_that_never_ran_opens_its_interrupts_again() {
        let (record, first) = interrupted("key:a", &["i1"]);
        let failed = SessionId::new();
        let opened = ThreadRecord::open_run(
            Some(&record),
            "key:a",
            failed,
            &request("q2"),
            Some(&resolve(&["i1"])),
            NOW,
        )
        .unwrap();
        let mut record = opened.record;
        assert!(record.finish_run(failed, RunStatus::Failed, Vec::new()));
        record.reopen(&opened.parent.unwrap());
        let again = ThreadRecord::open_run(
            Some(&record),
            "key:a",
            SessionId::new(),
            &request("q3"),
            Some(&resolve(&["i1"])),
            NOW,
        )
        .unwrap();
        let parent = again.parent.unwrap();
        assert_eq!(parent.session_id, first);
        assert_eq!(parent.request, Some(request("q")));
    }

    #[test]
    fn a_plain_run_abandons_open_interrupts() {
        let (record, _) = interrupted("key:a", &["i1"]);
        let next = ThreadRecord::open_run(
            Some(&record),
            "key:a",
            SessionId::new(),
            &request("never mind"),
            None,
            NOW,
        )
        .unwrap();
        assert!(next.parent.is_none());
        assert!(next.record.open.is_empty());
        let late = ThreadRecord::open_run(
            Some(&next.record),
            "key:a",
            SessionId::new(),
            &request("q"),
            Some(&resolve(&["i1"])),
            NOW,
        );
        assert_eq!(late, Err(ThreadRefusal::AlreadyAnswered("i1".into())));
    }

    #[test]
    fn only_the_newest_run_leaves_interrupts_open_and_ends_are_recorded_once() {
        let first = SessionId::new();
        let second = SessionId::new();
        let record = ThreadRecord::open_run(None, "key:a", first, &request("q"), None, NOW)
            .unwrap()
            .record;
        let mut record =
            ThreadRecord::open_run(Some(&record), "key:a", second, &request("q"), None, NOW)
                .unwrap()
                .record;
        assert!(record.finish_run(first, RunStatus::Interrupted, interrupts(&["old"])));
        assert!(record.open.is_empty());
        assert!(record.finish_run(second, RunStatus::Completed, Vec::new()));
        assert!(!record.finish_run(second, RunStatus::Failed, Vec::new()));
        assert_eq!(record.run(second).unwrap().status, RunStatus::Completed);
        assert!(!record.finish_run(SessionId::new(), RunStatus::Failed, Vec::new()));
    }

    #[test]
    fn a_record_keeps_its_newest_runs_and_answers() {
        let mut record =
            ThreadRecord::open_run(None, "key:a", SessionId::new(), &request("q"), None, NOW)
                .unwrap()
                .record;
        for n in 0..(MAX_RUNS + 10) {
            let id = SessionId::new();
            record = ThreadRecord::open_run(Some(&record), "key:a", id, &request("q"), None, NOW)
                .unwrap()
                .record;
            let ids = [format!("i{n}")];
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            record.finish_run(id, RunStatus::Interrupted, interrupts(&ids));
        }
        assert_eq!(record.runs.len(), MAX_RUNS);
        assert!(record.answered.len() <= MAX_ANSWERED);
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(serde_json::from_str::<ThreadRecord>(&json).unwrap(), record);
    }
}
