//! `Core`: the running money core (supervisor, wallets, connector) over an
//! open store. `start` wires it up; `shutdown` stops the connector, drains
//! every wallet and leaves the store ready to close.

use crate::connector::{Connector, ConnectorArgs, ConnectorMsg};
use crate::registry::{Registry, Supervisor, SupervisorMsg};
use crate::{CoreConfig, Directory, WalletHandle};
use ractor::{Actor, ActorRef};
use std::sync::Arc;
use std::time::Duration;
use storage::Store;

pub struct Core {
    wallets: WalletHandle,
    directory: Directory,
    store: Store,
    supervisor: ActorRef<SupervisorMsg>,
    connector: ActorRef<ConnectorMsg>,
}

impl Core {
    pub async fn start(store: Store, config: CoreConfig) -> Result<Core, ractor::SpawnErr> {
        let config = Arc::new(config);
        let registry = Arc::new(Registry::new(store.clone(), config.clone()));
        let supervisor = Supervisor::start(registry.clone()).await?;
        let wallets = WalletHandle::new(registry);
        let directory = Directory::start(
            store.clone(),
            wallets.clone(),
            config.default_rate_limit_per_min,
        )
        .await?;
        let args = ConnectorArgs {
            store: store.clone(),
            wallets: wallets.clone(),
            config,
        };
        let (connector, _join) = Actor::spawn(None, Connector, args).await?;
        Ok(Core {
            wallets,
            directory,
            store,
            supervisor,
            connector,
        })
    }

    pub fn wallets(&self) -> &WalletHandle {
        &self.wallets
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stops settling, lets every wallet finish its mailbox, stops the
    /// supervisor. The caller closes the store afterwards.
    pub async fn shutdown(self) {
        let wait = Some(Duration::from_secs(10));
        let _ = self.connector.stop_and_wait(None, wait).await;
        self.directory.stop();
        let _ = self.supervisor.call(SupervisorMsg::DrainAll, wait).await;
        let _ = self.supervisor.stop_and_wait(None, wait).await;
    }
}
