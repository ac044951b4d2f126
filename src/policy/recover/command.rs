//! The shell commands of a recovery (`before_restore`, `restore_command`,
//! `after_restore`, `health_check`, a command source's own backup): run
//! with `sh -c` (`crate::sys::shell`: no secret of strata's in their
//! environment), their output kept, not printed (the library does not
//! print): its last lines go into the step's detail, so a failure says
//! why in one line.

use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes of each output stream kept.
const TAIL: usize = 8 << 10;
/// Lines of output a detail shows.
const LINES: usize = 3;

/// How long the output is waited for once the command has exited (a
/// service it started in the background may hold the pipe open).
const GRACE: Duration = Duration::from_millis(500);

/// The last bytes of an output stream, kept as they arrive.
type Kept = Arc<Mutex<Vec<u8>>>;

/// Keep the last [`TAIL`] bytes of `r`.
fn tail_of(mut r: impl Read + Send + 'static) -> (Kept, JoinHandle<()>) {
    let kept: Kept = Arc::default();
    let k = kept.clone();
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            let Ok(mut kept) = k.lock() else { break };
            kept.extend_from_slice(&buf[..n]);
            if kept.len() > 2 * TAIL {
                let cut = kept.len() - TAIL;
                kept.drain(..cut);
            }
        }
    });
    (kept, h)
}

/// A started command and the threads that keep its output.
struct Running {
    cmd: String,
    child: Child,
    out: Vec<(Kept, JoinHandle<()>)>,
}

impl Running {
    /// Start `cmd`, with a pipe to its stdin if `stdin`, and `env` added
    /// to its environment; with a `timeout`, in its own process group, so
    /// that the timeout kills what it started too (without one it stays
    /// in strata's, where a Ctrl-C at the terminal reaches it).
    fn start(
        cmd: &str,
        stdin: bool,
        env: Env<'_>,
        timeout: Option<Duration>,
    ) -> Result<Running, String> {
        use std::os::unix::process::CommandExt;
        let mut c = crate::sys::shell(cmd);
        if timeout.is_some() {
            c.process_group(0);
        }
        let mut child = c
            .envs(env.iter().copied())
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run `{cmd}`: {e}"))?;
        let mut out = Vec::new();
        if let Some(o) = child.stdout.take() {
            out.push(tail_of(o));
        }
        if let Some(e) = child.stderr.take() {
            out.push(tail_of(e));
        }
        Ok(Running {
            cmd: cmd.to_string(),
            child,
            out,
        })
    }

    /// The last lines of its output, joined on one line.
    fn said(self) -> String {
        let t = Instant::now();
        while t.elapsed() < GRACE && self.out.iter().any(|(_, h)| !h.is_finished()) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut text = Vec::new();
        for (kept, _) in &self.out {
            if let Ok(k) = kept.lock() {
                text.extend_from_slice(&k);
            }
            text.push(b'\n');
        }
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        lines[lines.len().saturating_sub(LINES)..].join(" | ")
    }

    /// Wait for it (at most `timeout`, then kill it): `Ok` with the last
    /// lines of its output if it exited 0.
    fn finish(mut self, timeout: Option<Duration>) -> Result<String, String> {
        let t = Instant::now();
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Ok(s),
                Ok(None) => {}
                Err(e) => break Err(format!("waiting for `{}`: {e}", self.cmd)),
            }
            if timeout.is_some_and(|d| t.elapsed() >= d) {
                crate::sys::kill_group(self.child.id());
                let _ = self.child.kill();
                let _ = self.child.wait();
                break Err(format!(
                    "`{}` did not finish within {}",
                    self.cmd,
                    humantime::format_duration(timeout.unwrap_or_default())
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let cmd = self.cmd.clone();
        let said = self.said();
        let with = |m: String| {
            if said.is_empty() {
                m
            } else {
                format!("{m}: {said}")
            }
        };
        match status {
            Ok(s) if s.success() => Ok(said),
            Ok(s) => Err(with(format!("`{cmd}` failed ({s})"))),
            Err(m) => Err(with(m)),
        }
    }
}

/// Variables added to a command's environment (`STRATA_DRILL_DIR`…).
pub(super) type Env<'a> = &'a [(&'a str, &'a std::ffi::OsStr)];

/// Run `cmd` to its end (at most `timeout`).
pub(super) fn run(cmd: &str, timeout: Option<Duration>) -> Result<String, String> {
    run_with(cmd, &[], timeout)
}

/// [`run`], with `env` added to the command's environment.
pub(super) fn run_with(
    cmd: &str,
    env: Env<'_>,
    timeout: Option<Duration>,
) -> Result<String, String> {
    Running::start(cmd, false, env, timeout)?.finish(timeout)
}

/// Run `cmd` with `write` feeding its standard input (closed after);
/// the command's failure comes first, then the writer's.
pub(super) fn feed(
    cmd: &str,
    write: impl FnOnce(&mut dyn Write) -> crate::Result<()>,
) -> Result<String, String> {
    feed_with(cmd, &[], None, write)
}

/// [`feed`], with `env` added to the command's environment, killed (with
/// what it started) if it has not finished within `timeout`, also while
/// it is being fed.
pub(super) fn feed_with(
    cmd: &str,
    env: Env<'_>,
    timeout: Option<Duration>,
    write: impl FnOnce(&mut dyn Write) -> crate::Result<()>,
) -> Result<String, String> {
    let mut r = Running::start(cmd, true, env, timeout)?;
    let started = Instant::now();
    let watchdog = timeout.map(|d| crate::sys::Watchdog::start(r.child.id(), d));
    let fed = match r.child.stdin.take() {
        Some(stdin) => {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, stdin);
            write(&mut w).and_then(|()| w.flush().map_err(|e| crate::Error::Invalid(e.to_string())))
            // dropping `w` closes the command's stdin
        }
        None => Err(crate::Error::Invalid("no stdin".into())),
    };
    let left = timeout.map(|d| d.saturating_sub(started.elapsed()));
    let finished = r.finish(left);
    if let (Some(w), Some(d)) = (&watchdog, timeout) {
        if w.fired() {
            return Err(format!(
                "`{cmd}` did not finish within {}",
                humantime::format_duration(d)
            ));
        }
    }
    let said = finished?;
    fed.map_err(|e| format!("feeding `{cmd}`: {e}"))?;
    Ok(said)
}
