//! Tijori, the server: configuration, the HTTP front end, and `run`, which
//! wires storage, the money core and HTTP together and shuts them down in
//! order.

pub mod cli;
pub mod config;
pub mod http;
pub mod metrics;
pub mod portal;

use anyhow::Context;
use config::Config;
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Opens the store, starts the core, bootstraps the admin on an empty
/// store, serves HTTP on `listener` until `shutdown`, then stops the core
/// and closes the store (everything acknowledged is already durable).
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    if let Some(key) = &config.admin_key {
        // Never echoed: a near miss of a real key is still a secret.
        anyhow::ensure!(
            domain::api_key::is_well_formed(key),
            "--admin-key is not a Tijori API key (tjk_ and 38 base62 characters ending in \
             their checksum): `tijori keygen` prints one"
        );
    }
    let recorder = metrics::install().context("installing the metrics recorder")?;
    let store = storage::Store::open(&config.data_dir, config.store()).map_err(|e| match e {
        // Says it all, naming the dir.
        storage::StorageError::Locked(_) => anyhow::Error::new(e),
        e => anyhow::Error::new(e).context(format!(
            "opening the store in {}",
            config.data_dir.display()
        )),
    })?;
    let core = actors::Core::start(store.clone(), config.core())
        .await
        .context("starting the money core")?;
    if let Some(key) = core
        .directory()
        .bootstrap(config.admin_key.clone())
        .await
        .map_err(|r| anyhow::anyhow!("{r}"))?
    {
        // Printed once, on the first start; only its hash is stored. A key
        // the operator chose is never echoed (terminals and logs keep it).
        if config.admin_key.is_some() {
            println!("admin user created with the key given by --admin-key");
        } else {
            println!("admin api key: {key}");
        }
    }
    let metrics = metrics::Exporter::new(
        recorder,
        metrics::Sources {
            store: store.clone(),
            wallets: core.wallets().clone(),
            settlements: core.settlements(),
            data_dir: config.data_dir.clone(),
        },
    );
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "tijori is serving");
    let app = Arc::new(http::App {
        wallets: core.wallets().clone(),
        directory: core.directory().clone(),
        webhooks: core.webhooks().clone(),
        store: store.clone(),
        metrics,
        limiter: http::ratelimit::RateLimiter::new(
            config.misuse_rejections,
            Duration::from_secs(config.misuse_window_secs),
        ),
        portal: portal::Portal::new(&config),
        config,
        statements: core.statement_verifier(),
        ready: AtomicBool::new(true),
    });
    http::serve(listener, app, shutdown).await;
    tracing::info!("draining the money core");
    core.shutdown().await;
    store.close();
    tracing::info!("stopped cleanly");
    Ok(())
}
