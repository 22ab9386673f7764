//! The `zerenzhi` command: serve, demo, tick, user, token, import, bench-data, audit.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = zerenzhi::cli::Cli::parse();
    zerenzhi::cli::init_logging(&cli.config);
    match zerenzhi::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("zerenzhi: {e:#}");
            ExitCode::FAILURE
        }
    }
}
