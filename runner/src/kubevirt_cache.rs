//! The VMs and VMIs the runner reads, kept as small records by namespace and name.
//!
//! kube's reflector store would hold each object whole behind an `Arc` (its `ObjectMeta`
//! alone is 360 bytes) under a key of four strings: about 950 bytes a VM or VMI, of which
//! the runner reads a name, a UID and two flags. A record here is the name, once, and those
//! few fields; the namespace is held once for all its objects.
//!
//! A VM is almost always named like its instance and found by that name. The one that is
//! not (created by another tool, never referenced in status) is found through a second map
//! by namespace and instance label, which holds only such VMs.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use kube::Resource;
use kube::runtime::watcher;

use crate::kubevirt::{VirtualMachine, VirtualMachineInstance};

/// What the cache keeps of a watched object, and under which name.
pub trait Cached: Resource {
    type Record: Record;
    fn record(&self) -> Self::Record;
    /// Namespace and name.
    fn key(&self) -> Option<(&str, &str)> {
        let meta = self.meta();
        Some((meta.namespace.as_deref()?, meta.name.as_deref()?))
    }
}

/// A cached record.
pub trait Record: Clone {
    /// Its instance label when that differs from its own name (indexed for [`Cache::named_for`]).
    fn other_label(&self) -> Option<&str> {
        None
    }
}

/// A cached VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vm {
    pub label: Label,
    /// Run strategy `Halted` (or `running: false`): no VMI will come back by itself.
    pub halted: bool,
}

/// The instance a VM is labelled for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Label {
    None,
    /// The instance of its own name: the usual case, with no string to keep.
    OwnName,
    /// An instance of another name.
    Other(Box<str>),
}

impl Vm {
    /// Whether it is labelled for the instance `instance`, being named `name`.
    pub fn labelled_for(&self, name: &str, instance: &str) -> bool {
        match &self.label {
            Label::None => false,
            Label::OwnName => name == instance,
            Label::Other(label) => &**label == instance,
        }
    }
}

/// A cached VMI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vmi {
    pub uid: Box<str>,
    /// In phase Running.
    pub running: bool,
    /// Has a deletion timestamp.
    pub deleting: bool,
}

impl Cached for VirtualMachine {
    type Record = Vm;
    fn record(&self) -> Vm {
        let label = match self.instance.as_deref() {
            None => Label::None,
            Some(l) if Some(l) == self.metadata.name.as_deref() => Label::OwnName,
            Some(l) => Label::Other(l.into()),
        };
        Vm {
            label,
            halted: self.spec.run_strategy.as_deref() == Some("Halted")
                || self.spec.running == Some(false),
        }
    }
}

impl Record for Vm {
    fn other_label(&self) -> Option<&str> {
        match &self.label {
            Label::Other(label) => Some(label),
            Label::None | Label::OwnName => None,
        }
    }
}

impl Record for Vmi {}

impl Cached for VirtualMachineInstance {
    type Record = Vmi;
    fn record(&self) -> Vmi {
        Vmi {
            uid: self.metadata.uid.as_deref().unwrap_or_default().into(),
            running: self.status.phase.as_deref() == Some("Running"),
            deleting: self.metadata.deletion_timestamp.is_some(),
        }
    }
}

/// Fed from one watch's events (see [`Cache::observe`]); clones share one cache.
pub struct Cache<R>(Arc<RwLock<Inner<R>>>);

impl<R> Clone for Cache<R> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<R> Default for Cache<R> {
    fn default() -> Self {
        Self(Arc::new(RwLock::new(Inner {
            live: Table::default(),
            next: None,
        })))
    }
}

struct Inner<R> {
    live: Table<R>,
    /// The list being received after a (re)start of the watch; replaces `live` when whole.
    next: Option<Table<R>>,
}

/// By namespace, then by name.
type ByNamespace<V> = HashMap<Box<str>, HashMap<Box<str>, V>>;

struct Table<R> {
    records: ByNamespace<R>,
    /// namespace → instance label → names, for objects named otherwise than their label.
    named_otherwise: ByNamespace<BTreeSet<Box<str>>>,
}

impl<R> Default for Table<R> {
    fn default() -> Self {
        Self {
            records: HashMap::new(),
            named_otherwise: HashMap::new(),
        }
    }
}

/// The map of namespace `ns`, made if it is new: the namespace's name is allocated once, not
/// for every object put in it.
fn namespace<'a, V>(map: &'a mut ByNamespace<V>, ns: &str) -> &'a mut HashMap<Box<str>, V> {
    if !map.contains_key(ns) {
        map.insert(ns.into(), HashMap::new());
    }
    map.get_mut(ns).expect("inserted above")
}

impl<R: Record> Table<R> {
    fn put<K: Cached<Record = R>>(&mut self, obj: &K) {
        let Some((ns, name)) = obj.key() else { return };
        self.remove(ns, name);
        let record = obj.record();
        if let Some(label) = record.other_label() {
            namespace(&mut self.named_otherwise, ns)
                .entry(label.into())
                .or_default()
                .insert(name.into());
        }
        namespace(&mut self.records, ns).insert(name.into(), record);
    }

    fn remove(&mut self, ns: &str, name: &str) {
        let Some(names) = self.records.get_mut(ns) else {
            return;
        };
        let Some(old) = names.remove(name) else {
            return;
        };
        if names.is_empty() {
            self.records.remove(ns);
        }
        let Some(label) = old.other_label() else {
            return;
        };
        if let Some(labels) = self.named_otherwise.get_mut(ns) {
            if let Some(names) = labels.get_mut(label) {
                names.remove(name);
                if names.is_empty() {
                    labels.remove(label);
                }
            }
            if labels.is_empty() {
                self.named_otherwise.remove(ns);
            }
        }
    }
}

impl<R: Record> Cache<R> {
    fn read(&self) -> RwLockReadGuard<'_, Inner<R>> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner<R>> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies one event of the watch, as a reflector applies it to its store: a relist is
    /// served from the old table until it is whole.
    pub fn observe<K: Cached<Record = R>>(&self, event: &watcher::Event<K>) {
        let mut inner = self.write();
        match event {
            watcher::Event::Init => inner.next = Some(Table::default()),
            watcher::Event::InitApply(obj) => inner.next.get_or_insert_default().put(obj),
            watcher::Event::InitDone => {
                if let Some(next) = inner.next.take() {
                    inner.live = next;
                }
            }
            watcher::Event::Apply(obj) => inner.live.put(obj),
            watcher::Event::Delete(obj) => {
                if let Some((ns, name)) = obj.key() {
                    inner.live.remove(ns, name);
                }
            }
        }
    }

    /// The record of the object `name` in `namespace`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<R> {
        self.read().live.records.get(namespace)?.get(name).cloned()
    }

    /// The names of the objects in `namespace` labelled for instance `instance` and named
    /// otherwise (one named `instance` is found with [`Cache::get`]).
    pub fn named_for(&self, namespace: &str, instance: &str) -> Vec<String> {
        let inner = self.read();
        inner
            .live
            .named_otherwise
            .get(namespace)
            .and_then(|labels| labels.get(instance))
            .map(|names| names.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default()
    }

    /// How many objects the cache holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.read().live.records.values().map(HashMap::len).sum()
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
    fn a_vm_is_found_by_name_or_under_its_label_and_moves_or_goes_with_it() {
        let cache = Cache::<Vm>::default();
        cache.observe(&watcher::Event::<VirtualMachine>::Init);
        cache.observe(&watcher::Event::InitApply(vm(
            "ns",
            "odd-name",
            Some("vm-a"),
        )));
        cache.observe(&watcher::Event::InitApply(vm(
            "other",
            "vm-a",
            Some("vm-a"),
        )));
        assert!(
            cache.named_for("ns", "vm-a").is_empty() && cache.get("other", "vm-a").is_none(),
            "not before the list is whole"
        );
        cache.observe(&watcher::Event::<VirtualMachine>::InitDone);
        assert_eq!(cache.named_for("ns", "vm-a"), ["odd-name"]);
        assert!(cache.named_for("other", "vm-a").is_empty(), "found by name");
        let same = cache.get("other", "vm-a").unwrap();
        assert!(same.labelled_for("vm-a", "vm-a") && same.other_label().is_none());
        let odd = cache.get("ns", "odd-name").unwrap();
        assert!(odd.labelled_for("odd-name", "vm-a") && !odd.labelled_for("odd-name", "odd-name"));

        cache.observe(&watcher::Event::Apply(vm("ns", "odd-name", Some("vm-b"))));
        assert!(cache.named_for("ns", "vm-a").is_empty(), "relabelled");
        assert_eq!(cache.named_for("ns", "vm-b"), ["odd-name"]);
        cache.observe(&watcher::Event::Apply(vm("ns", "odd-name", None)));
        assert!(cache.named_for("ns", "vm-b").is_empty(), "label removed");
        let unlabelled = cache.get("ns", "odd-name").unwrap();
        assert!(!unlabelled.labelled_for("odd-name", "odd-name"));

        cache.observe(&watcher::Event::Apply(vm("ns", "second", Some("vm-c"))));
        cache.observe(&watcher::Event::Delete(vm("ns", "second", Some("vm-c"))));
        assert!(cache.named_for("ns", "vm-c").is_empty() && cache.get("ns", "second").is_none());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_relist_replaces_what_it_no_longer_holds() {
        let cache = Cache::<Vm>::default();
        cache.observe(&watcher::Event::Apply(vm("ns", "gone", Some("vm-a"))));
        cache.observe(&watcher::Event::<VirtualMachine>::Init);
        cache.observe(&watcher::Event::InitApply(vm("ns", "kept", Some("vm-b"))));
        assert_eq!(
            cache.named_for("ns", "vm-a"),
            ["gone"],
            "served until the relist is whole"
        );
        cache.observe(&watcher::Event::<VirtualMachine>::InitDone);
        assert!(cache.named_for("ns", "vm-a").is_empty() && cache.get("ns", "gone").is_none());
        assert_eq!(cache.named_for("ns", "vm-b"), ["kept"]);
    }

    #[test]
    fn a_vmi_keeps_its_uid_phase_and_deletion() {
        let cache = Cache::<Vmi>::default();
        let mut vmi = VirtualMachineInstance::default();
        vmi.metadata.namespace = Some("ns".into());
        vmi.metadata.name = Some("vm-1".into());
        vmi.metadata.uid = Some("u1".into());
        vmi.status.phase = Some("Running".into());
        cache.observe(&watcher::Event::Apply(vmi.clone()));
        let want = Vmi {
            uid: "u1".into(),
            running: true,
            deleting: false,
        };
        assert_eq!(cache.get("ns", "vm-1"), Some(want));
        vmi.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        cache.observe(&watcher::Event::Apply(vmi.clone()));
        assert!(cache.get("ns", "vm-1").unwrap().deleting);
        cache.observe(&watcher::Event::Delete(vmi));
        assert_eq!(cache.len(), 0);
    }
}
