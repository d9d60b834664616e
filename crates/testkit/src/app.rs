//! `spawn_app`: the real gateway on port 0 with a fresh SQLite store in a temp folder.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::oneshot;
use tollgate::{config, App, Options};
use tollgate_store::Store;

pub const TEST_MASTER_KEY: &str = "sk-test-master-7d1f0c9a2b4e6f8a";

pub struct TestApp {
    pub addr: SocketAddr,
    pub base_url: String,
    pub master_key: String,
    pub store: Store,
    pub generated_master_key: Option<String>,
    pub warnings: Vec<String>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    /// POSTs JSON with the master key.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client()
            .post(self.url(path))
            .bearer_auth(&self.master_key)
            .json(body)
            .send()
            .await
            .expect("request to the gateway")
    }

    /// Calls a management route with a bearer: `GET` without a body, anything else as a JSON
    /// `POST`. Returns the status and the JSON answer (`null` when it is not JSON).
    pub async fn api(
        &self,
        bearer: &str,
        method: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let c = self.client();
        let req = match method {
            "GET" => c.get(self.url(path)),
            _ => c.post(self.url(path)).json(&body),
        };
        let resp = req
            .bearer_auth(bearer)
            .send()
            .await
            .expect("request to the gateway");
        let status = resp.status();
        let v = resp.json().await.unwrap_or(serde_json::Value::Null);
        (status, v)
    }

    /// Waits until the store holds `n` spend records (the writer flushes every 50 ms here).
    pub async fn wait_for_spend_logs(&self, n: i64) -> i64 {
        let mut count = 0;
        for _ in 0..200 {
            count = self
                .store
                .count_spend_logs()
                .await
                .expect("count spend logs");
            if count >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        count
    }

    /// Stops the server gracefully (flushing spend) and waits for it.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(d) = self.done.take() {
            let _ = d.await;
        }
    }
}

/// Starts the gateway with a config.yaml text. `{master_key}` is replaced by [`TEST_MASTER_KEY`].
pub async fn spawn_app(config_yaml: &str) -> TestApp {
    spawn_app_with(config_yaml, None, &|k| std::env::var(k).ok())
        .await
        .expect("the gateway starts")
}

/// Like [`spawn_app`], with a database URL (default: a fresh SQLite file) and an environment.
pub async fn spawn_app_with(
    config_yaml: &str,
    database_url: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<TestApp, tollgate::StartError> {
    spawn_app_env(config_yaml, database_url, env, HashMap::new()).await
}

/// Starts the gateway with extra environment values for this app only (PROXY_BASE_URL,
/// PROXY_LOGOUT_URL, SMTP_*, UI_PASSWORD …), which also serve `os.environ/` in the config.
pub async fn spawn_app_vars(config_yaml: &str, vars: &[(&str, &str)]) -> TestApp {
    spawn_with_vars(config_yaml, None, vars).await
}

/// Like [`spawn_app_vars`], on a given database (several apps on one database and one Redis
/// stand for several instances).
pub async fn spawn_app_on(config_yaml: &str, database_url: &str, vars: &[(&str, &str)]) -> TestApp {
    spawn_with_vars(config_yaml, Some(database_url.to_string()), vars).await
}

async fn spawn_with_vars(
    config_yaml: &str,
    database_url: Option<String>,
    vars: &[(&str, &str)],
) -> TestApp {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = vars.clone();
    let env = move |k: &str| lookup.get(k).cloned().or_else(|| std::env::var(k).ok());
    spawn_app_env(config_yaml, database_url, &env, vars)
        .await
        .expect("the gateway starts")
}

async fn spawn_app_env(
    config_yaml: &str,
    database_url: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
    vars: HashMap<String, String>,
) -> Result<TestApp, tollgate::StartError> {
    let yaml = config_yaml.replace("{master_key}", TEST_MASTER_KEY);
    let cfg = config::parse(&yaml, "test-config.yaml", env)?;
    let dir = tempfile::tempdir().expect("temp dir");
    let url = database_url
        .unwrap_or_else(|| format!("sqlite:{}", dir.path().join("tollgate.db").display()));
    // Each app journals into its own folder: tests on one PostgreSQL server must never replay
    // each other's records.
    let mut vars = vars;
    vars.entry("TOLLGATE_SPEND_JOURNAL_DIR".to_string())
        .or_insert_with(|| dir.path().join("spend-journal").display().to_string());
    let configured_key = cfg.master_key.as_ref().map(|k| k.expose().to_string());
    let app = App::build(
        cfg,
        Options {
            database_url: Some(url.clone()),
            prices_file: None,
            spend_flush_interval: Some(Duration::from_millis(50)),
            env: vars,
        },
    )
    .await?;
    let store = app.store.clone();
    let generated = app.started().and_then(|s| s.generated_master_key.clone());
    let warnings = app.warnings.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let addr = listener.local_addr().expect("local address");
    let (tx, rx) = oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        let _ = app
            .serve(listener, async move {
                let _ = rx.await;
            })
            .await;
    });
    let master_key = configured_key
        .or_else(|| generated.clone())
        .unwrap_or_default();
    Ok(TestApp {
        addr,
        base_url: format!("http://{addr}"),
        master_key,
        store,
        generated_master_key: generated,
        warnings,
        stop: Some(tx),
        done: Some(done),
        _dir: dir,
    })
}
