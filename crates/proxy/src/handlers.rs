//! The OpenAI-compatible inference routes.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::admission;
use crate::auth::{authenticate_call, refuse_read_only, Caller};
use crate::body::RawBody;
use crate::client_api::{self, ClientApi, ConvertedStream};
use crate::deployment::{Credential, Deployment};
use crate::error::ApiError;
use crate::forward::{dispatch, Answer, Dispatched};
use crate::providers::anthropic::ANTHROPIC_BETA;
use crate::providers::native::NativeRequest;
use crate::providers::translate::TranslateError;
use crate::providers::{self, mock, AnswerContext, CallType, Translation, UsageSeen};
use crate::record::CallRecorder;
use crate::state::ProxyState;
use crate::stream::ProxyStream;

/// Longest a call waits for room in a spend backlog that the store is committing but too
/// slowly: past it the call is refused as when the store fails.
const BACKLOG_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

pub async fn chat_completions(State(state): State<Arc<ProxyState>>, req: Request) -> Response {
    handle(state, CallType::Chat, None, req).await
}

pub async fn completions(State(state): State<Arc<ProxyState>>, req: Request) -> Response {
    handle(state, CallType::Completion, None, req).await
}

pub async fn embeddings(State(state): State<Arc<ProxyState>>, req: Request) -> Response {
    handle(state, CallType::Embedding, None, req).await
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// One inference call. `api` is the client API the route speaks when it is not OpenAI's own:
/// its request becomes a chat request and the answer is translated back.
pub(crate) async fn handle(
    state: Arc<ProxyState>,
    call: CallType,
    api: Option<&'static dyn ClientApi>,
    req: Request,
) -> Response {
    let start = Instant::now();
    let refuse = |e: ApiError| match api {
        Some(a) => a.error_response(e),
        None => e.into_response(),
    };
    let caller = match authenticate_call(&state, req.headers())
        .await
        .and_then(|c| refuse_read_only(&c).map(|()| c))
    {
        Ok(c) => c,
        Err(e) => {
            state.metrics.observe_request(
                call.metric_name(),
                "unknown",
                e.status.as_u16(),
                start.elapsed(),
            );
            return refuse(e);
        }
    };
    if !state.writer.accepting() && !state.writer.wait_for_room(BACKLOG_WAIT).await {
        // Fail closed: a call whose cost cannot be recorded is not made (and costs nothing, so
        // it adds no record to the backlog).
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_db_connection",
            "Usage cannot be recorded because the database is unavailable; calls resume when it is back. Try again shortly.",
        );
        e.retry_after = Some(5);
        state
            .metrics
            .observe_request(call.metric_name(), "unknown", 503, start.elapsed());
        return refuse(e);
    }
    let request_id = new_request_id();
    let mut recorder = CallRecorder::new(state.clone(), request_id, call, caller, start);
    if let Some(a) = api {
        recorder.set_log_name(a.log_name());
    }
    match run(&state, call, api, req, &mut recorder).await {
        Ok(Reply::Now(resp)) => {
            let status = resp.status().as_u16();
            let id = recorder.request_id().to_string();
            let limits = recorder.rate_limit_headers();
            if let Some(t) = recorder.finish_success_grouped(status) {
                state.writer.journaled(t).await;
            }
            with_headers(resp, &id, limits)
        }
        Ok(Reply::Streaming(build)) => {
            let id = recorder.request_id().to_string();
            let limits = recorder.rate_limit_headers();
            with_headers(build(recorder), &id, limits)
        }
        Err(e) => {
            let id = recorder.request_id().to_string();
            if let Some(t) = recorder.finish_error_grouped(&e) {
                state.writer.journaled(t).await;
            }
            with_headers(refuse(e), &id, Vec::new())
        }
    }
}

/// A time-ordered id (UUID v7 layout). Its random part comes from the thread's userspace CSPRNG:
/// `Uuid::now_v7` asked the kernel (a getrandom syscall) on every call.
fn new_request_id() -> String {
    use rand::Rng;
    let random: [u8; 10] = rand::rng().random();
    let id =
        uuid::Builder::from_unix_timestamp_millis(crate::deployment::now_ms(), &random).into_uuid();
    // Written into place: `format!` cost ~800 instructions a call.
    let mut hex = [0u8; uuid::fmt::Simple::LENGTH];
    let mut s = String::with_capacity(REQUEST_ID_PREFIX.len() + hex.len());
    s.push_str(REQUEST_ID_PREFIX);
    s.push_str(id.simple().encode_lower(&mut hex));
    s
}

const REQUEST_ID_PREFIX: &str = "chatcmpl-";

static CALL_ID: header::HeaderName = header::HeaderName::from_static("x-litellm-call-id");

fn with_headers(
    mut resp: Response,
    id: &str,
    extra: Vec<(header::HeaderName, HeaderValue)>,
) -> Response {
    let h = resp.headers_mut();
    h.reserve(extra.len() + 1);
    if let Ok(v) = HeaderValue::from_str(id) {
        h.insert(CALL_ID.clone(), v);
    }
    crate::error::insert_headers(h, extra);
    resp
}

enum Reply {
    Now(Response),
    /// A streaming body that takes over the recorder.
    Streaming(Box<dyn FnOnce(CallRecorder) -> Response + Send>),
}

/// The deployment's own secret, which a stream must never relay.
fn provider_key(d: &Deployment) -> Option<String> {
    match &d.spec.credential {
        Credential::Key(k) => Some(k.clone()),
        Credential::Aws(a) => Some(a.secret_access_key.clone()),
        _ => None,
    }
}

async fn run(
    state: &Arc<ProxyState>,
    call: CallType,
    api: Option<&'static dyn ClientApi>,
    req: Request,
    recorder: &mut CallRecorder,
) -> Result<Reply, ApiError> {
    check_content_type(req.headers())?;
    let beta = req.headers().get(ANTHROPIC_BETA).cloned();
    let mut bytes = read_body(req, state.settings.max_body_bytes).await?;
    let mut client_request = None;
    let mut native = None;
    if let Some(a) = api {
        let (chat, original, native_request) = chat_request(state, a, &bytes)?;
        if let Some(mut n) = native_request {
            if let Some(beta) = beta {
                n.headers.insert(ANTHROPIC_BETA, beta);
            }
            native = Some(n);
        }
        bytes = chat;
        client_request = Some(original);
    }
    let mut body = RawBody::parse(&bytes)?;
    body.reject_upstream_settings()?;
    let model: String = body
        .decode("model")?
        .ok_or_else(|| ApiError::bad_request("'model' is required.").with_param("model"))?;
    let stream = call != CallType::Embedding && body.decode::<bool>("stream")?.unwrap_or(false);
    let client_wants_usage = body
        .decode::<serde_json::Value>("stream_options")?
        .and_then(|o| o.get("include_usage").and_then(|v| v.as_bool()))
        .unwrap_or(false);
    let end_user: Option<String> = body
        .decode::<serde_json::Value>("user")?
        .and_then(|u| u.as_str().map(str::to_string));
    let tags = body.request_tags();
    if !recorder.caller_may_use(&model) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "key_model_access_denied",
            format!("key not allowed to access model. Tried to access {model}. Call `/v1/models` to see the models this key may use."),
        )
        .with_param("model"));
    }
    if !state.router.knows(&model) {
        return Err(ApiError::bad_request(format!(
            "Invalid model name passed in model={model}. Call `/v1/models` to view available models for your key."
        ))
        .with_param("model"));
    }
    body.strip_gateway_fields();
    let request_id = recorder.request_id().to_string();
    let admitted = admission::admit(
        state,
        recorder.caller(),
        &request_id,
        call,
        &mut body,
        &model,
    )
    .await?;
    recorder.set_admission(admitted);
    if let Some(n) = native.as_mut() {
        // The budget check may have lowered the chat request's output bound; the native request
        // gets the same bound.
        for field in ["max_tokens", "max_completion_tokens"] {
            if let Some(limit) = body.decode::<u64>(field).ok().flatten() {
                n.limit_output(limit);
            }
        }
    }
    let body = Arc::new(body);
    recorder.set_request(&model, stream, body.clone(), end_user, tags);

    let Dispatched {
        answer,
        in_flight,
        upstream_model,
        attempts,
        native: native_answer,
    } = match dispatch(state, call, &body, &model, stream, native.as_ref()).await {
        Ok(d) => d,
        Err(f) => {
            recorder.set_attempts(f.attempts);
            return Err(f.error);
        }
    };
    let provider = in_flight.0.spec.provider;
    // Kept for a stream, which scrubs the provider's key from what it relays.
    let deployment = in_flight.0.clone();
    let idle = in_flight
        .0
        .spec
        .timeout
        .unwrap_or(state.settings.default_timeout);
    recorder.set_deployment(in_flight, upstream_model.clone(), attempts);
    let created = unix_now();
    let id = request_id;
    let ctx = AnswerContext {
        id: &id,
        model: &model,
        upstream_model: &upstream_model,
        created,
        include_usage: client_wants_usage,
        client_request: client_request.as_ref(),
    };

    match answer {
        Answer::Mock(text) => {
            let prompt_bytes = body
                .get("messages")
                .or_else(|| body.get("prompt"))
                .or_else(|| body.get("input"))
                .map(|r| r.get().len())
                .unwrap_or(0);
            let usage = mock::usage(prompt_bytes, &text);
            recorder.set_usage(usage);
            recorder.mark_first_token();
            if stream {
                let mut sse = String::new();
                for e in
                    mock::stream_events(&id, &model, created, &text, &usage, client_wants_usage)
                {
                    sse.push_str("data: ");
                    sse.push_str(&e);
                    sse.push_str("\n\n");
                }
                sse.push_str("data: [DONE]\n\n");
                if let Some(a) = api {
                    sse = client_api::convert(a.stream(&ctx).as_mut(), sse.as_bytes()).0;
                }
                Ok(Reply::Now(sse_response(Body::from(sse))))
            } else {
                let chat = mock::response(call, &id, &model, created, &text, &usage);
                Ok(Reply::Now(json_response(answer_for(
                    api,
                    chat.into(),
                    &ctx,
                )?)))
            }
        }
        Answer::Full(bytes) if native_answer => {
            let api = api.ok_or_else(|| ApiError::internal("A native answer without its API."))?;
            let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| {
                ApiError::bad_gateway(format!(
                    "{} - The upstream answer is not valid JSON.",
                    providers::of(provider).error_label()
                ))
            })?;
            match api.native_usage(&v) {
                Some(u) => recorder.set_usage(u.into_domain()),
                // Estimated from the whole answer: a generous bound, as the shape is the API's.
                None => recorder.add_completion_bytes(bytes.len()),
            }
            Ok(Reply::Now(json_response(bytes)))
        }
        Answer::Full(bytes) => {
            let answer = providers::of(provider).read_answer(call, bytes, &ctx)?;
            match answer.usage {
                UsageSeen::Reported(u) => recorder.set_usage(u),
                UsageSeen::Unreported { completion_bytes } => {
                    recorder.add_completion_bytes(completion_bytes)
                }
            }
            Ok(Reply::Now(json_response(answer_for(
                api,
                answer.body,
                &ctx,
            )?)))
        }
        Answer::Stream(resp) => {
            let (translation, converter) = match api {
                Some(a) if native_answer => (
                    Translation::Native {
                        meter: a.native_meter(&ctx),
                        label: providers::of(provider).error_label(),
                    },
                    None,
                ),
                _ => (
                    providers::of(provider).stream_translation(&ctx),
                    api.map(|a| a.stream(&ctx)),
                ),
            };
            Ok(Reply::Streaming(Box::new(move |recorder| {
                let s = ProxyStream::new(resp, translation, recorder, idle)
                    .scrubbing(provider_key(&deployment))
                    .framing(providers::of(provider).stream_framing());
                match converter {
                    Some(c) => sse_response(Body::from_stream(ConvertedStream::new(s, c))),
                    None => sse_response(Body::from_stream(s)),
                }
            })))
        }
    }
}

type JsonMap = serde_json::Map<String, serde_json::Value>;

/// A client API's request as the chat request the pipeline runs, as the caller sent it, and as
/// a deployment that speaks the API gets it (when the model has such a deployment).
fn chat_request(
    state: &ProxyState,
    api: &dyn ClientApi,
    bytes: &[u8],
) -> Result<(bytes::Bytes, JsonMap, Option<NativeRequest>), ApiError> {
    let map: JsonMap = serde_json::from_slice(bytes)
        .map_err(|_| ApiError::bad_request("The request body must be a JSON object."))?;
    let spoken = map
        .get("model")
        .and_then(|m| m.as_str())
        .and_then(|m| state.router.resolve(m))
        .is_some_and(|r| {
            r.deployments
                .iter()
                .any(|d| providers::of(d.spec.provider).speaks(&d.spec, api.native()))
        });
    let (chat, native) = match api.to_chat(&map) {
        Ok(chat) => (chat, spoken.then_some(None)),
        // What only the API itself can express still goes to the deployments that speak it.
        Err(TranslateError::BadRequest(m)) if spoken => (api.chat_outline(&map), Some(Some(m))),
        Err(TranslateError::BadRequest(m)) => return Err(ApiError::bad_request(m)),
        Err(TranslateError::BadUpstream(m)) => return Err(ApiError::bad_gateway(m)),
    };
    let native = match native {
        Some(untranslatable) => {
            // The caller's own body goes upstream: it may not choose where, either.
            RawBody::parse(bytes)?.reject_upstream_settings()?;
            Some(NativeRequest {
                api: api.native(),
                body: api.native_body(&map),
                headers: HeaderMap::new(),
                untranslatable,
            })
        }
        None => None,
    };
    let chat = serde_json::to_vec(&chat)
        .map(bytes::Bytes::from)
        .map_err(|_| ApiError::internal("The translated request could not be written."))?;
    Ok((chat, map, native))
}

/// A complete chat answer, translated for the client API when the route has one.
fn answer_for(
    api: Option<&dyn ClientApi>,
    chat: bytes::Bytes,
    ctx: &AnswerContext<'_>,
) -> Result<bytes::Bytes, ApiError> {
    let Some(a) = api else {
        return Ok(chat);
    };
    let v: serde_json::Value = serde_json::from_slice(&chat)
        .map_err(|_| ApiError::bad_gateway("The upstream answer is not valid JSON."))?;
    let out = a
        .answer_from_chat(&v, ctx)
        .map_err(|e| ApiError::bad_gateway(e.to_string()))?;
    serde_json::to_vec(&out)
        .map(bytes::Bytes::from)
        .map_err(|_| ApiError::internal("The translated answer could not be written."))
}

/// Room for an answer's headers: its content type, the call id and up to eight rate-limit
/// headers. A map made with room once costs one allocation; grown insert by insert it was
/// reallocated and rehashed on the way (~1.5 % of a virtual-key call's CPU).
const ANSWER_HEADERS: usize = 12;

fn json_response(body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.headers_mut() = HeaderMap::with_capacity(ANSWER_HEADERS);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn sse_response(body: Body) -> Response {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tell nginx-style front proxies not to buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

pub(crate) fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    let ends_with_json = mime
        .len()
        .checked_sub(5)
        .and_then(|at| mime.get(at..))
        .is_some_and(|tail| tail.eq_ignore_ascii_case("+json"));
    // curl's `-d` sends a form content type with a JSON body; LiteLLM accepts that, so do we
    // (the body must still be JSON).
    if mime.eq_ignore_ascii_case("application/json")
        || ends_with_json
        || mime.is_empty()
        || mime.eq_ignore_ascii_case("application/x-www-form-urlencoded")
    {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Unsupported Content-Type '{mime}': send the request body as application/json."
        )))
    }
}

pub(crate) async fn read_body(req: Request, limit: usize) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "bad_request_error",
            format!("Request body is larger than the gateway accepts ({limit} bytes)."),
        )
    };
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(too_large());
        }
    }
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map(crate::upstream::own_copy)
        .map_err(|e| {
            if std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit")
            {
                too_large()
            } else {
                ApiError::bad_request("The request body could not be read.")
            }
        })
}

#[derive(Deserialize)]
pub struct ModelsQuery {
    #[serde(default)]
    return_wildcard_routes: Option<bool>,
}

fn model_object(id: &str, created: i64) -> serde_json::Value {
    json!({"id": id, "object": "model", "created": created, "owned_by": "openai"})
}

pub async fn list_models(
    State(state): State<Arc<ProxyState>>,
    headers: HeaderMap,
    Query(q): Query<ModelsQuery>,
) -> Response {
    let caller = match authenticate_call(&state, &headers).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let created = unix_now();
    let data: Vec<_> = state
        .router
        .model_names(q.return_wildcard_routes.unwrap_or(false))
        .iter()
        .filter(|m| caller.may_use(m))
        .map(|m| model_object(m, created))
        .collect();
    axum::Json(json!({"data": data, "object": "list"})).into_response()
}

pub async fn get_model(
    State(state): State<Arc<ProxyState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let caller: Caller = match authenticate_call(&state, &headers).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if state.router.resolve(&id).is_none() || !caller.may_use(&id) {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found_error",
            format!("The model '{id}' does not exist."),
        )
        .into_response();
    }
    axum::Json(model_object(&id, unix_now())).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_accepted_in_any_case() {
        let check = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
            check_content_type(&h).is_ok()
        };
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/vnd.api+json",
            "application/VND.API+JSON",
            "application/x-www-form-urlencoded",
            "",
            " ; charset=utf-8",
        ] {
            assert!(check(ok), "{ok}");
        }
        for refused in [
            "text/plain",
            "json",
            "+jso",
            "application/jsonx",
            "multipart/form-data",
        ] {
            assert!(!check(refused), "{refused}");
        }
        assert!(check_content_type(&HeaderMap::new()).is_ok());
    }

    #[test]
    fn request_ids_are_unique_v7_and_ordered_by_time() {
        let ids: Vec<String> = (0..1000).map(|_| new_request_id()).collect();
        let unique: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        for id in &ids {
            let hex = id.strip_prefix("chatcmpl-").unwrap();
            let u = uuid::Uuid::parse_str(hex).unwrap();
            assert_eq!(u.get_version_num(), 7);
        }
        let first = uuid::Uuid::parse_str(&ids[0][9..]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = uuid::Uuid::parse_str(&new_request_id()[9..]).unwrap();
        assert!(later > first);
    }
}
