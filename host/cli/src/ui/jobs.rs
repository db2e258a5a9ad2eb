//! Long work started from the UI (a restore, a check) runs as a job on a
//! thread of its own; its page polls `GET /api/jobs/{id}` for progress and
//! the outcome. Jobs live as long as the server.

use kast_engine::progress::Progress;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Warnings kept per job (the rest are counted).
const KEPT_WARNINGS: usize = 100;

/// One job: what it has done so far and, once over, how it ended.
pub struct Job {
    kind: &'static str,
    /// Bytes expected, when known (a whole-snapshot restore).
    total_bytes: Option<u64>,
    bytes: AtomicU64,
    items: AtomicU64,
    warnings: Mutex<(Vec<String>, u64)>,
    outcome: Mutex<Option<Result<Value, String>>>,
}

impl Progress for Job {
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

impl Job {
    /// The job as the API shows it.
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

/// Every job of this server.
#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    all: Mutex<HashMap<u64, Arc<Job>>>,
}

impl Jobs {
    /// Starts `work` on its own thread; returns the job's id.
    pub fn start(
        &self,
        kind: &'static str,
        total_bytes: Option<u64>,
        work: impl FnOnce(Arc<Job>) -> Result<Value, String> + Send + 'static,
    ) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let job = Arc::new(Job {
            kind,
            total_bytes,
            bytes: AtomicU64::new(0),
            items: AtomicU64::new(0),
            warnings: Mutex::new((Vec::new(), 0)),
            outcome: Mutex::new(None),
        });
        self.all
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, job.clone());
        std::thread::spawn(move || {
            let outcome = work(job.clone());
            *job.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        });
        id
    }

    pub fn get(&self, id: u64) -> Option<Arc<Job>> {
        self.all
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }
}
