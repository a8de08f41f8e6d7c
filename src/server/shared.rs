//! What every connection, the journal writer and the `Server` handle share:
//! the store and the journal's buffer under one lock, and the signals between
//! connections and the journal writer.

use std::sync::atomic::AtomicUsize;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::budget::Budget;
use super::config::Limits;
use super::engine::{now, Sealed, Storage, View};
use super::gateway::Gateway;
use super::journal::{Durability, FsyncPolicy, Journal};
use super::log::{Level, LogSink};
use super::store::Store;
use super::tls::TlsConfig;

/// Everything connections share. The store and the journal's buffer sit under
/// one lock so that the journal records puts in exactly the order they were applied.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) journal_wake: Condvar,
    pub(crate) durable: watch::Sender<Durability>,
    pub(crate) limits: Limits,
    pub(crate) storage: Storage,
    pub(crate) fsync: Option<FsyncPolicy>,
    pub(crate) log: Option<LogSink>,
    pub(crate) connections: AtomicUsize,
    /// Refused connections still lingering to deliver their error.
    pub(crate) refusing: AtomicUsize,
    /// Read buffers beyond their initial size, across connections.
    pub(crate) budget: Budget,
    /// Every connection speaks TLS with this configuration.
    pub(crate) tls: Option<TlsConfig>,
    /// Protected mode: peers beyond loopback are refused.
    pub(crate) protected: bool,
    /// Set when points are kept in Redis rather than in `state`.
    pub(crate) gateway: Option<Gateway>,
}

pub(crate) struct State {
    /// The head: every point not sealed into a block yet.
    pub(crate) store: Store,
    pub(crate) journal: Option<Journal>,
    /// The blocks, with a data file.
    pub(crate) sealed: Option<Sealed>,
}

impl State {
    /// What commands read: the head over the blocks, past the retention.
    pub(crate) fn view<'a>(&'a self, shared: &'a Shared) -> View<'a> {
        View {
            head: &self.store,
            sealed: self.sealed.as_ref(),
            cutoff: shared.storage.cutoff(now()),
            log: shared.log.as_ref(),
        }
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the store half-updated
        // in a way later readers would trip on (each put is one insert).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn wake_journal(&self) {
        self.journal_wake.notify_one();
    }

    pub(crate) fn journal_wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.journal_wake
            .wait(guard)
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn journal_wait_timeout<'a>(
        &self,
        guard: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> MutexGuard<'a, State> {
        self.journal_wake
            .wait_timeout(guard, timeout)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }

    pub(crate) fn publish(&self, durability: Durability) {
        self.durable.send_replace(durability);
    }

    /// Whether acknowledgements must wait for the journal to be fsynced.
    pub(crate) fn acks_wait_for_fsync(&self) -> bool {
        self.fsync == Some(FsyncPolicy::Always)
    }

    pub(crate) fn durability(&self) -> watch::Receiver<Durability> {
        self.durable.subscribe()
    }

    pub(crate) fn log(&self, level: Level, message: &str) {
        if let Some(sink) = &self.log {
            sink(level, message);
        }
    }
}
