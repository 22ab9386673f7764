//! The `zerenzhi` command: serve, demo, tick, user, token, import, bench-data, audit.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than glibc's allocator: a page request makes many small, short-lived
/// allocations across the runtime's threads, where glibc's arenas spent a tenth of the
/// server's time (malloc_consolidate, _int_free) under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
