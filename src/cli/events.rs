//! The CLI's [`Events`]: warnings and notices as `strata:` lines on
//! stderr, progress as indicatif bars ([`super::progress`]), and secrets
//! asked on the terminal with rpassword (never echoed).

use super::progress;
use crate::error::{Error, Result};
use crate::events::{Events, Meter, Shown};
use age::secrecy::SecretString;
use std::io::IsTerminal;

/// stderr, indicatif and the terminal.
pub struct Terminal;

impl Events for Terminal {
    fn warning(&self, message: &str) {
        eprintln!("strata: warning: {message}");
    }

    fn notice(&self, message: &str) {
        eprintln!("strata: {message}");
    }

    fn progress(&self, meter: Meter) -> Shown {
        let ticker = match meter {
            Meter::Bytes { label, sample } => progress::start(label, sample),
            Meter::Items {
                label,
                unit,
                total,
                done,
            } => progress::start_items(label, unit, total, done),
        };
        Shown::new(Box::new(ticker))
    }

    fn ask_secret(&self, prompt: &str) -> Option<Result<SecretString>> {
        if !can_prompt() {
            return None;
        }
        Some(
            rpassword::prompt_password(prompt)
                .map(SecretString::from)
                .map_err(|e| {
                    Error::Invalid(format!("cannot read the passphrase from the terminal: {e}"))
                }),
        )
    }
}

/// A terminal to ask on: stdin or stderr is one, and /dev/tty opens.
fn can_prompt() -> bool {
    (std::io::stdin().is_terminal() || std::io::stderr().is_terminal())
        && std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .is_ok()
}
