//! The VMs labelled for each instance, by namespace and label value.
//!
//! A VM is almost always named like its instance and found by that name; the one that is
//! not (created by another tool, never referenced in status) used to be found by scanning
//! every cached VM, once per reconcile of every instance that has no VM yet: a cost that
//! grew with instances × VMs. This index answers the same question with one lookup.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use kube::runtime::watcher;

use crate::kubevirt::VirtualMachine;

/// Fed from the VM watch's events (see [`VmIndex::observe`]); clones share one index.
#[derive(Clone, Default)]
pub struct VmIndex(Arc<Mutex<Inner>>);

#[derive(Default)]
struct Inner {
    live: Names,
    /// The list being received after a (re)start of the watch; replaces `live` when done.
    next: Option<Names>,
}

/// (namespace, instance label) → VM names, and each VM's label for moving it.
#[derive(Default)]
struct Names {
    by_label: HashMap<(String, String), BTreeSet<String>>,
    label_of: HashMap<(String, String), String>,
}

impl Names {
    fn put(&mut self, vm: &VirtualMachine) {
        let Some((ns, name)) = key(vm) else { return };
        self.remove(&ns, &name);
        if let Some(label) = &vm.instance {
            self.by_label
                .entry((ns.clone(), label.clone()))
                .or_default()
                .insert(name.clone());
            self.label_of.insert((ns, name), label.clone());
        }
    }

    fn remove(&mut self, ns: &str, name: &str) {
        let Some(label) = self.label_of.remove(&(ns.to_string(), name.to_string())) else {
            return;
        };
        let slot = (ns.to_string(), label);
        if let Some(names) = self.by_label.get_mut(&slot) {
            names.remove(name);
            if names.is_empty() {
                self.by_label.remove(&slot);
            }
        }
    }
}

fn key(vm: &VirtualMachine) -> Option<(String, String)> {
    let meta = &vm.metadata;
    Some((meta.namespace.clone()?, meta.name.clone()?))
}

impl VmIndex {
    /// Applies one event of the VM watch, as the reflector applies it to the cache.
    pub fn observe(&self, event: &watcher::Event<VirtualMachine>) {
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Init => inner.next = Some(Names::default()),
            watcher::Event::InitApply(vm) => inner.next.get_or_insert_default().put(vm),
            watcher::Event::InitDone => {
                if let Some(next) = inner.next.take() {
                    inner.live = next;
                }
            }
            watcher::Event::Apply(vm) => inner.live.put(vm),
            watcher::Event::Delete(vm) => {
                if let Some((ns, name)) = key(vm) {
                    inner.live.remove(&ns, &name);
                }
            }
        }
    }

    /// The names of the VMs in `namespace` labelled for instance `instance`.
    pub fn names(&self, namespace: &str, instance: &str) -> Vec<String> {
        let inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .live
            .by_label
            .get(&(namespace.to_string(), instance.to_string()))
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(ns: &str, name: &str, label: Option<&str>) -> VirtualMachine {
        let mut vm = VirtualMachine::default();
        vm.metadata.namespace = Some(ns.into());
        vm.metadata.name = Some(name.into());
        vm.instance = label.map(str::to_string);
        vm
    }

    #[test]
    fn a_vm_is_found_under_its_label_and_moves_or_goes_with_it() {
        let index = VmIndex::default();
        index.observe(&watcher::Event::Init);
        index.observe(&watcher::Event::InitApply(vm(
            "ns",
            "odd-name",
            Some("vm-a"),
        )));
        index.observe(&watcher::Event::InitApply(vm(
            "other",
            "vm-a",
            Some("vm-a"),
        )));
        assert!(
            index.names("ns", "vm-a").is_empty(),
            "not before the list is whole"
        );
        index.observe(&watcher::Event::InitDone);
        assert_eq!(index.names("ns", "vm-a"), ["odd-name"]);
        assert_eq!(index.names("other", "vm-a"), ["vm-a"]);

        index.observe(&watcher::Event::Apply(vm("ns", "odd-name", Some("vm-b"))));
        assert!(index.names("ns", "vm-a").is_empty(), "relabelled");
        assert_eq!(index.names("ns", "vm-b"), ["odd-name"]);
        index.observe(&watcher::Event::Apply(vm("ns", "odd-name", None)));
        assert!(index.names("ns", "vm-b").is_empty(), "label removed");

        index.observe(&watcher::Event::Apply(vm("ns", "second", Some("vm-c"))));
        index.observe(&watcher::Event::Delete(vm("ns", "second", Some("vm-c"))));
        assert!(index.names("ns", "vm-c").is_empty());
    }

    #[test]
    fn a_relist_replaces_what_it_no_longer_holds() {
        let index = VmIndex::default();
        index.observe(&watcher::Event::Apply(vm("ns", "gone", Some("vm-a"))));
        index.observe(&watcher::Event::Init);
        index.observe(&watcher::Event::InitApply(vm("ns", "kept", Some("vm-b"))));
        assert_eq!(
            index.names("ns", "vm-a"),
            ["gone"],
            "served until the relist is whole"
        );
        index.observe(&watcher::Event::InitDone);
        assert!(index.names("ns", "vm-a").is_empty());
        assert_eq!(index.names("ns", "vm-b"), ["kept"]);
    }
}
