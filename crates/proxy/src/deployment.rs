//! A deployment: one upstream model behind a public model name, and its live health counters
//! used by the routing strategies and cooldown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tollgate_ledger::ModelPrice;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenAI itself or any server that speaks its API; the name is LiteLLM's provider prefix.
    OpenAiCompatible(&'static str),
    Azure,
    Anthropic,
}

impl ProviderKind {
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::OpenAiCompatible(n) => n,
            ProviderKind::Azure => "azure",
            ProviderKind::Anthropic => "anthropic",
        }
    }
}

/// Where the provider key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    None,
    Key(String),
    /// Configured as `os.environ/VAR`, but the variable was unset at start.
    MissingEnv(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::None => f.write_str("None"),
            Credential::Key(_) => f.write_str("Key(***)"),
            Credential::MissingEnv(v) => write!(f, "MissingEnv({v})"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DeploymentSpec {
    /// `model_info.id`, or the deployment's index in `model_list`.
    pub id: String,
    pub model_name: String,
    pub provider: ProviderKind,
    /// May contain `*` for wildcard deployments; expanded per request.
    pub upstream_model: String,
    pub api_base: Option<url::Url>,
    pub credential: Credential,
    pub api_version: Option<String>,
    pub organization: Option<String>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub timeout: Option<Duration>,
    pub max_retries: Option<u32>,
    pub mock_response: Option<String>,
    pub default_params: serde_json::Map<String, serde_json::Value>,
    /// Price set on the deployment itself, which wins over the price table.
    pub price_override: Option<ModelPrice>,
    /// `model_info.base_model`: the name to price by when the upstream name is not in the table.
    pub base_model: Option<String>,
    pub max_output_tokens: Option<u64>,
}

/// Live counters for one deployment. All lock-free except the failure window, touched only on
/// failures.
#[derive(Debug)]
pub struct Deployment {
    pub spec: DeploymentSpec,
    /// Parsed upstream URLs per call type for OpenAI-style providers, so no request pays for URL
    /// parsing (IDNA host processing showed up in profiles).
    pub urls: [Option<http::Uri>; 3],
    /// The ready `Authorization: Bearer …` value for OpenAI-style providers (marked sensitive).
    pub bearer: Option<http::HeaderValue>,
    pub in_flight: AtomicU64,
    /// Exponentially weighted latency in microseconds; 0 = not measured yet.
    pub latency_ewma_us: AtomicU64,
    minute: AtomicU64,
    minute_requests: AtomicU64,
    minute_tokens: AtomicU64,
    cooldown_until_ms: AtomicU64,
    failures: Mutex<(u64, u32)>,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Deployment {
    pub fn new(spec: DeploymentSpec) -> Deployment {
        let openai_style = matches!(spec.provider, ProviderKind::OpenAiCompatible(_));
        let url_for = |path: &str| {
            let base = spec.api_base.as_ref()?;
            if !openai_style {
                return None;
            }
            let joined = format!("{}/{}", base.as_str().trim_end_matches('/'), path);
            joined.parse::<http::Uri>().ok()
        };
        let urls = [
            url_for("chat/completions"),
            url_for("completions"),
            url_for("embeddings"),
        ];
        let bearer = match (&spec.credential, openai_style) {
            (Credential::Key(k), true) => http::HeaderValue::from_str(&format!("Bearer {k}"))
                .ok()
                .map(|mut v| {
                    v.set_sensitive(true);
                    v
                }),
            _ => None,
        };
        Deployment {
            urls,
            bearer,
            spec,
            in_flight: AtomicU64::new(0),
            latency_ewma_us: AtomicU64::new(0),
            minute: AtomicU64::new(0),
            minute_requests: AtomicU64::new(0),
            minute_tokens: AtomicU64::new(0),
            cooldown_until_ms: AtomicU64::new(0),
            failures: Mutex::new((0, 0)),
        }
    }

    pub fn is_cooling_down(&self, now: u64) -> bool {
        self.cooldown_until_ms.load(Ordering::Relaxed) > now
    }

    fn roll_minute(&self, now: u64) {
        let m = now / 60_000;
        if self.minute.swap(m, Ordering::Relaxed) != m {
            self.minute_requests.store(0, Ordering::Relaxed);
            self.minute_tokens.store(0, Ordering::Relaxed);
        }
    }

    /// Whether this deployment's own rpm/tpm leave room for one more call this minute.
    pub fn has_capacity(&self, now: u64) -> bool {
        self.roll_minute(now);
        let rpm_ok = self
            .spec
            .rpm
            .is_none_or(|l| self.minute_requests.load(Ordering::Relaxed) < l);
        let tpm_ok = self
            .spec
            .tpm
            .is_none_or(|l| self.minute_tokens.load(Ordering::Relaxed) < l);
        rpm_ok && tpm_ok
    }

    pub fn minute_tokens(&self) -> u64 {
        self.minute_tokens.load(Ordering::Relaxed)
    }

    pub fn on_start(&self) {
        self.roll_minute(now_ms());
        self.minute_requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub fn on_end(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn on_success(&self, latency: Duration, tokens: u64) {
        self.minute_tokens.fetch_add(tokens, Ordering::Relaxed);
        let sample = latency.as_micros().min(u64::MAX as u128) as u64;
        let old = self.latency_ewma_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            (old * 7 + sample) / 8
        };
        self.latency_ewma_us.store(new.max(1), Ordering::Relaxed);
    }

    /// Counts a failure in the current minute; past `allowed_fails`, cools the deployment down.
    /// Returns true when it entered cooldown.
    pub fn on_failure(&self, allowed_fails: u32, cooldown: Duration, can_cool: bool) -> bool {
        let now = now_ms();
        let minute = now / 60_000;
        let count = match self.failures.lock() {
            Ok(mut g) => {
                if g.0 != minute {
                    *g = (minute, 0);
                }
                g.1 += 1;
                g.1
            }
            Err(_) => return false,
        };
        if can_cool && count > allowed_fails {
            let until = now + cooldown.as_millis() as u64;
            self.cooldown_until_ms.store(until, Ordering::Relaxed);
            if let Ok(mut g) = self.failures.lock() {
                g.1 = 0;
            }
            tracing::warn!(
                deployment = %self.spec.id,
                model_name = %self.spec.model_name,
                cooldown_secs = cooldown.as_secs_f64(),
                "deployment cooled down after repeated failures"
            );
            return true;
        }
        false
    }
}
