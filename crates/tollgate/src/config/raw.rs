//! YAML parsing and path-aware readers over `serde_yaml_ng::Value`.
//!
//! The document is walked by hand rather than deserialized into structs so
//! every type error can name the exact field (`model_list[1].litellm_params.rpm`).

use serde_yaml_ng::Value;

use super::env::{self, Env};
use super::ConfigError;

/// Chained merges (an anchor that itself merges another) leave a new `<<`
/// behind after each pass; real configs need two or three passes.
const MAX_MERGE_PASSES: usize = 32;

pub(super) fn parse_yaml(text: &str, file: &str) -> Result<Value, ConfigError> {
    let yaml_error = |message: String| ConfigError::Yaml {
        file: file.to_string(),
        message,
    };
    let mut root: Value = serde_yaml_ng::from_str(text).map_err(|e| yaml_error(e.to_string()))?;
    for _ in 0..MAX_MERGE_PASSES {
        root.apply_merge().map_err(|e| yaml_error(e.to_string()))?;
        if !has_merge_key(&root) {
            return Ok(root);
        }
    }
    Err(yaml_error(
        "merge keys (<<) are nested too deeply".to_string(),
    ))
}

fn has_merge_key(value: &Value) -> bool {
    match value {
        Value::Mapping(m) => m.contains_key("<<") || m.values().any(has_merge_key),
        Value::Sequence(s) => s.iter().any(has_merge_key),
        Value::Tagged(t) => has_merge_key(&t.value),
        _ => false,
    }
}

/// `parent.key`, or just `key` at the top level.
pub(super) fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

pub(super) fn item(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// A mapping's value for `key`; an explicit null counts as absent because
/// LiteLLM treats `key:` with no value as unset.
pub(super) fn field<'v>(map: &'v Value, key: &str) -> Option<&'v Value> {
    map.get(key).filter(|v| !v.is_null())
}

/// A string setting as written: literal, or an `os.environ/VAR` reference.
pub(super) enum Text {
    Plain(String),
    Env { var: String, value: Option<String> },
}

/// Walk state: file name for messages, the env lookup and collected warnings.
pub(super) struct Ctx<'a> {
    file: &'a str,
    pub env: Env<'a>,
    pub warnings: Vec<String>,
    /// Refusals met so far; parsing goes on so that all of them are reported at once.
    refusals: Vec<ConfigError>,
}

impl<'a> Ctx<'a> {
    pub fn new(file: &'a str, process: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Ctx {
            file,
            env: Env::new(process),
            warnings: Vec::new(),
            refusals: Vec::new(),
        }
    }

    /// Notes a problem and lets parsing go on; `finish` reports them all.
    pub fn refuse(&mut self, error: ConfigError) {
        self.refusals.push(error);
    }

    /// The parse result with every refusal noted on the way: an error listing them all
    /// (and the error that stopped the parse, if one did).
    pub fn finish<T>(&mut self, result: Result<T, ConfigError>) -> Result<T, ConfigError> {
        let mut problems = std::mem::take(&mut self.refusals);
        match result {
            Ok(v) if problems.is_empty() => Ok(v),
            Ok(_) => Err(ConfigError::combined(self.file, problems)),
            Err(e) => {
                problems.push(e);
                Err(ConfigError::combined(self.file, problems))
            }
        }
    }

    pub fn warn(&mut self, path: &str, message: &str) {
        self.warnings.push(format!("{path}: {message}"));
    }

    pub fn invalid(&self, path: &str, expected: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_string(),
            path: path.to_string(),
            expected: expected.into(),
        }
    }

    pub fn unsupported(&self, path: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Unsupported {
            file: self.file.to_string(),
            path: path.to_string(),
            message: message.into(),
        }
    }

    /// Entries of a mapping in document order; null reads as an empty mapping
    /// because LiteLLM accepts an empty section header.
    pub fn entries<'v>(
        &self,
        value: &'v Value,
        path: &str,
    ) -> Result<Vec<(&'v str, &'v Value)>, ConfigError> {
        match value {
            Value::Null => Ok(Vec::new()),
            Value::Mapping(map) => map
                .iter()
                .map(|(k, v)| match k {
                    Value::String(key) => Ok((key.as_str(), v)),
                    _ => Err(self.invalid(path, "a mapping with string keys")),
                })
                .collect(),
            _ => Err(self.invalid(path, "a mapping")),
        }
    }

    /// Items of a sequence; null reads as empty.
    pub fn list<'v>(&self, value: &'v Value, path: &str) -> Result<&'v [Value], ConfigError> {
        match value {
            Value::Null => Ok(&[]),
            Value::Sequence(items) => Ok(items),
            _ => Err(self.invalid(path, "a list")),
        }
    }

    pub fn text(&self, value: &Value, path: &str) -> Result<Text, ConfigError> {
        let Value::String(s) = value else {
            return Err(self.invalid(path, "a string"));
        };
        match env::reference(s) {
            None => Ok(Text::Plain(s.clone())),
            Some("") => Err(self.invalid(path, "a variable name after os.environ/")),
            Some(var) => Ok(Text::Env {
                var: var.to_string(),
                value: self.env.get(var),
            }),
        }
    }

    /// A string whose `os.environ/VAR`, if any, must be set.
    pub fn string(&self, value: &Value, path: &str) -> Result<String, ConfigError> {
        match self.text(value, path)? {
            Text::Plain(s) | Text::Env { value: Some(s), .. } => Ok(s),
            Text::Env { var, value: None } => Err(self.invalid(
                path,
                format!("environment variable {var} to be set (from os.environ/{var})"),
            )),
        }
    }

    /// A string, or a single string standing for a one-element list.
    pub fn strings(&self, value: &Value, path: &str) -> Result<Vec<String>, ConfigError> {
        if value.is_string() {
            return Ok(vec![self.string(value, path)?]);
        }
        self.list(value, path)?
            .iter()
            .enumerate()
            .map(|(i, v)| self.string(v, &item(path, i)))
            .collect()
    }

    /// Booleans may also be strings, since `os.environ/` values always are;
    /// yes/no/on/off are what PyYAML reads as booleans.
    pub fn boolean(&self, value: &Value, path: &str) -> Result<bool, ConfigError> {
        if let Value::Bool(b) = value {
            return Ok(*b);
        }
        let expected = "true or false";
        if !value.is_string() {
            return Err(self.invalid(path, expected));
        }
        match self
            .string(value, path)?
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "true" | "yes" | "on" => Ok(true),
            "false" | "no" | "off" => Ok(false),
            _ => Err(self.invalid(path, expected)),
        }
    }

    /// Integer strings are accepted because LiteLLM's pydantic models coerce
    /// them and `os.environ/` values are strings.
    pub fn uint(&self, value: &Value, path: &str) -> Result<u64, ConfigError> {
        let expected = "a non-negative integer";
        match value {
            Value::Number(n) => n
                .as_u64()
                .or_else(|| n.as_f64().and_then(integral_u64))
                .ok_or_else(|| self.invalid(path, expected)),
            Value::String(_) => self
                .string(value, path)?
                .trim()
                .parse::<u64>()
                .map_err(|_| self.invalid(path, expected)),
            _ => Err(self.invalid(path, expected)),
        }
    }

    pub fn u32(&self, value: &Value, path: &str) -> Result<u32, ConfigError> {
        u32::try_from(self.uint(value, path)?)
            .map_err(|_| self.invalid(path, "a non-negative integer below 4294967296"))
    }

    /// Any number, or a numeric string (LiteLLM accepts costs and timeouts as
    /// strings). Range checks are the caller's; `expected` words the error.
    pub fn number(&self, value: &Value, path: &str, expected: &str) -> Result<f64, ConfigError> {
        match value {
            Value::Number(n) => n.as_f64().ok_or_else(|| self.invalid(path, expected)),
            Value::String(_) => self
                .string(value, path)?
                .trim()
                .parse::<f64>()
                .map_err(|_| self.invalid(path, expected)),
            _ => Err(self.invalid(path, expected)),
        }
    }

    /// Converts a free-form value (a default request param, extra model_info)
    /// to JSON, resolving `os.environ/` strings. An unset variable drops that
    /// value with a warning, as LiteLLM would send None.
    pub fn json(
        &mut self,
        value: &Value,
        path: &str,
    ) -> Result<Option<serde_json::Value>, ConfigError> {
        use serde_json::Value as J;
        Ok(Some(match value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    J::from(u)
                } else if let Some(i) = n.as_i64() {
                    J::from(i)
                } else {
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    J::Number(
                        serde_json::Number::from_f64(f)
                            .ok_or_else(|| self.invalid(path, "a finite number"))?,
                    )
                }
            }
            Value::String(_) => match self.text(value, path)? {
                Text::Plain(s) | Text::Env { value: Some(s), .. } => J::String(s),
                Text::Env { var, value: None } => {
                    self.warn(
                        path,
                        &format!("uses os.environ/{var}, which is not set; the value is dropped"),
                    );
                    return Ok(None);
                }
            },
            Value::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, v) in items.iter().enumerate() {
                    if let Some(j) = self.json(v, &item(path, i))? {
                        out.push(j);
                    }
                }
                J::Array(out)
            }
            Value::Mapping(_) => {
                let mut out = serde_json::Map::new();
                for (k, v) in self.entries(value, path)? {
                    if let Some(j) = self.json(v, &child(path, k))? {
                        out.insert(k.to_string(), j);
                    }
                }
                J::Object(out)
            }
            Value::Tagged(_) => {
                return Err(self.invalid(path, "a plain value (YAML tags are not supported)"))
            }
        }))
    }
}

fn integral_u64(f: f64) -> Option<u64> {
    // 2^64 is exactly representable; anything at or above it does not fit.
    let fits = f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 18_446_744_073_709_551_616.0;
    fits.then_some(f as u64)
}
