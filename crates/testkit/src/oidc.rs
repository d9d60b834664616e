//! A standards-following OpenID Connect provider for the SSO tests: discovery, a JWKS with a
//! real RSA key (made once per test process), an authorization endpoint that signs the
//! configured user in at once and redirects back with a code (or with an error), a token
//! endpoint that checks the client secret, the redirect URI and PKCE (S256) and takes each code
//! once, user info, and an end-session endpoint. Knobs make it misbehave the ways an attacker
//! or a broken provider would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

const KID: &str = "test-key-1";
/// The key published after [`OidcProvider::rotate_keys`].
const KID_ROTATED: &str = "test-key-2";

/// One RSA key for the whole test process: making one takes a while.
fn key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("an RSA key"))
}

fn rotated_key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("an RSA key"))
}

/// How the next ID tokens go wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Misbehave {
    #[default]
    Nothing,
    /// `aud` names another client.
    WrongAudience,
    /// `exp` an hour ago.
    Expired,
    /// The payload was edited after signing.
    BadSignature,
    /// `alg: none`, no signature.
    AlgNone,
    /// `iss` is another issuer.
    WrongIssuer,
    /// `nonce` is not the one the client sent.
    WrongNonce,
    /// Signed with HS256 keyed by the client secret (which the client knows too).
    Hs256,
    /// `azp` names another client (the audience is still this one).
    OtherAuthorizedParty,
}

/// Who the provider signs in.
#[derive(Debug, Clone)]
pub struct IdpUser {
    pub sub: String,
    pub email: String,
    /// `None` leaves the claim out.
    pub email_verified: Option<bool>,
    /// More claims, in the ID token and the user info answer (groups, roles …).
    pub extra: Map<String, Value>,
}

impl IdpUser {
    pub fn new(sub: &str, email: &str) -> IdpUser {
        IdpUser {
            sub: sub.to_string(),
            email: email.to_string(),
            email_verified: Some(true),
            extra: Map::new(),
        }
    }

    pub fn claim(mut self, name: &str, value: Value) -> IdpUser {
        self.extra.insert(name.to_string(), value);
        self
    }

    fn claims(&self) -> Map<String, Value> {
        let mut m = self.extra.clone();
        m.insert("sub".into(), json!(self.sub));
        m.insert("email".into(), json!(self.email));
        if let Some(v) = self.email_verified {
            m.insert("email_verified".into(), json!(v));
        }
        m
    }
}

/// What the end-session endpoint was called with.
#[derive(Debug, Clone)]
pub struct Logout {
    pub id_token_hint: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub client_id: Option<String>,
}

struct Grant {
    redirect_uri: String,
    nonce: Option<String>,
    challenge: Option<String>,
    method: Option<String>,
    user: IdpUser,
}

#[derive(Default)]
struct Knobs {
    user: Option<IdpUser>,
    misbehave: Misbehave,
    error: Option<String>,
    /// Claims left out of ID tokens (user info still has them).
    userinfo_only: Vec<String>,
    /// User info answers about this subject instead.
    userinfo_subject: Option<String>,
    /// The JWKS and new tokens use the second key.
    rotated: bool,
}

struct Shared {
    issuer: String,
    client_id: String,
    client_secret: String,
    knobs: Mutex<Knobs>,
    codes: Mutex<HashMap<String, Grant>>,
    used_codes: Mutex<Vec<String>>,
    access_tokens: Mutex<HashMap<String, IdpUser>>,
    authorizations: Mutex<Vec<HashMap<String, String>>>,
    logouts: Mutex<Vec<Logout>>,
    token_calls: Mutex<usize>,
}

pub struct OidcProvider {
    /// The issuer URL (`http://127.0.0.1:PORT`), also the base of every endpoint.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    shared: Arc<Shared>,
}

impl OidcProvider {
    /// Starts the provider on a free port, for one client.
    pub async fn start(client_id: &str, client_secret: &str) -> OidcProvider {
        let _ = key();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let addr = listener.local_addr().expect("local address");
        let issuer = format!("http://{addr}");
        let shared = Arc::new(Shared {
            issuer: issuer.clone(),
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            knobs: Mutex::new(Knobs::default()),
            codes: Mutex::new(HashMap::new()),
            used_codes: Mutex::new(Vec::new()),
            access_tokens: Mutex::new(HashMap::new()),
            authorizations: Mutex::new(Vec::new()),
            logouts: Mutex::new(Vec::new()),
            token_calls: Mutex::new(0),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .route("/logout", get(logout))
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        OidcProvider {
            issuer,
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            shared,
        }
    }

    /// Rotates the signing key: the JWKS names only the new one, new tokens are signed with it.
    pub fn rotate_keys(&self) {
        let _ = rotated_key();
        self.shared.knobs.lock().unwrap().rotated = true;
    }

    /// The user the next authorizations sign in.
    pub fn sign_in_as(&self, user: IdpUser) {
        self.shared.knobs.lock().unwrap().user = Some(user);
    }

    pub fn misbehave(&self, how: Misbehave) {
        self.shared.knobs.lock().unwrap().misbehave = how;
    }

    /// Authorizations answer `?error=<code>` instead of a code (`None`: codes again).
    pub fn answer_with_error(&self, code: Option<&str>) {
        self.shared.knobs.lock().unwrap().error = code.map(str::to_string);
    }

    /// Leaves these claims out of ID tokens: only user info has them.
    pub fn userinfo_only(&self, claims: &[&str]) {
        self.shared.knobs.lock().unwrap().userinfo_only =
            claims.iter().map(|c| c.to_string()).collect();
    }

    /// User info answers with another subject (a token substitution).
    pub fn userinfo_subject(&self, sub: Option<&str>) {
        self.shared.knobs.lock().unwrap().userinfo_subject = sub.map(str::to_string);
    }

    /// The query of every authorization request so far.
    pub fn authorizations(&self) -> Vec<HashMap<String, String>> {
        self.shared.authorizations.lock().unwrap().clone()
    }

    pub fn logouts(&self) -> Vec<Logout> {
        self.shared.logouts.lock().unwrap().clone()
    }

    /// How many token requests were made.
    pub fn token_calls(&self) -> usize {
        *self.shared.token_calls.lock().unwrap()
    }

    /// Codes redeemed so far (a replay of one is refused with `invalid_grant`).
    pub fn used_codes(&self) -> Vec<String> {
        self.shared.used_codes.lock().unwrap().clone()
    }
}

async fn discovery(State(s): State<Arc<Shared>>) -> Json<Value> {
    let i = &s.issuer;
    Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "userinfo_endpoint": format!("{i}/userinfo"),
        "jwks_uri": format!("{i}/jwks"),
        "end_session_endpoint": format!("{i}/logout"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        // HS256 too, as some providers list it: a client must still refuse it for ID tokens.
        "id_token_signing_alg_values_supported": ["RS256", "HS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "email", "profile"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "email", "email_verified"],
    }))
}

async fn jwks(State(s): State<Arc<Shared>>) -> Json<Value> {
    let (k, kid) = if s.knobs.lock().unwrap().rotated {
        (rotated_key(), KID_ROTATED)
    } else {
        (key(), KID)
    };
    Json(json!({"keys": [{
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(k.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(k.e().to_bytes_be()),
    }]}))
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut u = url::Url::parse(base).expect("a redirect URI");
    for (k, v) in pairs {
        u.query_pairs_mut().append_pair(k, v);
    }
    u.to_string()
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    s.authorizations.lock().unwrap().push(q.clone());
    if q.get("client_id") != Some(&s.client_id)
        || q.get("response_type").map(String::as_str) != Some("code")
    {
        return (StatusCode::BAD_REQUEST, "unknown client or response type").into_response();
    }
    let Some(redirect_uri) = q.get("redirect_uri") else {
        return (StatusCode::BAD_REQUEST, "no redirect_uri").into_response();
    };
    let state = q.get("state").cloned().unwrap_or_default();
    let (user, error) = {
        let k = s.knobs.lock().unwrap();
        (k.user.clone(), k.error.clone())
    };
    if let Some(error) = error {
        return redirect(&with_query(
            redirect_uri,
            &[("error", &error), ("state", &state)],
        ));
    }
    let Some(user) = user else {
        return redirect(&with_query(
            redirect_uri,
            &[("error", "login_required"), ("state", &state)],
        ));
    };
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    s.codes.lock().unwrap().insert(
        code.clone(),
        Grant {
            redirect_uri: redirect_uri.clone(),
            nonce: q.get("nonce").cloned(),
            challenge: q.get("code_challenge").cloned(),
            method: q.get("code_challenge_method").cloned(),
            user,
        },
    );
    redirect(&with_query(
        redirect_uri,
        &[("code", &code), ("state", &state)],
    ))
}

fn token_error(code: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": code}))).into_response()
}

/// The client's id and secret: HTTP Basic, else the form.
fn client_credentials(headers: &HeaderMap, form: &HashMap<String, String>) -> (String, String) {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = STANDARD.decode(basic).unwrap_or_default();
        let text = String::from_utf8_lossy(&decoded).to_string();
        let (id, secret) = text.split_once(':').unwrap_or((&text, ""));
        let unescape = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        };
        return (unescape(id), unescape(secret));
    }
    (
        form.get("client_id").cloned().unwrap_or_default(),
        form.get("client_secret").cloned().unwrap_or_default(),
    )
}

async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    *s.token_calls.lock().unwrap() += 1;
    let (id, secret) = client_credentials(&headers, &form);
    if id != s.client_id || secret != s.client_secret {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return token_error("unsupported_grant_type");
    }
    let code = form.get("code").cloned().unwrap_or_default();
    // Each code once: taken out of the map on first use.
    let Some(grant) = s.codes.lock().unwrap().remove(&code) else {
        return token_error("invalid_grant");
    };
    s.used_codes.lock().unwrap().push(code);
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return token_error("invalid_grant");
    }
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if grant.method.as_deref() != Some("S256") || grant.challenge.as_deref() != Some(&expected) {
        return token_error("invalid_grant");
    }
    let (how, leave_out, rotated) = {
        let k = s.knobs.lock().unwrap();
        (k.misbehave, k.userinfo_only.clone(), k.rotated)
    };
    let id_token = id_token(&s, &grant, how, &leave_out, rotated);
    let access = format!("at-{}", uuid::Uuid::new_v4().simple());
    s.access_tokens
        .lock()
        .unwrap()
        .insert(access.clone(), grant.user.clone());
    Json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": 3600,
        "id_token": id_token,
    }))
    .into_response()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time after 1970")
        .as_secs() as i64
}

fn b64json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("JSON"))
}

fn id_token(
    s: &Shared,
    grant: &Grant,
    how: Misbehave,
    leave_out: &[String],
    rotated: bool,
) -> String {
    let t = now();
    let mut claims = grant.user.claims();
    for c in leave_out {
        claims.remove(c);
    }
    let (iat, exp) = if how == Misbehave::Expired {
        (t - 7200, t - 3600)
    } else {
        (t, t + 300)
    };
    let aud = if how == Misbehave::WrongAudience {
        "another-client".to_string()
    } else {
        s.client_id.clone()
    };
    let iss = if how == Misbehave::WrongIssuer {
        "https://evil.example".to_string()
    } else {
        s.issuer.clone()
    };
    claims.insert("iss".into(), json!(iss));
    claims.insert("aud".into(), json!(aud));
    claims.insert("iat".into(), json!(iat));
    claims.insert("exp".into(), json!(exp));
    let nonce = if how == Misbehave::WrongNonce {
        Some("not-the-nonce".to_string())
    } else {
        grant.nonce.clone()
    };
    if let Some(n) = nonce {
        claims.insert("nonce".into(), json!(n));
    }
    if how == Misbehave::OtherAuthorizedParty {
        claims.insert("azp".into(), json!("another-client"));
    }
    let payload = b64json(&Value::Object(claims.clone()));
    if how == Misbehave::AlgNone {
        let header = b64json(&json!({"alg": "none", "typ": "JWT"}));
        return format!("{header}.{payload}.");
    }
    if how == Misbehave::Hs256 {
        use hmac::Mac;
        let header = b64json(&json!({"alg": "HS256", "typ": "JWT"}));
        let signing_input = format!("{header}.{payload}");
        let mut mac =
            hmac::Hmac::<Sha256>::new_from_slice(s.client_secret.as_bytes()).expect("HMAC key");
        mac.update(signing_input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        return format!("{signing_input}.{sig}");
    }
    let (signing_key, kid) = if rotated {
        (rotated_key(), KID_ROTATED)
    } else {
        (key(), KID)
    };
    let header = b64json(&json!({"alg": "RS256", "typ": "JWT", "kid": kid}));
    let signing_input = format!("{header}.{payload}");
    let signer = SigningKey::<Sha256>::new(signing_key.clone());
    let sig = URL_SAFE_NO_PAD.encode(signer.sign(signing_input.as_bytes()).to_bytes());
    if how == Misbehave::BadSignature {
        // Someone else's email under the original signature.
        claims.insert("email".into(), json!("mallory@example.com"));
        let edited = b64json(&Value::Object(claims));
        return format!("{header}.{edited}.{sig}");
    }
    format!("{signing_input}.{sig}")
}

async fn userinfo(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    let other = s.knobs.lock().unwrap().userinfo_subject.clone();
    match s.access_tokens.lock().unwrap().get(&token) {
        Some(user) => {
            let mut claims = user.claims();
            if let Some(sub) = other {
                claims.insert("sub".into(), json!(sub));
            }
            Json(Value::Object(claims)).into_response()
        }
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn logout(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let record = Logout {
        id_token_hint: q.get("id_token_hint").cloned(),
        post_logout_redirect_uri: q.get("post_logout_redirect_uri").cloned(),
        client_id: q.get("client_id").cloned(),
    };
    s.logouts.lock().unwrap().push(record);
    match q.get("post_logout_redirect_uri") {
        Some(to) => redirect(to),
        None => (StatusCode::OK, "Signed out of the test provider.").into_response(),
    }
}
