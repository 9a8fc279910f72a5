//! SIGINT and SIGTERM while a run holds the store: the first asks the run
//! to stop at its next consistent point (it records itself as interrupted
//! and releases the lock); a second one exits at once with 130, as an
//! operator pressing Ctrl-C twice expects.

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::SigId;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The exit status of a second signal: 128 + SIGINT, the shell's convention.
const EXIT_AT_ONCE: i32 = 130;

/// The handlers of one run; dropping it puts the previous behaviour back.
pub struct Signals {
    received: Arc<AtomicBool>,
    ids: Vec<SigId>,
}

impl Signals {
    /// Installs the handlers. Should the platform refuse, the run goes on
    /// with the default behaviour (a signal kills it; the lease expires).
    pub fn install() -> Signals {
        let received = Arc::new(AtomicBool::new(false));
        let mut ids = Vec::new();
        for signal in [SIGINT, SIGTERM] {
            // Registered first, so it runs before the flag is set: it exits
            // only on the second signal.
            let second = signal_hook::flag::register_conditional_shutdown(
                signal,
                EXIT_AT_ONCE,
                received.clone(),
            );
            let first = signal_hook::flag::register(signal, received.clone());
            match (second, first) {
                (Ok(a), Ok(b)) => ids.extend([a, b]),
                (a, b) => {
                    tracing::warn!("cannot handle SIGINT/SIGTERM: a signal will kill the run");
                    ids.extend(a.into_iter().chain(b));
                }
            }
        }
        Signals { received, ids }
    }

    /// Whether SIGINT or SIGTERM arrived since the run started.
    pub fn received(&self) -> bool {
        self.received.load(Ordering::SeqCst)
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}
