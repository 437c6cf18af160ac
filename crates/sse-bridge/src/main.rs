//! `sse-bridge`: a thin shell over the libraries — parse the command line
//! (with its config file), set up logging and signals, run the subcommand.

mod backends;
mod cli;
mod config;
mod memory;

/// jemalloc, measured against glibc and mimalloc on held streams (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
mod publish;
mod serve;
mod streams;
mod worker;

use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config::CommandLine { cli, provenance } =
        match config::parse_command_line(std::env::args_os().collect()) {
            Ok(command_line) => command_line,
            Err(config::CommandLineError::Clap(error)) => error.exit(),
            Err(config::CommandLineError::ConfigFile(error)) => return Err(error.into()),
        };
    // Every client holds a socket: lift the soft file limit to the hard one.
    if let Err(error) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("warning: cannot raise the open-file limit: {error}");
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        // Colour codes only for a person at a terminal, not in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    match cli.command {
        cli::Command::Serve(args) => serve::run(args, shutdown).await,
        cli::Command::Worker(args) => worker::run(args, shutdown).await,
        cli::Command::Publish(args) => publish::run(args).await,
        cli::Command::Config(cli::ConfigCommand::Print(_)) => {
            print!("{}", provenance.to_toml());
            Ok(())
        }
    }
}

/// Cancels `shutdown` on Ctrl-C or SIGTERM.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!("cannot listen for SIGTERM: {error}");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
