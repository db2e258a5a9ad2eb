//! A store held in memory: for tests, and as the reference a backend's
//! behaviour is compared against.

use super::{ObjectInfo, ObjectKind, Storage, StorageError, is_valid_name};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

type Objects = BTreeMap<(ObjectKind, String), Arc<Vec<u8>>>;

/// Objects in a map; cloning shares the same map.
#[derive(Clone, Default)]
pub struct MemoryStorage {
    objects: Arc<Mutex<Objects>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn objects(&self) -> MutexGuard<'_, Objects> {
        // A panic elsewhere while holding the lock leaves the map intact.
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn not_found(kind: ObjectKind, name: &str) -> StorageError {
        StorageError::NotFound {
            kind,
            name: name.to_string(),
        }
    }
}

impl Storage for MemoryStorage {
    fn location(&self) -> String {
        "memory:".into()
    }

    fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> Result<(), StorageError> {
        if !is_valid_name(name) {
            return Err(StorageError::Backend(
                format!("invalid name {name:?}").into(),
            ));
        }
        self.objects()
            .insert((kind, name.to_string()), Arc::new(data.to_vec()));
        Ok(())
    }

    fn get(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>, StorageError> {
        self.objects()
            .get(&(kind, name.to_string()))
            .map(|data| data.to_vec())
            .ok_or_else(|| Self::not_found(kind, name))
    }

    fn get_range(
        &self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, StorageError> {
        let objects = self.objects();
        let data = objects
            .get(&(kind, name.to_string()))
            .ok_or_else(|| Self::not_found(kind, name))?;
        let start = (offset as usize).min(data.len());
        let end = start.saturating_add(length as usize).min(data.len());
        Ok(data[start..end].to_vec())
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, StorageError> {
        Ok(self
            .objects()
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, name), data)| ObjectInfo {
                name: name.clone(),
                size: data.len() as u64,
            })
            .collect())
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> Result<(), StorageError> {
        self.objects().remove(&(kind, name.to_string()));
        Ok(())
    }
}
