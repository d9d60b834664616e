//! Where a Vertex AI call goes: the location's host, the model's resource path and its method.

/// Where calls go when a deployment names no location.
pub const DEFAULT_LOCATION: &str = "us-central1";

/// Whether `location` may name a Vertex location. It becomes part of the host name, so only plain
/// region names pass (`us-central1`, `europe-west4`, `us`, `global`).
pub fn valid_location(location: &str) -> bool {
    let mut chars = location.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The Vertex host serving a location: `global` has no region prefix, multi-region geographies
/// (`us`, `eu`) have their own host, regions are a prefix of the API host.
fn location_host(location: &str) -> String {
    if location == "global" {
        "https://aiplatform.googleapis.com".to_owned()
    } else if !location.contains('-') {
        format!("https://aiplatform.{location}.rep.googleapis.com")
    } else {
        format!("https://{location}-aiplatform.googleapis.com")
    }
}

/// Who publishes the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Publisher {
    Google,
    Anthropic,
}

/// The model method a request calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Generate,
    StreamGenerate,
    Predict,
    RawPredict,
    StreamRawPredict,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Generate => "generateContent",
            Method::StreamGenerate => "streamGenerateContent",
            Method::Predict => "predict",
            Method::RawPredict => "rawPredict",
            Method::StreamRawPredict => "streamRawPredict",
        }
    }

    fn streams(self) -> bool {
        matches!(self, Method::StreamGenerate | Method::StreamRawPredict)
    }
}

/// What one call addresses.
pub(crate) struct Address<'a> {
    pub project: &'a str,
    pub location: &'a str,
    pub publisher: Publisher,
    pub model: &'a str,
    pub method: Method,
}

impl Address<'_> {
    /// The resource path under the host, without a leading slash. A Google model named by a
    /// number is a tuned model deployed to an endpoint of the project.
    fn path(&self) -> String {
        let resource = match self.publisher {
            Publisher::Google if is_endpoint_id(self.model) => format!("endpoints/{}", self.model),
            Publisher::Google => format!("publishers/google/models/{}", self.model),
            Publisher::Anthropic => format!("publishers/anthropic/models/{}", self.model),
        };
        format!(
            "v1/projects/{}/locations/{}/{resource}:{}",
            self.project,
            self.location,
            self.method.name()
        )
    }
}

fn is_endpoint_id(model: &str) -> bool {
    !model.is_empty() && model.bytes().all(|b| b.is_ascii_digit())
}

/// The URL of a call. Without `api_base` it is the location's host; with one, as LiteLLM builds
/// it: a bare host gets the whole path, a host ending in `/v1` or `/v1beta1` gets the path after
/// that version, and anything longer names the model itself and gets `:method` appended. Gemini
/// streams ask for server-sent events (`alt=sse`); so does every stream through an `api_base`.
pub(crate) fn url(api_base: Option<&url::Url>, at: &Address<'_>) -> String {
    let path = at.path();
    let Some(base) = api_base else {
        let mut out = format!("{}/{path}", location_host(at.location));
        if at.method == Method::StreamGenerate {
            out.push_str("?alt=sse");
        }
        return out;
    };
    let mut out = base.clone();
    let base_path = base.path().trim_end_matches('/').to_owned();
    if base_path.is_empty() {
        out.set_path(&format!("/{path}"));
    } else if base_path == "/v1" || base_path == "/v1beta1" {
        let rest = path.strip_prefix("v1/").unwrap_or(&path);
        out.set_path(&format!("{base_path}/{rest}"));
    } else {
        out.set_path(&format!("{base_path}:{}", at.method.name()));
    }
    if at.method.streams() {
        let query = match base.query() {
            Some(q) if !q.is_empty() => format!("{q}&alt=sse"),
            _ => "alt=sse".to_owned(),
        };
        out.set_query(Some(&query));
    }
    out.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(publisher: Publisher, model: &str, method: Method) -> Address<'_> {
        Address {
            project: "proj",
            location: "europe-west4",
            publisher,
            model,
            method,
        }
    }

    fn base(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn locations_are_plain_region_names() {
        for ok in ["us-central1", "europe-west4", "us", "eu", "global"] {
            assert!(valid_location(ok), "{ok}");
        }
        for bad in ["", "US", "1us", "evil.com#", "us central", "a/b", "x.y"] {
            assert!(!valid_location(bad), "{bad}");
        }
    }

    #[test]
    fn default_hosts_follow_the_location() {
        let g = Address {
            location: "global",
            ..at(Publisher::Google, "gemini-2.5-flash", Method::Generate)
        };
        assert_eq!(
            url(None, &g),
            "https://aiplatform.googleapis.com/v1/projects/proj/locations/global/publishers/google/models/gemini-2.5-flash:generateContent"
        );
        let us = Address {
            location: "us",
            ..at(Publisher::Google, "gemini-2.5-flash", Method::Generate)
        };
        assert!(url(None, &us).starts_with(
            "https://aiplatform.us.rep.googleapis.com/v1/projects/proj/locations/us/"
        ));
        assert_eq!(
            url(None, &at(Publisher::Google, "gemini-2.5-flash", Method::StreamGenerate)),
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/proj/locations/europe-west4/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            url(None, &at(Publisher::Google, "text-embedding-005", Method::Predict)),
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/proj/locations/europe-west4/publishers/google/models/text-embedding-005:predict"
        );
        // Claude streams are plain SSE already: no alt=sse on Google's own host.
        assert_eq!(
            url(None, &at(Publisher::Anthropic, "claude-sonnet-4-5@20250929", Method::StreamRawPredict)),
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/proj/locations/europe-west4/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"
        );
        assert_eq!(
            url(None, &at(Publisher::Google, "4965075652664360960", Method::Generate)),
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/proj/locations/europe-west4/endpoints/4965075652664360960:generateContent"
        );
    }

    #[test]
    fn api_base_overrides_the_host_as_litellm_does() {
        let claude = at(Publisher::Anthropic, "claude-haiku-4-5", Method::RawPredict);
        assert_eq!(
            url(Some(&base("http://127.0.0.1:9")), &claude),
            "http://127.0.0.1:9/v1/projects/proj/locations/europe-west4/publishers/anthropic/models/claude-haiku-4-5:rawPredict"
        );
        let stream = at(Publisher::Google, "gemini-2.5-pro", Method::StreamGenerate);
        assert_eq!(
            url(Some(&base("https://gw.example/v1beta1/")), &stream),
            "https://gw.example/v1beta1/projects/proj/locations/europe-west4/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
        );
        // A base naming the model itself only gets the method.
        assert_eq!(
            url(
                Some(&base(
                    "https://gw.example/v1/projects/p/locations/l/endpoints/123"
                )),
                &at(Publisher::Google, "gemini-2.5-pro", Method::Generate)
            ),
            "https://gw.example/v1/projects/p/locations/l/endpoints/123:generateContent"
        );
        // Through an api_base every stream asks for SSE, and an existing query is kept.
        assert_eq!(
            url(
                Some(&base("https://gw.example/vertex?team=a")),
                &at(
                    Publisher::Anthropic,
                    "claude-haiku-4-5",
                    Method::StreamRawPredict
                )
            ),
            "https://gw.example/vertex:streamRawPredict?team=a&alt=sse"
        );
    }
}
