//! librdkafka errors as [`BrokerError`], the one error type of the core traits.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode as Code};
use sse_bridge_core::BrokerError;

/// Classifies `error`. A timeout is reported as having waited `waited`; with
/// no bound of ours involved (`None`) it counts as an unavailable broker.
pub(crate) fn broker_error(error: &KafkaError, waited: Option<Duration>) -> BrokerError {
    let Some(code) = error.rdkafka_error_code() else {
        // Client creation and configuration errors carry no code.
        return BrokerError::Rejected(error.to_string());
    };
    match code {
        Code::MessageTimedOut
        | Code::OperationTimedOut
        | Code::RequestTimedOut
        | Code::TimedOutQueue => match waited {
            Some(waited) => BrokerError::Timeout(waited),
            None => BrokerError::Unavailable(error.to_string()),
        },
        Code::QueueFull => BrokerError::Overloaded(error.to_string()),
        Code::BrokerTransportFailure
        | Code::AllBrokersDown
        | Code::Resolve
        | Code::NetworkException
        | Code::LeaderNotAvailable
        | Code::NotLeaderForPartition
        | Code::CoordinatorNotAvailable
        | Code::NotCoordinator
        | Code::WaitingForCoordinator
        | Code::BrokerDestroy => BrokerError::Unavailable(error.to_string()),
        _ => BrokerError::Rejected(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_codes() {
        let waited = Duration::from_secs(5);
        let of = |code| broker_error(&KafkaError::MessageProduction(code), Some(waited));
        assert!(matches!(of(Code::MessageTimedOut), BrokerError::Timeout(d) if d == waited));
        assert!(matches!(of(Code::QueueFull), BrokerError::Overloaded(_)));
        assert!(matches!(
            of(Code::AllBrokersDown),
            BrokerError::Unavailable(_)
        ));
        assert!(matches!(
            of(Code::TopicAuthorizationFailed),
            BrokerError::Rejected(_)
        ));
        let config = KafkaError::ClientCreation("bad property".into());
        assert!(matches!(
            broker_error(&config, None),
            BrokerError::Rejected(_)
        ));
        let consume = KafkaError::MessageConsumption(Code::OperationTimedOut);
        assert!(matches!(
            broker_error(&consume, None),
            BrokerError::Unavailable(_)
        ));
    }
}
