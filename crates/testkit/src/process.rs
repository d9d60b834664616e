//! The gateway as a real process: for tests that need what only a process has (its log output,
//! SIGTERM, SIGKILL). Killed on drop, so a failing test leaves nothing running.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local address").port()
}

pub struct Gateway {
    child: Option<Child>,
    pub base: String,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Gateway {
    /// Starts `bin` (a test's `env!("CARGO_BIN_EXE_tollgate")`) with `config` on a free port and
    /// the SQLite database `dir/t.db`, logs in `dir`, and `env` on top of a clean environment.
    pub fn start(bin: &str, dir: &Path, config: &str, env: &[(&str, &str)]) -> Gateway {
        let db = format!("sqlite:{}", dir.join("t.db").display());
        Gateway::start_on(bin, dir, config, &db, free_port(), env)
    }

    /// Like [`Gateway::start`], on `database_url` and `port` (several instances in one folder
    /// keep their logs apart by port).
    pub fn start_on(
        bin: &str,
        dir: &Path,
        config: &str,
        database_url: &str,
        port: u16,
        env: &[(&str, &str)],
    ) -> Gateway {
        let cfg = dir.join("config.yaml");
        std::fs::write(&cfg, config).expect("write config");
        let (stdout, stderr) = (
            dir.join(format!("stdout-{port}.log")),
            dir.join(format!("stderr-{port}.log")),
        );
        let open_log = |p: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .expect("log file")
        };
        let child = Command::new(bin)
            .arg("--config")
            .arg(&cfg)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--database-url")
            .arg(database_url)
            .env_remove("RUST_LOG")
            .env_remove("DATABASE_URL")
            .env_remove("LITELLM_MASTER_KEY")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(open_log(&stdout))
            .stderr(open_log(&stderr))
            .spawn()
            .expect("start tollgate");
        Gateway {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            stdout,
            stderr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn wait_ready(&mut self, http: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("tollgate exited early ({st}): {}", self.output());
                }
            }
            let r = http.get(self.url("/health/readiness")).send().await;
            if matches!(&r, Ok(r) if r.status() == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tollgate not ready: {}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, so shutdown logging and the final spend flush happen as in production.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                assert!(st.success(), "tollgate stopped with {st}");
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("tollgate did not stop within 10 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: the process gets no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn output(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            read(&self.stdout),
            read(&self.stderr)
        )
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}
