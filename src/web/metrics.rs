//! The daemon's Prometheus metrics (SPEC §11 names them), kept with the
//! official client. No I/O: the server encodes them on a scrape.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PassLabels {
    trigger: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DriftLabels {
    service: String,
    kind: String,
}

pub struct Metrics {
    registry: Registry,
    passes: Family<PassLabels, Counter>,
    duration: Histogram,
    desired: Family<ServiceLabels, Gauge>,
    running: Family<ServiceLabels, Gauge>,
    drift: Family<DriftLabels, Counter>,
    backoffs: Family<ServiceLabels, Gauge>,
    file_valid: Gauge,
    last_success: Gauge<f64, AtomicU64>,
    engine_connected: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("muster");
        let m = Metrics {
            passes: Family::default(),
            // 10ms to about 5 minutes: an idle pass to a long rolling update.
            duration: Histogram::new([
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
            ]),
            desired: Family::default(),
            running: Family::default(),
            drift: Family::default(),
            backoffs: Family::default(),
            file_valid: Gauge::default(),
            last_success: Gauge::default(),
            engine_connected: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "reconcile_passes",
            "Passes of the pipeline, by what triggered them and how they ended",
            m.passes.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long a pass of the pipeline took",
            m.duration.clone(),
        );
        registry.register(
            "containers_desired",
            "Containers the file asks for, per service",
            m.desired.clone(),
        );
        registry.register(
            "containers_running",
            "Containers running on the engine, per service",
            m.running.clone(),
        );
        registry.register(
            "drift_events",
            "Engine events that made the daemon act, per service and kind",
            m.drift.clone(),
        );
        registry.register(
            "crashloop_backoffs",
            "Containers whose restarts wait out a back-off, per service",
            m.backoffs.clone(),
        );
        registry.register(
            "file_valid",
            "1 while the file is valid, 0 while it is not",
            m.file_valid.clone(),
        );
        registry.register(
            "last_apply_success_timestamp_seconds",
            "Unix time of the last apply that succeeded",
            m.last_success.clone(),
        );
        registry.register(
            "engine_connected",
            "1 while the daemon is connected to its engine",
            m.engine_connected.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn pass(&self, trigger: &'static str, outcome: &'static str, seconds: f64) {
        self.passes
            .get_or_create(&PassLabels { trigger, outcome })
            .inc();
        self.duration.observe(seconds);
    }

    pub fn applied_at(&self, unix_seconds: f64) {
        self.last_success.set(unix_seconds);
    }

    pub fn file_valid(&self, valid: bool) {
        self.file_valid.set(i64::from(valid));
    }

    pub fn engine_connected(&self, connected: bool) {
        self.engine_connected.set(i64::from(connected));
    }

    pub fn drift(&self, service: &str, kind: &str) {
        self.drift
            .get_or_create(&DriftLabels {
                service: service.to_string(),
                kind: kind.to_string(),
            })
            .inc();
    }

    /// Desired and running containers per service: services gone from the
    /// file drop out.
    pub fn containers(&self, counts: &BTreeMap<String, (u32, usize)>) {
        set_all(
            &self.desired,
            counts.iter().map(|(s, c)| (s, i64::from(c.0))),
        );
        set_all(
            &self.running,
            counts
                .iter()
                .map(|(s, c)| (s, i64::try_from(c.1).unwrap_or(i64::MAX))),
        );
    }

    /// Containers in back-off per service, for every service of the file.
    pub fn backoffs(&self, per_service: &BTreeMap<String, usize>) {
        set_all(
            &self.backoffs,
            per_service
                .iter()
                .map(|(s, n)| (s, i64::try_from(*n).unwrap_or(i64::MAX))),
        );
    }
}

fn set_all<'a>(
    family: &Family<ServiceLabels, Gauge>,
    values: impl Iterator<Item = (&'a String, i64)>,
) {
    family.clear();
    for (service, v) in values {
        family
            .get_or_create(&ServiceLabels {
                service: service.clone(),
            })
            .set(v);
    }
}

/// The `trigger` label of a pass, from the first reason the daemon gave
/// for it: a handful of kinds, never a container's or file's name.
pub fn trigger_kind(reason: &str) -> &'static str {
    match reason {
        "start" => "start",
        "resync" => "resync",
        "SIGHUP" => "signal",
        "engine is back" => "reconnect",
        r if r.ends_with(" saved") => "file",
        r if r.ends_with(" back-off over") => "backoff",
        _ => "event",
    }
}

/// The `kind` label of a drift event: the engine's action, as a word
/// (`health_status: unhealthy` → `health_status_unhealthy`).
pub fn drift_kind(action: &str) -> String {
    action
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(40)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_specs() {
        let m = Metrics::default();
        m.pass("file", "applied", 0.2);
        m.drift("web", "die");
        m.containers(&BTreeMap::from([("web".to_string(), (3, 2))]));
        m.backoffs(&BTreeMap::from([("web".to_string(), 1)]));
        m.file_valid(true);
        m.engine_connected(true);
        m.applied_at(1.5);
        let text = m.encode();
        for line in [
            "muster_reconcile_passes_total{trigger=\"file\",outcome=\"applied\"} 1",
            "muster_reconcile_duration_seconds_count 1",
            "muster_containers_desired{service=\"web\"} 3",
            "muster_containers_running{service=\"web\"} 2",
            "muster_drift_events_total{service=\"web\",kind=\"die\"} 1",
            "muster_crashloop_backoffs{service=\"web\"} 1",
            "muster_file_valid 1",
            "muster_last_apply_success_timestamp_seconds 1.5",
            "muster_engine_connected 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }

    #[test]
    fn services_gone_from_the_file_drop_out() {
        let m = Metrics::default();
        m.containers(&BTreeMap::from([("old".to_string(), (1, 1))]));
        m.containers(&BTreeMap::from([("new".to_string(), (2, 0))]));
        let text = m.encode();
        assert!(!text.contains("service=\"old\""), "{text}");
        assert!(text.contains("muster_containers_desired{service=\"new\"} 2"));
    }

    #[test]
    fn trigger_labels_are_few() {
        assert_eq!(trigger_kind("services.toml saved"), "file");
        assert_eq!(trigger_kind("shop-web-1 back-off over"), "backoff");
        assert_eq!(trigger_kind("shop-web-1 died (exit 1)"), "event");
        assert_eq!(trigger_kind("start"), "start");
        assert_eq!(
            drift_kind("health_status: unhealthy"),
            "health_status_unhealthy"
        );
    }
}
