//! The command line: `tijori` with no subcommand serves (every server flag
//! and its `TIJORI_*` twin, `config.rs`); `tijori backup` asks a running
//! server for an online backup; `tijori restore` puts a backup into an
//! empty data dir, offline. A new subcommand is one more `Command` variant
//! with its own arguments and function here.

use crate::config::Config;
use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "tijori",
    version,
    about = "Tijori: an actor-based merchant payment processor",
    after_help = "Without a subcommand, tijori serves: `tijori [OPTIONS]`."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The server's settings (used when no subcommand is given).
    #[command(flatten)]
    pub serve: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy the running server's store into a new directory, online.
    Backup(BackupArgs),
    /// Put a backup into an empty data dir (the server must not run on it).
    Restore(RestoreArgs),
    /// Print a new random API key, e.g. for --admin-key.
    Keygen,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Directory to write the backup to, on the server's machine: new or
    /// empty, outside the data dir. A relative path is taken from here.
    #[arg(long)]
    pub to: PathBuf,

    /// The running server.
    #[arg(long, env = "TIJORI_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,

    /// An admin API key of that server.
    #[arg(long, env = "TIJORI_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: String,

    /// Time to wait for the server to finish the backup.
    #[arg(long, default_value_t = 3_900)]
    pub timeout_secs: u64,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A finished backup (a directory written by `tijori backup`).
    #[arg(long)]
    pub from: PathBuf,

    /// The data dir to restore into: new or empty.
    #[arg(long, env = "TIJORI_DATA_DIR")]
    pub data_dir: PathBuf,
}

/// Asks the server for a backup and waits for it; returns what to print.
pub async fn backup(args: &BackupArgs) -> anyhow::Result<String> {
    let to = std::path::absolute(&args.to)
        .with_context(|| format!("cannot resolve {}", args.to.display()))?;
    let to = to
        .to_str()
        .ok_or_else(|| anyhow!("{} is not valid UTF-8", to.display()))?
        .to_owned();
    let base = args.server.trim_end_matches('/');
    let uri: hyper::Uri = format!("{base}/api/v1/admin/backup")
        .parse()
        .map_err(|_| anyhow!("--server {} is not a URL", args.server))?;
    if uri.scheme_str() != Some("http") {
        bail!("--server {} must be an http:// URL", args.server);
    }
    let request = hyper::Request::post(uri)
        .header("x-api-key", &args.admin_key)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json!({ "to": to }).to_string())))
        .map_err(|_| anyhow!("the admin key is not a valid header value"))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let wait = Duration::from_secs(args.timeout_secs);
    let exchange = async {
        let response = client.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body))
    };
    let (status, body) = match tokio::time::timeout(wait, exchange).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => bail!("cannot reach the server at {base}: {}", root_cause(&*e)),
        Err(_) => bail!(
            "the server at {base} did not finish the backup within {} s",
            wait.as_secs()
        ),
    };
    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !status.is_success() {
        let code = answer["error"]["code"].as_str().unwrap_or("unknown");
        let message = answer["error"]["message"].as_str().unwrap_or("");
        bail!("the server refused the backup ({status}): {code}: {message}");
    }
    let d = &answer["data"];
    Ok(format!(
        "backup written to {}: sequence {}, {} rows, {} bytes, in {} ms (writes paused {} µs)",
        d["to"].as_str().unwrap_or(&to),
        d["sequence"],
        d["rows"],
        d["bytes"],
        d["duration_ms"],
        d["write_pause_us"]
    ))
}

/// A new API key, from the operating system's random source.
pub fn keygen() -> anyhow::Result<String> {
    domain::api_key::generate(getrandom::fill).map_err(|e| anyhow!("no random source: {e}"))
}

/// Restores the backup; returns what to print.
pub fn restore(args: &RestoreArgs) -> anyhow::Result<String> {
    let to = std::path::absolute(&args.data_dir)
        .with_context(|| format!("cannot resolve {}", args.data_dir.display()))?;
    let manifest = storage::backup::restore(&args.from, &to).map_err(|e| anyhow!("{e}"))?;
    Ok(format!(
        "restored {} into {}: sequence {}, {} rows; start the server with --data-dir {}",
        args.from.display(),
        to.display(),
        manifest.sequence,
        manifest.total_rows(),
        to.display()
    ))
}

/// The innermost error: "connection refused" rather than the client's
/// layers of context.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn no_subcommand_serves_with_every_server_flag() {
        let cli = Cli::try_parse_from([
            "tijori",
            "--listen",
            "127.0.0.1:0",
            "--durability",
            "buffered",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.listen.to_string(), "127.0.0.1:0");
        assert_eq!(cli.serve.durability, crate::config::DurabilityArg::Buffered);
        let plain = Cli::try_parse_from(["tijori"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(plain.command.is_none());
        assert_eq!(plain.serve.data_dir, PathBuf::from("./tijori-data"));
    }

    #[test]
    fn backup_and_restore_take_their_own_arguments() {
        let cli = Cli::try_parse_from([
            "tijori",
            "backup",
            "--to",
            "/b",
            "--server",
            "http://127.0.0.1:9",
            "--admin-key",
            "k",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        match cli.command {
            Some(Command::Backup(a)) => {
                assert_eq!(a.to, PathBuf::from("/b"));
                assert_eq!(a.server, "http://127.0.0.1:9");
                assert_eq!(a.admin_key, "k");
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["tijori", "restore", "--from", "/b", "--data-dir", "/d"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            cli.command,
            Some(Command::Restore(RestoreArgs { ref from, ref data_dir }))
                if from == Path::new("/b") && data_dir == Path::new("/d")
        ));
    }
}
