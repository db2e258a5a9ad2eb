//! Long work started from the UI (a restore, a check) runs as a task on a
//! thread of its own; its page polls `GET /api/jobs/{id}` for progress and
//! the outcome. The latest [`KEPT_TASKS`] are kept, running ones always, so
//! a server left up for months does not grow with every task started.
//! (Not the jobs of the config file, `crate::jobs`: those are scheduled
//! backups; the HTTP path keeps the word it was published with.)

use kast_engine::progress::Progress;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Finished tasks kept for their pages (older ones are forgotten).
pub const KEPT_TASKS: usize = 200;

/// Warnings kept per task (the rest are counted).
const KEPT_WARNINGS: usize = 100;

/// One task: what it has done so far and, once over, how it ended.
pub struct Task {
    kind: &'static str,
    /// Bytes expected, when known (a whole-snapshot restore).
    total_bytes: Option<u64>,
    bytes: AtomicU64,
    items: AtomicU64,
    warnings: Mutex<(Vec<String>, u64)>,
    outcome: Mutex<Option<Result<Value, String>>>,
}

impl Progress for Task {
    fn bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }
    fn items(&self, n: u64) {
        self.items.fetch_add(n, Ordering::Relaxed);
    }
    fn warning(&self, message: &str) {
        let mut warnings = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        warnings.1 += 1;
        if warnings.0.len() < KEPT_WARNINGS {
            warnings.0.push(message.to_string());
        }
    }
}

impl Task {
    fn is_over(&self) -> bool {
        self.outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// The task as the API shows it.
    pub fn json(&self, id: u64) -> Value {
        let outcome = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        let warnings = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        let (state, result, error) = match &*outcome {
            None => ("running", Value::Null, Value::Null),
            Some(Ok(result)) => ("done", result.clone(), Value::Null),
            Some(Err(e)) => ("failed", Value::Null, json!(e)),
        };
        json!({
            "id": id, "kind": self.kind, "state": state,
            "bytes": self.bytes.load(Ordering::Relaxed), "items": self.items.load(Ordering::Relaxed),
            "total_bytes": self.total_bytes, "warnings": warnings.0, "warning_count": warnings.1,
            "result": result, "error": error,
        })
    }
}

/// Every task of this server.
#[derive(Default)]
pub struct Tasks {
    next: AtomicU64,
    all: Mutex<HashMap<u64, Arc<Task>>>,
}

impl Tasks {
    /// Starts `work` on its own thread; returns the task's id.
    pub fn start(
        &self,
        kind: &'static str,
        total_bytes: Option<u64>,
        work: impl FnOnce(Arc<Task>) -> Result<Value, String> + Send + 'static,
    ) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let task = Arc::new(Task {
            kind,
            total_bytes,
            bytes: AtomicU64::new(0),
            items: AtomicU64::new(0),
            warnings: Mutex::new((Vec::new(), 0)),
            outcome: Mutex::new(None),
        });
        {
            let mut all = self.all.lock().unwrap_or_else(|e| e.into_inner());
            all.insert(id, task.clone());
            if all.len() > KEPT_TASKS {
                let mut finished: Vec<u64> = all
                    .iter()
                    .filter(|(_, j)| j.is_over())
                    .map(|(id, _)| *id)
                    .collect();
                finished.sort_unstable();
                let excess = all.len() - KEPT_TASKS;
                for old in finished.into_iter().take(excess) {
                    all.remove(&old);
                }
            }
        }
        std::thread::spawn(move || {
            let outcome = work(task.clone());
            *task.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        });
        id
    }

    pub fn get(&self, id: u64) -> Option<Arc<Task>> {
        self.all
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_finished_tasks_are_forgotten_running_ones_kept() {
        let tasks = Tasks::default();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Arc::new(Mutex::new(hold));
        let running = tasks.start("check", None, move |_| {
            let _ = hold.lock().unwrap().recv();
            Ok(Value::Null)
        });
        let mut last = 0;
        for _ in 0..KEPT_TASKS + 50 {
            last = tasks.start("restore", None, |_| Ok(Value::Null));
            // Let it finish, so that it may be forgotten.
            while !tasks.get(last).unwrap().is_over() {
                std::thread::yield_now();
            }
        }
        assert!(tasks.get(running).is_some(), "a running task was forgotten");
        assert!(tasks.get(last).is_some());
        assert!(tasks.get(2).is_none(), "the oldest finished task is kept");
        assert_eq!(tasks.all.lock().unwrap().len(), KEPT_TASKS);
        release.send(()).unwrap();
    }
}
