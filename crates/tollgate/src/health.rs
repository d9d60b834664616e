//! Public health routes (as LiteLLM serves them) and the Prometheus endpoint.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tollgate_proxy::ProxyState;

pub struct HealthState {
    pub proxy: Arc<ProxyState>,
    /// Set when shutdown begins; shared with the serving loop.
    pub shutting_down: Arc<AtomicBool>,
}

pub async fn liveness(State(h): State<Arc<HealthState>>) -> Response {
    if h.shutting_down.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "shutting_down"})),
        )
            .into_response();
    }
    Json("I'm alive!").into_response()
}

pub async fn readiness(State(h): State<Arc<HealthState>>) -> Response {
    if h.shutting_down.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "shutting_down", "db": "connected"})),
        )
            .into_response();
    }
    let ping = tokio::time::timeout(Duration::from_secs(2), h.proxy.store.ping()).await;
    let db_ok = matches!(ping, Ok(Ok(())));
    let mut body = json!({
        "status": if db_ok { "healthy" } else { "unhealthy" },
        "db": if db_ok { "connected" } else { "disconnected" },
    });
    // Redis is reported but does not make the instance unready: every instance shares the same
    // Redis, and calls go on (as configured for its absence) while it is away.
    if let Some(c) = &h.proxy.cluster {
        let redis_ok = matches!(
            tokio::time::timeout(Duration::from_secs(1), c.ping()).await,
            Ok(Ok(()))
        );
        body["redis"] = json!(if redis_ok {
            "connected"
        } else {
            "disconnected"
        });
    }
    if db_ok {
        Json(body).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

pub async fn metrics(State(h): State<Arc<HealthState>>) -> Response {
    let w = h.proxy.writer.stats();
    let extra = [
        (
            "tollgate_spend_records_written_total",
            "Spend records committed to the store.",
            w.written.load(Ordering::Relaxed),
        ),
        (
            "tollgate_spend_records_dropped_total",
            "Spend records lost because the queue was full or the store kept failing.",
            w.dropped.load(Ordering::Relaxed),
        ),
        (
            "tollgate_spend_records_pending",
            "Spend records waiting to be committed to the store (the writer's backlog).",
            w.pending.load(Ordering::Relaxed),
        ),
        (
            "tollgate_spend_flush_errors_total",
            "Failed spend batch commits (retried).",
            w.flush_errors.load(Ordering::Relaxed),
        ),
        (
            "tollgate_key_cache_entries",
            "Virtual keys cached in this process.",
            h.proxy.keys.cached_keys() as u64,
        ),
        (
            "tollgate_key_cache_loads_total",
            "Virtual keys read from the database: key cache misses, calls that missed on one key at once counted once.",
            h.proxy.keys.loads(),
        ),
        (
            "tollgate_budget_accounts",
            "Keys, users and teams with a budget account in this process.",
            h.proxy.keys.budgets().accounts() as u64,
        ),
    ];
    let mut body = h.proxy.metrics.render(&extra);
    if let Some(c) = &h.proxy.cluster {
        c.metrics().render(&mut body);
    }
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}
