//! `Idempotency-Key` on the API's create routes, with Stripe's semantics: a retry with the same
//! key, caller, route and body gets the first answer again (status and body) instead of creating
//! a second object; the same key with another body is refused (422); a key whose first request
//! is still running answers 409 `idempotency_key_in_use`. Keys live in the store for 24 hours,
//! so a retry works on whichever instance it reaches.
//!
//! Answers can hold secrets (`/key/generate` returns the plaintext key once, `/invitation/new`
//! the invitation id), so the store keeps them sealed with AES-256-GCM under a key derived from
//! the credential the caller presented (master key, virtual key, login token or session cookie),
//! which the store holds only as a hash. A database copy therefore reveals no answer; a retry
//! with the same credential opens it; the same user retrying with another credential gets 409,
//! and nothing is created twice.
//!
//! Only successful answers are kept. A refused or failed create changed nothing, so its key is
//! given up and a retry runs again.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::Utc;
use hmac::Mac;
use ring::aead;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tollgate_proxy::ApiError;
use tollgate_store::{Claim, IdempotencyClaim, IdempotencyId};

use crate::principal::{presented_secret, store_unavailable, Principal};
use crate::state::WebState;

pub const HEADER: &str = "idempotency-key";
/// Stripe's limit.
pub const MAX_KEY_CHARS: usize = 255;
/// How long an answer is replayed.
const EXPIRY: chrono::Duration = chrono::Duration::hours(24);
/// How long a running request holds its key before a retry may take it over (only an instance
/// that died mid-request holds one that long).
const LEASE: chrono::Duration = chrono::Duration::minutes(5);
/// The same limit the handlers' body extractor applies.
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Create answers are small; a larger one is not kept (the key is given up).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
const NONCE_LEN: usize = 12;

/// Middleware for a create route; runs after the authorization gate (it needs the caller).
pub async fn idempotent(State(state): State<Arc<WebState>>, req: Request, next: Next) -> Response {
    let key = match idempotency_key(req.headers()) {
        Ok(Some(k)) => k,
        Ok(None) => return next.run(req).await,
        Err(e) => return e.into_response(),
    };
    let Some(principal) = req.extensions().get::<Principal>().cloned() else {
        return ApiError::auth("Authentication Error, No api key passed in.").into_response();
    };
    let Some(secret) = presented_secret(&state, req.headers()).map(str::to_string) else {
        return ApiError::auth("Authentication Error, No api key passed in.").into_response();
    };
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "bad_request_error",
                "The request body is too large.",
            )
            .into_response()
        }
    };
    let id = IdempotencyId {
        scope: principal.user_id.clone(),
        route: parts.uri.path().to_string(),
        key_hash: hex::encode(Sha256::digest(key.as_bytes())),
    };
    let sealer = Sealer::new(&secret, &id);
    let now = Utc::now();
    let claim = IdempotencyClaim {
        request_hash: request_hash(parts.uri.query(), &bytes),
        lease_id: match tollgate_domain::secret::random_token(16) {
            Ok(t) => t,
            Err(e) => return ApiError::internal(e.to_string()).into_response(),
        },
        id,
        now,
        locked_until: now + LEASE,
        expires_at: now + EXPIRY,
    };
    let found = match state.store.claim_idempotency_key(&claim).await {
        Ok(f) => f,
        Err(tollgate_store::StoreError::Conflict { .. }) => return in_use().into_response(),
        Err(e) => return store_unavailable(&e).into_response(),
    };
    match found {
        Claim::Claimed => {
            let req = Request::from_parts(parts, Body::from(bytes));
            // Spawned: a client that hangs up must not cancel a create half-way, and its retry
            // must find the answer stored.
            let run = tokio::spawn(run_and_keep(state, claim, sealer, req, next));
            run.await.unwrap_or_else(|_| {
                ApiError::internal("The request failed; it can be retried.").into_response()
            })
        }
        Claim::InProgress { request_hash } | Claim::Answered { request_hash, .. }
            if request_hash != claim.request_hash =>
        {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_mismatch",
                "This Idempotency-Key was already used with a different request; use a new key for a new request.",
            )
            .with_param("Idempotency-Key")
            .into_response()
        }
        Claim::InProgress { .. } => in_use().into_response(),
        Claim::Answered {
            status, response, ..
        } => match sealer.open(status, &response) {
            Some((content_type, body)) => replay(status, &content_type, body),
            None => ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_key_in_use",
                "This Idempotency-Key was answered to another credential of this user; the answer is shown only to that credential. Use a new key for a new request.",
            )
            .with_param("Idempotency-Key")
            .into_response(),
        },
    }
}

/// The header's value: absent is `None`; present it must be one value of 1 to 255 visible ASCII
/// characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(HEADER).iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    let bad = |m: &str| ApiError::bad_request(m).with_param("Idempotency-Key");
    if values.next().is_some() {
        return Err(bad("Send one Idempotency-Key header, not several."));
    }
    let key = v
        .to_str()
        .map_err(|_| bad("The Idempotency-Key must be visible ASCII characters."))?
        .trim();
    if key.is_empty() {
        return Err(bad("The Idempotency-Key is empty."));
    }
    if key.chars().count() > MAX_KEY_CHARS {
        return Err(bad(&format!(
            "The Idempotency-Key is longer than {MAX_KEY_CHARS} characters."
        )));
    }
    Ok(Some(key.to_string()))
}

fn in_use() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_key_in_use",
        "A request with this Idempotency-Key is still being processed; retry shortly.",
    )
    .with_param("Idempotency-Key")
    .with_retry_after(1)
}

/// Runs the handler holding the key, then keeps a successful answer or gives the key up.
async fn run_and_keep(
    state: Arc<WebState>,
    claim: IdempotencyClaim,
    sealer: Sealer,
    req: Request,
    next: Next,
) -> Response {
    let release = |why: &'static str| {
        let (state, id, lease) = (state.clone(), claim.id.clone(), claim.lease_id.clone());
        async move {
            if let Err(e) = state.store.release_idempotency_key(&id, &lease).await {
                tracing::warn!(error = %e, why, "could not give up an idempotency key; a retry may take it over in 5 minutes");
            }
        }
    };
    let answer = match tokio::spawn(next.run(req)).await {
        Ok(a) => a,
        Err(_) => {
            release("the handler failed").await;
            return ApiError::internal("The request failed; it can be retried.").into_response();
        }
    };
    if !answer.status().is_success() {
        release("the create was refused").await;
        return answer;
    }
    let (mut parts, body) = answer.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_ANSWER_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            release("the answer could not be read").await;
            return ApiError::internal("The answer could not be read; the request can be retried.")
                .into_response();
        }
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let status = i64::from(parts.status.as_u16());
    match sealer.seal(status, &content_type, &bytes) {
        Some(sealed) => {
            match state
                .store
                .complete_idempotency_key(&claim.id, &claim.lease_id, status, &sealed)
                .await
            {
                Ok(true) => {}
                Ok(false) => tracing::warn!(
                    "an idempotency key was taken over while its request ran; its retry may create again"
                ),
                Err(e) => tracing::warn!(error = %e, "could not store an idempotent answer; a retry may create again after 5 minutes"),
            }
        }
        None => release("the answer could not be sealed").await,
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}

fn replay(status: i64, content_type: &str, body: Vec<u8>) -> Response {
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut r = (status, Bytes::from(body)).into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    r
}

/// SHA-256 of what the request asks: its query and its body, JSON read as values (so key order
/// and spacing do not matter), anything else byte for byte.
fn request_hash(query: Option<&str>, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(query.unwrap_or("").as_bytes());
    h.update([0]);
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let mut text = String::with_capacity(body.len());
            canonical(&v, &mut text);
            h.update(b"json:");
            h.update(text.as_bytes());
        }
        Err(_) => {
            h.update(b"raw:");
            h.update(body);
        }
    }
    hex::encode(h.finalize())
}

/// JSON text with every object's keys sorted.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Seals and opens one key's answer. The AES key is an HMAC of the key's identity under the
/// caller's credential, which never reaches the store.
struct Sealer {
    key: [u8; 32],
    context: Vec<u8>,
}

impl Sealer {
    fn new(secret: &str, id: &IdempotencyId) -> Sealer {
        let mut context = b"tollgate idempotent answer v1\0".to_vec();
        for part in [&id.scope, &id.route, &id.key_hash] {
            context.extend_from_slice(part.as_bytes());
            context.push(0);
        }
        let key = match hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
            Ok(mut m) => {
                m.update(&context);
                m.finalize().into_bytes().into()
            }
            // HMAC takes keys of any length; a zero key would only make answers unreadable.
            Err(_) => [0; 32],
        };
        Sealer { key, context }
    }

    fn aead_key(&self) -> Option<aead::LessSafeKey> {
        aead::UnboundKey::new(&aead::AES_256_GCM, &self.key)
            .ok()
            .map(aead::LessSafeKey::new)
    }

    /// The stored status is authenticated with the body, so neither can be swapped.
    fn aad(&self, status: i64) -> Vec<u8> {
        let mut aad = self.context.clone();
        aad.extend_from_slice(status.to_string().as_bytes());
        aad
    }

    /// base64(nonce ‖ ciphertext ‖ tag) of `content_type \n body`.
    fn seal(&self, status: i64, content_type: &str, body: &[u8]) -> Option<String> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        let mut buf = Vec::with_capacity(content_type.len() + 1 + body.len() + 16);
        buf.extend_from_slice(content_type.as_bytes());
        buf.push(b'\n');
        buf.extend_from_slice(body);
        self.aead_key()?
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(self.aad(status)),
                &mut buf,
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Some(base64::engine::general_purpose::STANDARD.encode(out))
    }

    /// The content type and body, or `None` when this credential did not seal it.
    fn open(&self, status: i64, sealed: &str) -> Option<(String, Vec<u8>)> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = rest.to_vec();
        let plain = self
            .aead_key()?
            .open_in_place(nonce, aead::Aad::from(self.aad(status)), &mut buf)
            .ok()?;
        let split = plain.iter().position(|b| *b == b'\n')?;
        let content_type = String::from_utf8(plain[..split].to_vec()).ok()?;
        Some((content_type, plain[split + 1..].to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> IdempotencyId {
        IdempotencyId {
            scope: "u1".into(),
            route: "/key/generate".into(),
            key_hash: "ab".into(),
        }
    }

    #[test]
    fn an_answer_opens_only_with_the_credential_status_and_key_that_sealed_it() {
        let sealer = Sealer::new("sk-the-callers-key", &id());
        let sealed = sealer
            .seal(200, "application/json", br#"{"key":"sk-new"}"#)
            .unwrap();
        assert!(!sealed.contains("sk-new"));
        assert_eq!(
            sealer.open(200, &sealed),
            Some((
                "application/json".to_string(),
                br#"{"key":"sk-new"}"#.to_vec()
            ))
        );
        assert_eq!(sealer.open(201, &sealed), None, "status is authenticated");
        assert_eq!(
            Sealer::new("sk-another-key", &id()).open(200, &sealed),
            None
        );
        let other_route = IdempotencyId {
            route: "/team/new".into(),
            ..id()
        };
        assert_eq!(
            Sealer::new("sk-the-callers-key", &other_route).open(200, &sealed),
            None
        );
        assert_eq!(sealer.open(200, "not base64!"), None);
        assert_eq!(sealer.open(200, ""), None);
        // A fresh nonce each time.
        assert_ne!(sealer.seal(200, "a", b"b"), sealer.seal(200, "a", b"b"));
    }

    #[test]
    fn request_hashes_read_json_as_values() {
        let a = request_hash(None, br#"{"b": 1, "a": {"y": [1, 2], "x": null}}"#);
        let b = request_hash(None, br#"{"a":{"x":null,"y":[1,2]},"b":1}"#);
        assert_eq!(a, b);
        assert_ne!(
            a,
            request_hash(None, br#"{"a":{"x":null,"y":[2,1]},"b":1}"#)
        );
        assert_ne!(
            a,
            request_hash(Some("x=1"), br#"{"a":{"x":null,"y":[1,2]},"b":1}"#)
        );
        assert_ne!(request_hash(None, b"{"), request_hash(None, b"{ "));
        assert_ne!(request_hash(None, b""), request_hash(None, b"{}"));
    }

    #[test]
    fn keys_are_one_short_visible_value() {
        let with = |values: &[&[u8]]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(HEADER, HeaderValue::from_bytes(v).unwrap());
            }
            idempotency_key(&h)
        };
        assert_eq!(with(&[]).unwrap(), None);
        assert_eq!(with(&[b" k-1 "]).unwrap().as_deref(), Some("k-1"));
        assert_eq!(
            with(&["a".repeat(255).as_bytes()])
                .unwrap()
                .map(|k| k.len()),
            Some(255)
        );
        for bad in [
            with(&["a".repeat(256).as_bytes()]),
            with(&[b"  "]),
            with(&[b"k\xff"]),
            with(&[b"a", b"b"]),
        ] {
            let e = bad.unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert_eq!(e.param.as_deref(), Some("Idempotency-Key"));
        }
    }
}
