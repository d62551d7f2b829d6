//! Leader election on a coordination.k8s.io Lease, as client-go's `leaderelection` with the
//! `leases` resource lock: one candidate holds the Lease and renews it every retry period; the
//! others take it over once it has not changed for its lease duration.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};

/// Upstream's component defaults (`--leader-elect-lease-duration` and friends).
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);
/// client-go's `JitterFactor`: candidates wait between 1 and 2.2 retry periods.
const JITTER_FACTOR: f64 = 1.2;

#[derive(Debug, Clone)]
pub struct LeaderElectionConfig {
    pub namespace: String,
    pub name: String,
    /// `<hostname>_<uuid>`, as kube-scheduler and kube-controller-manager build it.
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    /// The Lease `kube-system/<name>` with upstream's timings.
    pub fn new(name: &str, identity: &str) -> Self {
        Self {
            namespace: "kube-system".into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: LEASE_DURATION,
            renew_deadline: RENEW_DEADLINE,
            retry_period: RETRY_PERIOD,
        }
    }
}

/// `<hostname>_<uuid>`: unique even for two candidates on one host.
pub fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

/// What a candidate does with the Lease it just read.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Write this spec: the Lease is absent, expired, released or already ours.
    Write(LeaseSpec),
    /// Someone else holds a Lease that is still valid.
    Wait { holder: String },
}

/// client-go's `tryAcquireOrRenew` decision. `unchanged_for` is how long this candidate has
/// seen the Lease's current content unchanged (expiry runs on the observer's clock, never on
/// the holder's timestamps, so clock skew between hosts does not matter).
pub fn decide(
    current: Option<&LeaseSpec>,
    unchanged_for: Duration,
    config: &LeaderElectionConfig,
    now: Timestamp,
) -> Decision {
    let fresh = |transitions: i32, acquired: Timestamp| LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(config.lease_duration.as_secs() as i32),
        acquire_time: Some(MicroTime(acquired)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    };
    let Some(current) = current else {
        return Decision::Write(fresh(0, now));
    };
    let holder = current.holder_identity.clone().unwrap_or_default();
    let transitions = current.lease_transitions.unwrap_or(0);
    if holder == config.identity {
        let acquired = current.acquire_time.as_ref().map_or(now, |t| t.0);
        return Decision::Write(fresh(transitions, acquired));
    }
    let duration = current
        .lease_duration_seconds
        .map_or(config.lease_duration, |s| {
            Duration::from_secs(s.max(0) as u64)
        });
    if !holder.is_empty() && unchanged_for < duration {
        return Decision::Wait { holder };
    }
    Decision::Write(fresh(transitions + 1, now))
}

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    Leading,
    HeldBy(String),
    /// Lost a write race or the request failed: try again.
    Retry,
}

struct Elector {
    api: Api<Lease>,
    config: LeaderElectionConfig,
    /// The Lease content last seen, and when this candidate first saw it.
    observed: Option<(Option<LeaseSpec>, Instant)>,
}

impl Elector {
    fn observe(&mut self, spec: Option<LeaseSpec>) -> Duration {
        match &self.observed {
            Some((seen, at)) if *seen == spec => at.elapsed(),
            _ => {
                self.observed = Some((spec, Instant::now()));
                Duration::ZERO
            }
        }
    }

    async fn try_acquire_or_renew(&mut self) -> Attempt {
        let name = self.config.name.clone();
        let current = match self.api.get_opt(&name).await {
            Ok(lease) => lease,
            Err(error) => {
                tracing::warn!(lease = %name, %error, "reading the leader lease failed");
                return Attempt::Retry;
            }
        };
        let spec = current.as_ref().map(|l| l.spec.clone().unwrap_or_default());
        let unchanged_for = self.observe(spec.clone());
        let wanted = match decide(spec.as_ref(), unchanged_for, &self.config, Timestamp::now()) {
            Decision::Wait { holder } => return Attempt::HeldBy(holder),
            Decision::Write(wanted) => wanted,
        };
        // Optimistic concurrency: create fails if someone created it first, replace carries
        // the resourceVersion we read and fails if someone wrote in between.
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(wanted),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                lease.spec = Some(wanted);
                self.api
                    .replace(&name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(written) => {
                self.observed = Some((written.spec, Instant::now()));
                Attempt::Leading
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Attempt::Retry,
            Err(error) => {
                tracing::warn!(lease = %name, %error, "writing the leader lease failed");
                Attempt::Retry
            }
        }
    }

    fn jittered_retry(&self) -> Duration {
        let factor = 1.0 + rand::random::<f64>() * JITTER_FACTOR;
        self.config.retry_period.mul_f64(factor)
    }

    async fn acquire(&mut self) {
        loop {
            if self.try_acquire_or_renew().await == Attempt::Leading {
                return;
            }
            tokio::time::sleep(self.jittered_retry()).await;
        }
    }

    /// Renews every retry period; returns once leadership is lost: another holder took the
    /// Lease, or no renewal succeeded within the renew deadline.
    async fn keep_renewing(&mut self) {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            let left = self.config.renew_deadline.saturating_sub(renewed.elapsed());
            match tokio::time::timeout(left, self.try_acquire_or_renew()).await {
                Ok(Attempt::Leading) => renewed = Instant::now(),
                Ok(Attempt::HeldBy(holder)) => {
                    tracing::warn!(lease = %self.config.name, %holder, "leader lease taken over");
                    return;
                }
                Ok(Attempt::Retry) | Err(_) => {}
            }
            if renewed.elapsed() >= self.config.renew_deadline {
                return;
            }
        }
    }
}

/// Campaigns for the Lease and runs `work` while leading. When the Lease is lost, `work` is
/// cancelled (its future dropped) and, with `exit_on_loss`, an error is returned as upstream
/// components exit; otherwise the candidate campaigns again. Returns when `work` ends.
pub async fn run_while_leading<F, Fut>(
    client: Client,
    config: LeaderElectionConfig,
    exit_on_loss: bool,
    mut work: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let lease = format!("{}/{}", config.namespace, config.name);
    let mut elector = Elector {
        api: Api::namespaced(client, &config.namespace),
        config: config.clone(),
        observed: None,
    };
    loop {
        eprintln!(
            "timonel: attempting to acquire leader lease {lease} as {}",
            config.identity
        );
        elector.acquire().await;
        eprintln!(
            "timonel: successfully acquired lease {lease} as {}",
            config.identity
        );
        let outcome = tokio::select! {
            result = work() => Some(result),
            () = elector.keep_renewing() => None,
        };
        if let Some(result) = outcome {
            return result;
        }
        eprintln!("timonel: leaderelection lost: {lease}");
        if exit_on_loss {
            anyhow::bail!("leaderelection lost: {lease}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    fn config(me: &str) -> LeaderElectionConfig {
        LeaderElectionConfig::new("kube-scheduler", me)
    }

    fn held(holder: &str, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(MicroTime(ts(0))),
            renew_time: Some(MicroTime(ts(5))),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    fn written(decision: Decision) -> LeaseSpec {
        match decision {
            Decision::Write(spec) => spec,
            other => panic!("expected a write, got {other:?}"),
        }
    }

    #[test]
    fn an_absent_lease_is_created_with_no_transitions() {
        let spec = written(decide(None, Duration::ZERO, &config("me"), ts(10)));
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.lease_transitions, Some(0));
        assert_eq!(spec.acquire_time, Some(MicroTime(ts(10))));
        assert_eq!(spec.renew_time, Some(MicroTime(ts(10))));
    }

    #[test]
    fn the_holder_renews_keeping_acquire_time_and_transitions() {
        let spec = written(decide(
            Some(&held("me", 3)),
            Duration::from_secs(60),
            &config("me"),
            ts(20),
        ));
        assert_eq!(spec.acquire_time, Some(MicroTime(ts(0))));
        assert_eq!(spec.renew_time, Some(MicroTime(ts(20))));
        assert_eq!(spec.lease_transitions, Some(3));
    }

    #[test]
    fn a_valid_lease_of_another_holder_is_waited_for() {
        let decision = decide(
            Some(&held("other", 0)),
            Duration::from_secs(14),
            &config("me"),
            ts(20),
        );
        assert_eq!(
            decision,
            Decision::Wait {
                holder: "other".into()
            }
        );
    }

    #[test]
    fn an_expired_lease_is_taken_over_and_counts_a_transition() {
        let spec = written(decide(
            Some(&held("other", 2)),
            Duration::from_secs(15),
            &config("me"),
            ts(30),
        ));
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(3));
        assert_eq!(spec.acquire_time, Some(MicroTime(ts(30))));
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let mut released = held("", 1);
        released.holder_identity = None;
        let spec = written(decide(
            Some(&released),
            Duration::ZERO,
            &config("me"),
            ts(1),
        ));
        assert_eq!(spec.lease_transitions, Some(2));
    }

    #[test]
    fn identities_are_host_and_uuid() {
        let a = identity();
        let b = identity();
        assert_ne!(a, b);
        let (host, id) = a.rsplit_once('_').unwrap();
        assert!(!host.is_empty());
        assert_eq!(id.len(), 36);
    }
}
