//! Bedrock error answers → the caller's OpenAI-style error.
//!
//! Bedrock names the error in the `x-amzn-ErrorType` header (`ThrottlingException:http://…`)
//! and sometimes in the body's `__type`; the message is the body's `message`.

use http::HeaderMap;
use serde_json::Value;

/// The bare exception name from a header or `__type` value (`ThrottlingException:http://…`,
/// `com.amazon.coral.validate#ValidationException`).
fn exception_name(raw: &str) -> &str {
    let raw = raw.split(':').next().unwrap_or(raw);
    raw.rsplit('#').next().unwrap_or(raw).trim()
}

fn error_type_for_status(status: u16) -> &'static str {
    match status {
        400 | 413 => "invalid_request_error",
        401 | 403 => "authentication_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        _ => "api_error",
    }
}

fn error_type_for_exception(name: &str) -> Option<&'static str> {
    Some(match name {
        "ThrottlingException" | "TooManyRequestsException" | "ServiceQuotaExceededException" => {
            "rate_limit_error"
        }
        "ValidationException" => "invalid_request_error",
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignatureException"
        | "MissingAuthenticationTokenException"
        | "ExpiredTokenException" => "authentication_error",
        "ResourceNotFoundException" => "not_found_error",
        "InternalServerException"
        | "ServiceUnavailableException"
        | "ModelErrorException"
        | "ModelNotReadyException"
        | "ModelTimeoutException"
        | "ModelStreamErrorException" => "api_error",
        _ => return None,
    })
}

/// A wrong or unusable key pair shows up as one of these; the message then says what to check.
fn is_credential_problem(name: &str, message: &str) -> bool {
    matches!(
        name,
        "UnrecognizedClientException" | "InvalidSignatureException" | "ExpiredTokenException"
    ) || message.contains("signature we calculated does not match")
        || message.contains("security token included in the request is invalid")
}

pub(super) fn map_error(status: u16, headers: &HeaderMap, body: &[u8]) -> (String, &'static str) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let from_body = parsed
        .as_ref()
        .and_then(|v| v.get("__type"))
        .and_then(Value::as_str);
    let from_header = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok());
    let name = from_header.or(from_body).map(exception_name).unwrap_or("");
    let message = parsed.as_ref().and_then(|v| {
        v.get("message")
            .or_else(|| v.get("Message"))
            .and_then(Value::as_str)
    });
    let kind = error_type_for_exception(name).unwrap_or_else(|| error_type_for_status(status));
    let mut text = match message {
        Some(m) if name.is_empty() => m.to_owned(),
        Some(m) => format!("{name}: {m}"),
        None => {
            // Bodies can be large HTML pages from a proxy; cap what reaches the client.
            let shown = String::from_utf8_lossy(&body[..body.len().min(500)])
                .trim()
                .to_owned();
            match (shown.is_empty(), name.is_empty()) {
                (true, true) => format!("Bedrock returned HTTP {status}"),
                (true, false) => format!("Bedrock returned HTTP {status} ({name})"),
                (false, _) => format!("Bedrock returned HTTP {status}: {shown}"),
            }
        }
    };
    if is_credential_problem(name, &text) {
        text.push_str(
            " Check the deployment's aws_access_key_id, aws_secret_access_key and \
             aws_session_token.",
        );
    }
    (text, kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_type(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-amzn-errortype", t.parse().unwrap());
        h
    }

    #[test]
    fn exceptions_named_in_the_header() {
        for (status, name, kind) in [
            (429, "ThrottlingException", "rate_limit_error"),
            (400, "ValidationException", "invalid_request_error"),
            (403, "AccessDeniedException", "authentication_error"),
            (404, "ResourceNotFoundException", "not_found_error"),
            (500, "InternalServerException", "api_error"),
            (503, "ServiceUnavailableException", "api_error"),
            (424, "ModelErrorException", "api_error"),
            // An unknown name falls back to the status.
            (429, "SomethingNewException", "rate_limit_error"),
        ] {
            let body = json!({"message": "boom"}).to_string();
            let (msg, k) = map_error(
                status,
                &with_type(&format!(
                    "{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"
                )),
                body.as_bytes(),
            );
            assert_eq!(k, kind, "{name}");
            assert_eq!(msg, format!("{name}: boom"));
        }
    }

    #[test]
    fn type_in_the_body_and_unreadable_bodies() {
        let body = json!({"__type": "com.amazon.coral.validate#ValidationException",
                          "Message": "Input is too long for requested model."});
        assert_eq!(
            map_error(400, &HeaderMap::new(), body.to_string().as_bytes()),
            (
                "ValidationException: Input is too long for requested model.".to_owned(),
                "invalid_request_error"
            )
        );
        assert_eq!(
            map_error(502, &HeaderMap::new(), b"<html>Bad Gateway</html>"),
            (
                "Bedrock returned HTTP 502: <html>Bad Gateway</html>".to_owned(),
                "api_error"
            )
        );
        assert_eq!(
            map_error(429, &with_type("ThrottlingException"), b""),
            (
                "Bedrock returned HTTP 429 (ThrottlingException)".to_owned(),
                "rate_limit_error"
            )
        );
    }

    #[test]
    fn bad_signatures_say_what_to_check() {
        let body = json!({"message": "The request signature we calculated does not match the signature you provided."});
        let (msg, kind) = map_error(
            403,
            &with_type("InvalidSignatureException"),
            body.to_string().as_bytes(),
        );
        assert_eq!(kind, "authentication_error");
        assert!(
            msg.starts_with("InvalidSignatureException: The request signature"),
            "{msg}"
        );
        assert!(msg.contains("aws_secret_access_key"), "{msg}");
        let (msg, kind) = map_error(403, &HeaderMap::new(), body.to_string().as_bytes());
        assert_eq!(kind, "authentication_error");
        assert!(msg.contains("aws_secret_access_key"), "{msg}");
    }
}
