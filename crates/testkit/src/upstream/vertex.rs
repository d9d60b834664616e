//! Vertex AI on the fake upstream: a token endpoint that checks service-account assertions the
//! way Google's does (RS256 signature by the account's key, issuer, audience, scope, lifetime),
//! and the model routes (`generateContent`, `streamGenerateContent`, `predict`, `rawPredict`,
//! `streamRawPredict`), which answer only callers bearing a token it issued.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::EncodePrivateKey;
use rsa::signature::Verifier;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use sha2::Sha256;

use super::{
    anthropic_answer, behavior, gemini_generate, gemini_stream, google_error, note, sse, Behavior,
    FakeUpstream, Inner,
};

pub(super) const TOKEN_PATH: &str = "/token";
/// The service account of the key files the fake hands out.
pub const VERTEX_CLIENT_EMAIL: &str = "tollgate-test@fake-project.iam.gserviceaccount.com";
/// The project named in those key files.
pub const VERTEX_PROJECT: &str = "fake-project";
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// What Claude on Vertex must name in its body.
const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

fn new_key() -> RsaPrivateKey {
    RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("an RSA key")
}

/// The account's key, which the token endpoint checks assertions against.
fn trusted_key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(new_key)
}

/// A key of nobody the token endpoint knows.
fn unknown_key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(new_key)
}

/// The token endpoint's state.
#[derive(Default)]
pub(super) struct TokenState {
    base_url: OnceLock<String>,
    requests: AtomicUsize,
    issued: Mutex<HashSet<String>>,
    /// Lifetime of the tokens issued, in seconds; 0 stands for an hour.
    lifetime: AtomicU64,
    /// The status the endpoint fails with, when set.
    fail_with: Mutex<Option<u16>>,
}

impl TokenState {
    pub(super) fn set_base_url(&self, url: String) {
        let _ = self.base_url.set(url);
    }

    fn token_uri(&self) -> String {
        format!(
            "{}{TOKEN_PATH}",
            self.base_url.get().map(String::as_str).unwrap_or("")
        )
    }
}

/// A service-account key file written for a test; removed when dropped.
pub struct ServiceAccountFile {
    pub path: PathBuf,
    /// The file's JSON.
    pub json: String,
    _dir: tempfile::TempDir,
}

impl FakeUpstream {
    /// A key file for an account whose token endpoint is this fake's.
    pub fn vertex_service_account(&self) -> ServiceAccountFile {
        self.key_file(trusted_key())
    }

    /// The same account with a key the token endpoint does not know: its assertions are refused
    /// as having an invalid signature.
    pub fn vertex_service_account_with_unknown_key(&self) -> ServiceAccountFile {
        self.key_file(unknown_key())
    }

    /// Requests the token endpoint has received.
    pub fn vertex_token_requests(&self) -> usize {
        self.inner.vertex.requests.load(Ordering::SeqCst)
    }

    /// How long tokens issued from now on live.
    pub fn set_vertex_token_lifetime(&self, secs: u64) {
        self.inner.vertex.lifetime.store(secs, Ordering::SeqCst);
    }

    /// The access tokens issued so far (to look for them where they must not be).
    pub fn vertex_tokens_issued(&self) -> Vec<String> {
        self.inner
            .vertex
            .issued
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect()
    }

    /// Forgets every token issued so far: calls bearing one are refused (401).
    pub fn revoke_vertex_tokens(&self) {
        self.inner.vertex.issued.lock().unwrap().clear();
    }

    /// Makes the token endpoint fail with `status` (None: answer again).
    pub fn fail_vertex_token_endpoint(&self, status: Option<u16>) {
        *self.inner.vertex.fail_with.lock().unwrap() = status;
    }

    fn key_file(&self, key: &RsaPrivateKey) -> ServiceAccountFile {
        let der = key.to_pkcs8_der().expect("PKCS#8 encoding");
        let b64 = STANDARD.encode(der.as_bytes());
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
            .collect();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        );
        let json = json!({
            "type": "service_account",
            "project_id": VERTEX_PROJECT,
            "private_key_id": "fake-key-1",
            "private_key": pem,
            "client_email": VERTEX_CLIENT_EMAIL,
            "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.inner.vertex.token_uri(),
        })
        .to_string();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("service-account.json");
        std::fs::write(&path, &json).expect("write the key file");
        ServiceAccountFile {
            path,
            json,
            _dir: dir,
        }
    }
}

fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Checks an assertion as Google does; the error is the `error_description` Google would give.
fn verify_assertion(state: &TokenState, jwt: &str) -> Result<(), &'static str> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("Invalid JWT: not three parts");
    };
    let decode = |p: &str| -> Result<Value, &'static str> {
        let bytes = URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| "Invalid JWT: not base64url")?;
        serde_json::from_slice(&bytes).map_err(|_| "Invalid JWT: not JSON")
    };
    if decode(header)?["alg"] != "RS256" {
        return Err("Invalid JWT: only RS256 is accepted");
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| "Invalid JWT Signature.")?;
    let signature =
        Signature::try_from(signature.as_slice()).map_err(|_| "Invalid JWT Signature.")?;
    let key = VerifyingKey::<Sha256>::new(trusted_key().to_public_key());
    key.verify(format!("{header}.{claims}").as_bytes(), &signature)
        .map_err(|_| "Invalid JWT Signature.")?;
    let claims = decode(claims)?;
    if claims["iss"] != VERTEX_CLIENT_EMAIL {
        return Err("Invalid issuer");
    }
    if claims["aud"] != state.token_uri() {
        return Err("Invalid JWT: audience is not the token endpoint");
    }
    if claims["scope"] != SCOPE {
        return Err("Invalid scope");
    }
    let (Some(iat), Some(exp)) = (claims["iat"].as_u64(), claims["exp"].as_u64()) else {
        return Err("Invalid JWT: iat and exp are required");
    };
    let now = unix_now();
    if iat > now + 60 || exp <= now || exp < iat || exp - iat > 3600 {
        return Err("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.");
    }
    Ok(())
}

/// The token endpoint: a JWT bearer grant in, an access token out.
pub(super) async fn token(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let state = &inner.vertex;
    let n = state.requests.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some(status) = *state.fail_with.lock().unwrap() {
        return oauth_error(
            status,
            "internal_failure",
            "the fake token endpoint is failing",
        );
    }
    let form_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !form_type.starts_with("application/x-www-form-urlencoded") {
        return oauth_error(400, "invalid_request", "a form body is required");
    }
    let text = String::from_utf8_lossy(&body);
    let field = |name: &str| {
        text.split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| percent_decode(v))
    };
    if field("grant_type").as_deref() != Some(JWT_BEARER) {
        return oauth_error(400, "unsupported_grant_type", "Invalid grant_type");
    }
    let Some(assertion) = field("assertion") else {
        return oauth_error(400, "invalid_request", "assertion is required");
    };
    if let Err(why) = verify_assertion(state, &assertion) {
        return oauth_error(400, "invalid_grant", why);
    }
    let token = format!("ya29.fake-token-{n}");
    state.issued.lock().unwrap().insert(token.clone());
    let lifetime = match state.lifetime.load(Ordering::SeqCst) {
        0 => 3600,
        s => s,
    };
    axum::Json(json!({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}))
        .into_response()
}

fn authorized(inner: &Inner, headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| inner.vertex.issued.lock().unwrap().contains(t))
}

/// `…/publishers/{publisher}/models/{model}:{method}`
pub(super) async fn publisher_model(
    State(inner): State<Arc<Inner>>,
    uri: Uri,
    Path((_project, _location, publisher, model_action)): Path<(String, String, String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    call(
        inner,
        uri.path(),
        q,
        &headers,
        &body,
        &publisher,
        &model_action,
    )
    .await
}

/// `…/endpoints/{id}:{method}`: a tuned Gemini model.
pub(super) async fn endpoint(
    State(inner): State<Arc<Inner>>,
    uri: Uri,
    Path((_project, _location, model_action)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    call(
        inner,
        uri.path(),
        q,
        &headers,
        &body,
        "google",
        &model_action,
    )
    .await
}

async fn call(
    inner: Arc<Inner>,
    path: &str,
    q: Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
    publisher: &str,
    model_action: &str,
) -> Response {
    let req = note(&inner, path, q.clone(), headers, body);
    if !authorized(&inner, headers) {
        return google_error(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, \
             login cookie or other valid authentication credential.",
            None,
        );
    }
    let Some((model, action)) = model_action.split_once(':') else {
        return google_error(404, "The requested method was not found.", None);
    };
    let model = model.to_string();
    let behavior = behavior(&inner, &model);
    if let Behavior::Delay(d) = behavior {
        tokio::time::sleep(d).await;
    }
    match (publisher, action) {
        ("anthropic", "rawPredict") => claude(inner, &req, model, behavior, false),
        ("anthropic", "streamRawPredict") => claude(inner, &req, model, behavior, true),
        ("google", _) => {
            if let Behavior::Status(s, ra) = behavior {
                return google_error(s, &format!("fake vertex error {s}"), ra);
            }
            match action {
                "generateContent" => gemini_generate(&req, &model, behavior),
                "streamGenerateContent" => {
                    if q.as_deref() != Some("alt=sse") {
                        return google_error(
                            400,
                            "the fake Vertex AI streams with alt=sse only",
                            None,
                        );
                    }
                    gemini_stream(&req, model, behavior, inner)
                }
                "predict" => predict(&req),
                _ => google_error(404, "The requested method was not found.", None),
            }
        }
        _ => google_error(404, "The requested publisher model was not found.", None),
    }
}

/// Text embedding `predict`: each instance's vector, with its word count as its token count.
fn predict(req: &Value) -> Response {
    let Some(instances) = req["instances"].as_array() else {
        return google_error(400, "instances is required", None);
    };
    let dims = req["parameters"]["outputDimensionality"]
        .as_u64()
        .unwrap_or(3) as usize;
    let mut predictions = Vec::new();
    let mut characters = 0;
    for (i, instance) in instances.iter().enumerate() {
        let Some(content) = instance["content"].as_str() else {
            return google_error(400, "each instance needs its content", None);
        };
        characters += content.chars().count();
        let values: Vec<f64> = (0..dims).map(|d| (i * 10 + d + 1) as f64 / 10.0).collect();
        predictions.push(json!({"embeddings": {
            "values": values,
            "statistics": {"token_count": content.split_whitespace().count(), "truncated": false}
        }}));
    }
    axum::Json(
        json!({"predictions": predictions, "metadata": {"billableCharacterCount": characters}}),
    )
    .into_response()
}

fn anthropic_error(status: u16, kind: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(json!({"type": "error", "error": {"type": kind, "message": message}})),
    )
        .into_response()
}

/// Claude through `rawPredict` / `streamRawPredict`: the Messages API without `model` in the
/// body and with Vertex's `anthropic_version`. Vertex's own quota refusals (429) come in Google's
/// envelope, Claude's errors in Anthropic's.
fn claude(
    inner: Arc<Inner>,
    req: &Value,
    model: String,
    behavior: Behavior,
    streaming: bool,
) -> Response {
    if req.get("model").is_some() || req["anthropic_version"] != ANTHROPIC_VERSION {
        return anthropic_error(
            400,
            "invalid_request_error",
            "Claude on Vertex AI takes anthropic_version vertex-2023-10-16 and no model in the body",
        );
    }
    if req["stream"].as_bool().unwrap_or(false) != streaming {
        return anthropic_error(400, "invalid_request_error", "stream must match the method");
    }
    match behavior {
        Behavior::Status(429, ra) => google_error(
            429,
            "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model",
            ra,
        ),
        Behavior::Status(s, _) => {
            let kind = match s {
                400 => "invalid_request_error",
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                529 => "overloaded_error",
                _ => "api_error",
            };
            anthropic_error(s, kind, &format!("fake vertex claude error {s}"))
        }
        Behavior::ContextTooLong => anthropic_error(
            400,
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum",
        ),
        Behavior::ResetMidStream if streaming => {
            let ev = |name: &str, data: Value| Ok(format!("event: {name}\ndata: {data}\n\n"));
            let events = vec![
                ev(
                    "message_start",
                    json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "usage": {"input_tokens": 11, "output_tokens": 1}}}),
                ),
                ev(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                ),
                ev(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "partial answer "}}),
                ),
                Err(std::io::Error::other("connection reset")),
            ];
            sse(events, Duration::from_millis(5), inner, None, model)
        }
        other => anthropic_answer(inner, req, model, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_percent_decoded() {
        assert_eq!(
            percent_decode("urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"),
            JWT_BEARER
        );
        assert_eq!(percent_decode("a+b%2"), "a b%2");
    }
}
