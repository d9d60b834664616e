//! A deployment: one upstream model behind a public model name, and its live health counters
//! used by the routing strategies and cooldown.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tollgate_ledger::ModelPrice;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenAI itself or any server that speaks its API; the name is LiteLLM's provider prefix.
    OpenAiCompatible(&'static str),
    Azure,
    Anthropic,
    /// Google AI Studio's Gemini API (LiteLLM's `gemini/`).
    Gemini,
    /// Google Vertex AI: Gemini and Claude models (LiteLLM's `vertex_ai/`).
    VertexAi,
    /// AWS Bedrock's runtime API (LiteLLM's `bedrock/`), signed with SigV4.
    Bedrock,
}

impl ProviderKind {
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::OpenAiCompatible(n) => n,
            ProviderKind::Azure => "azure",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::VertexAi => "vertex_ai",
            ProviderKind::Bedrock => "bedrock",
        }
    }
}

/// Ready-made parts of a deployment's upstream requests, so no request pays for them.
#[derive(Default)]
pub struct Prepared {
    /// Parsed upstream URLs per call type (IDNA host processing showed up in profiles).
    pub urls: [Option<http::Uri>; 3],
    /// The ready authorization header value (marked sensitive).
    pub auth: Option<http::HeaderValue>,
}

/// Where the provider key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    None,
    Key(String),
    /// Configured as `os.environ/VAR`, but the variable was unset at start.
    MissingEnv(String),
    /// An AWS access key pair (and session token) with the region requests are signed for.
    Aws(AwsCredentials),
}

/// What AWS SigV4 signs with. The secret parts never show in Debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub region: String,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .field("region", &self.region)
            .finish()
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::None => f.write_str("None"),
            Credential::Key(_) => f.write_str("Key(***)"),
            Credential::MissingEnv(v) => write!(f, "MissingEnv({v})"),
            Credential::Aws(a) => write!(f, "Aws({a:?})"),
        }
    }
}

#[derive(Clone)]
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
    /// LiteLLM's `drop_params`: OpenAI parameters the provider can't honour are dropped instead
    /// of refused with a 400.
    pub drop_params: bool,
    /// Project, location and service account of a Vertex AI deployment.
    pub vertex: Option<crate::providers::vertex::Target>,
}

/// `api_base` may carry credentials, so Debug (and any log built from it) shows it redacted.
impl std::fmt::Debug for DeploymentSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploymentSpec")
            .field("id", &self.id)
            .field("model_name", &self.model_name)
            .field("provider", &self.provider)
            .field("upstream_model", &self.upstream_model)
            .field("api_base", &self.api_base.as_ref().map(redact_url))
            .field("credential", &self.credential)
            .field("api_version", &self.api_version)
            .field("organization", &self.organization)
            .field("rpm", &self.rpm)
            .field("tpm", &self.tpm)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("mock_response", &self.mock_response)
            .field("default_params", &self.default_params)
            .field("price_override", &self.price_override)
            .field("base_model", &self.base_model)
            .field("max_output_tokens", &self.max_output_tokens)
            .field("drop_params", &self.drop_params)
            .field("vertex", &self.vertex)
            .finish()
    }
}

/// A URL as it may be shown to people (admins, logs): user info (`user:pass@`) and query values
/// (`?key=…`) are where providers put credentials, so they read `***`; scheme, host, port, path
/// and parameter names stay. A parameter without `=` may itself be a token, so it is masked too.
pub fn redact_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    if !shown.username().is_empty() || shown.password().is_some() {
        let masked = shown
            .set_password(None)
            .and_then(|()| shown.set_username("***"));
        if masked.is_err() {
            return format!("{}://***", url.scheme());
        }
    }
    if let Some(query) = url.query() {
        let masked: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) => format!("{name}=***"),
                None if pair.is_empty() => String::new(),
                None => "***".to_string(),
            })
            .collect();
        shown.set_query(Some(&masked.join("&")));
    }
    if url.fragment().is_some() {
        shown.set_fragment(Some("***"));
    }
    shown.to_string()
}

/// Outlier ejection, after Envoy's: the n-th cooldown in a row lasts `cooldown_time × n`, at most
/// this many times the base…
const MAX_EJECTION_MULTIPLIER: u64 = 10;
/// …and at most this long, unless `cooldown_time` itself is longer.
const MAX_EJECTION_TIME: Duration = Duration::from_secs(300);
/// Share of a model group that may be cooling down at once (Envoy's `max_ejection_percent`). At
/// least one deployment may always be cooled down and at least one always stays routable.
pub(crate) const MAX_EJECTION_PERCENT: usize = 50;

/// Cooldown length for the `ejections`-th ejection in a row.
pub(crate) fn ejection_time(base: Duration, ejections: u32) -> Duration {
    let base_ms = base.as_millis().min(u64::MAX as u128) as u64;
    let grown = base_ms.saturating_mul(u64::from(ejections.max(1)));
    let cap = base_ms
        .saturating_mul(MAX_EJECTION_MULTIPLIER)
        .min(base_ms.max(MAX_EJECTION_TIME.as_millis() as u64));
    Duration::from_millis(grown.min(cap))
}

/// Shared by the deployments of one model group, so that one bad sweep (every deployment failing
/// at once, or the gateway's own network failing) cannot leave the group with nothing to route to.
#[derive(Debug)]
pub(crate) struct EjectionGate {
    /// Each member's `cooldown_until_ms`.
    members: Vec<Arc<AtomicU64>>,
    max_ejected: usize,
    /// Held while deciding, so two concurrent failures cannot both take the last free slot.
    deciding: Mutex<()>,
}

impl EjectionGate {
    pub(crate) fn new(group: &[Arc<Deployment>], max_percent: usize) -> Arc<EjectionGate> {
        let n = group.len();
        let max_ejected = (n * max_percent / 100).max(1).min(n.saturating_sub(1));
        Arc::new(EjectionGate {
            members: group.iter().map(|d| d.cooldown_until_ms.clone()).collect(),
            max_ejected,
            deciding: Mutex::new(()),
        })
    }

    /// Stores `until` as `me`'s cooldown end when the group has room for one more ejection.
    fn try_eject(&self, me: &Arc<AtomicU64>, now: u64, until: u64) -> bool {
        let Ok(_guard) = self.deciding.lock() else {
            return false;
        };
        let others_out = self
            .members
            .iter()
            .filter(|m| !Arc::ptr_eq(m, me) && m.load(Ordering::Relaxed) > now)
            .count();
        if others_out >= self.max_ejected {
            return false;
        }
        me.store(until, Ordering::Relaxed);
        true
    }
}

/// Failures in the current minute and the ejection count they led to.
#[derive(Debug, Default)]
struct Health {
    minute: u64,
    failures: u32,
    /// Ejections in a row not yet paid back by serving well.
    ejections: u32,
    /// One ejection is forgiven for each `decay_step_ms` of successful service counted from here.
    decay_from_ms: u64,
    decay_step_ms: u64,
}

/// Live counters for one deployment. All lock-free except the failure window, touched only on
/// failures (and on successes while an ejection count is left to decay).
pub struct Deployment {
    pub spec: DeploymentSpec,
    /// Parts of every upstream request made ready when the config was loaded.
    pub prepared: Prepared,
    pub in_flight: AtomicU64,
    /// Exponentially weighted latency in microseconds; 0 = not measured yet.
    pub latency_ewma_us: AtomicU64,
    minute: AtomicU64,
    minute_requests: AtomicU64,
    minute_tokens: AtomicU64,
    /// Shared with the group's [`EjectionGate`].
    cooldown_until_ms: Arc<AtomicU64>,
    /// Mirrors `Health::ejections` so successes skip the lock when there is nothing to decay.
    ejections: AtomicU32,
    health: Mutex<Health>,
    gate: OnceLock<Arc<EjectionGate>>,
}

/// Without `prepared`: it holds the upstream URL's credentials and the provider key.
impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("spec", &self.spec)
            .field("in_flight", &self.in_flight)
            .field("latency_ewma_us", &self.latency_ewma_us)
            .field("cooldown_until_ms", &self.cooldown_until_ms)
            .field("ejections", &self.ejections)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Deployment {
    /// `prepared` comes from the deployment's provider (`providers::deploy` does both).
    pub fn new(spec: DeploymentSpec, prepared: Prepared) -> Deployment {
        Deployment {
            prepared,
            spec,
            in_flight: AtomicU64::new(0),
            latency_ewma_us: AtomicU64::new(0),
            minute: AtomicU64::new(0),
            minute_requests: AtomicU64::new(0),
            minute_tokens: AtomicU64::new(0),
            cooldown_until_ms: Arc::new(AtomicU64::new(0)),
            ejections: AtomicU32::new(0),
            health: Mutex::new(Health::default()),
            gate: OnceLock::new(),
        }
    }

    /// Joins this deployment to its model group's ejection limit; the first call wins.
    pub(crate) fn join_group(&self, gate: Arc<EjectionGate>) {
        let _ = self.gate.set(gate);
    }

    /// Ejections in a row not yet forgiven; each makes the next cooldown one base length longer.
    pub fn ejections(&self) -> u32 {
        self.ejections.load(Ordering::Relaxed)
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
        if self.ejections.load(Ordering::Relaxed) > 0 {
            self.decay_at(now_ms());
        }
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

    /// A success: forgives one ejection per base cooldown length served since it came back (or
    /// since the last ejection forgiven), as Envoy lowers its ejection multiplier while healthy.
    pub(crate) fn decay_at(&self, now: u64) {
        let Ok(mut h) = self.health.lock() else {
            return;
        };
        if h.ejections == 0 || h.decay_step_ms == 0 || now < h.decay_from_ms {
            return;
        }
        let steps = (now - h.decay_from_ms) / h.decay_step_ms;
        let forgiven = steps.min(u64::from(h.ejections)) as u32;
        if forgiven > 0 {
            h.ejections -= forgiven;
            h.decay_from_ms += steps * h.decay_step_ms;
            self.ejections.store(h.ejections, Ordering::Relaxed);
        }
    }

    /// Counts a failure in the current minute; past `allowed_fails`, cools the deployment down
    /// for `cooldown` times the number of ejections in a row, unless its group already has as
    /// many deployments cooling down as it may. Returns true when it entered cooldown.
    pub fn on_failure(&self, allowed_fails: u32, cooldown: Duration, can_cool: bool) -> bool {
        self.on_failure_at(now_ms(), allowed_fails, cooldown, can_cool)
    }

    pub(crate) fn on_failure_at(
        &self,
        now: u64,
        allowed_fails: u32,
        cooldown: Duration,
        can_cool: bool,
    ) -> bool {
        let minute = now / 60_000;
        let Ok(mut h) = self.health.lock() else {
            return false;
        };
        if h.minute != minute {
            h.minute = minute;
            h.failures = 0;
        }
        h.failures = h.failures.saturating_add(1);
        if !can_cool || h.failures <= allowed_fails {
            return false;
        }
        let ejections = h.ejections.saturating_add(1);
        let time = ejection_time(cooldown, ejections);
        let until = now.saturating_add(time.as_millis().min(u64::MAX as u128) as u64);
        let ejected = match self.gate.get() {
            Some(gate) => gate.try_eject(&self.cooldown_until_ms, now, until),
            None => {
                self.cooldown_until_ms.store(until, Ordering::Relaxed);
                true
            }
        };
        if !ejected {
            // The failures stay counted: the next one after a slot frees up ejects it.
            tracing::warn!(
                deployment = %self.spec.id,
                model_name = %self.spec.model_name,
                "deployment keeps failing but stays in rotation: too many of its group are cooling down"
            );
            return false;
        }
        h.failures = 0;
        h.ejections = ejections;
        h.decay_from_ms = until;
        h.decay_step_ms = cooldown.as_millis().min(u64::MAX as u128) as u64;
        self.ejections.store(ejections, Ordering::Relaxed);
        tracing::warn!(
            deployment = %self.spec.id,
            model_name = %self.spec.model_name,
            ejections,
            cooldown_secs = time.as_secs_f64(),
            "deployment cooled down after repeated failures"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(raw: &str) -> String {
        redact_url(&url::Url::parse(raw).unwrap())
    }

    #[test]
    fn shown_urls_lose_user_info_and_query_values() {
        assert_eq!(
            redacted("http://tguser:CANARYpass@127.0.0.1:9/v1?key=AIzaCANARY&api-version=1"),
            "http://***@127.0.0.1:9/v1?key=***&api-version=***"
        );
        assert_eq!(
            redacted("https://sk-secret@api.example.com/v1"),
            "https://***@api.example.com/v1"
        );
        assert_eq!(
            redacted("https://api.example.com/v1?AIzaBareToken&&x=#frag"),
            "https://api.example.com/v1?***&&x=***#***"
        );
        assert_eq!(
            redacted("https://api.example.com/v1"),
            "https://api.example.com/v1"
        );
    }

    #[test]
    fn debug_output_hides_the_url_credentials() {
        let spec = DeploymentSpec {
            id: "0".into(),
            model_name: "m".into(),
            provider: ProviderKind::OpenAiCompatible("openai"),
            upstream_model: "m".into(),
            api_base: url::Url::parse("http://u:CANARYpass@h/v1?key=CANARYkey").ok(),
            credential: Credential::Key("sk-CANARYprovider".into()),
            api_version: None,
            organization: None,
            rpm: None,
            tpm: None,
            timeout: None,
            max_retries: None,
            mock_response: None,
            default_params: Default::default(),
            price_override: None,
            base_model: None,
            max_output_tokens: None,
            drop_params: false,
            vertex: None,
        };
        let shown = format!("{:?}", crate::providers::deploy(spec.clone()));
        assert!(!shown.contains("CANARY"), "{shown}");
        assert!(shown.contains("http://***@h/v1?key=***"), "{shown}");

        // An AWS key pair shows its key id and region only.
        let aws = DeploymentSpec {
            provider: ProviderKind::Bedrock,
            credential: Credential::Aws(AwsCredentials {
                access_key_id: "AKIAEXAMPLE".into(),
                secret_access_key: "CANARYsecret".into(),
                session_token: Some("CANARYtoken".into()),
                region: "us-east-1".into(),
            }),
            ..spec
        };
        let shown = format!("{:?}", crate::providers::deploy(aws));
        assert!(!shown.contains("CANARY"), "{shown}");
        assert!(
            shown.contains("AKIAEXAMPLE") && shown.contains("us-east-1"),
            "{shown}"
        );
    }
}
