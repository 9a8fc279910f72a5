//! The embedded store's write-ahead log, copied back into the database file
//! on a thread of its own.
//!
//! In WAL mode SQLite appends each commit to `<file>-wal`, and by default
//! the committing connection copies the log into the database file (a
//! checkpoint) before its commit returns, every 1,000 pages. That copy was a
//! tenth of a migration's time and more of an import's, all of it on the one
//! thread that writes. Here a second connection checkpoints after each
//! commit, on the other core, while the writer goes on. The writer still
//! checkpoints by itself once the log holds [`BACKSTOP_PAGES`], so the log
//! stays bounded if this thread falls behind.
//!
//! A checkpoint never changes what a reader sees, and SQLite lets one run
//! beside a writer and readers (`PASSIVE` waits for neither), so this changes
//! no result, only which thread does the copying.

use rusqlite::Connection;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

/// The writer's own `wal_autocheckpoint`: four times SQLite's default (64 MiB
/// of log at 16 KiB pages), reached only when the checkpoint thread has
/// fallen behind.
pub(super) const BACKSTOP_PAGES: i64 = 4_000;

/// A thread with its own connection to the store file, checkpointing when
/// woken.
pub(super) struct Checkpointer {
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens the second connection and starts the thread; `None` if either
    /// fails, and the writer's backstop then does the checkpoints.
    pub(super) fn start(path: &str) -> Option<Checkpointer> {
        let conn = Connection::open(path)
            .map_err(|e| tracing::debug!(error = %e, "no checkpoint thread"))
            .ok()?;
        // One pending wake is enough: a checkpoint copies every commit so far.
        let (wake, woken) = sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
                        tracing::debug!(error = %e, "checkpoint skipped");
                    }
                }
            })
            .map_err(|e| tracing::debug!(error = %e, "no checkpoint thread"))
            .ok()?;
        Some(Checkpointer {
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    /// Asks for a checkpoint of everything committed so far, without waiting.
    pub(super) fn wake(&self) {
        if let Some(wake) = &self.wake {
            let _ = wake.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    /// Lets a checkpoint under way finish, so the store is whole when it
    /// closes.
    fn drop(&mut self) {
        self.wake.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
