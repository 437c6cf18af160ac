//! The [`ThreadStore`] on Redis: a hash per thread (`rev`, `record`), read
//! with one `HMGET` and written by `FCALL sse_bridge_v4_thread_put` only if
//! its revision is unchanged (`functions.lua`). In a cluster the key carries
//! the thread id as a hash tag, like every per-session name.

use std::time::Duration;

use async_trait::async_trait;
use sse_bridge_core::BrokerError;
use sse_bridge_core::thread::{Stored, ThreadId, ThreadRecord, ThreadStore};

use crate::RedisBus;
use crate::log::Function;

impl RedisBus {
    fn thread_key(&self, id: &ThreadId) -> String {
        self.keyspace().name(&id.key()).into_owned()
    }
}

#[async_trait]
impl ThreadStore for RedisBus {
    async fn load_thread(&self, id: &ThreadId) -> Result<Stored, BrokerError> {
        let read = redis::cmd("HMGET")
            .arg(self.thread_key(id))
            .arg("rev")
            .arg("record")
            .to_owned();
        let (revision, record): (Option<u64>, Option<String>) =
            self.commands().query(&read).await?;
        let record = match record {
            None => None,
            Some(json) => Some(serde_json::from_str::<ThreadRecord>(&json).map_err(|e| {
                BrokerError::Rejected(format!("thread {id}: unreadable record: {e}"))
            })?),
        };
        Ok(Stored {
            revision: revision.unwrap_or(0),
            record,
        })
    }

    async fn store_thread(
        &self,
        id: &ThreadId,
        revision: u64,
        record: &ThreadRecord,
        ttl: Duration,
    ) -> Result<bool, BrokerError> {
        let expected = if revision == 0 {
            String::new()
        } else {
            revision.to_string()
        };
        let json = serde_json::to_string(record).expect("a thread record serialises");
        let put = Function::ThreadPut
            .call()
            .arg(1)
            .arg(self.thread_key(id))
            .arg(expected)
            .arg(json)
            .arg(ttl.as_millis() as u64)
            .to_owned();
        let written: u64 = self.commands().query(&put).await?;
        Ok(written != 0)
    }
}
