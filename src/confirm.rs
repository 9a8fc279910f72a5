//! Asking before destructive steps, and refusing when nobody can answer.

use crate::error::{CommandError, CommandResult};
use std::io::{BufRead, IsTerminal, Write};

/// Goes on when `yes` was given or a person at the terminal types `y`;
/// otherwise fails with a message that names `--yes`. A script with no
/// terminal is never left waiting for an answer it cannot give.
pub fn confirm(question: &str, yes: bool) -> CommandResult<()> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        // Said as a refusal, not as the question: nobody is there to answer it.
        let action = question.trim().trim_end_matches('?');
        return Err(CommandError::NotConfirmed(format!(
            "not confirmed, and there is no terminal to ask: pass --yes to {action}"
        )));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(CommandError::io("reading the answer"))?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES") {
        Ok(())
    } else {
        Err(CommandError::NotConfirmed(
            "stopped: nothing was changed".into(),
        ))
    }
}
