//! Command line, as LiteLLM's proxy CLI spells its flags; `serve` is the default command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Tollgate: an OpenAI-compatible LLM gateway, a drop-in replacement for the LiteLLM proxy.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default when no command is given).
    Serve(ServeArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate(StoreArgs),
    /// Manage the master key that Tollgate generated (when none is configured).
    MasterKey {
        #[command(subcommand)]
        action: MasterKeyAction,
    },
    /// FOR BENCHMARKING ONLY: fill a database with synthetic users, keys and spend records
    /// (through the gateway's own batch insert, so the daily aggregates are right).
    SeedSpend(SeedArgs),
    /// Import another gateway's database into Tollgate's store.
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportSource {
    /// Users, teams, keys (which keep working), budgets and pending invitations from a LiteLLM
    /// proxy database, read in a read-only transaction. Running it again changes nothing.
    Litellm(LitellmImportArgs),
}

#[derive(Debug, Clone, Args)]
pub struct LitellmImportArgs {
    /// Tollgate's store to import into.
    #[command(flatten)]
    pub store: StoreArgs,
    /// LiteLLM's database: postgresql://… (only read, never written).
    #[arg(long = "from", env = "LITELLM_DATABASE_URL", hide_env_values = true)]
    pub from: String,
    /// Show what would be imported, and any conflicts, without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Also import the call history (LiteLLM_SpendLogs), streamed in batches.
    #[arg(long)]
    pub spend_logs: bool,
    /// Spend logs per batch.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(i64).range(1..=50_000))]
    pub batch_size: i64,
    /// Also email each user who had a password their invitation link (SMTP_* settings, as
    /// for the gateway).
    #[arg(long)]
    pub email_invitations: bool,
    /// Also import keys, teams and users that have limits Tollgate does not enforce (allowed
    /// routes, per-model budgets, daily token limits, organizations, guardrail policies),
    /// without those limits. By default they are skipped and named in the report.
    #[arg(long)]
    pub allow_weaker_limits: bool,
    /// The gateway's public URL, used in the invitation links printed for users who had a
    /// password.
    #[arg(long, env = "PROXY_BASE_URL", default_value = "http://localhost:4000")]
    pub base_url: String,
}

#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Spend records to write (request ids `seed-<n>`: running again adds nothing).
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Users owning the keys.
    #[arg(long, default_value_t = 200)]
    pub users: u64,
    /// Virtual keys the calls are spread over (every fourth is a team key).
    #[arg(long, default_value_t = 1_000)]
    pub keys: u64,
    /// Calls are spread evenly over this many days up to now.
    #[arg(long, default_value_t = 90)]
    pub days: u32,
}

#[derive(Debug, Subcommand)]
pub enum MasterKeyAction {
    /// Replace the generated master key with a new one and print it once.
    Rotate(StoreArgs),
}

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// LiteLLM-style config.yaml (its general_settings.database_url is used).
    #[arg(short, long, env = "CONFIG_FILE_PATH")]
    pub config: Option<PathBuf>,
    /// Database URL: postgresql://… or sqlite:… (default: DATABASE_URL, else ./tollgate.db).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// LiteLLM-style config.yaml: model_list, litellm_settings, general_settings, router_settings.
    #[arg(short, long, env = "CONFIG_FILE_PATH")]
    pub config: Option<PathBuf>,
    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 4000)]
    pub port: u16,
    /// Address to listen on (0.0.0.0 = every interface).
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Database URL: postgresql://… or sqlite:… (default: the config's, else DATABASE_URL, else
    /// the embedded SQLite file ./tollgate.db).
    #[arg(long, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Model prices in LiteLLM's model_prices_and_context_window.json format, merged over the
    /// built-in table.
    #[arg(long, env = "TOLLGATE_PRICES_FILE")]
    pub prices: Option<PathBuf>,
}
