//! One `model_list` entry → `Deployment`.

use serde_yaml_ng::Value;
use url::Url;

use super::bedrock;
use super::policy::{self, Disposition, Section};
use super::provider::{self, ModelError, Spec};
use super::raw::{child, field, item, Ctx, Text};
use super::validate::{cost, http_url, positive_secs};
use super::{ApiKey, ConfigError, Deployment, ModelInfo, Provider, Secret};

const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";

pub(super) fn parse_model_list(
    ctx: &mut Ctx<'_>,
    list: &Value,
) -> Result<Vec<Deployment>, ConfigError> {
    let items = ctx
        .list(list, "model_list")
        .map_err(|_| ctx.invalid("model_list", "a list of deployments"))?;
    let mut out = Vec::with_capacity(items.len());
    for (index, entry) in items.iter().enumerate() {
        // A bad entry is noted and the next one read, so every bad entry is reported at once.
        match parse_deployment(ctx, index, entry) {
            Ok(d) => out.push(d),
            Err(e) => ctx.refuse(e),
        }
    }
    super::vertex::share_credentials(&mut out);
    Ok(out)
}

fn parse_deployment(
    ctx: &mut Ctx<'_>,
    index: usize,
    entry: &Value,
) -> Result<Deployment, ConfigError> {
    let path = item("model_list", index);
    if !entry.is_mapping() {
        return Err(ctx.invalid(&path, "a mapping with model_name and litellm_params"));
    }
    for (key, value) in ctx.entries(entry, &path)? {
        let key_path = child(&path, key);
        if policy::check(ctx, Section::Deployment, key, value, &key_path)? == Disposition::Unknown {
            ctx.warn(&key_path, "unknown key; ignored");
        }
    }

    let name_path = child(&path, "model_name");
    let model_name = match field(entry, "model_name") {
        Some(v) => ctx.string(v, &name_path)?,
        None => String::new(),
    };
    if model_name.is_empty() {
        return Err(ctx.invalid(&name_path, "a non-empty string"));
    }
    // Errors about the whole deployment name it the way operators search for it.
    let label = format!("{path} (model_name '{model_name}')");

    let params_path = child(&path, "litellm_params");
    let params = match field(entry, "litellm_params") {
        Some(v) if v.is_mapping() => v,
        _ => return Err(ctx.invalid(&params_path, "a mapping")),
    };
    let p = |key: &str| child(&params_path, key);
    let opt_string = |ctx: &Ctx<'_>, key: &str| -> Result<Option<String>, ConfigError> {
        field(params, key)
            .map(|v| ctx.string(v, &p(key)))
            .transpose()
    };

    let model = match field(params, "model") {
        Some(v) => ctx.string(v, &p("model"))?,
        None => return Err(ctx.invalid(&p("model"), "a string like <provider>/<model>")),
    };
    let custom_provider = opt_string(ctx, "custom_llm_provider")?;
    let (spec, upstream_model) =
        provider::resolve(&model, custom_provider.as_deref()).map_err(|e| match e {
            ModelError::NoProvider => ctx.unsupported(
                &label,
                format!(
                    "cannot tell the provider of model '{model}'; write it as <provider>/<model>"
                ),
            ),
            ModelError::Unsupported(name) => ctx.unsupported(
                &label,
                format!("provider '{name}' is not supported by Tollgate"),
            ),
            ModelError::EmptyModel => ctx.invalid(
                &p("model"),
                "<provider>/<model> with a model name after the '/'",
            ),
        })?;

    // Key policy after the provider, so a Bedrock deployment is reported as
    // such rather than by its first aws_* key.
    let mut default_params = serde_json::Map::new();
    for (key, value) in ctx.entries(params, &params_path)? {
        if value.is_null() {
            continue;
        }
        let key_path = child(&params_path, key);
        if policy::check(ctx, Section::LitellmParams, key, value, &key_path)?
            == Disposition::Unknown
        {
            if let Some(json) = ctx.json(value, &key_path)? {
                default_params.insert(key.to_string(), json);
            }
        }
    }

    let mock_response = opt_string(ctx, "mock_response")?;
    let is_mock = mock_response.is_some();
    let (upstream_model, aws) = bedrock::read(
        ctx,
        params,
        &params_path,
        &label,
        spec.provider == Provider::Bedrock,
        upstream_model,
        is_mock,
    )?;
    let api_base = match &aws {
        Some(b) if field(params, "api_base").is_none() && field(params, "base_url").is_none() => {
            Some(b.endpoint.clone())
        }
        _ => api_base(ctx, params, &params_path, spec, is_mock)?,
    };
    let api_key = match spec.provider {
        // Bedrock signs with its AWS key pair; an api_key was refused above.
        Provider::Bedrock => None,
        _ => api_key(ctx, params, &params_path, &label, spec, is_mock)?,
    };
    let api_version = opt_string(ctx, "api_version")?.or_else(|| {
        (spec.provider == Provider::Azure).then(|| AZURE_DEFAULT_API_VERSION.to_string())
    });
    let organization = opt_string(ctx, "organization")?;
    let vertex = super::vertex::target(
        ctx,
        params,
        &params_path,
        &label,
        spec,
        &upstream_model,
        is_mock,
    )?;
    let rpm = field(params, "rpm")
        .map(|v| ctx.uint(v, &p("rpm")))
        .transpose()?;
    let tpm = field(params, "tpm")
        .map(|v| ctx.uint(v, &p("tpm")))
        .transpose()?;
    let max_retries = field(params, "max_retries")
        .map(|v| ctx.u32(v, &p("max_retries")))
        .transpose()?;
    let drop_params = field(params, "drop_params")
        .map(|v| ctx.boolean(v, &p("drop_params")))
        .transpose()?;
    let timeout_secs = field(params, "timeout")
        .map(|v| positive_secs(ctx, v, &p("timeout")))
        .transpose()?;
    let input_cost = field(params, "input_cost_per_token")
        .map(|v| cost(ctx, v, &p("input_cost_per_token")))
        .transpose()?;
    let output_cost = field(params, "output_cost_per_token")
        .map(|v| cost(ctx, v, &p("output_cost_per_token")))
        .transpose()?;

    let info = merged_model_info(ctx, entry, params, &path, &params_path)?;

    Ok(Deployment {
        index,
        model_name,
        provider: spec.provider,
        upstream_model,
        api_base,
        api_key,
        api_version,
        organization,
        rpm,
        tpm,
        timeout_secs,
        max_retries,
        drop_params,
        input_cost_per_token: input_cost.or(info.input_cost),
        output_cost_per_token: output_cost.or(info.output_cost),
        mock_response,
        default_params,
        model_info: info.info,
        vertex,
        aws: aws.map(|b| b.aws),
    })
}

fn api_base(
    ctx: &mut Ctx<'_>,
    params: &Value,
    params_path: &str,
    spec: &Spec,
    is_mock: bool,
) -> Result<Option<Url>, ConfigError> {
    // LiteLLM takes `api_base or base_url`.
    let (key, value) = match (field(params, "api_base"), field(params, "base_url")) {
        (Some(v), other) => {
            if other.is_some() {
                ctx.warn(
                    &child(params_path, "base_url"),
                    "ignored because api_base is also set",
                );
            }
            ("api_base", v)
        }
        (None, Some(v)) => ("base_url", v),
        (None, None) => {
            let default = spec.default_base.and_then(|base| Url::parse(base).ok());
            // Vertex AI's host follows the deployment's location.
            if default.is_none() && !is_mock && spec.provider != Provider::VertexAi {
                return Err(ctx.invalid(
                    &child(params_path, "api_base"),
                    format!(
                        "an http(s) URL: api_base is required for provider {}",
                        spec.name
                    ),
                ));
            }
            return Ok(default);
        }
    };
    let path = child(params_path, key);
    let raw = ctx.string(value, &path)?;
    let mut url = http_url(ctx, &raw, &path)?;
    if spec.append_v1_to_bare_base && url.path() == "/" {
        url.set_path("/v1");
    }
    Ok(Some(url))
}

fn api_key(
    ctx: &mut Ctx<'_>,
    params: &Value,
    params_path: &str,
    label: &str,
    spec: &Spec,
    is_mock: bool,
) -> Result<Option<ApiKey>, ConfigError> {
    if let Some(value) = field(params, "api_key") {
        let path = child(params_path, "api_key");
        match ctx.text(value, &path)? {
            Text::Plain(s) if s.is_empty() => {
                ctx.warn(&path, "is empty; treated as not set");
            }
            Text::Plain(s) => return Ok(Some(ApiKey::Literal(Secret::new(s)))),
            Text::Env { var, value } => {
                if value.is_none() && !is_mock {
                    ctx.warn(
                        label,
                        &format!("api_key uses os.environ/{var}, which is not set; calls to this deployment will fail"),
                    );
                }
                return Ok(Some(ApiKey::Env {
                    var,
                    value: value.map(Secret::new),
                }));
            }
        }
    }
    // No key in the config: LiteLLM reads the provider's usual variable.
    if let Some(var) = spec.key_env.iter().find(|var| ctx.env.get(var).is_some()) {
        return Ok(Some(ApiKey::Env {
            var: var.to_string(),
            value: ctx.env.get(var).map(Secret::new),
        }));
    }
    match spec.key_env.first() {
        Some(var) if spec.key_required => {
            if !is_mock {
                ctx.warn(
                    label,
                    &format!("no api_key is set and {var} is not set; calls to this deployment will fail"),
                );
            }
            Ok(Some(ApiKey::Env {
                var: var.to_string(),
                value: None,
            }))
        }
        _ => Ok(None),
    }
}

struct InfoParts {
    info: ModelInfo,
    input_cost: Option<f64>,
    output_cost: Option<f64>,
}

/// The deployment's `model_info`, with `litellm_params.model_info` (also
/// accepted by LiteLLM) filling whatever it leaves unset.
fn merged_model_info(
    ctx: &mut Ctx<'_>,
    entry: &Value,
    params: &Value,
    path: &str,
    params_path: &str,
) -> Result<InfoParts, ConfigError> {
    let outer = match field(entry, "model_info") {
        Some(v) => model_info(ctx, v, &child(path, "model_info"))?,
        None => InfoParts::empty(),
    };
    let Some(inner_value) = field(params, "model_info") else {
        return Ok(outer);
    };
    let inner = model_info(ctx, inner_value, &child(params_path, "model_info"))?;
    let (o, i) = (outer.info, inner.info);
    let mut extra = i.extra;
    extra.extend(o.extra);
    Ok(InfoParts {
        info: ModelInfo {
            id: o.id.or(i.id),
            mode: o.mode.or(i.mode),
            base_model: o.base_model.or(i.base_model),
            access_groups: if o.access_groups.is_empty() {
                i.access_groups
            } else {
                o.access_groups
            },
            max_tokens: o.max_tokens.or(i.max_tokens),
            max_input_tokens: o.max_input_tokens.or(i.max_input_tokens),
            max_output_tokens: o.max_output_tokens.or(i.max_output_tokens),
            extra,
        },
        input_cost: outer.input_cost.or(inner.input_cost),
        output_cost: outer.output_cost.or(inner.output_cost),
    })
}

impl InfoParts {
    fn empty() -> Self {
        InfoParts {
            info: ModelInfo::default(),
            input_cost: None,
            output_cost: None,
        }
    }
}

fn model_info(ctx: &mut Ctx<'_>, value: &Value, path: &str) -> Result<InfoParts, ConfigError> {
    let mut parts = InfoParts::empty();
    for (key, v) in ctx.entries(value, path)? {
        if v.is_null() {
            continue;
        }
        let at = child(path, key);
        let info = &mut parts.info;
        match key {
            // LiteLLM stringifies non-string ids.
            "id" => {
                info.id = Some(match v {
                    Value::Number(n) => n.to_string(),
                    _ => ctx.string(v, &at)?,
                })
            }
            "mode" => info.mode = Some(ctx.string(v, &at)?),
            "base_model" => info.base_model = Some(ctx.string(v, &at)?),
            "access_groups" => info.access_groups = ctx.strings(v, &at)?,
            "max_tokens" => info.max_tokens = Some(ctx.uint(v, &at)?),
            "max_input_tokens" => info.max_input_tokens = Some(ctx.uint(v, &at)?),
            "max_output_tokens" => info.max_output_tokens = Some(ctx.uint(v, &at)?),
            "input_cost_per_token" => parts.input_cost = Some(cost(ctx, v, &at)?),
            "output_cost_per_token" => parts.output_cost = Some(cost(ctx, v, &at)?),
            _ => {
                if let Some(json) = ctx.json(v, &at)? {
                    info.extra.insert(key.to_string(), json);
                }
            }
        }
    }
    Ok(parts)
}
