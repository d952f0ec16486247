//! `Core`: the running money core (supervisor, wallets, connector, user
//! directory, webhook dispatcher) over an open store. `start` wires it up;
//! `shutdown` stops settling and delivering, drains every wallet and leaves
//! the store ready to close.

use crate::audit::{AuditStatus, Auditor};
use crate::connector::{Connector, ConnectorArgs, ConnectorMsg, SettlementStats};
use crate::registry::{Registry, Supervisor, SupervisorMsg};
use crate::statements::{StatementStats, StatementWriter, SystemClock, Verifier};
use crate::webhook::{Clock, DispatcherArgs, HttpTransport, WebhookHandle, WebhookStats};
use crate::{CoreConfig, Directory, WalletHandle};
use domain::metric_names as names;
use ractor::{Actor, ActorRef};
use std::sync::Arc;
use std::time::Duration;
use storage::Store;

pub struct Core {
    wallets: WalletHandle,
    directory: Directory,
    webhooks: WebhookHandle,
    store: Store,
    supervisor: ActorRef<SupervisorMsg>,
    connector: ActorRef<ConnectorMsg>,
    audit: Arc<AuditStatus>,
    audit_task: Option<tokio::task::JoinHandle<()>>,
    settlements: Arc<SettlementStats>,
    settlement_cycle: Option<tokio::task::JoinHandle<()>>,
    statement_task: Option<tokio::task::JoinHandle<()>>,
    statement_stats: Arc<StatementStats>,
    verifier: Arc<Verifier>,
}

impl Core {
    pub async fn start(store: Store, config: CoreConfig) -> Result<Core, ractor::SpawnErr> {
        let config = Arc::new(config);
        let registry = Arc::new(Registry::new(store.clone(), config.clone()));
        let wallets_registry = registry.clone();
        let supervisor = Supervisor::start(registry.clone()).await?;
        let wallets = WalletHandle::new(registry);
        let directory = Directory::start(
            store.clone(),
            wallets.clone(),
            config.default_rate_limit_per_min,
        )
        .await?;
        let _ = wallets_registry.directory.set(directory.clone());
        let hooks = &config.webhooks;
        let transport = HttpTransport::new(
            hooks.allow_private,
            Duration::from_millis(hooks.connect_timeout_ms),
            Duration::from_millis(hooks.timeout_ms),
        );
        let webhooks = WebhookHandle::start(
            transport,
            DispatcherArgs {
                store: store.clone(),
                directory: directory.clone(),
                config: hooks.clone(),
                clock: Clock::Wall,
                stats: Arc::new(WebhookStats::default()),
                fresh: wallets_registry.fresh.clone(),
            },
        )
        .await?;
        let auditor = Auditor::new(store.clone(), directory.clone());
        let audit = auditor.status();
        let audit_enabled = config.ledger_audit_interval_ms > 0;
        metrics::gauge!(names::LEDGER_AUDIT_ENABLED).set(if audit_enabled { 1.0 } else { 0.0 });
        metrics::gauge!(names::LEDGER_AUDIT_INTERVAL)
            .set(config.ledger_audit_interval_ms as f64 / 1_000.0);
        if audit_enabled {
            // Until the first run finishes: "never", so a stuck first run
            // shows as stale. A disabled audit exports no verdict at all.
            metrics::gauge!(names::LEDGER_AUDIT_LAST_RUN).set(0.0);
        }
        let audit_task = audit_enabled.then(|| {
            tokio::spawn(auditor.run(Duration::from_millis(config.ledger_audit_interval_ms)))
        });
        let writer = StatementWriter::new(
            store.clone(),
            directory.clone(),
            Arc::new(SystemClock),
            config.statements.clone(),
        );
        let statement_stats = writer.stats();
        // At zero until the first complete run.
        metrics::gauge!(names::STATEMENTS_CLOSED_THROUGH).set(0.0);
        metrics::counter!(names::STATEMENTS_WRITTEN).increment(0);
        let statement_task =
            (config.statements.interval_ms > 0).then(|| tokio::spawn(writer.run()));
        let settlements = Arc::new(SettlementStats::default());
        let settlement_cycle =
            (config.settlement_schedule != crate::SettlementSchedule::Off).then(|| {
                tokio::spawn(crate::settlement_cycle::run(
                    config.settlement_schedule,
                    wallets.clone(),
                    directory.clone(),
                ))
            });
        let args = ConnectorArgs {
            store: store.clone(),
            wallets: wallets.clone(),
            config,
            stats: settlements.clone(),
        };
        let (connector, _join) = Actor::spawn(None, Connector, args).await?;
        let _ = wallets_registry.connector.set(connector.clone());
        Ok(Core {
            wallets,
            directory,
            webhooks,
            store,
            supervisor,
            connector,
            audit,
            audit_task,
            settlements,
            settlement_cycle,
            statement_task,
            statement_stats,
            verifier: Arc::new(Verifier::default()),
        })
    }

    /// The daily statement writer's counters.
    pub fn statement_stats(&self) -> Arc<StatementStats> {
        self.statement_stats.clone()
    }

    /// Checks stored statements against the ledger (`GET /statements/verify`).
    pub fn statement_verifier(&self) -> Arc<Verifier> {
        self.verifier.clone()
    }

    pub fn wallets(&self) -> &WalletHandle {
        &self.wallets
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    pub fn webhooks(&self) -> &WebhookHandle {
        &self.webhooks
    }

    /// The live ledger check's latest verdict.
    pub fn audit(&self) -> &AuditStatus {
        &self.audit
    }

    /// Pay-ins and payouts awaiting the rail (kept by the connector).
    pub fn settlements(&self) -> Arc<SettlementStats> {
        self.settlements.clone()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stops settling and delivering, lets every wallet finish its mailbox,
    /// stops the supervisor. The caller closes the store afterwards.
    pub async fn shutdown(self) {
        let wait = Some(Duration::from_secs(10));
        if let Some(task) = &self.audit_task {
            task.abort();
        }
        if let Some(task) = &self.settlement_cycle {
            task.abort();
        }
        if let Some(task) = &self.statement_task {
            task.abort();
        }
        let _ = self.connector.stop_and_wait(None, wait).await;
        self.webhooks.stop().await;
        self.directory.stop();
        let _ = self.supervisor.call(SupervisorMsg::DrainAll, wait).await;
        let _ = self.supervisor.stop_and_wait(None, wait).await;
    }
}
