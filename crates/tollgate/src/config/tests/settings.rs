//! Router, litellm and general settings, including rule 8 (fallbacks).

use super::*;
use crate::config::RoutingStrategy;

fn pairs(list: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    list.iter()
        .map(|(g, t)| (g.to_string(), t.iter().map(|s| s.to_string()).collect()))
        .collect()
}

#[test]
fn defaults_when_nothing_is_set() {
    let config = ok("");
    let r = &config.router;
    assert_eq!(r.routing_strategy, RoutingStrategy::SimpleShuffle);
    assert_eq!(r.num_retries, 0);
    assert_eq!(r.timeout_secs, None);
    assert!(r.fallbacks.is_empty() && r.context_window_fallbacks.is_empty());
    assert_eq!(r.allowed_fails, 3);
    assert_eq!(r.cooldown_time_secs, 5.0);
    assert_eq!(r.retry_after_secs, 0.0);
    assert!(!config.drop_params);
    assert_eq!(config.max_request_body_bytes, 8 * 1024 * 1024);
    assert!(!config.permit_weak_master_key);
    assert!(config.master_key.is_none() && config.database_url.is_none());
}

#[test]
fn routing_strategies() {
    for (name, expected) in [
        ("simple-shuffle", RoutingStrategy::SimpleShuffle),
        ("least-busy", RoutingStrategy::LeastBusy),
        ("usage-based-routing", RoutingStrategy::UsageBased),
        ("usage-based-routing-v2", RoutingStrategy::UsageBased),
        ("latency-based-routing", RoutingStrategy::LatencyBased),
    ] {
        let config = ok(&format!("router_settings:\n  routing_strategy: {name}\n"));
        assert_eq!(config.router.routing_strategy, expected, "{name}");
    }
    let e = err("router_settings:\n  routing_strategy: cost-based-routing\n");
    assert_eq!(unsupported(&e).0, "router_settings.routing_strategy");
    let e = err("router_settings:\n  routing_strategy: round-robin\n");
    assert_eq!(invalid(&e).0, "router_settings.routing_strategy");
}

#[test]
fn router_settings_win_over_litellm_settings() {
    let yaml = "
litellm_settings: {num_retries: 1, request_timeout: 100}
router_settings: {num_retries: 4, timeout: 30, allowed_fails: 1, cooldown_time: 0.5, retry_after: 2}
";
    let r = ok(yaml).router;
    assert_eq!(r.num_retries, 4);
    assert_eq!(r.timeout_secs, Some(30.0));
    assert_eq!(
        (r.allowed_fails, r.cooldown_time_secs, r.retry_after_secs),
        (1, 0.5, 2.0)
    );
    let r = ok("litellm_settings: {num_retries: 1, request_timeout: 100}\n").router;
    assert_eq!((r.num_retries, r.timeout_secs), (1, Some(100.0)));
}

#[test]
fn router_number_errors_name_the_path() {
    assert_eq!(
        invalid(&err("litellm_settings: {num_retries: many}\n")).0,
        "litellm_settings.num_retries"
    );
    assert_eq!(
        invalid(&err("router_settings: {cooldown_time: -1}\n")).0,
        "router_settings.cooldown_time"
    );
    assert_eq!(
        invalid(&err("router_settings: {timeout: 0}\n")).0,
        "router_settings.timeout"
    );
}

#[test]
fn fallbacks_merge_with_router_winning_per_group() {
    let yaml = r#"
litellm_settings:
  fallbacks: [{"gpt-4": ["gpt-3.5"]}, {"claude": ["gpt-4"]}]
  default_fallbacks: ["gpt-3.5"]
router_settings:
  fallbacks: [{"gpt-4": ["claude", "gpt-3.5"]}, {"mixtral": ["gpt-4"]}]
  context_window_fallbacks: [{"gpt-3.5": ["gpt-4-32k"]}]
"#;
    let r = ok(yaml).router;
    assert_eq!(
        r.fallbacks,
        pairs(&[
            ("gpt-4", &["claude", "gpt-3.5"]),
            ("claude", &["gpt-4"]),
            ("*", &["gpt-3.5"]),
            ("mixtral", &["gpt-4"]),
        ])
    );
    assert_eq!(
        r.context_window_fallbacks,
        pairs(&[("gpt-3.5", &["gpt-4-32k"])])
    );
}

#[test]
fn router_default_fallbacks_replace_litellm_ones() {
    let yaml = "
litellm_settings: {default_fallbacks: [a]}
router_settings: {default_fallbacks: [b, c]}
";
    assert_eq!(ok(yaml).router.fallbacks, pairs(&[("*", &["b", "c"])]));
}

#[test]
fn explicit_star_fallback_beats_default_fallbacks() {
    let yaml = "litellm_settings: {fallbacks: [{'*': [x]}], default_fallbacks: [y]}\n";
    assert_eq!(ok(yaml).router.fallbacks, pairs(&[("*", &["x"])]));
}

#[test]
fn fallbacks_of_the_wrong_shape_are_invalid() {
    let cases = [
        (
            "router_settings: {fallbacks: {gpt-4: [a]}}",
            "router_settings.fallbacks",
        ),
        (
            "router_settings: {fallbacks: [gpt-4]}",
            "router_settings.fallbacks[0]",
        ),
        (
            "router_settings: {fallbacks: [{a: [x], b: [y]}]}",
            "router_settings.fallbacks[0]",
        ),
        (
            "router_settings: {fallbacks: [{}]}",
            "router_settings.fallbacks[0]",
        ),
        (
            "router_settings: {fallbacks: [{a: x}]}",
            "router_settings.fallbacks[0].a",
        ),
        (
            "router_settings: {fallbacks: [{a: [1]}]}",
            "router_settings.fallbacks[0].a[0]",
        ),
        (
            "litellm_settings: {context_window_fallbacks: [{a: {b: c}}]}",
            "litellm_settings.context_window_fallbacks[0].a",
        ),
        (
            "litellm_settings: {default_fallbacks: {a: b}}",
            "litellm_settings.default_fallbacks",
        ),
    ];
    for (yaml, path) in cases {
        assert_eq!(invalid(&err(yaml)).0, path, "{yaml}");
    }
}

#[test]
fn duplicate_fallback_groups_keep_the_first_with_a_warning() {
    let config = ok("router_settings: {fallbacks: [{a: [x]}, {a: [y]}]}\n");
    assert_eq!(config.router.fallbacks, pairs(&[("a", &["x"])]));
    assert!(has_warning(
        &config,
        "router_settings.fallbacks[1]: duplicate fallbacks for 'a'"
    ));
}

#[test]
fn drop_params_accepts_booleans_and_boolean_strings() {
    assert!(ok("litellm_settings: {drop_params: true}\n").drop_params);
    assert!(ok("litellm_settings: {drop_params: 'True'}\n").drop_params);
    assert!(!ok("litellm_settings: {drop_params: false}\n").drop_params);
    assert_eq!(
        invalid(&err("litellm_settings: {drop_params: maybe}\n")),
        ("litellm_settings.drop_params", "true or false")
    );
}

#[test]
fn max_request_size_mb_sets_the_body_limit() {
    assert_eq!(
        ok("general_settings: {max_request_size_mb: 1}\n").max_request_body_bytes,
        1024 * 1024
    );
    assert_eq!(
        ok("general_settings: {max_request_size_mb: '100'}\n").max_request_body_bytes,
        100 * 1024 * 1024
    );
    for bad in ["0", "-1", "big"] {
        let e = err(&format!(
            "general_settings: {{max_request_size_mb: {bad}}}\n"
        ));
        assert_eq!(
            invalid(&e).0,
            "general_settings.max_request_size_mb",
            "{bad}"
        );
    }
}

#[test]
fn permit_weak_master_key_from_setting_or_env() {
    assert!(
        ok("general_settings: {dangerously_permit_weak_or_unset_master_key: true}\n")
            .permit_weak_master_key
    );
    let var = "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY";
    assert!(ok_env("", &[(var, "true")]).permit_weak_master_key);
    assert!(ok_env("", &[(var, " TRUE ")]).permit_weak_master_key);
    // LiteLLM's str_to_bool knows only true/false.
    assert!(!ok_env("", &[(var, "1")]).permit_weak_master_key);
    assert!(!ok_env("", &[(var, "false")]).permit_weak_master_key);
}

#[test]
fn database_url_from_general_settings() {
    let config = ok_env(
        "general_settings: {database_url: os.environ/PG}\n",
        &[
            ("PG", "postgres://a:b@h/d"),
            ("DATABASE_URL", "postgres://other"),
        ],
    );
    assert_eq!(
        config.database_url.as_ref().map(|s| s.expose()),
        Some("postgres://a:b@h/d")
    );
}

#[test]
fn new_sso_users_get_the_role_of_default_internal_user_params() {
    use tollgate_domain::role::Role;
    assert_eq!(ok("").default_user_role, Role::InternalUserViewer);
    let c = ok("litellm_settings: {default_internal_user_params: {user_role: internal_user}}");
    assert_eq!(c.default_user_role, Role::InternalUser);
    let c = ok_env(
        "litellm_settings: {default_internal_user_params: {user_role: os.environ/NEW_ROLE}}",
        &[("NEW_ROLE", "proxy_admin_viewer")],
    );
    assert_eq!(c.default_user_role, Role::ProxyAdminViewer);
    let e = err("litellm_settings: {default_internal_user_params: {user_role: root}}");
    assert_eq!(
        invalid(&e).0,
        "litellm_settings.default_internal_user_params.user_role"
    );
    // A budget or model list for new users is not ignored silently.
    let e = err("litellm_settings: {default_internal_user_params: {user_role: internal_user, max_budget: 10}}");
    let (path, message) = unsupported(&e);
    assert_eq!(
        path,
        "litellm_settings.default_internal_user_params.max_budget"
    );
    assert!(message.contains("only user_role"), "{message}");
}
