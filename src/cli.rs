//! The command line (DESIGN.md section 4). Every command that opens the database first
//! applies pending migrations; without `DATABASE_URL` it uses the private cluster.

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use crate::app::App;
use crate::clock::Clock;
use crate::config::{Config, parse_instant};
use crate::db::{Database, audit, users};
use crate::error::AppError;

#[derive(Parser)]
#[command(name = "zerenzhi", version, about = "责任制 Portal: responsibility systems, duties and records")]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the web server and the scheduler.
    Serve,
    /// Run the server on a demo tree (created on first use), printing the demo logins.
    Demo,
    /// Run one scheduler pass and exit.
    Tick {
        /// The instant of the pass (RFC 3339); wins over ZRZ_NOW.
        #[arg(long, value_parser = parse_instant)]
        now: Option<DateTime<Utc>>,
    },
    /// Manage user accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Fill the database with a synthetic tree for benchmarks.
    BenchData {
        /// How many organisations.
        #[arg(long, default_value_t = 100_000)]
        orgs: u32,
    },
    /// Import organisations, people or role assignments from a CSV or XLSX file: all or
    /// nothing; each problem one line on standard error, and exit code 1.
    Import {
        what: crate::import::What,
        file: std::path::PathBuf,
        /// Check the file and report what would change, without changing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Export organisations, people or role assignments in the import layout (.csv or .xlsx).
    Export { what: crate::import::What, file: std::path::PathBuf },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The private PostgreSQL cluster in ZRZ_DATA_DIR (used when DATABASE_URL is unset).
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Start it (if it is not running) and leave it running; print its database URL.
    Start,
    /// Stop it.
    Stop,
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create {
        login: String,
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Print a new API token for a user (last on its line).
    Create {
        login: String,
        #[arg(long, default_value = "cli")]
        label: String,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain.
    Verify,
}

pub fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("ZRZ_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if config.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn clock(config: &Config) -> Clock {
    match config.now {
        Some(at) => {
            tracing::warn!("ZRZ_NOW is set: the clock starts at {at} and runs on from there");
            Clock::starting_at(at)
        }
        None => Clock::system(),
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.config;
    if let Command::Cluster { command } = &cli.command {
        return cluster(command, &config).await;
    }
    let db = Database::open(&config).await?;
    let result = run_command(cli.command, &config, &db).await;
    db.close().await;
    result
}

async fn run_command(command: Command, config: &Config, db: &Database) -> anyhow::Result<ExitCode> {
    let clock = match &command {
        Command::Tick { now: Some(at) } => Clock::frozen_at(*at),
        _ => clock(config),
    };
    let app = App::new(db.pool.clone(), clock, config.clone()).await?;
    match command {
        Command::Serve => serve(app).await,
        Command::Demo => {
            crate::demo::prepare(&app).await?;
            serve(app).await
        }
        Command::Tick { .. } => {
            let report = crate::scheduler::tick(&app, app.now()).await?;
            println!(
                "tick at {}: {} rule periods, {} duties created, {} due-soon and {} overdue notifications, {} audit entries sealed{}",
                app.now().with_timezone(&app.settings().tz).to_rfc3339(),
                report.rule_periods,
                report.duties_created,
                report.due_soon_events,
                report.overdue_events,
                report.audit_sealed,
                if report.sweep_skipped { " (another process was sending notifications)" } else { "" }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::User { command: UserCommand::Create { login, admin, name } } => {
            let password = read_password()?;
            let now = app.now();
            let mut tx = app.pool.begin().await?;
            let user = users::create(&mut tx, &login, &password, name.as_deref().unwrap_or(""), admin, now)
                .await
                .map_err(explain)?;
            audit::write(
                &mut tx,
                cli_entry(now, "user.create", "user", &user.login, serde_json::json!({"admin": admin})),
            )
            .await?;
            tx.commit().await?;
            println!("created user {}{}", user.login, if admin { " (admin)" } else { "" });
            Ok(ExitCode::SUCCESS)
        }
        Command::Token { command: TokenCommand::Create { login, label } } => {
            let now = app.now();
            let mut tx = app.pool.begin().await?;
            let user = users::find_by_login(&mut tx, &login)
                .await?
                .with_context(|| format!("no user has the login {login:?}"))?;
            let token = users::create_token(&mut tx, user.id, &label, now).await?;
            audit::write(
                &mut tx,
                cli_entry(now, "token.create", "user", &user.login, serde_json::json!({"label": label})),
            )
            .await?;
            tx.commit().await?;
            println!("token for {}: {token}", user.login);
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchData { orgs } => {
            crate::bench_data::generate(&app, orgs).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Import { what, file, dry_run } => crate::import::run_import_command(&app, what, &file, dry_run).await,
        Command::Export { what, file } => crate::import::run_export_command(&app, what, &file).await,
        Command::Cluster { .. } => unreachable!("handled before the database opens"),
        Command::Audit { command: AuditCommand::Verify } => {
            let v = audit::verify(&app.pool).await?;
            match v.problem {
                None => {
                    println!("audit chain intact: {} entries sealed, {} awaiting the next seal", v.sealed, v.unsealed);
                    Ok(ExitCode::SUCCESS)
                }
                Some(problem) => {
                    eprintln!("audit chain BROKEN after {} good entries: {problem}", v.sealed);
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

fn cli_entry<'a>(
    now: DateTime<Utc>,
    action: &'a str,
    object_type: &'a str,
    object_id: &str,
    detail: serde_json::Value,
) -> audit::Entry<'a> {
    audit::Entry {
        at: now,
        actor_id: None,
        actor: "cli",
        action,
        object_type,
        object_id: object_id.to_owned(),
        org_id: None,
        detail,
        ip: None,
    }
}

/// Turn an input error into a message a person at the terminal can act on.
fn explain(e: AppError) -> anyhow::Error {
    match e {
        AppError::Internal(e) => e,
        other => anyhow::anyhow!("{other}"),
    }
}

/// The first line of standard input, without its line ending.
fn read_password() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).context("reading the password from standard input")?;
    let line = input.lines().next().unwrap_or("").to_owned();
    if line.is_empty() {
        anyhow::bail!(
            "give the password on standard input, e.g. `echo 'a-long-password' | zerenzhi user create LOGIN`"
        );
    }
    Ok(line)
}

/// `cluster start|stop`: manage the private cluster without opening the portal's database.
async fn cluster(command: &ClusterCommand, config: &Config) -> anyhow::Result<ExitCode> {
    use crate::db::cluster::LocalCluster;
    if config.database_url.is_some() {
        anyhow::bail!("DATABASE_URL is set: the private cluster is not in use");
    }
    let cluster = LocalCluster::attach_or_start(&config.data_dir, "zerenzhi").await?;
    match command {
        ClusterCommand::Start => {
            println!("{}", cluster.database_url("zerenzhi"));
            cluster.leave_running();
        }
        ClusterCommand::Stop => cluster.stop_regardless().await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Serve until interrupted (Ctrl-C or SIGTERM), with the scheduler alongside.
async fn serve(app: App) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(app.config.addr)
        .await
        .with_context(|| format!("listening on {}", app.config.addr))?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let scheduler = (app.config.tick_seconds > 0).then(|| {
        tokio::spawn(crate::scheduler::run(app.clone(), Duration::from_secs(app.config.tick_seconds), stop_rx.clone()))
    });
    tracing::info!("serving on http://{addr}");
    let mut stop_signal = stop_rx.clone();
    let shutdown = async move {
        let _ = stop_signal.changed().await;
    };
    let server = tokio::spawn(crate::web::serve(app.clone(), listener, shutdown));
    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    server.await.context("the server task")??;
    if let Some(s) = scheduler {
        let _ = s.await;
    }
    Ok(ExitCode::SUCCESS)
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
}
