//! What this process remembers between reconciles, by instance UID or correlation key:
//! hints that save a request or keep a stale copy from being planned on. Each map sits
//! behind one mutex held for a single operation; a lock poisoned by a panic is used as it
//! is, since every entry is a hint the next reconcile can do without.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

pub struct Memo<V>(Mutex<HashMap<String, V>>);

impl<V> Default for Memo<V> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

impl<V: Clone> Memo<V> {
    fn map(&self) -> MutexGuard<'_, HashMap<String, V>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<V> {
        self.map().get(key).cloned()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.map().contains_key(key)
    }

    pub fn insert(&self, key: impl Into<String>, value: V) {
        self.map().insert(key.into(), value);
    }

    pub fn remove(&self, key: &str) -> Option<V> {
        self.map().remove(key)
    }

    /// Keeps the entries `keep` accepts, then inserts `key`: one lock for both.
    pub fn insert_retaining(
        &self,
        key: impl Into<String>,
        value: V,
        keep: impl FnMut(&String, &mut V) -> bool,
    ) {
        let mut map = self.map();
        map.retain(keep);
        map.insert(key.into(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::Memo;

    #[test]
    fn remembers_forgets_and_prunes() {
        let m = Memo::default();
        m.insert("a", 1);
        m.insert("b", 2);
        assert_eq!(m.get("a"), Some(1));
        assert!(m.contains("b"));
        assert_eq!(m.remove("a"), Some(1));
        assert_eq!(m.get("a"), None);
        m.insert_retaining("c", 3, |_, v| *v > 2);
        assert!(!m.contains("b"));
        assert_eq!(m.get("c"), Some(3));
    }
}
