//! One call's record: built up while the call runs, and handed to the spend writer exactly once,
//! whether the call succeeds, fails, or the client goes away (then on drop).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tollgate_domain::usage::estimate_tokens;
use tollgate_domain::Usage;
use tollgate_ledger::{cost_of, JournalTicket};
use tollgate_store::{SpendRecord, SpendStatus};

use crate::auth::Caller;
use crate::body::RawBody;
use crate::deployment::Deployment;
use crate::error::ApiError;
use crate::providers::CallType;
use crate::state::ProxyState;

/// Keeps a deployment's in-flight count right however the call ends.
pub struct InFlight(pub Arc<Deployment>);

impl InFlight {
    pub fn start(d: Arc<Deployment>) -> InFlight {
        d.on_start();
        InFlight(d)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.on_end();
    }
}

/// Stands in for the caller once the record is written (nothing asks then).
static NO_CALLER: Caller = Caller {
    key_hash: String::new(),
    is_master: false,
    key: None,
};

/// HTTP status recorded when the client went away before the answer was complete (nginx's).
pub const CLIENT_CLOSED: u16 = 499;

pub struct CallRecorder {
    state: Arc<ProxyState>,
    info: Option<CallInfo>,
}

struct CallInfo {
    request_id: String,
    call: CallType,
    caller: Caller,
    model_group: String,
    deployment: Option<InFlight>,
    upstream_model: String,
    stream: bool,
    start: Instant,
    start_time: DateTime<Utc>,
    first_token: Option<Instant>,
    usage: Option<Usage>,
    body: Option<Arc<RawBody>>,
    completion_bytes: usize,
    attempts: u32,
    end_user: Option<String>,
    /// The request's tags, kept in the spend record's metadata.
    tags: Vec<String>,
    admitted: crate::admission::Admitted,
    /// The `call_type` written when the route is not the call type's own (`/v1/messages`).
    log_name: Option<&'static str>,
}

impl CallRecorder {
    pub fn new(
        state: Arc<ProxyState>,
        request_id: String,
        call: CallType,
        caller: Caller,
        start: Instant,
    ) -> Self {
        CallRecorder {
            state,
            info: Some(CallInfo {
                request_id,
                call,
                caller,
                model_group: String::new(),
                deployment: None,
                upstream_model: String::new(),
                stream: false,
                start,
                start_time: Utc::now(),
                first_token: None,
                usage: None,
                body: None,
                completion_bytes: 0,
                attempts: 0,
                end_user: None,
                tags: Vec::new(),
                admitted: Default::default(),
                log_name: None,
            }),
        }
    }

    /// Names the call in spend logs after the route it came through.
    pub fn set_log_name(&mut self, name: &'static str) {
        if let Some(i) = &mut self.info {
            i.log_name = Some(name);
        }
    }

    pub fn caller(&self) -> &Caller {
        match &self.info {
            Some(i) => &i.caller,
            None => &NO_CALLER,
        }
    }

    /// The call holds its rate-limit slot and budget reservation until it is recorded.
    pub fn set_admission(&mut self, a: crate::admission::Admitted) {
        if let Some(i) = &mut self.info {
            i.admitted = a;
        }
    }

    pub fn rate_limit_headers(&self) -> Vec<(http::HeaderName, http::HeaderValue)> {
        self.info
            .as_ref()
            .map(|i| crate::admission::rate_limit_headers(i.admitted.remaining()))
            .unwrap_or_default()
    }

    pub fn caller_may_use(&self, model: &str) -> bool {
        self.info.as_ref().is_none_or(|i| i.caller.may_use(model))
    }

    pub fn request_id(&self) -> &str {
        self.info
            .as_ref()
            .map(|i| i.request_id.as_str())
            .unwrap_or("")
    }

    pub fn set_request(
        &mut self,
        model_group: &str,
        stream: bool,
        body: Arc<RawBody>,
        end_user: Option<String>,
        tags: Vec<String>,
    ) {
        if let Some(i) = &mut self.info {
            i.model_group = model_group.to_string();
            i.upstream_model = model_group.to_string();
            i.stream = stream;
            i.body = Some(body);
            i.end_user = end_user;
            i.tags = tags;
        }
    }

    pub fn set_deployment(&mut self, d: InFlight, upstream_model: String, attempts: u32) {
        if let Some(i) = &mut self.info {
            i.deployment = Some(d);
            i.upstream_model = upstream_model;
            i.attempts = attempts;
        }
    }

    pub fn set_attempts(&mut self, attempts: u32) {
        if let Some(i) = &mut self.info {
            i.attempts = attempts;
        }
    }

    pub fn mark_first_token(&mut self) {
        if let Some(i) = &mut self.info {
            if i.first_token.is_none() {
                i.first_token = Some(Instant::now());
            }
        }
    }

    pub fn set_usage(&mut self, u: Usage) {
        if let Some(i) = &mut self.info {
            i.usage = Some(u);
        }
    }

    pub fn has_usage(&self) -> bool {
        self.info.as_ref().is_some_and(|i| i.usage.is_some())
    }

    pub fn add_completion_bytes(&mut self, n: usize) {
        if let Some(i) = &mut self.info {
            i.completion_bytes += n;
        }
    }

    /// The metrics label: the configured model name that served (or would serve) the call.
    fn metric_model<'a>(&self, i: &'a CallInfo) -> std::borrow::Cow<'a, str> {
        match &i.deployment {
            Some(d) => std::borrow::Cow::Borrowed(d.0.spec.model_name.as_str()),
            None => std::borrow::Cow::Owned(
                self.state
                    .router
                    .resolve(&i.model_group)
                    .and_then(|r| r.deployments.first().map(|d| d.spec.model_name.clone()))
                    .unwrap_or_else(|| "unknown".to_string()),
            ),
        }
    }

    pub fn finish_success(mut self, http_status: u16) {
        if let Some(r) = self.take_record(SpendStatus::Success, http_status, None) {
            self.state.writer.record(r);
        }
    }

    pub fn finish_error(mut self, err: &ApiError) {
        if let Some(r) = self.take_record(SpendStatus::Failure, err.status.as_u16(), Some(err)) {
            self.state.writer.record(r);
        }
    }

    /// As `finish_success`, but the record's journal line is written together with those of
    /// other calls finishing at the same moment: await the ticket (`SpendWriter::journaled`)
    /// before the answer is returned.
    pub fn finish_success_grouped(mut self, http_status: u16) -> Option<JournalTicket> {
        self.take_record(SpendStatus::Success, http_status, None)
            .map(|r| self.state.writer.record_grouped(r))
    }

    /// `finish_error`, journaled as `finish_success_grouped` is.
    pub fn finish_error_grouped(mut self, err: &ApiError) -> Option<JournalTicket> {
        self.take_record(SpendStatus::Failure, err.status.as_u16(), Some(err))
            .map(|r| self.state.writer.record_grouped(r))
    }

    /// Closes the call's accounting (budget, limits, metrics) and makes its spend record; None
    /// when that was done already.
    fn take_record(
        &mut self,
        status: SpendStatus,
        http_status: u16,
        err: Option<&ApiError>,
    ) -> Option<SpendRecord> {
        let i = self.info.take()?;
        let error_type = err.map(|e| e.kind.to_string());
        Some(self.settle_call(i, status, http_status, error_type))
    }

    fn settle_call(
        &self,
        mut i: CallInfo,
        status: SpendStatus,
        http_status: u16,
        error_type: Option<String>,
    ) -> SpendRecord {
        let end = Instant::now();
        let duration = end.duration_since(i.start);
        let produced = i.completion_bytes > 0 || i.first_token.is_some();
        let seen = estimate_tokens(i.completion_bytes);
        let usage = match i.usage {
            // Reported usage is the truth for a finished call. A stream that ended early may
            // hold only the usage its first event gave (Anthropic's message_start), and an
            // upstream may report no output for text it did send: then what the client
            // received is billed, so a stream that carried text never costs nothing.
            Some(mut u) => {
                let finished = status == SpendStatus::Success;
                if u.completion_tokens < seen && (!finished || u.completion_tokens == 0) {
                    u.completion_tokens = seen;
                    u.estimated = true;
                }
                u
            }
            // No usage reported: count what we saw. A call that failed before any answer used
            // no tokens we can know of.
            None if status == SpendStatus::Success || produced => Usage {
                prompt_tokens: i.body.as_deref().map(prompt_tokens_estimate).unwrap_or(0),
                completion_tokens: seen,
                estimated: true,
                ..Usage::default()
            },
            None => Usage::default(),
        };
        let deployment = i.deployment.as_ref().map(|d| &d.0);
        let price = deployment.and_then(|d| self.state.price_for(&d.spec, &i.upstream_model));
        let cost = cost_of(&usage, price);
        let crate::admission::Admitted {
            rate,
            reservation,
            shared,
        } = std::mem::take(&mut i.admitted);
        let settled = reservation.and_then(|r| r.settle(cost.amount.0));
        if let (Some((before, after)), Some(key)) = (settled, &i.caller.key) {
            if let Some(alert) = key.soft_budget_crossing(before, after) {
                self.state.alerts.soft_budget_crossed(alert);
            }
        }
        if let Some(a) = rate {
            a.add_tokens(usage.total_tokens());
        }
        if let Some(s) = shared {
            self.settle_shared(s, cost.amount.0, usage.total_tokens(), i.caller.key.clone());
        }
        let route = i.call.metric_name();
        let metric_model = self.metric_model(&i);
        let ttft = i.first_token.map(|t| t.duration_since(i.start));
        if let Some(series) = self.state.metrics.series(route, &metric_model) {
            series.observe_request(http_status, duration);
            series.add_tokens(usage.prompt_tokens, usage.completion_tokens);
            if let (Some(t), true) = (ttft, i.stream) {
                series.observe_ttft(t);
            }
        }
        if let Some(d) = deployment {
            if status == SpendStatus::Success {
                d.on_success(duration, usage.total_tokens());
            }
        }
        let ms = |d: Duration| d.as_millis().min(i64::MAX as u128) as i64;
        let end_time = i.start_time + chrono::Duration::milliseconds(ms(duration));
        SpendRecord {
            request_id: i.request_id,
            call_type: i.log_name.unwrap_or(i.call.log_name()).to_string(),
            user_id: i.caller.user_id().map(str::to_string),
            team_id: i.caller.team_id().map(str::to_string),
            api_key: i.caller.key_hash,
            end_user: i.end_user,
            model: i.upstream_model,
            model_group: i.model_group,
            model_id: deployment.map(|d| d.spec.id.clone()),
            custom_llm_provider: deployment.map(|d| d.spec.provider.name().to_string()),
            spend_nanos: cost.amount.0,
            priced: cost.priced,
            prompt_tokens: usage.prompt_tokens as i64,
            completion_tokens: usage.completion_tokens as i64,
            cache_read_input_tokens: usage.cache_read_input_tokens as i64,
            cache_creation_input_tokens: usage.cache_creation_input_tokens as i64,
            usage_estimated: usage.estimated,
            stream: i.stream,
            status,
            http_status: http_status as i32,
            error_type,
            attempts: i.attempts.max(1) as i32,
            start_time: i.start_time,
            end_time,
            completion_start_time: ttft
                .map(|t| i.start_time + chrono::Duration::milliseconds(ms(t))),
            request_duration_ms: ms(duration),
            ttft_ms: ttft.map(ms),
            metadata: if i.tags.is_empty() {
                serde_json::json!({})
            } else {
                serde_json::json!({ "tags": i.tags })
            },
        }
    }
}

impl CallRecorder {
    /// Settles a call admitted through Redis, off the answer's path: the call's slot and
    /// reservation are released and its cost counted on every instance. If Redis cannot be
    /// reached, the reservation and slot expire with their lease and the spend reaches the
    /// store through the writer as always.
    fn settle_shared(
        &self,
        shared: crate::admission::SharedAdmission,
        cost_nanos: i64,
        tokens: u64,
        key: Option<Arc<crate::keys::KeyInfo>>,
    ) {
        let (Some(cluster), Ok(rt)) = (
            self.state.cluster.clone(),
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        let alerts = self.state.alerts.clone();
        rt.spawn(async move {
            match cluster.settle(&shared.ticket, cost_nanos, tokens).await {
                Ok(settled) => {
                    if let (Some((before, after)), Some(key)) = (settled.key_spend, key) {
                        if let Some(alert) = key.soft_budget_crossing(before, after) {
                            alerts.soft_budget_crossed(alert);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not settle a call in Redis; its lease will expire"),
            }
        });
    }
}

impl Drop for CallRecorder {
    fn drop(&mut self) {
        if let Some(i) = self.info.take() {
            // The response was dropped before the call finished: the client went away.
            let r = self.settle_call(
                i,
                SpendStatus::Failure,
                CLIENT_CLOSED,
                Some("client_disconnected".to_string()),
            );
            self.state.writer.record(r);
        }
    }
}

/// Prompt text size for an estimate: the text of messages / prompt / input, not the JSON around it.
fn prompt_tokens_estimate(body: &RawBody) -> u64 {
    let mut bytes = 0usize;
    for key in ["messages", "prompt", "input", "system"] {
        if let Some(raw) = body.get(key) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(raw.get()) {
                bytes += text_bytes(&v);
            }
        }
    }
    estimate_tokens(bytes)
}

fn text_bytes(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::String(s) => s.len(),
        serde_json::Value::Array(a) => a.iter().map(text_bytes).sum(),
        serde_json::Value::Object(o) => o
            .iter()
            .filter(|(k, _)| matches!(k.as_str(), "content" | "text" | "arguments" | "name"))
            .map(|(_, v)| text_bytes(v))
            .sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_only_text() {
        let b = RawBody::parse(br#"{"model":"m","messages":[{"role":"user","content":"12345678"},{"role":"user","content":[{"type":"text","text":"abcd"}]}]}"#).unwrap();
        assert_eq!(prompt_tokens_estimate(&b), 3);
    }
}
