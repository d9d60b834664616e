//! `os.environ/VAR` resolution and the config's own `environment_variables:`.

use std::collections::HashMap;

use serde_yaml_ng::Value;

use super::raw::{child, Ctx, Text};
use super::ConfigError;

const PREFIX: &str = "os.environ/";

/// Keys LiteLLM refuses to take from `environment_variables:` because they
/// steer the process itself; mirrored so lookups resolve the same way.
const BLOCKED: &[&str] = &[
    "PATH",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "DYLD_LIBRARY_PATH",
    "DYLD_INSERT_LIBRARIES",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONHOME",
    "HOME",
    "USER",
    "SHELL",
    "LOGNAME",
    "NO_PROXY",
    "no_proxy",
];

/// The variable name when `s` is an `os.environ/NAME` reference.
pub(super) fn reference(s: &str) -> Option<&str> {
    s.strip_prefix(PREFIX)
}

/// Environment lookup that sees `environment_variables:` before the process
/// environment, which is what LiteLLM gets by writing them into os.environ.
/// Kept as an overlay so loading never mutates the real environment.
pub(super) struct Env<'a> {
    overlay: HashMap<String, String>,
    process: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Env<'a> {
    pub fn new(process: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Env {
            overlay: HashMap::new(),
            process,
        }
    }

    /// Empty counts as unset: exporting an empty variable is the usual way to
    /// blank a secret, and an empty key or URL is never usable.
    pub fn get(&self, name: &str) -> Option<String> {
        self.overlay
            .get(name)
            .cloned()
            .or_else(|| (self.process)(name))
            .filter(|v| !v.is_empty())
    }

    fn set(&mut self, name: String, value: String) {
        self.overlay.insert(name, value);
    }

    /// LiteLLM's `get_secret_bool`: only "true"/"false" (any case) count.
    pub fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }
}

/// Applies `environment_variables:` in document order, so a later entry's
/// `os.environ/` may read an earlier one, as in LiteLLM.
pub(super) fn apply_environment_variables(
    ctx: &mut Ctx<'_>,
    section: &Value,
) -> Result<(), ConfigError> {
    let path = "environment_variables";
    for (key, value) in ctx.entries(section, path)? {
        let key_path = child(path, key);
        if BLOCKED.contains(&key) {
            ctx.warn(
                &key_path,
                "ignored: LiteLLM never lets the config override this variable",
            );
            continue;
        }
        let resolved = match value {
            Value::Null => {
                ctx.warn(&key_path, "has no value; ignored");
                continue;
            }
            Value::String(_) => match ctx.text(value, &key_path)? {
                Text::Plain(s) | Text::Env { value: Some(s), .. } => s,
                // LiteLLM leaves the variable alone when its source is unset.
                Text::Env { value: None, var } => {
                    ctx.warn(
                        &key_path,
                        &format!("uses os.environ/{var}, which is not set; ignored"),
                    );
                    continue;
                }
            },
            // LiteLLM stores str(value); Python spells booleans True/False.
            Value::Bool(true) => "True".to_string(),
            Value::Bool(false) => "False".to_string(),
            Value::Number(n) => n.to_string(),
            _ => return Err(ctx.invalid(&key_path, "a string, number or boolean")),
        };
        ctx.env.set(key.to_string(), resolved);
    }
    Ok(())
}
