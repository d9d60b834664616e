//! `bedrock/` deployments: the model id Bedrock is called with, the region requests are signed
//! for, the AWS key pair that signs them and the runtime endpoint they go to.
//!
//! Each value is looked for where LiteLLM looks: the deployment's own `aws_*` setting first (an
//! `os.environ/VAR` reference included), then the usual AWS variable.

use serde_yaml_ng::Value;
use url::Url;

use super::raw::{child, field, Ctx, Text};
use super::validate::http_url;
use super::{ApiKey, ConfigError, Secret};

/// The litellm_params a Bedrock deployment is read from.
pub(super) const KEYS: &[&str] = &[
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_region_name",
    "aws_bedrock_runtime_endpoint",
];

/// What a Bedrock deployment signs with. Debug shows no secret (`ApiKey` hides its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    pub access_key_id: ApiKey,
    pub secret_access_key: ApiKey,
    pub session_token: Option<ApiKey>,
    pub region: String,
    /// `<region>/<model id>` when the model path named the region (`bedrock/us-east-1/…`): the
    /// name LiteLLM's price table lists regional prices under.
    pub regional_model: Option<String>,
}

/// A Bedrock deployment's settings and the runtime endpoint it calls when no `api_base` is set.
pub(super) struct Parsed {
    pub aws: AwsSettings,
    pub endpoint: Url,
}

/// LiteLLM's route prefixes that name another Bedrock API than Converse.
const OTHER_ROUTES: &[&str] = &[
    "invoke",
    "chat_completions",
    "converse_like",
    "agent",
    "agentcore",
    "async_invoke",
    "openai",
    "mantle",
    "claude_platform",
    "llama",
    "deepseek_r1",
    "qwen2",
    "qwen3",
    "nova",
    "nova-2",
    "moonshot",
    "stability",
];

/// An AWS region name as LiteLLM accepts it.
fn is_region(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A region written as the first segment of a model path (`us-east-1/…`, `us-gov-west-1/…`):
/// letters, dashes and a final number, as every AWS region is named.
fn is_path_region(s: &str) -> bool {
    let mut parts = s.split('-');
    let first = parts.next().unwrap_or("");
    let rest: Vec<&str> = parts.collect();
    first.len() == 2
        && first.bytes().all(|b| b.is_ascii_lowercase())
        && rest.len() >= 2
        && rest
            .last()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        && rest[..rest.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
}

/// The region of a Bedrock ARN (`arn:aws:bedrock:us-east-1:…`).
fn arn_region(id: &str) -> Option<&str> {
    if !id.starts_with("arn:") {
        return None;
    }
    id.split(':').nth(3).filter(|r| is_region(r))
}

/// A `bedrock/…` model as written: the model id Bedrock is called with, and the region its path
/// names, if any.
#[derive(Debug, PartialEq, Eq)]
struct ModelPath {
    pub id: String,
    pub region: Option<String>,
}

/// Why a model path is not one Tollgate calls.
enum RouteError {
    Other(String),
    Empty,
}

/// The model id and the region a `bedrock/…` model names: `converse/` is Converse, which every
/// chat call uses; a leading region segment picks the region, as in LiteLLM.
fn split_model(upstream: &str) -> Result<ModelPath, RouteError> {
    let rest = upstream.strip_prefix("converse/").unwrap_or(upstream);
    let (region, id) = match rest.split_once('/') {
        Some((first, id)) if is_path_region(first) => (Some(first.to_string()), id),
        _ => (None, rest),
    };
    if let Some((route, _)) = id.split_once('/') {
        if !id.starts_with("arn:") && OTHER_ROUTES.contains(&route) {
            return Err(RouteError::Other(route.to_string()));
        }
    }
    if id.is_empty() {
        return Err(RouteError::Empty);
    }
    Ok(ModelPath {
        id: id.to_string(),
        region,
    })
}

/// One credential setting: the deployment's own (literal or `os.environ/`), else `env_var`.
fn credential(
    ctx: &mut Ctx<'_>,
    params: &Value,
    params_path: &str,
    key: &str,
    env_var: &str,
    label: &str,
) -> Result<Option<ApiKey>, ConfigError> {
    if let Some(value) = field(params, key) {
        let path = child(params_path, key);
        match ctx.text(value, &path)? {
            Text::Plain(s) if s.is_empty() => ctx.warn(&path, "is empty; treated as not set"),
            Text::Plain(s) => return Ok(Some(ApiKey::Literal(Secret::new(s)))),
            Text::Env { var, value } => {
                if value.is_none() {
                    ctx.warn(
                        label,
                        &format!("{key} uses os.environ/{var}, which is not set; calls to this deployment will fail"),
                    );
                }
                return Ok(Some(ApiKey::Env {
                    var,
                    value: value.map(Secret::new),
                }));
            }
        }
    }
    Ok(ctx.env.get(env_var).map(|v| ApiKey::Env {
        var: env_var.to_string(),
        value: Some(Secret::new(v)),
    }))
}

/// A deployment's upstream model id and, for a Bedrock one, its AWS settings; a deployment of
/// another provider must not carry any.
pub(super) fn read(
    ctx: &mut Ctx<'_>,
    params: &Value,
    params_path: &str,
    label: &str,
    is_bedrock: bool,
    upstream_model: String,
    is_mock: bool,
) -> Result<(String, Option<Parsed>), ConfigError> {
    if !is_bedrock {
        refuse_elsewhere(ctx, params, params_path);
        return Ok((upstream_model, None));
    }
    let path = split_model(&upstream_model).map_err(|e| match e {
        RouteError::Other(route) => ctx.unsupported(
            label,
            format!(
                "the Bedrock '{route}/' route is not supported; write bedrock/<model id> \
                 (or bedrock/converse/<model id>) to call it through the Converse API"
            ),
        ),
        RouteError::Empty => ctx.invalid(
            &child(params_path, "model"),
            "bedrock/<model id> with a model id after the '/'",
        ),
    })?;
    let parsed = parse(ctx, params, params_path, label, &path, is_mock)?;
    Ok((path.id, parsed))
}

/// Refuses a Bedrock setting on another provider's deployment: nothing else reads them, and
/// ignoring them would call that upstream with other credentials than meant.
fn refuse_elsewhere(ctx: &mut Ctx<'_>, params: &Value, params_path: &str) {
    for key in KEYS {
        if field(params, key).is_some() {
            let e = ctx.unsupported(
                &child(params_path, key),
                "aws_* settings apply to bedrock/ deployments only",
            );
            ctx.refuse(e);
        }
    }
}

/// Reads a Bedrock deployment's AWS settings; None for mock deployments, which call nothing.
/// Settings Tollgate cannot honour are noted with `ctx.refuse`, so every one is listed at once.
fn parse(
    ctx: &mut Ctx<'_>,
    params: &Value,
    params_path: &str,
    label: &str,
    model: &ModelPath,
    is_mock: bool,
) -> Result<Option<Parsed>, ConfigError> {
    if field(params, "api_key").is_some() {
        let e = ctx.unsupported(
            &child(params_path, "api_key"),
            "Bedrock API keys (bearer tokens) are not supported; sign with aws_access_key_id and aws_secret_access_key",
        );
        ctx.refuse(e);
    }
    if field(params, "model_id").is_some() {
        let e = ctx.unsupported(
            &child(params_path, "model_id"),
            "model_id is not supported; write the ARN as the model (bedrock/arn:aws:bedrock:…)",
        );
        ctx.refuse(e);
    }
    if is_mock {
        return Ok(None);
    }

    let region = match field(params, "aws_region_name") {
        Some(v) => Some(ctx.string(v, &child(params_path, "aws_region_name"))?),
        None => model
            .region
            .as_deref()
            .or_else(|| arn_region(&model.id))
            .map(str::to_string)
            .or_else(|| {
                ["AWS_REGION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION"]
                    .iter()
                    .find_map(|var| ctx.env.get(var))
            }),
    };
    let region = match region {
        Some(r) if is_region(&r) => r,
        Some(r) => {
            return Err(ctx.invalid(
                &child(params_path, "aws_region_name"),
                format!("an AWS region name like us-east-1, got \"{r}\""),
            ))
        }
        None => {
            return Err(ctx.unsupported(
                label,
                "no AWS region: set aws_region_name (LiteLLM would fall back to us-west-2), \
                 or AWS_REGION_NAME, AWS_REGION or AWS_DEFAULT_REGION",
            ))
        }
    };

    let key_id = credential(
        ctx,
        params,
        params_path,
        "aws_access_key_id",
        "AWS_ACCESS_KEY_ID",
        label,
    )?;
    let secret = credential(
        ctx,
        params,
        params_path,
        "aws_secret_access_key",
        "AWS_SECRET_ACCESS_KEY",
        label,
    )?;
    let token = credential(
        ctx,
        params,
        params_path,
        "aws_session_token",
        "AWS_SESSION_TOKEN",
        label,
    )?;
    let (access_key_id, secret_access_key) =
        match (key_id, secret) {
            (Some(k), Some(s)) => (k, s),
            (None, None) => {
                return Err(ctx.unsupported(
                    label,
                    "no AWS credentials: set aws_access_key_id and aws_secret_access_key (or \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY); profiles, role assumption and \
                 instance roles are not supported",
                ))
            }
            (Some(_), None) => return Err(ctx.unsupported(
                label,
                "aws_access_key_id is set but no aws_secret_access_key (nor AWS_SECRET_ACCESS_KEY)",
            )),
            (None, Some(_)) => {
                return Err(ctx.unsupported(
                    label,
                    "aws_secret_access_key is set but no aws_access_key_id (nor AWS_ACCESS_KEY_ID)",
                ))
            }
        };

    let endpoint = match field(params, "aws_bedrock_runtime_endpoint") {
        Some(v) => {
            let path = child(params_path, "aws_bedrock_runtime_endpoint");
            let raw = ctx.string(v, &path)?;
            http_url(ctx, &raw, &path)?
        }
        None => match ctx.env.get("AWS_BEDROCK_RUNTIME_ENDPOINT") {
            Some(raw) => http_url(ctx, &raw, "AWS_BEDROCK_RUNTIME_ENDPOINT")?,
            None => {
                let default = format!("https://bedrock-runtime.{region}.amazonaws.com");
                Url::parse(&default).map_err(|_| {
                    ctx.invalid(
                        &child(params_path, "aws_region_name"),
                        "an AWS region name like us-east-1",
                    )
                })?
            }
        },
    };
    Ok(Some(Parsed {
        aws: AwsSettings {
            access_key_id,
            secret_access_key,
            session_token: token,
            region,
            regional_model: model.region.as_ref().map(|r| format!("{r}/{}", model.id)),
        },
        endpoint,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_paths() {
        let ok = |m: &str| match split_model(m) {
            Ok(ModelPath { id, region }) => (id, region),
            Err(_) => panic!("{m} should be accepted"),
        };
        assert_eq!(
            ok("anthropic.claude-3-5-sonnet-20240620-v1:0"),
            ("anthropic.claude-3-5-sonnet-20240620-v1:0".into(), None)
        );
        assert_eq!(
            ok("converse/us.anthropic.claude-3-haiku-20240307-v1:0"),
            ("us.anthropic.claude-3-haiku-20240307-v1:0".into(), None)
        );
        assert_eq!(
            ok("us-east-1/amazon.titan-embed-text-v2:0"),
            (
                "amazon.titan-embed-text-v2:0".into(),
                Some("us-east-1".into())
            )
        );
        assert_eq!(
            ok("converse/us-gov-west-1/meta.llama3-8b-instruct-v1:0"),
            (
                "meta.llama3-8b-instruct-v1:0".into(),
                Some("us-gov-west-1".into())
            )
        );
        let arn = "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-3-haiku-20240307-v1:0";
        assert_eq!(ok(arn), (arn.into(), None));
        assert_eq!(arn_region(arn), Some("eu-west-1"));
        assert_eq!(arn_region("anthropic.claude"), None);
        assert_eq!(ok("*"), ("*".into(), None));
        assert!(
            matches!(split_model("invoke/anthropic.claude-v2"), Err(RouteError::Other(r)) if r == "invoke")
        );
        assert!(matches!(split_model("converse/"), Err(RouteError::Empty)));
        assert!(!is_path_region("us"));
        assert!(!is_path_region("anthropic.claude"));
        assert!(is_path_region("ap-southeast-2"));
    }
}
