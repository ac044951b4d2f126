//! [`FaultBackend`]: a wrapper that makes chosen calls fail, for the fault
//! battery (issue 10) and crash tests without a real disk. Calls are
//! counted per [`Op`], from 1; a rule "fail call N of op X" is
//! [`Fault::Transient`] (that call only), [`Fault::Persistent`] (that
//! call and every later one: a dead disk, a revoked credential) or
//! [`Fault::LostReply`] (the call is carried out, then reports an error:
//! the caller cannot tell whether its write happened, as after a dropped
//! HTTP response). Failures are [`BackendError::Injected`].

use super::{BResult, Backend, BackendError, Listed, Op, RangedRead};
use bytes::Bytes;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const OPS: usize = 8;

impl Op {
    fn index(self) -> usize {
        self as usize
    }
}

/// How a chosen call fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The call fails without reaching the inner backend; later calls pass.
    Transient,
    /// The call and every later call of the op fail without reaching the
    /// inner backend.
    Persistent,
    /// The call reaches the inner backend, then reports an error whatever
    /// happened (a `list` delivers its objects first).
    LostReply,
}

#[derive(Debug, Default)]
struct State {
    calls: [u64; OPS],
    rules: Vec<(Op, u64, Fault)>,
    injected: Vec<(Op, String, u64)>,
}

/// `inner` with injected failures (module doc). Rules can be added while
/// the backend is in use; counting is per op and shared by all threads.
#[derive(Debug)]
pub struct FaultBackend<B> {
    inner: B,
    faults: Faults,
}

/// The rules and counts of a [`FaultBackend`], shared with the handles of
/// [`Backend::open_ranged`] (each of whose reads is a `GetRange` call).
#[derive(Clone, Debug)]
struct Faults {
    /// The wrapped backend's name, for errors.
    backend: String,
    state: Arc<Mutex<State>>,
}

enum Verdict {
    Pass,
    FailBefore(u64),
    FailAfter(u64),
}

impl<B: Backend> FaultBackend<B> {
    /// `inner` with no faults yet.
    pub fn new(inner: B) -> FaultBackend<B> {
        FaultBackend {
            faults: Faults {
                backend: inner.name().to_string(),
                state: Arc::new(Mutex::new(State::default())),
            },
            inner,
        }
    }

    /// Make call `nth` (counting from 1 over the backend's life) of `op`
    /// fail as `fault`.
    pub fn fail(&self, op: Op, nth: u64, fault: Fault) -> &Self {
        self.faults.lock().rules.push((op, nth, fault));
        self
    }

    /// Remove every rule (counts go on).
    pub fn heal(&self) {
        self.faults.lock().rules.clear();
    }

    /// How many calls of `op` were made so far.
    pub fn calls(&self, op: Op) -> u64 {
        self.faults.lock().calls[op.index()]
    }

    /// Every call that failed by a rule so far: op, key (the prefix for
    /// `list`) and which call of that op it was.
    pub fn injections(&self) -> Vec<(Op, String, u64)> {
        self.faults.lock().injected.clone()
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    fn run<T>(&self, op: Op, key: &str, call: impl FnOnce() -> BResult<T>) -> BResult<T> {
        self.faults.run(op, key, call)
    }
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // a panic while holding the lock leaves consistent counters
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn verdict(&self, op: Op) -> Verdict {
        let mut s = self.lock();
        s.calls[op.index()] += 1;
        let n = s.calls[op.index()];
        let mut v = Verdict::Pass;
        for &(o, nth, fault) in &s.rules {
            if o != op {
                continue;
            }
            match fault {
                Fault::Transient if n == nth => return Verdict::FailBefore(n),
                Fault::Persistent if n >= nth => return Verdict::FailBefore(n),
                Fault::LostReply if n == nth => v = Verdict::FailAfter(n),
                _ => {}
            }
        }
        v
    }

    fn injected(&self, op: Op, key: &str, call: u64) -> BackendError {
        self.lock().injected.push((op, key.to_string(), call));
        BackendError::Injected {
            backend: self.backend.clone(),
            key: key.to_string(),
            op,
            call,
        }
    }

    fn run<T>(&self, op: Op, key: &str, call: impl FnOnce() -> BResult<T>) -> BResult<T> {
        match self.verdict(op) {
            Verdict::Pass => call(),
            Verdict::FailBefore(n) => Err(self.injected(op, key, n)),
            Verdict::FailAfter(n) => {
                let _ = call();
                Err(self.injected(op, key, n))
            }
        }
    }
}

impl<B: Backend> Backend for FaultBackend<B> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn get(&self, key: &str) -> BResult<Bytes> {
        self.run(Op::Get, key, || self.inner.get(key))
    }
    fn get_range(&self, key: &str, range: Range<u64>) -> BResult<Bytes> {
        self.run(Op::GetRange, key, || self.inner.get_range(key, range))
    }
    fn size(&self, key: &str) -> BResult<u64> {
        self.run(Op::Size, key, || self.inner.size(key))
    }
    fn put_new(&self, key: &str, bytes: &[u8]) -> BResult<()> {
        self.run(Op::PutNew, key, || self.inner.put_new(key, bytes))
    }
    fn put_new_bytes(&self, key: &str, bytes: Bytes) -> BResult<()> {
        self.run(Op::PutNew, key, || self.inner.put_new_bytes(key, bytes))
    }
    fn put_new_file(&self, key: &str, path: &Path) -> BResult<()> {
        self.run(Op::PutNewFile, key, || self.inner.put_new_file(key, path))
    }
    fn put_replace(&self, key: &str, bytes: &[u8]) -> BResult<()> {
        self.run(Op::PutReplace, key, || self.inner.put_replace(key, bytes))
    }
    fn list(&self, prefix: &str, f: &mut dyn FnMut(Listed)) -> BResult<()> {
        self.run(Op::List, prefix, || self.inner.list(prefix, f))
    }
    fn delete(&self, key: &str) -> BResult<()> {
        self.run(Op::Delete, key, || self.inner.delete(key))
    }
    fn scratch_dir(&self) -> Option<PathBuf> {
        self.inner.scratch_dir()
    }
    /// Opening counts as a `Size` call (it asks the object's size), each
    /// read of the handle as a `GetRange` call.
    fn open_ranged(&self, key: &str) -> BResult<Box<dyn RangedRead>> {
        let inner = self.run(Op::Size, key, || self.inner.open_ranged(key))?;
        Ok(Box::new(FaultRanged {
            inner,
            faults: self.faults.clone(),
            key: key.to_string(),
        }))
    }
    /// As a remote store's: any call may fail, as a request may, and the
    /// callers read as they read from one (the wrapper stands in for a
    /// remote store in the fault battery).
    fn remote_reads(&self) -> Option<usize> {
        Some(
            self.inner
                .remote_reads()
                .unwrap_or(super::object::REMOTE_READS),
        )
    }
}

/// A handle of [`FaultBackend::open_ranged`].
#[derive(Debug)]
struct FaultRanged {
    inner: Box<dyn RangedRead>,
    faults: Faults,
    key: String,
}

impl RangedRead for FaultRanged {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> BResult<()> {
        self.faults
            .run(Op::GetRange, &self.key, || self.inner.read_at(buf, offset))
    }
    fn read(&self, range: std::ops::Range<u64>) -> BResult<Bytes> {
        self.faults
            .run(Op::GetRange, &self.key, || self.inner.read(range))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::open;

    #[test]
    fn transient_persistent_and_lost_reply() {
        let b = FaultBackend::new(open("memory://").unwrap());
        b.fail(Op::PutNew, 2, Fault::Transient)
            .fail(Op::Get, 3, Fault::Persistent)
            .fail(Op::PutReplace, 1, Fault::LostReply);

        b.put_new("a", b"1").unwrap();
        // call 2 fails before reaching the store: nothing written
        let e = b.put_new("b", b"2").unwrap_err();
        assert!(
            matches!(e, BackendError::Injected { op: Op::PutNew, call: 2, ref key, .. } if key == "b"),
            "{e}"
        );
        assert!(e.to_string().contains("injected fault"), "{e}");
        assert!(!b.exists("b").unwrap());
        // transient: call 3 passes
        b.put_new("b", b"2").unwrap();
        assert_eq!(b.calls(Op::PutNew), 3);

        // persistent from call 3 of get on
        assert_eq!(&b.get("a").unwrap()[..], b"1");
        assert_eq!(&b.get("b").unwrap()[..], b"2");
        for _ in 0..3 {
            assert!(matches!(
                b.get("a"),
                Err(BackendError::Injected { op: Op::Get, .. })
            ));
        }
        b.heal();
        assert_eq!(&b.get("a").unwrap()[..], b"1");

        // lost reply: the write happened, the caller saw an error
        b.fail(Op::PutReplace, 1, Fault::LostReply);
        assert!(b.put_replace("c", b"3").is_err());
        assert_eq!(&b.inner().get("c").unwrap()[..], b"3");
        b.put_replace("c", b"4").unwrap();
        assert_eq!(&b.get("c").unwrap()[..], b"4");
    }
}
