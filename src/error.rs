//! Why a command failed, and the exit code that tells a script.

use crate::store::StoreError;

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: the command failed (store, input, internal error).
pub const EXIT_FAILURE: i32 = 1;
/// Exit code: the command line was wrong (clap uses the same code).
pub const EXIT_USAGE: i32 = 2;
/// Exit code: a gate or a validation threshold was not met.
pub const EXIT_GATE: i32 = 3;
/// Exit code: another run holds the migration lock.
pub const EXIT_LOCK_HELD: i32 = 4;
/// Exit code: stopped by SIGINT or SIGTERM after a consistent point (the
/// shell's convention for a signal, 128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

/// A failed command. Every message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An input file is unreadable or malformed.
    #[error("{0}")]
    Input(String),
    /// Reading or writing a local file failed.
    #[error("{context}: {source}")]
    Io {
        /// What the tool was doing.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A precondition of the command is not met (backup, validation …).
    #[error("{0}")]
    Gate(String),
    /// The operator declined a confirmation, or none could be asked.
    #[error("{0}")]
    NotConfirmed(String),
    /// Another run holds the migration lock.
    #[error("{0}")]
    LockHeld(String),
    /// The operator (or the system) asked the run to stop; it stopped at a
    /// consistent point and can be resumed.
    #[error("{0}")]
    Interrupted(String),
    /// A check ran to the end and did not pass: its full report is still the
    /// command's output (exit code 3).
    #[error("{message}")]
    Failed {
        /// The report, printed as usual (text or JSON).
        output: Box<crate::report::Output>,
        /// What to do about it.
        message: String,
    },
}

impl CommandError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            CommandError::Gate(_) | CommandError::Failed { .. } => EXIT_GATE,
            CommandError::LockHeld(_) => EXIT_LOCK_HELD,
            CommandError::NotConfirmed(_) => EXIT_USAGE,
            // A store URL the tool cannot use is a usage error, like a bad flag.
            CommandError::Store(crate::store::StoreError::BadUrl(_)) => EXIT_USAGE,
            CommandError::Interrupted(_) => EXIT_INTERRUPTED,
            _ => EXIT_FAILURE,
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CommandError {
        let context = context.into();
        move |source| CommandError::Io { context, source }
    }
}

/// Result of a command.
pub type CommandResult<T> = Result<T, CommandError>;
