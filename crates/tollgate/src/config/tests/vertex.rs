//! Vertex AI deployments: where project, location and credentials come from, and every way a
//! service account can be unusable is refused naming the deployment. (Loading real keys is
//! covered end to end in tests/provider_vertex.rs.)

use super::*;

fn vertex(params: &str) -> String {
    format!(
        "model_list:\n  - model_name: ok\n    litellm_params: {{model: openai/x, api_key: k}}\n  \
         - model_name: v\n    litellm_params: {params}\n"
    )
}

#[test]
fn an_unreadable_key_file_is_refused_naming_the_deployment() {
    let e = err(&vertex(
        "{model: vertex_ai/gemini-2.5-flash, vertex_project: p, vertex_credentials: /nonexistent/tollgate/sa.json}",
    ));
    assert_eq!(
        unsupported(&e),
        (
            "model_list[1] (model_name 'v')",
            "the service-account key file '/nonexistent/tollgate/sa.json' (from vertex_credentials) \
             cannot be read: No such file or directory (os error 2)"
        )
    );
    // Google's own variable names a file too.
    let e = err_env(
        &vertex("{model: vertex_ai/gemini-2.5-flash}"),
        &[("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/adc.json")],
    );
    assert!(
        unsupported(&e)
            .1
            .starts_with("the service-account key file '/nonexistent/adc.json' (from environment variable GOOGLE_APPLICATION_CREDENTIALS) cannot be read"),
        "{e}"
    );
}

#[test]
fn broken_or_foreign_credentials_are_refused_without_quoting_them() {
    let dir = std::env::temp_dir().join(format!("tollgate-vertex-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.json");
    std::fs::write(
        &file,
        "{\"private_key\": \"-----BEGIN PRIVATE KEY-----\nSECRET",
    )
    .unwrap();
    let e = err(&vertex(&format!(
        "{{model: vertex_ai/gemini-2.5-flash, vertex_credentials: '{}'}}",
        file.display()
    )));
    let (path, message) = unsupported(&e);
    assert_eq!(path, "model_list[1] (model_name 'v')");
    assert!(message.contains("is not valid JSON"), "{message}");
    assert!(!message.contains("SECRET"), "{message}");
    std::fs::remove_dir_all(&dir).unwrap();

    // Inline JSON, here from the environment.
    let e = err_env(
        &vertex("{model: vertex_ai/gemini-2.5-flash, vertex_credentials: os.environ/VTX}"),
        &[(
            "VTX",
            r#"{"type": "authorized_user", "refresh_token": "SECRET"}"#,
        )],
    );
    assert_eq!(
        unsupported(&e).1,
        "the service-account key JSON in vertex_credentials holds 'authorized_user' credentials; \
         only service-account keys (type service_account) are supported"
    );
    let e = err(&vertex(
        r#"{model: vertex_ai/gemini-2.5-flash, vertex_credentials: '{"client_email": "a@b", "private_key": "SECRET"}'}"#,
    ));
    assert_eq!(
        unsupported(&e).1,
        "the service-account key JSON in vertex_credentials has a private_key that is not a \
         PEM-encoded private key"
    );
    let e = err(&vertex(
        "{model: vertex_ai/gemini-2.5-flash, vertex_credentials: os.environ/UNSET_VTX}",
    ));
    assert_eq!(
        unsupported(&e).1,
        "vertex_credentials uses os.environ/UNSET_VTX, which is not set"
    );
}

#[test]
fn missing_credentials_and_bad_locations_are_refused() {
    let e = err(&vertex(
        "{model: vertex_ai/gemini-2.5-flash, vertex_project: p}",
    ));
    let (path, message) = unsupported(&e);
    assert_eq!(path, "model_list[1] (model_name 'v')");
    assert!(message.starts_with("no Vertex AI credentials"), "{message}");

    let e = err(&vertex(
        "{model: vertex_ai/gemini-2.5-flash, vertex_location: 'evil.example#'}",
    ));
    assert_eq!(
        invalid(&e),
        (
            "model_list[1].litellm_params.vertex_location",
            "a Vertex AI location such as us-central1, europe-west4 or global"
        )
    );
    let e = err_env(
        &vertex("{model: vertex_ai/gemini-2.5-flash}"),
        &[("VERTEXAI_LOCATION", "Not A Region")],
    );
    assert_eq!(
        unsupported(&e).1,
        "environment variable VERTEXAI_LOCATION is not a Vertex AI location such as us-central1, \
         europe-west4 or global"
    );
}

#[test]
fn models_served_through_other_apis_are_refused() {
    let e = err(&vertex(
        "{model: vertex_ai/meta/llama-3.1-405b-instruct-maas, vertex_project: p}",
    ));
    assert!(
        unsupported(&e).1.contains("is not supported by Tollgate"),
        "{e}"
    );
}

#[test]
fn vertex_settings_on_other_providers_are_refused_together() {
    let e = err(&one(
        "{model: openai/x, api_key: k, vertex_project: p, vertex_ai_location: l}",
    ));
    let shown = e.to_string();
    for key in ["vertex_project", "vertex_ai_location"] {
        assert!(
            shown.contains(&format!(
                "model_list[0].litellm_params.{key}: is read only for vertex_ai deployments"
            )),
            "{shown}"
        );
    }
}

#[test]
fn mocked_vertex_deployments_need_no_credentials_and_both_prefixes_load() {
    for prefix in ["vertex_ai", "vertex_ai_beta"] {
        let c = ok(&one(&format!(
            "{{model: {prefix}/gemini-2.5-flash, mock_response: hi}}"
        )));
        let d = &c.model_list[0];
        assert_eq!(d.provider, crate::config::Provider::VertexAi);
        assert_eq!(d.upstream_model, "gemini-2.5-flash");
        assert!(d.api_base.is_none());
        assert!(d.vertex.is_none());
    }
}

#[test]
fn other_vertex_settings_are_refused_or_warned() {
    let e = err(&one(
        "{model: vertex_ai/gemini-2.5-flash, mock_response: hi, vertex_rag_store: x}",
    ));
    assert_eq!(
        unsupported(&e),
        (
            "model_list[0].litellm_params.vertex_rag_store",
            "not supported by Tollgate's Vertex AI provider"
        )
    );
    let c = ok(&one(
        "{model: vertex_ai/gemini-2.5-flash, mock_response: hi, vertex_count_tokens_location: us}",
    ));
    assert!(has_warning(&c, "vertex_count_tokens_location"));
}

#[test]
fn process_wide_vertex_settings_are_refused() {
    let e = err("litellm_settings:\n  vertex_project: p\n");
    let (path, message) = unsupported(&e);
    assert_eq!(path, "litellm_settings.vertex_project");
    assert!(message.contains("VERTEXAI_PROJECT"), "{message}");
}

#[test]
fn credentials_may_be_a_yaml_mapping() {
    let e = err_env(
        &vertex(
            "{model: vertex_ai/gemini-2.5-flash, vertex_credentials: {type: service_account, \
             client_email: a@b, private_key: os.environ/VTX_KEY}}",
        ),
        &[("VTX_KEY", "SECRET-NOT-PEM")],
    );
    assert_eq!(
        unsupported(&e).1,
        "the service-account key JSON in vertex_credentials has a private_key that is not a \
         PEM-encoded private key"
    );
}
