//! Logging setup and the Prometheus metrics the admin listener serves.
//!
//! Metrics live in one process-wide [`Metrics`] (see [`metrics`]) so that any
//! part of the gateway (proxy, forward-auth, portal ceremonies, config reload)
//! can count without threading a handle through. Label values are bounded:
//! rule names come from the config, outcomes and results from fixed lists.
//! Nothing here ever records a token or cookie value.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder,
};

/// Set up `tracing` output on stderr: JSON lines when `json`, text otherwise.
/// The filter comes from `RUST_LOG` (default `info`). Calling it twice is harmless.
///
/// pingora's own debug and trace lines print whole request headers (cookies
/// among them), so they are never written, whatever `RUST_LOG` asks for.
pub fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::prelude::*;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let no_header_dumps = filter_fn(|meta| {
        !(meta.target().starts_with("pingora") && *meta.level() > tracing::Level::INFO)
    });
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(no_header_dumps).with_filter(filter))
        .try_init();
}

/// Every counter and histogram stepgate exports. A metric whose definition
/// were invalid would be `None` and count nothing; the definitions are constant.
pub struct Metrics {
    registry: Registry,
    requests: Option<IntCounterVec>,
    ceremonies: Option<IntCounterVec>,
    signins: Option<IntCounterVec>,
    store_latency: Option<HistogramVec>,
    /// The `app_session` series (one per request to a passkey rule), resolved once.
    app_session_ok: Option<Histogram>,
    app_session_error: Option<Histogram>,
    reloads: Option<IntCounterVec>,
}

/// The outcomes a request is counted under (`Verdict::outcome`, and
/// `bad_request` for a request refused before any rule could be judged).
pub const OUTCOMES: [&str; 8] = [
    "allow",
    "login",
    "step_up",
    "deny",
    "token_refused",
    "rate_limited",
    "unavailable",
    "bad_request",
];

/// The `stepgate_requests_total` counters of one config, resolved when the
/// config is installed: one per outcome for each rule (by index) and for
/// requests no rule matched, so counting a request is an index and an atomic
/// add, not a label lookup.
#[derive(Debug, Default)]
pub struct RequestCounters {
    rules: Vec<Vec<IntCounter>>,
    unmatched: Vec<IntCounter>,
}

impl RequestCounters {
    /// Counters for the rules named `rules`, in order.
    pub fn for_rules<'a>(rules: impl Iterator<Item = &'a str>) -> Self {
        let m = metrics();
        RequestCounters {
            rules: rules.map(|r| m.outcome_counters(r)).collect(),
            unmatched: m.outcome_counters("-"),
        }
    }

    /// Count one request judged under the rule at `index` (named `rule`), or
    /// under no rule. A rule or outcome these counters do not know (a config
    /// installed without them) is counted through the label lookup.
    pub fn count(&self, index: Option<usize>, rule: &str, outcome: &str) {
        let set = match index {
            Some(i) => self.rules.get(i),
            None => Some(&self.unmatched),
        };
        let counter = set
            .zip(OUTCOMES.iter().position(|o| *o == outcome))
            .and_then(|(set, o)| set.get(o));
        match counter {
            Some(c) => c.inc(),
            None => metrics().request(rule, outcome),
        }
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> Option<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels).ok()?;
    registry.register(Box::new(c.clone())).ok()?;
    Some(c)
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let requests = counter(
            &registry,
            "stepgate_requests_total",
            "Requests judged, by rule and outcome",
            &["rule", "outcome"],
        );
        let ceremonies = counter(
            &registry,
            "stepgate_ceremonies_total",
            "Passkey ceremonies, by kind (enroll, sign_in, step_up, mint_token) and result",
            &["kind", "result"],
        );
        let signins = counter(
            &registry,
            "stepgate_signins_total",
            "Browsers sent on to an app by the portal, by rule and how: silent (the portal session already satisfied the rule) or ceremony",
            &["rule", "how"],
        );
        let reloads = counter(
            &registry,
            "stepgate_config_reloads_total",
            "Config reloads, by result",
            &["result"],
        );
        let store_latency = HistogramVec::new(
            HistogramOpts::new(
                "stepgate_store_latency_seconds",
                "Latency of store calls made while judging requests",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            ]),
            &["op", "result"],
        )
        .ok()
        .filter(|h| registry.register(Box::new(h.clone())).is_ok());
        let series = |result: &str| {
            store_latency
                .as_ref()
                .map(|h| h.with_label_values(&["app_session", result]))
        };
        Metrics {
            registry,
            requests,
            ceremonies,
            signins,
            app_session_ok: series("ok"),
            app_session_error: series("error"),
            store_latency,
            reloads,
        }
    }

    /// Count one request judged under `rule` (`"-"` when none matched).
    /// The request path counts through [`RequestCounters`] instead.
    pub fn request(&self, rule: &str, outcome: &str) {
        if let Some(c) = &self.requests {
            c.with_label_values(&[rule, outcome]).inc();
        }
    }

    /// One `stepgate_requests_total` counter per outcome for `rule`, resolved
    /// now (empty when metrics are off).
    fn outcome_counters(&self, rule: &str) -> Vec<IntCounter> {
        match &self.requests {
            Some(c) => OUTCOMES
                .iter()
                .map(|o| c.with_label_values(&[rule, o]))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Count one passkey ceremony; `kind`: `enroll`, `sign_in`, `step_up`,
    /// `mint_token`; `result`: `ok` or the refusal's label.
    pub fn ceremony(&self, kind: &str, result: &str) {
        if let Some(c) = &self.ceremonies {
            c.with_label_values(&[kind, result]).inc();
        }
    }

    /// Count a browser the portal sent on for `rule`; `how`: `silent` (no
    /// ceremony was needed) or `ceremony`.
    pub fn signin(&self, rule: &str, how: &str) {
        if let Some(c) = &self.signins {
            c.with_label_values(&[rule, how]).inc();
        }
    }

    /// Record how long a store call took.
    pub fn store_call(&self, op: &str, ok: bool, took: Duration) {
        let (hot, result) = if ok {
            (&self.app_session_ok, "ok")
        } else {
            (&self.app_session_error, "error")
        };
        match (op, hot, &self.store_latency) {
            ("app_session", Some(h), _) => h.observe(took.as_secs_f64()),
            (_, _, Some(h)) => h
                .with_label_values(&[op, result])
                .observe(took.as_secs_f64()),
            _ => {}
        }
    }

    /// Count a config reload.
    pub fn reload(&self, ok: bool) {
        if let Some(c) = &self.reloads {
            c.with_label_values(&[if ok { "ok" } else { "error" }])
                .inc();
        }
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if encoder.encode(&self.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counted_series() {
        let m = metrics();
        m.request("telemetry-test", "allow");
        m.ceremony("step_up", "ok");
        m.store_call("app_session", true, Duration::from_millis(2));
        m.reload(true);
        let text = m.render();
        assert!(
            text.contains("stepgate_requests_total{outcome=\"allow\",rule=\"telemetry-test\"}")
        );
        assert!(text.contains("stepgate_ceremonies_total"));
        assert!(text.contains("stepgate_store_latency_seconds_bucket"));
        assert!(text.contains("stepgate_config_reloads_total{result=\"ok\"}"));
    }

    #[test]
    fn resolved_counters_count_like_the_label_lookup() {
        let c = RequestCounters::for_rules(["counters-a", "counters-b"].into_iter());
        c.count(Some(1), "counters-b", "deny");
        c.count(Some(1), "counters-b", "deny");
        c.count(None, "-", "bad_request");
        // A rule index these counters do not know still counts, by label.
        c.count(Some(7), "counters-late", "allow");
        let text = metrics().render();
        assert!(
            text.contains("stepgate_requests_total{outcome=\"deny\",rule=\"counters-b\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("stepgate_requests_total{outcome=\"allow\",rule=\"counters-late\"} 1")
        );
        assert!(text.contains("stepgate_requests_total{outcome=\"bad_request\",rule=\"-\"}"));
        metrics().store_call("app_session", false, Duration::from_millis(1));
        assert!(
            metrics().render().contains(
                "stepgate_store_latency_seconds_count{op=\"app_session\",result=\"error\"}"
            )
        );
    }

    #[test]
    fn audited_ceremonies_are_counted() {
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        crate::audit::ceremony(
            crate::audit::CeremonyKind::StepUp,
            Some("alice"),
            Some("admin"),
            Some("key"),
            "user_not_verified",
            ip,
        );
        let text = metrics().render();
        assert!(
            text.contains(
                "stepgate_ceremonies_total{kind=\"step_up\",result=\"user_not_verified\"}"
            ),
            "{text}"
        );
    }
}
