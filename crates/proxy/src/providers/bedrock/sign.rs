//! SigV4 signatures for Bedrock requests, made over the exact URL, headers and body sent.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SigningParams, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::SIGNING_SERVICE;
use crate::deployment::AwsCredentials;

/// Why a request could not be signed. The messages name no secret.
#[derive(Debug, thiserror::Error)]
pub(super) enum SignError {
    #[error("the signing parameters are incomplete")]
    Params,
    #[error("the request could not be signed: {0}")]
    Signing(String),
    #[error("the signature produced a header that cannot be sent")]
    Header,
}

/// Adds `authorization`, `x-amz-date` and (with temporary credentials) `x-amz-security-token`
/// to `headers`, signing `uri`, those headers and `body` as sent. The signed values are marked
/// sensitive so no header dump shows them.
pub(super) fn sign_request(
    creds: &AwsCredentials,
    uri: &http::Uri,
    headers: &mut HeaderMap,
    body: &[u8],
    time: SystemTime,
) -> Result<(), SignError> {
    let identity: Identity = Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.clone(),
        creds.session_token.clone(),
        None,
        "tollgate-config",
    )
    .into();
    let params: SigningParams<'_> = v4::SigningParams::builder()
        .identity(&identity)
        .region(&creds.region)
        .name(SIGNING_SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| SignError::Params)?
        .into();
    let uri_text = uri.to_string();
    let signable = SignableRequest::new(
        "POST",
        uri_text.as_str(),
        headers
            .iter()
            .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v))),
        SignableBody::Bytes(body),
    )
    .map_err(|e| SignError::Signing(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| SignError::Signing(e.to_string()))?
        .into_parts();
    let (signed, _query) = instructions.into_parts();
    for h in signed {
        let name = HeaderName::from_bytes(h.name().as_bytes()).map_err(|_| SignError::Header)?;
        let mut value = HeaderValue::from_str(h.value()).map_err(|_| SignError::Header)?;
        value.set_sensitive(h.sensitive() || name == http::header::AUTHORIZATION);
        headers.insert(name, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn creds(token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(str::to_owned),
            region: "us-east-1".into(),
        }
    }

    #[test]
    fn signs_with_date_scope_and_token() {
        let uri: http::Uri =
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/a.b-v1%3A0/converse"
                .parse()
                .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        // 2015-08-30T12:36:00Z, the date of AWS's published examples.
        let time = UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        sign_request(
            &creds(Some("FQoGZXIvYXdzEXAMPLETOKEN")),
            &uri,
            &mut headers,
            b"{}",
            time,
        )
        .unwrap();
        let auth = headers["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="
            ),
            "{auth}"
        );
        assert_eq!(headers["x-amz-date"], "20150830T123600Z");
        assert_eq!(headers["x-amz-security-token"], "FQoGZXIvYXdzEXAMPLETOKEN");
        assert!(headers["authorization"].is_sensitive());
        assert!(headers["x-amz-security-token"].is_sensitive());
        // The same request signed twice at the same time gets the same signature; another body
        // gets another.
        let mut again = HeaderMap::new();
        again.insert("content-type", HeaderValue::from_static("application/json"));
        sign_request(
            &creds(Some("FQoGZXIvYXdzEXAMPLETOKEN")),
            &uri,
            &mut again,
            b"{}",
            time,
        )
        .unwrap();
        assert_eq!(again["authorization"], headers["authorization"]);
        let mut other = HeaderMap::new();
        other.insert("content-type", HeaderValue::from_static("application/json"));
        sign_request(
            &creds(Some("FQoGZXIvYXdzEXAMPLETOKEN")),
            &uri,
            &mut other,
            b"{ }",
            time,
        )
        .unwrap();
        assert_ne!(other["authorization"], headers["authorization"]);
    }

    #[test]
    fn without_a_token_no_token_header() {
        let uri: http::Uri = "http://127.0.0.1:8080/model/m/invoke".parse().unwrap();
        let mut headers = HeaderMap::new();
        sign_request(&creds(None), &uri, &mut headers, b"", SystemTime::now()).unwrap();
        assert!(!headers.contains_key("x-amz-security-token"));
        let auth = headers["authorization"].to_str().unwrap();
        assert!(auth.contains("SignedHeaders=host;x-amz-date,"), "{auth}");
        assert!(!auth.contains("wJalrXUtnFEMI"));
    }
}
