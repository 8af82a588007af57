//! Watching one worker: its grpc.health.v1 status (a `Watch` stream, so a
//! change arrives at once) and, whenever it serves, the databases it
//! announces in `Info`. A worker that does not answer, or says NOT_SERVING,
//! leaves the rotation until it serves again.

use std::sync::Arc;
use std::time::Duration;

use pgmcp_proto::error::ErrorKind;
use pgmcp_proto::v1::InfoRequest;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::Inner;
use super::members::Member;
use super::resending;
use crate::errors::GatewayError;

/// The worker's gRPC service, as registered with its health service.
const SERVICE: &str = "pgmcp.v1.Worker";
/// First wait before watching again after a failure; doubles up to the max.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How long `Info` may take.
const INFO_TIMEOUT: Duration = Duration::from_secs(2);

/// Watches `member` until it leaves the fleet.
pub(super) async fn watch(member: Arc<Member>, fleet: Arc<Inner>) {
    let health = HealthClient::new(member.channel.clone());
    let mut backoff = MIN_BACKOFF;
    loop {
        // A watch the worker never saw (its connection closed under it) is
        // no sign of ill health: it is sent again at once.
        let started = resending(|| {
            let mut health = health.clone();
            let request = HealthCheckRequest {
                service: SERVICE.to_string(),
            };
            async move { health.watch(request).await }
        });
        let started = tokio::select! {
            _ = member.stop.cancelled() => return,
            r = started => r,
        };
        let why = match started {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    let next = tokio::select! {
                        _ = member.stop.cancelled() => return,
                        _ = member.recheck.notified() => break "a call failed; checking again".to_string(),
                        m = stream.message() => m,
                    };
                    match next {
                        Ok(Some(m)) if m.status() == ServingStatus::Serving => {
                            match refresh_info(&member).await {
                                Ok(()) => {
                                    fleet.set_health(&member, true, "serving");
                                    backoff = MIN_BACKOFF;
                                }
                                Err(e) => {
                                    fleet.set_health(&member, false, &e);
                                }
                            }
                        }
                        Ok(Some(m)) => {
                            fleet.set_health(
                                &member,
                                false,
                                &format!("health is {}", m.status().as_str_name()),
                            );
                        }
                        Ok(None) => break "health stream ended".to_string(),
                        Err(status) => break format!("health stream failed: {}", status.message()),
                    }
                }
            }
            Err(status) => format!("health check failed: {}", status.message()),
        };
        fleet.set_health(&member, false, &why);
        tokio::select! {
            _ = member.stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Asks the worker which databases it serves. A worker that answers but
/// refuses (e.g. this gateway's credentials) keeps the refusal, so calls
/// can report it instead of "unreachable". A call the worker never
/// processed (its connection closed under it) is sent again.
async fn refresh_info(member: &Member) -> Result<(), String> {
    let info = resending(|| {
        let mut client = member.client.clone();
        let mut request = tonic::Request::new(InfoRequest {});
        request.set_timeout(INFO_TIMEOUT);
        async move { client.info(request).await }
    });
    match tokio::time::timeout(INFO_TIMEOUT, info).await {
        Ok(Ok(info)) => {
            let names = info
                .into_inner()
                .targets
                .into_iter()
                .map(|t| t.name)
                .collect();
            member.set_targets(names);
            member.set_refusal(None);
            Ok(())
        }
        Ok(Err(status)) => {
            let why = format!("Info failed: {}", status.message());
            let err = GatewayError::from(status);
            if err.kind() != ErrorKind::Unavailable {
                tracing::error!(worker = %member.url, error = %why, "worker refuses this gateway; check --worker-token and the TLS settings");
                member.set_refusal(Some(err));
            }
            Err(why)
        }
        Err(_) => Err("Info did not answer in time".to_string()),
    }
}
