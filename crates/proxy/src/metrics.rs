//! Prometheus metrics, kept as atomics per (route, model) series. Labels are only route names
//! and configured model names (wildcard requests are counted under their pattern), so the
//! number of series is bounded by the config, never by what callers send.

use foldhash::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"{b}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum{{{labels}}} {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

#[derive(Default)]
pub struct Series {
    /// Responses by status class: 1xx..5xx at index 0..4.
    by_class: [AtomicU64; 5],
    upstream_errors: [AtomicU64; 5],
    latency: Histogram,
    ttft: Histogram,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
}

#[derive(Default)]
pub struct Metrics {
    series: RwLock<HashMap<(&'static str, String), Arc<Series>>>,
}

fn class_index(status: u16) -> usize {
    ((status / 100).clamp(1, 5) - 1) as usize
}

impl Series {
    pub fn observe_request(&self, status: u16, latency: Duration) {
        self.by_class[class_index(status)].fetch_add(1, Ordering::Relaxed);
        self.latency.observe(latency);
    }

    pub fn observe_ttft(&self, ttft: Duration) {
        self.ttft.observe(ttft);
    }

    pub fn add_tokens(&self, prompt: u64, completion: u64) {
        self.prompt_tokens.fetch_add(prompt, Ordering::Relaxed);
        self.completion_tokens
            .fetch_add(completion, Ordering::Relaxed);
    }
}

impl Metrics {
    /// The series for (route, model), created on first use. Callers that record several things
    /// about one call take the handle once.
    pub fn series(&self, route: &'static str, model: &str) -> Option<Arc<Series>> {
        if let Ok(map) = self.series.read() {
            if let Some(s) = map.get(&(route, model.to_string())) {
                return Some(s.clone());
            }
        }
        let mut map = self.series.write().ok()?;
        Some(map.entry((route, model.to_string())).or_default().clone())
    }

    pub fn observe_request(
        &self,
        route: &'static str,
        model: &str,
        status: u16,
        latency: Duration,
    ) {
        if let Some(s) = self.series(route, model) {
            s.by_class[class_index(status)].fetch_add(1, Ordering::Relaxed);
            s.latency.observe(latency);
        }
    }

    pub fn observe_ttft(&self, route: &'static str, model: &str, ttft: Duration) {
        if let Some(s) = self.series(route, model) {
            s.ttft.observe(ttft);
        }
    }

    pub fn add_tokens(&self, route: &'static str, model: &str, prompt: u64, completion: u64) {
        if let Some(s) = self.series(route, model) {
            s.prompt_tokens.fetch_add(prompt, Ordering::Relaxed);
            s.completion_tokens.fetch_add(completion, Ordering::Relaxed);
        }
    }

    pub fn upstream_error(&self, route: &'static str, model: &str, status: u16) {
        if let Some(s) = self.series(route, model) {
            s.upstream_errors[class_index(status)].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text exposition. `extra` lets the caller append series it owns (counters by
    /// their `_total` name, gauges otherwise).
    pub fn render(&self, extra: &[(&str, &str, u64)]) -> String {
        let mut out = String::with_capacity(4096);
        let Ok(map) = self.series.read() else {
            return out;
        };
        let mut keys: Vec<_> = map.keys().cloned().collect();
        keys.sort();
        let label =
            |route: &str, model: &str| format!("route=\"{route}\",model=\"{}\"", escape(model));
        out.push_str("# HELP tollgate_requests_total Requests answered, by route, model and status class.\n# TYPE tollgate_requests_total counter\n");
        for k in &keys {
            let s = &map[k];
            for (i, c) in s.by_class.iter().enumerate() {
                let v = c.load(Ordering::Relaxed);
                if v > 0 {
                    let _ = writeln!(
                        out,
                        "tollgate_requests_total{{{},status_class=\"{}xx\"}} {v}",
                        label(k.0, &k.1),
                        i + 1
                    );
                }
            }
        }
        out.push_str("# HELP tollgate_upstream_errors_total Failed upstream attempts, by model and status class.\n# TYPE tollgate_upstream_errors_total counter\n");
        for k in &keys {
            let s = &map[k];
            for (i, c) in s.upstream_errors.iter().enumerate() {
                let v = c.load(Ordering::Relaxed);
                if v > 0 {
                    let _ = writeln!(
                        out,
                        "tollgate_upstream_errors_total{{{},status_class=\"{}xx\"}} {v}",
                        label(k.0, &k.1),
                        i + 1
                    );
                }
            }
        }
        out.push_str("# HELP tollgate_tokens_total Tokens processed, by model and kind.\n# TYPE tollgate_tokens_total counter\n");
        for k in &keys {
            let s = &map[k];
            let _ = writeln!(
                out,
                "tollgate_tokens_total{{{},kind=\"prompt\"}} {}",
                label(k.0, &k.1),
                s.prompt_tokens.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                out,
                "tollgate_tokens_total{{{},kind=\"completion\"}} {}",
                label(k.0, &k.1),
                s.completion_tokens.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP tollgate_request_duration_seconds Time from request to the end of the answer.\n# TYPE tollgate_request_duration_seconds histogram\n");
        for k in &keys {
            map[k].latency.render(
                &mut out,
                "tollgate_request_duration_seconds",
                &label(k.0, &k.1),
            );
        }
        out.push_str("# HELP tollgate_time_to_first_token_seconds Time from request to the first streamed token.\n# TYPE tollgate_time_to_first_token_seconds histogram\n");
        for k in &keys {
            if map[k].ttft.count.load(Ordering::Relaxed) > 0 {
                map[k].ttft.render(
                    &mut out,
                    "tollgate_time_to_first_token_seconds",
                    &label(k.0, &k.1),
                );
            }
        }
        for (name, help, v) in extra {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.observe_request("chat", "gpt-4o", 200, Duration::from_millis(3));
        m.observe_request("chat", "gpt-4o", 429, Duration::from_millis(1));
        m.add_tokens("chat", "gpt-4o", 10, 5);
        m.upstream_error("chat", "gpt-4o", 503);
        let text = m.render(&[("tollgate_spend_records_dropped_total", "Dropped.", 0)]);
        assert!(text.contains(
            "tollgate_requests_total{route=\"chat\",model=\"gpt-4o\",status_class=\"2xx\"} 1"
        ));
        assert!(text.contains("status_class=\"4xx\"} 1"));
        assert!(text.contains("tollgate_upstream_errors_total{route=\"chat\",model=\"gpt-4o\",status_class=\"5xx\"} 1"));
        assert!(text.contains("kind=\"prompt\"} 10"));
        assert!(text.contains("tollgate_request_duration_seconds_bucket{route=\"chat\",model=\"gpt-4o\",le=\"0.005\"} 2"));
        assert!(text.contains("tollgate_spend_records_dropped_total 0"));
    }
}
