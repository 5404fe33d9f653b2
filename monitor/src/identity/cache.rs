//! Workloads by cgroup id: bounded, oldest forgotten first, and entries
//! whose cgroup directory is gone dropped by [`Cache::sweep`]. cgroup ids
//! are never reused while the machine runs, so an entry is never wrong, only
//! stale memory.
use std::{
    collections::{HashMap, VecDeque},
    path::PathBuf,
    sync::Arc,
};

use super::Workload;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `None`: a host cgroup (no container).
    pub workload: Option<Arc<Workload>>,
    /// The cgroup's directory, checked by the sweep.
    pub dir: PathBuf,
}

#[derive(Debug)]
pub struct Cache {
    map: HashMap<u64, Entry>,
    order: VecDeque<u64>,
    capacity: usize,
}

impl Cache {
    pub fn new(capacity: usize) -> Cache {
        Cache {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn get(&self, cgroup_id: u64) -> Option<&Entry> {
        self.map.get(&cgroup_id)
    }

    pub fn insert(&mut self, cgroup_id: u64, entry: Entry) {
        if self.map.insert(cgroup_id, entry).is_none() {
            self.order.push_back(cgroup_id);
        }
        while self.map.len() > self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.map.remove(&oldest);
        }
    }

    /// Keeps the entries `alive` says are still there.
    pub fn sweep(&mut self, mut alive: impl FnMut(u64, &Entry) -> bool) {
        self.map.retain(|&id, entry| alive(id, entry));
        let map = &self.map;
        self.order.retain(|id| map.contains_key(id));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dir: &str) -> Entry {
        Entry {
            workload: None,
            dir: dir.into(),
        }
    }

    #[test]
    fn bounded_oldest_first() {
        let mut cache = Cache::new(2);
        cache.insert(1, entry("/a"));
        cache.insert(2, entry("/b"));
        cache.insert(1, entry("/a2"));
        cache.insert(3, entry("/c"));
        assert_eq!(cache.len(), 2);
        assert!(cache.get(1).is_none(), "1 was inserted first");
        assert_eq!(cache.get(3), Some(&entry("/c")));
    }

    #[test]
    fn sweep_drops_what_is_gone_and_keeps_the_order_small() {
        let mut cache = Cache::new(8);
        for id in 0..8 {
            cache.insert(id, entry("/x"));
        }
        cache.sweep(|id, _| id % 2 == 0);
        assert_eq!(cache.len(), 4);
        assert_eq!(cache.order.len(), 4);
        assert!(cache.get(1).is_none() && cache.get(2).is_some());
    }
}
