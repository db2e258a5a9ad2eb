//! Store locks. Backups take a shared lock, maintenance an exclusive one; a
//! lock is an object with a random name, so taking one never overwrites
//! another. After writing its lock a client lists the others and backs off
//! on a conflict, which is safe on any storage that lists what it stored.

use crate::crypto::{Keys, random_name};
use crate::error::{Error, Result};
use crate::storage::{ObjectKind, Storage};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A lock not refreshed for this long is stale (its holder is gone).
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// Holders refresh their lock this often.
const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

/// What a lock says about its holder.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockInfo {
    pub exclusive: bool,
    pub host: String,
    pub pid: u32,
    pub created: u64,
    pub refreshed: u64,
    pub purpose: String,
}

impl LockInfo {
    /// A lock whose holder is known to be gone: same host and no such
    /// process, or not refreshed within [`STALE_AFTER`].
    pub fn is_stale(&self, this_host: &str) -> bool {
        if now_secs().saturating_sub(self.refreshed) > STALE_AFTER.as_secs() {
            return true;
        }
        if self.host == this_host {
            // SAFETY: kill with signal 0 only checks that the process exists.
            let alive = unsafe { libc::kill(self.pid as libc::pid_t, 0) } == 0
                || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
            return !alive;
        }
        false
    }

    pub fn describe(&self) -> String {
        format!(
            "{} lock held by {} (pid {}) on {} since {}",
            if self.exclusive {
                "an exclusive"
            } else {
                "a shared"
            },
            self.purpose,
            self.pid,
            self.host,
            self.created
        )
    }
}

/// A held lock; dropping it releases the lock.
pub struct LockGuard {
    storage: Arc<dyn Storage>,
    keys: Keys,
    name: String,
    info: LockInfo,
}

/// Reads every lock in the store: name, and its info or why it is unreadable.
pub fn list(storage: &dyn Storage, keys: &Keys) -> Result<Vec<(String, Result<LockInfo>)>> {
    let mut out = Vec::new();
    for object in storage.list(ObjectKind::Lock)? {
        let info = storage
            .get(ObjectKind::Lock, &object.name)
            .map_err(Error::from)
            .and_then(|sealed| keys.open_lock(&sealed, &format!("lock {}", object.name)))
            .and_then(|plain| {
                serde_json::from_slice::<LockInfo>(&plain)
                    .map_err(|e| Error::corrupt(format!("lock {}", object.name), e.to_string()))
            });
        out.push((object.name, info));
    }
    Ok(out)
}

impl LockGuard {
    /// Takes a lock, or fails with [`Error::Locked`] naming the holder.
    pub fn acquire(
        storage: Arc<dyn Storage>,
        keys: &Keys,
        exclusive: bool,
        purpose: &str,
    ) -> Result<LockGuard> {
        let host = crate::host_name();
        let now = now_secs();
        let info = LockInfo {
            exclusive,
            host: host.clone(),
            pid: std::process::id(),
            created: now,
            refreshed: now,
            purpose: purpose.to_string(),
        };
        let name = random_name(16)?;
        let guard = LockGuard {
            storage,
            keys: keys.clone(),
            name,
            info,
        };
        guard.write()?;
        for (name, other) in list(&*guard.storage, keys)? {
            if name == guard.name {
                continue;
            }
            // An unreadable lock cannot be trusted to mean anything; `check`
            // reports it and `unlock` removes it.
            let Ok(other) = other else { continue };
            if (exclusive || other.exclusive) && !other.is_stale(&host) {
                return Err(Error::Locked(other.describe()));
            }
        }
        Ok(guard)
    }

    fn write(&self) -> Result<()> {
        let plain = serde_json::to_vec(&self.info).expect("lock info serializes");
        let sealed = self.keys.seal_lock(&plain)?;
        self.storage.put(ObjectKind::Lock, &self.name, &sealed)?;
        Ok(())
    }

    /// Replaces the lock with a fresh one if it is due, so long runs are not
    /// mistaken for dead ones.
    pub fn refresh(&mut self) -> Result<()> {
        if now_secs().saturating_sub(self.info.refreshed) < REFRESH_EVERY.as_secs() {
            return Ok(());
        }
        let old = std::mem::replace(&mut self.name, random_name(16)?);
        self.info.refreshed = now_secs();
        self.write()?;
        // An old lock left behind (a server that lets no client delete
        // what it did not make in this run of it) goes stale on its own.
        let _ = self.storage.delete(ObjectKind::Lock, &old);
        Ok(())
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.storage.delete(ObjectKind::Lock, &self.name);
    }
}

/// Removes stale locks (or all of them with `all`); returns how many.
pub fn break_locks(storage: &dyn Storage, keys: &Keys, all: bool) -> Result<usize> {
    let host = crate::host_name();
    let mut removed = 0;
    for (name, info) in list(storage, keys)? {
        let stale = info.map(|i| i.is_stale(&host)).unwrap_or(true);
        if all || stale {
            storage.delete(ObjectKind::Lock, &name)?;
            removed += 1;
        }
    }
    Ok(removed)
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
