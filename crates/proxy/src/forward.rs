//! Forwarding with retries and fallbacks. Everything here happens before the first byte reaches
//! the client, so trying again can never duplicate output or billing.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use rand::Rng;
use tollgate_domain::model_name::expand_upstream;

use crate::body::RawBody;
use crate::deployment::Deployment;
use crate::error::ApiError;
use crate::providers::native::NativeRequest;
use crate::providers::{self, AttemptError, CallType};
use crate::record::InFlight;
use crate::state::ProxyState;
use crate::upstream::{read_all, UpstreamBody, UpstreamResponse};

/// Largest upstream error body read (to quote its message).
const MAX_ERROR_BODY: usize = 64 * 1024;

pub enum Answer {
    /// A complete non-streaming body.
    Full(Bytes),
    /// A streaming response whose status was 2xx.
    Stream(UpstreamResponse),
    /// The deployment answers with its configured `mock_response`.
    Mock(String),
}

pub struct Dispatched {
    pub answer: Answer,
    pub in_flight: InFlight,
    pub upstream_model: String,
    pub attempts: u32,
    /// The answer is in the client API's own shape: the deployment took the native request.
    pub native: bool,
}

pub struct Failed {
    pub error: ApiError,
    pub attempts: u32,
}

pub async fn dispatch(
    state: &ProxyState,
    call: CallType,
    body: &RawBody,
    model: &str,
    stream: bool,
    native: Option<&NativeRequest>,
) -> Result<Dispatched, Failed> {
    let settings = &state.settings;
    // The names are borrowed (the call's model, the settings' fallbacks): a call makes no copy.
    let fallbacks = settings.fallbacks_for(model);
    let mut groups: Vec<&str> = Vec::with_capacity(1 + fallbacks.len());
    groups.push(model);
    groups.extend(fallbacks.iter().map(String::as_str));
    let mut attempts = 0u32;
    let mut last: Option<AttemptError> = None;
    let mut gi = 0;
    let mut used_context_fallbacks = false;
    while gi < groups.len() {
        let group_name = groups[gi];
        gi += 1;
        let Some(resolved) = state.router.resolve(group_name) else {
            continue;
        };
        let group = &resolved.deployments;
        let mut tried: Vec<usize> = Vec::new();
        // A deployment's own `max_retries` overrides the router's `num_retries` (LiteLLM); in a
        // group the most generous one applies.
        let retries = group
            .iter()
            .map(|d| d.spec.max_retries.unwrap_or(settings.num_retries))
            .max()
            .unwrap_or(settings.num_retries);
        for attempt in 0..=retries {
            let Some((idx, dep)) = state.router.pick(group, &tried) else {
                break;
            };
            let repeat = tried.contains(&idx);
            if repeat {
                // Every deployment was tried already: wait before hitting one again.
                let wait = last
                    .as_ref()
                    .and_then(|e| e.retry_after)
                    .map(|d| d.min(settings.max_retry_after))
                    .unwrap_or_else(|| backoff(attempt));
                tokio::time::sleep(wait).await;
            }
            tried.push(idx);
            attempts += 1;
            let upstream_model = expand_upstream(&dep.spec.upstream_model, &resolved.captured);
            if let Some(text) = &dep.spec.mock_response {
                return Ok(Dispatched {
                    answer: Answer::Mock(text.clone()),
                    in_flight: InFlight::start(dep),
                    upstream_model,
                    attempts,
                    native: false,
                });
            }
            let speaks =
                |n: &&NativeRequest| providers::of(dep.spec.provider).speaks(&dep.spec, n.api);
            let native_here = native.filter(speaks);
            if let (None, Some(why)) = (
                native_here,
                native.and_then(|n| n.untranslatable.as_deref()),
            ) {
                // Only a deployment that speaks the caller's API can serve this request. Skipping
                // one is not an attempt, and an upstream's own error stays the one reported.
                attempts -= 1;
                if last.is_none() {
                    last = Some(AttemptError {
                        retryable: true,
                        ..AttemptError::fatal(ApiError::bad_request(why))
                    });
                }
                continue;
            }
            let native = native_here;
            let in_flight = InFlight::start(dep.clone());
            let sent = attempt_once(state, &dep, call, body, native, &upstream_model, stream);
            match sent.await {
                Ok(answer) => {
                    return Ok(Dispatched {
                        answer,
                        in_flight,
                        upstream_model,
                        attempts,
                        native: native.is_some(),
                    })
                }
                Err(e) => {
                    drop(in_flight);
                    state.metrics.upstream_error(
                        call.metric_name(),
                        &dep.spec.model_name,
                        e.error.status.as_u16(),
                    );
                    tracing::warn!(
                        model = %group_name,
                        deployment = %dep.spec.id,
                        status = e.error.status.as_u16(),
                        error = %e.error.message,
                        "upstream attempt failed"
                    );
                    if e.counts_as_failure {
                        dep.on_failure(settings.allowed_fails, settings.cooldown, group.len() > 1);
                    }
                    if e.context_window {
                        if !used_context_fallbacks {
                            if let Some(cw) = settings.context_window_fallbacks.get(model) {
                                used_context_fallbacks = true;
                                groups.truncate(gi);
                                groups.extend(cw.iter().map(String::as_str));
                                last = Some(e);
                                break;
                            }
                        }
                        return Err(Failed {
                            error: e.error,
                            attempts,
                        });
                    }
                    if !e.retryable {
                        return Err(Failed {
                            error: e.error,
                            attempts,
                        });
                    }
                    last = Some(e);
                }
            }
        }
    }
    let error = match last {
        Some(e) => e.error,
        None => {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                format!(
                    "No deployments available for selected model={model}: every deployment is cooling down or at its rpm/tpm limit. Try again shortly."
                ),
            );
            e.retry_after = Some(settings.cooldown.as_secs().max(1));
            e
        }
    };
    Err(Failed { error, attempts })
}

/// Exponential backoff with jitter: ~50 ms, 100 ms, 200 ms … capped at 2 s.
fn backoff(attempt: u32) -> Duration {
    let base = 50u64.saturating_mul(1u64 << attempt.min(6)).min(2000);
    let jitter = rand::rng().random_range(0..=base / 2);
    Duration::from_millis(base / 2 + jitter)
}

async fn attempt_once(
    state: &ProxyState,
    dep: &Arc<Deployment>,
    call: CallType,
    body: &RawBody,
    native: Option<&NativeRequest>,
    upstream_model: &str,
    stream: bool,
) -> Result<Answer, AttemptError> {
    let spec = &dep.spec;
    let provider = providers::of(spec.provider);
    let reqs = match native {
        Some(n) => vec![provider.build_native_request(dep, n, upstream_model, stream)?],
        None => provider.build_requests(dep, call, body, upstream_model, stream)?,
    };
    let timeout = spec.timeout.unwrap_or(state.settings.default_timeout);
    let authorization = match provider.authorization(dep, &state.client) {
        Some(fetch) => match tokio::time::timeout(timeout, fetch).await {
            Err(_) => return Err(providers::timeout_error(spec, timeout)),
            Ok(value) => Some(value?),
        },
        None => None,
    };
    let authorization = authorization.as_ref();
    if stream || reqs.len() == 1 {
        let mut reqs = reqs.into_iter();
        return match (reqs.next(), reqs.next()) {
            (Some(req), None) => send(state, dep, req, authorization, timeout, stream).await,
            _ => Err(AttemptError::fatal(ApiError::internal(
                "A streamed answer must come from one upstream request.",
            ))),
        };
    }
    // An API that takes one input per call: the requests go in turn and their answers reach
    // the provider as one JSON array.
    let mut joined = vec![b'['];
    for (i, req) in reqs.into_iter().enumerate() {
        let Answer::Full(b) = send(state, dep, req, authorization, timeout, false).await? else {
            return Err(AttemptError::fatal(ApiError::internal(
                "An upstream answer that is part of a batch came back streamed.",
            )));
        };
        if i > 0 {
            joined.push(b',');
        }
        joined.extend_from_slice(&b);
    }
    joined.push(b']');
    Ok(Answer::Full(Bytes::from(joined)))
}

/// Sends one upstream request (with the fetched `authorization`, when the provider needs one)
/// and reads its answer (or its head, when streamed).
async fn send(
    state: &ProxyState,
    dep: &Deployment,
    mut req: providers::UpstreamRequest,
    authorization: Option<&http::HeaderValue>,
    timeout: Duration,
    stream: bool,
) -> Result<Answer, AttemptError> {
    let spec = &dep.spec;
    if let Some(value) = authorization {
        req.headers
            .insert(http::header::AUTHORIZATION, value.clone());
    }
    let send = state
        .client
        .post(&req.url, req.headers, Bytes::from(req.body));
    let resp = match tokio::time::timeout(timeout, send).await {
        Err(_) => return Err(providers::timeout_error(spec, timeout)),
        Ok(Err(e)) => return Err(providers::transport_error(spec, &e)),
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    if status == StatusCode::UNAUTHORIZED {
        if let Some(sent) = authorization {
            providers::of(spec.provider).authorization_refused(dep, sent);
        }
    }
    if !status.is_success() {
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        let (parts, body) = resp.into_parts();
        let body = read_limited(body, MAX_ERROR_BODY, timeout).await;
        let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        return Err(providers::upstream_error(
            spec,
            status,
            retry_after,
            &parts.headers,
            &body,
        ));
    }
    if stream {
        return Ok(Answer::Stream(resp));
    }
    match tokio::time::timeout(timeout, read_all(resp.into_body())).await {
        Err(_) => Err(providers::timeout_error(spec, timeout)),
        // The connection failed while the answer was being read.
        Ok(Err(_)) => Err(providers::transport_error(
            spec,
            &crate::upstream::TransportError {
                connect: false,
                timeout: false,
            },
        )),
        Ok(Ok(b)) => Ok(Answer::Full(b)),
    }
}

async fn read_limited(mut body: UpstreamBody, limit: usize, timeout: Duration) -> Vec<u8> {
    use http_body_util::BodyExt;
    let mut out = Vec::new();
    let read = async {
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            let room = limit.saturating_sub(out.len());
            out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if out.len() >= limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(timeout.min(Duration::from_secs(30)), read).await;
    out
}
