//! A `vertex_ai/` deployment's project, location and service account, found where LiteLLM looks:
//! the deployment's settings, then LiteLLM's environment variables, then Google's own
//! (`GOOGLE_APPLICATION_CREDENTIALS`), then the key file. The key is read and parsed here, so a
//! missing or broken one stops the start instead of failing calls.

use std::io::Read;
use std::sync::Arc;

use serde_yaml_ng::Value;
use tollgate_proxy::providers::vertex::{self, Credentials, Target};

use super::provider::Spec;
use super::raw::{child, field, Ctx, Text};
use super::{ConfigError, Deployment, Provider};

/// A setting's names in litellm_params, then the environment variables LiteLLM falls back to.
struct Setting {
    keys: &'static [&'static str],
    vars: &'static [&'static str],
}

const PROJECT: Setting = Setting {
    keys: &["vertex_project", "vertex_ai_project"],
    vars: &["VERTEXAI_PROJECT"],
};
const LOCATION: Setting = Setting {
    keys: &["vertex_location", "vertex_ai_location"],
    vars: &["VERTEXAI_LOCATION", "VERTEX_LOCATION"],
};
const CREDENTIALS: Setting = Setting {
    keys: &["vertex_credentials", "vertex_ai_credentials"],
    vars: &["VERTEXAI_CREDENTIALS"],
};

/// Google's application-default key file, used when nothing else names credentials.
const DEFAULT_CREDENTIALS_VAR: &str = "GOOGLE_APPLICATION_CREDENTIALS";
/// With application-default credentials, Google's libraries take the project from these first.
const DEFAULT_PROJECT_VARS: &[&str] = &["GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT"];

/// Larger than any key file: a bigger one is not one.
const MAX_KEY_FILE_BYTES: u64 = 1 << 20;

/// Where a value came from, to name it in messages.
enum Origin {
    Param(String),
    Env(&'static str),
}

impl Origin {
    fn name(&self) -> String {
        match self {
            Origin::Param(path) => path.clone(),
            Origin::Env(var) => format!("environment variable {var}"),
        }
    }
}

/// The first of a setting's keys set (non-empty) in `params`, else the first of its variables.
fn setting(
    ctx: &Ctx<'_>,
    params: &Value,
    params_path: &str,
    s: &Setting,
) -> Result<Option<(String, Origin)>, ConfigError> {
    for key in s.keys {
        if let Some(v) = field(params, key) {
            let path = child(params_path, key);
            let value = ctx.string(v, &path)?;
            if !value.is_empty() {
                return Ok(Some((value, Origin::Param(path))));
            }
        }
    }
    Ok(s.vars
        .iter()
        .find_map(|var| ctx.env.get(var).map(|v| (v, Origin::Env(var)))))
}

/// The deployment's Vertex target; None for other providers and for mocked deployments without
/// credentials. Settings of Vertex on another provider's deployment are refused.
pub(super) fn target(
    ctx: &mut Ctx<'_>,
    params: &Value,
    params_path: &str,
    label: &str,
    spec: &Spec,
    upstream_model: &str,
    is_mock: bool,
) -> Result<Option<Target>, ConfigError> {
    if spec.provider != Provider::VertexAi {
        for key in PROJECT
            .keys
            .iter()
            .chain(LOCATION.keys)
            .chain(CREDENTIALS.keys)
        {
            if field(params, key).is_some() {
                let e = ctx.unsupported(
                    &child(params_path, key),
                    format!(
                        "is read only for vertex_ai deployments; ignoring it on a {} deployment \
                         would call another upstream than intended",
                        spec.name
                    ),
                );
                ctx.refuse(e);
            }
        }
        return Ok(None);
    }
    if !upstream_model.contains('*') {
        if let Some(why) = vertex::unsupported_model(upstream_model) {
            return Err(ctx.unsupported(label, why));
        }
    }
    if field(params, "api_key").is_some() {
        ctx.warn(
            label,
            "api_key is ignored: vertex_ai calls authenticate with the service account",
        );
    }

    let location = match setting(ctx, params, params_path, &LOCATION)? {
        None => vertex::DEFAULT_LOCATION.to_owned(),
        Some((l, _)) if vertex::valid_location(&l) => l,
        Some((_, Origin::Param(path))) => {
            return Err(ctx.invalid(
                &path,
                "a Vertex AI location such as us-central1, europe-west4 or global",
            ))
        }
        Some((_, origin)) => {
            return Err(ctx.unsupported(
                label,
                format!(
                    "{} is not a Vertex AI location such as us-central1, europe-west4 or global",
                    origin.name()
                ),
            ))
        }
    };

    let Some((credentials, from_default)) = credentials(ctx, params, params_path, label)? else {
        if is_mock {
            return Ok(None);
        }
        return Err(ctx.unsupported(
            label,
            format!(
                "no Vertex AI credentials: set vertex_credentials (a service-account key file's \
                 path or its JSON) or {DEFAULT_CREDENTIALS_VAR} (gcloud user credentials and the \
                 metadata server are not supported)"
            ),
        ));
    };

    let default_project = || {
        from_default
            .then(|| DEFAULT_PROJECT_VARS.iter().find_map(|var| ctx.env.get(var)))
            .flatten()
    };
    let project = match setting(ctx, params, params_path, &PROJECT)? {
        Some((p, _)) => p,
        None => match default_project().or_else(|| credentials.project_id().map(str::to_owned)) {
            Some(p) => p,
            None => {
                return Err(ctx.unsupported(
                    label,
                    "no Vertex AI project: set vertex_project or VERTEXAI_PROJECT (the \
                     service-account key names none)",
                ))
            }
        },
    };
    Ok(Some(Target {
        project,
        location,
        credentials: Arc::new(credentials),
    }))
}

/// The service account named by the deployment or the environment, and whether it came from
/// Google's application-default variable.
fn credentials(
    ctx: &mut Ctx<'_>,
    params: &Value,
    params_path: &str,
    label: &str,
) -> Result<Option<(Credentials, bool)>, ConfigError> {
    let mut named: Option<(String, String)> = None;
    for key in CREDENTIALS.keys {
        let Some(v) = field(params, key) else {
            continue;
        };
        let path = child(params_path, key);
        let source = match v {
            // LiteLLM also takes the key's fields as a mapping.
            Value::Mapping(_) => match ctx.json(v, &path)? {
                Some(json) => json.to_string(),
                None => continue,
            },
            _ => match ctx.text(v, &path)? {
                Text::Plain(s) | Text::Env { value: Some(s), .. } => s,
                Text::Env { var, value: None } => {
                    return Err(ctx.unsupported(
                        label,
                        format!("{key} uses os.environ/{var}, which is not set"),
                    ))
                }
            },
        };
        if !source.trim().is_empty() {
            named = Some((source, key.to_string()));
            break;
        }
    }
    if named.is_none() {
        named = CREDENTIALS.vars.iter().find_map(|var| {
            ctx.env
                .get(var)
                .map(|v| (v, format!("environment variable {var}")))
        });
    }
    if let Some((source, origin)) = named {
        return load(ctx, label, &source, &origin, true).map(|c| Some((c, false)));
    }
    match ctx.env.get(DEFAULT_CREDENTIALS_VAR) {
        // Google's variable always names a file.
        Some(path) => {
            let origin = format!("environment variable {DEFAULT_CREDENTIALS_VAR}");
            load(ctx, label, &path, &origin, false).map(|c| Some((c, true)))
        }
        None => Ok(None),
    }
}

/// The key JSON itself (when it opens with `{`, as LiteLLM decides) or the path of a file
/// holding it.
fn load(
    ctx: &Ctx<'_>,
    label: &str,
    source: &str,
    origin: &str,
    may_be_inline: bool,
) -> Result<Credentials, ConfigError> {
    let inline = may_be_inline
        && source
            .trim_start_matches([' ', '\t', '\r', '\n', '\u{feff}', '"', '\''])
            .starts_with('{');
    let (text, what) = if inline {
        (
            source.to_owned(),
            format!("the service-account key JSON in {origin}"),
        )
    } else {
        // Quoted only when it looks like a path: a key pasted where a path belongs must not be
        // printed.
        let looks_like_path =
            source.len() <= 512 && !source.contains(['\n', '{']) && !source.contains("PRIVATE KEY");
        let what = if looks_like_path {
            format!("the service-account key file '{source}' (from {origin})")
        } else {
            format!("the service-account key file named by {origin}")
        };
        let text = read_key_file(source)
            .map_err(|e| ctx.unsupported(label, format!("{what} cannot be read: {e}")))?;
        (text, what)
    };
    Credentials::from_json(&text).map_err(|e| ctx.unsupported(label, format!("{what} {e}")))
}

fn read_key_file(path: &str) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = String::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err("it is larger than any key file".to_owned());
    }
    Ok(text)
}

/// Deployments using the same service account share one token cache.
pub(super) fn share_credentials(deployments: &mut [Deployment]) {
    let mut seen: Vec<Arc<Credentials>> = Vec::new();
    for target in deployments.iter_mut().filter_map(|d| d.vertex.as_mut()) {
        match seen.iter().find(|c| c.same_account(&target.credentials)) {
            Some(first) => target.credentials = first.clone(),
            None => seen.push(target.credentials.clone()),
        }
    }
}
