//! What an import found, carried over and left behind, printed as a table of counts followed by
//! the exceptions by row id. Never holds a secret: keys are named by LiteLLM's masked `key_name`
//! or alias, never by their hash.

use std::fmt;

/// One kind of row: how many the source held and what became of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Count {
    pub found: u64,
    /// Written now (or, in a dry run, that would be written).
    pub imported: u64,
    /// Already in the store from an earlier import: left as they are.
    pub unchanged: u64,
    pub skipped: u64,
}

/// A row not carried over, or carried over with something left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    pub kind: &'static str,
    pub id: String,
    pub reason: String,
}

/// A user who had a UI password in LiteLLM: passwords are not portable, so they get a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshInvitation {
    pub user_id: String,
    pub email: Option<String>,
    /// `None` in a dry run.
    pub link: Option<String>,
    /// With `--email-invitations`: `Ok` once sent, or why it was not.
    pub email_sent: Option<Result<(), String>>,
}

/// A model stored in LiteLLM's database, to be added to config.yaml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    pub model_id: String,
    pub model_name: String,
    /// `litellm_params.model`, when it is stored in the clear.
    pub model: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub dry_run: bool,
    /// Row kinds in the order they are printed.
    pub counts: Vec<(&'static str, Count)>,
    pub exceptions: Vec<Exception>,
    pub invitations: Vec<FreshInvitation>,
    pub models: Vec<ModelEntry>,
}

impl Report {
    pub fn count(&self, kind: &str) -> Count {
        self.counts
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, c)| c.clone())
            .unwrap_or_default()
    }

    pub(crate) fn count_mut(&mut self, kind: &'static str) -> &mut Count {
        let at = match self.counts.iter().position(|(k, _)| *k == kind) {
            Some(i) => i,
            None => {
                self.counts.push((kind, Count::default()));
                self.counts.len() - 1
            }
        };
        &mut self.counts[at].1
    }

    pub(crate) fn except(&mut self, kind: &'static str, id: impl Into<String>, reason: String) {
        self.exceptions.push(Exception {
            kind,
            id: id.into(),
            reason,
        });
    }

    /// True when the import wrote (or would write) nothing.
    pub fn nothing_imported(&self) -> bool {
        self.counts.iter().all(|(_, c)| c.imported == 0) && self.invitations.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let imported = if self.dry_run {
            "would import"
        } else {
            "imported"
        };
        if self.dry_run {
            writeln!(f, "Dry run: nothing was written.\n")?;
        }
        writeln!(
            f,
            "{:<16} {:>10} {:>12} {:>10} {:>10}",
            "", "found", imported, "unchanged", "skipped"
        )?;
        for (kind, c) in &self.counts {
            writeln!(
                f,
                "{:<16} {:>10} {:>12} {:>10} {:>10}",
                kind, c.found, c.imported, c.unchanged, c.skipped
            )?;
        }
        if !self.exceptions.is_empty() {
            writeln!(f, "\nExceptions ({}):", self.exceptions.len())?;
            for e in &self.exceptions {
                writeln!(f, "  {} {}: {}", e.kind, e.id, e.reason)?;
            }
        }
        if !self.invitations.is_empty() {
            writeln!(
                f,
                "\nUsers who signed in with a password in LiteLLM set a new one with these links \
                 (passwords cannot be carried over):"
            )?;
            for i in &self.invitations {
                let who = i.email.as_deref().unwrap_or(&i.user_id);
                match &i.link {
                    Some(link) => writeln!(f, "  {who} ({}): {link}", i.user_id)?,
                    None => writeln!(f, "  {who} ({}): a link would be made", i.user_id)?,
                }
                match &i.email_sent {
                    Some(Ok(())) => writeln!(f, "    emailed")?,
                    Some(Err(why)) => writeln!(f, "    not emailed: {why}")?,
                    None => {}
                }
            }
        }
        if !self.models.is_empty() {
            writeln!(
                f,
                "\nModels stored in LiteLLM's database are not imported (Tollgate reads models \
                 from config.yaml). Add them to model_list, with their credentials:"
            )?;
            writeln!(f, "model_list:")?;
            for m in &self.models {
                writeln!(f, "  - model_name: {}", yaml_text(&m.model_name))?;
                match &m.model {
                    Some(model) => writeln!(f, "    litellm_params: {{model: {}}}", yaml_text(model))?,
                    None => writeln!(
                        f,
                        "    litellm_params: {{model: ...}}  # encrypted in LiteLLM's database (model id {})",
                        m.model_id
                    )?,
                }
            }
        }
        Ok(())
    }
}

/// A YAML scalar, quoted when it could be read as something else.
fn yaml_text(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./@".contains(c))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if plain {
        s.to_string()
    } else {
        serde_json::Value::String(s.to_string()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_counts_then_exceptions() {
        let mut r = Report::default();
        r.count_mut("users").found = 3;
        r.count_mut("users").imported = 2;
        r.count_mut("users").skipped = 1;
        r.except("user", "u-1", "no email".to_string());
        r.models.push(ModelEntry {
            model_id: "m1".into(),
            model_name: "gpt 4".into(),
            model: Some("openai/gpt-4".into()),
        });
        let text = r.to_string();
        assert!(text.contains("users"), "{text}");
        assert!(text.contains("  user u-1: no email"), "{text}");
        assert!(text.contains("- model_name: \"gpt 4\""), "{text}");
        assert!(text.contains("{model: openai/gpt-4}"), "{text}");
        assert_eq!(r.count("users").imported, 2);
        assert_eq!(r.count("teams"), Count::default());
    }
}
