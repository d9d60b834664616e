//! Public model names and wildcard patterns from `model_list` (`openai/*`, `claude-*`, `*`).

/// Matches `name` against a pattern whose `*` stands for any run of characters. Returns the text
/// the first `*` captured (or "" for a pattern with no `*` that matched exactly).
pub fn wildcard_match<'n>(pattern: &str, name: &'n str) -> Option<&'n str> {
    let Some(star) = pattern.find('*') else {
        return (pattern == name).then_some("");
    };
    let (prefix, rest) = (&pattern[..star], &pattern[star + 1..]);
    let tail = name.strip_prefix(prefix)?;
    // Only one `*` is meaningful in LiteLLM's patterns; a later `*` is matched literally.
    if rest.is_empty() {
        return Some(tail);
    }
    let captured = tail.strip_suffix(rest)?;
    Some(captured)
}

/// A user's, team's or key's model list as LiteLLM reads it: empty allows every model;
/// otherwise `all-proxy-models`, an exact name or a matching wildcard pattern.
pub fn list_allows(list: &[String], model: &str) -> bool {
    list.is_empty()
        || list
            .iter()
            .any(|m| m == "all-proxy-models" || wildcard_match(m, model).is_some())
}

/// How specific a pattern is: its length without wildcards. Longer wins, as in LiteLLM.
pub fn specificity(pattern: &str) -> usize {
    pattern.chars().filter(|c| *c != '*').count()
}

pub fn is_pattern(name: &str) -> bool {
    name.contains('*')
}

/// The upstream model for a request routed through a wildcard deployment: the `*` in the
/// deployment's upstream model is replaced by what the public pattern captured.
pub fn expand_upstream(upstream_pattern: &str, captured: &str) -> String {
    if upstream_pattern.contains('*') {
        upstream_pattern.replacen('*', captured, 1)
    } else {
        upstream_pattern.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_prefix_suffix_and_catch_all() {
        assert_eq!(wildcard_match("openai/*", "openai/gpt-4o"), Some("gpt-4o"));
        assert_eq!(
            wildcard_match("claude-*", "claude-3-5-sonnet"),
            Some("3-5-sonnet")
        );
        assert_eq!(wildcard_match("*", "anything"), Some("anything"));
        assert_eq!(wildcard_match("*-mini", "gpt-4o-mini"), Some("gpt-4o"));
        assert_eq!(wildcard_match("openai/*", "anthropic/claude"), None);
        assert_eq!(wildcard_match("gpt-4o", "gpt-4o"), Some(""));
        assert_eq!(wildcard_match("gpt-4o", "gpt-4o-mini"), None);
    }

    #[test]
    fn longer_patterns_are_more_specific() {
        assert!(specificity("openai/gpt-*") > specificity("openai/*"));
        assert!(specificity("openai/*") > specificity("*"));
    }

    #[test]
    fn expands_upstream_names() {
        assert_eq!(expand_upstream("*", "gpt-4o"), "gpt-4o");
        assert_eq!(expand_upstream("claude-*", "3-haiku"), "claude-3-haiku");
        assert_eq!(expand_upstream("gpt-4o", "x"), "gpt-4o");
    }
}
