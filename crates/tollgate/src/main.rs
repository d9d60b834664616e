use std::process::ExitCode;

use clap::Parser;
use tollgate::cli::{Cli, Command, ImportSource, MasterKeyAction, ServeArgs, StoreArgs};
use tollgate::{config, App, Options, StartError};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    // On one usable core (a pinned or single-CPU container) a single-threaded scheduler avoids
    // cross-thread wake-ups; otherwise one worker per core.
    let one_core = std::thread::available_parallelism()
        .map(|n| n.get() == 1)
        .unwrap_or(false);
    let mut builder = if one_core {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            None => serve(cli.serve).await,
            Some(Command::Serve(args)) => serve(args).await,
            Some(Command::Migrate(args)) => migrate(args).await,
            Some(Command::MasterKey {
                action: MasterKeyAction::Rotate(args),
            }) => rotate(args).await,
            Some(Command::SeedSpend(args)) => seed_spend(args).await,
            Some(Command::Import {
                source: ImportSource::Litellm(args),
            }) => import_litellm(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOLLGATE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The AWS signer traces its canonical requests, which hold the session token: never shown.
    let filter = match "aws_sigv4=off".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

fn load_config(path: Option<&std::path::Path>) -> Result<config::Config, StartError> {
    match path {
        Some(p) => Ok(config::load(p)?),
        None => Ok(config::parse("{}", "(no config file)", &|k| {
            std::env::var(k).ok()
        })?),
    }
}

async fn serve(args: ServeArgs) -> Result<(), StartError> {
    let cfg = load_config(args.config.as_deref())?;
    let app = App::build(
        cfg,
        Options {
            database_url: args.database_url.clone(),
            prices_file: args.prices.clone(),
            spend_flush_interval: None,
            env: Default::default(),
        },
    )
    .await?;
    for w in &app.warnings {
        tracing::warn!("{w}");
    }
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let shown_host = if args.host == "0.0.0.0" || args.host == "::" {
        "localhost"
    } else {
        args.host.as_str()
    };
    let base = format!("http://{shown_host}:{}", args.port);
    tracing::info!(
        address = %addr,
        models = app.model_count,
        database = app.store.backend_name(),
        "Tollgate is listening"
    );
    match app.started() {
        Some(started) => announce(&started, &base),
        None => {
            println!("\n  Tollgate is running but waiting for its database; it is ready when {base}/health/readiness answers 200.\n");
            let started = app.when_started();
            tokio::spawn(async move {
                if let Some(s) = started.await {
                    announce(&s, &base);
                }
            });
        }
    }
    app.serve(listener, shutdown_signal()).await?;
    tracing::info!("Tollgate stopped; spend records flushed");
    Ok(())
}

/// Says how the master key was set; a generated one goes to the terminal only, never to the
/// log.
fn announce(started: &tollgate::app::Started, base: &str) {
    tracing::info!(master_key = started.master_key_source, "Tollgate is ready");
    if let Some(key) = &started.generated_master_key {
        println!(
            "\n  No master key was configured, so Tollgate generated one. It is shown only now;\n  \
             only its hash is stored. Keep it somewhere safe (rotate: `tollgate master-key rotate`).\n\n  \
             Master key: {key}\n\n  \
             OpenAI base URL: {base}/v1\n  \
             Try: curl {base}/v1/models -H \"Authorization: Bearer {key}\"\n"
        );
    } else {
        println!("\n  Tollgate is running. OpenAI base URL: {base}/v1   Health: {base}/health/readiness\n");
    }
}

async fn store_for(args: &StoreArgs) -> Result<tollgate_store::Store, StartError> {
    let url = store_url(args)?;
    Ok(tollgate_store::Store::open(url.as_deref()).await?)
}

fn store_url(args: &StoreArgs) -> Result<Option<String>, StartError> {
    let cfg = load_config(args.config.as_deref())?;
    Ok(args
        .database_url
        .clone()
        .or_else(|| cfg.database_url.as_ref().map(|s| s.expose().to_string())))
}

async fn import_litellm(args: tollgate::cli::LitellmImportArgs) -> Result<(), StartError> {
    use tollgate::import::litellm;
    let url = store_url(&args.store)?;
    litellm::check_distinct(&args.from, url.as_deref())?;
    let mailer = if args.email_invitations {
        let env = |k: &str| std::env::var(k).ok();
        let smtp = tollgate_mailer::SmtpConfig::from_env(&env)
            .map_err(|e| StartError::Settings(e.to_string()))?
            .ok_or_else(|| {
                StartError::Settings(
                    "--email-invitations needs SMTP_HOST and SMTP_SENDER_EMAIL".to_string(),
                )
            })?;
        let mailer =
            tollgate_mailer::Mailer::new(&smtp).map_err(|e| StartError::Settings(e.to_string()))?;
        Some(std::sync::Arc::new(mailer))
    } else {
        None
    };
    let target = litellm::open_store(url.as_deref(), args.dry_run).await?;
    let options = litellm::Options {
        from: args.from,
        dry_run: args.dry_run,
        spend_logs: args.spend_logs,
        batch_size: args.batch_size,
        base_url: args.base_url.trim_end_matches('/').to_string(),
        mailer,
        allow_weaker_limits: args.allow_weaker_limits,
    };
    let result = litellm::run(&options, &target.store).await;
    target.store.close().await;
    match result {
        Ok(report) => {
            print!("{report}");
            Ok(())
        }
        Err(failed) => {
            // What was written before the error (fresh invitation links above all) is printed
            // anyway: running the import again finishes it, but would not show those links.
            if let Some(written) = failed.written {
                print!("Stopped by an error; written before it:\n\n{written}");
            }
            Err(failed.error.into())
        }
    }
}

async fn migrate(args: StoreArgs) -> Result<(), StartError> {
    let store = store_for(&args).await?;
    println!("database schema is up to date ({})", store.backend_name());
    store.close().await;
    Ok(())
}

async fn rotate(args: StoreArgs) -> Result<(), StartError> {
    let store = store_for(&args).await?;
    let key = tollgate::master_key::rotate(&store).await?;
    store.close().await;
    println!(
        "New master key (shown only now): {key}\nRestart running Tollgate instances to use it."
    );
    Ok(())
}

async fn seed_spend(args: tollgate::cli::SeedArgs) -> Result<(), StartError> {
    let store = store_for(&args.store).await?;
    let result = tollgate::seed::run(&args, &store).await;
    store.close().await;
    Ok(result?)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
