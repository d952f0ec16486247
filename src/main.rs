//! `tijori`: parse the command line; with no subcommand, set up logging,
//! bind, serve until SIGTERM or Ctrl-C, exit 0 after a clean drain; or run
//! an operation (`cli.rs`). A failure is one line on stderr, `error: …`,
//! and exit status 1: no backtrace, no debug chain.

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;
use tijori::cli::{Cli, Command};
use tijori::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        None => serve(cli.serve),
        Some(Command::Backup(args)) => {
            runtime().and_then(|rt| rt.block_on(tijori::cli::backup(&args)).map(say))
        }
        Some(Command::Restore(args)) => tijori::cli::restore(&args).map(say),
        Some(Command::Keygen) => tijori::cli::keygen().map(say),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}`: the causes on the same line, joined by ": ".
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn say(line: String) {
    println!("{line}");
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn serve(config: Config) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_env("TIJORI_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,lsm_tree=warn,fjall=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match config.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AddrInUse => {
                    anyhow::anyhow!(
                        "{} is already in use (another process listens on it): \
                         choose another --listen address",
                        config.listen
                    )
                }
                _ => anyhow::anyhow!("cannot listen on {}: {e}", config.listen),
            })?;
        tijori::run(config, listener, shutdown_signal()).await
    })
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}
