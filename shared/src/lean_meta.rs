//! Object metadata parsed without the fields the caches never read.
//!
//! `managedFields` is often half of an object's JSON and parses into thousands of small
//! maps; dropping it after parsing still allocates all of it for every object of a list
//! page. These parsers skip the named keys while reading, so they are never built.

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, forward_to_deserialize_any};

/// Everything but `managedFields`: for instances, whose labels, annotations, finalizers and
/// owner references the runner reads.
pub fn without_managed_fields<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    ObjectMeta::deserialize(Skipping {
        inner: d,
        skip: &["managedFields"],
    })
}

/// What a lookup by name, label and UID needs: no `managedFields`, annotations, owner
/// references, finalizers, creation time or generation (for VMs and VMIs, which the runner
/// only finds and deletes).
pub fn for_lookup<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    ObjectMeta::deserialize(Skipping {
        inner: d,
        skip: &[
            "managedFields",
            "annotations",
            "ownerReferences",
            "finalizers",
            "creationTimestamp",
            "generation",
        ],
    })
}

/// A deserializer whose maps pass over the keys in `skip`.
struct Skipping<D> {
    inner: D,
    skip: &'static [&'static str],
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Skipping<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_any(SkipVisitor {
            inner: visitor,
            skip: self.skip,
        })
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_map(SkipVisitor {
            inner: visitor,
            skip: self.skip,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_struct(
            name,
            fields,
            SkipVisitor {
                inner: visitor,
                skip: self.skip,
            },
        )
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct enum identifier
        ignored_any
    }
}

struct SkipVisitor<V> {
    inner: V,
    skip: &'static [&'static str],
}

impl<'de, V: Visitor<'de>> Visitor<'de> for SkipVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(SkipMap {
            inner: map,
            skip: self.skip,
        })
    }
}

struct SkipMap<A> {
    inner: A,
    skip: &'static [&'static str],
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for SkipMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        while let Some(Key(key)) = self.inner.next_key::<Key<'de>>()? {
            if self.skip.contains(&key.as_ref()) {
                self.inner.next_value::<IgnoredAny>()?;
                continue;
            }
            return seed.deserialize(key.into_deserializer()).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.inner.next_value_seed(seed)
    }
}

/// A map key, borrowed from the input when it can be (no allocation per key).
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored() -> String {
        json!({
            "name": "vm-1", "namespace": "ns", "uid": "u1", "resourceVersion": "7",
            "labels": {"cloudkit.openshift.io/computeinstance": "vm-1"},
            "annotations": {"cloudkit.openshift.io/tenant": "acme"},
            "finalizers": ["f"],
            "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "u0"}],
            "managedFields": [{"manager": "m", "operation": "Apply", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:metadata": {"f:labels": {}}}}],
            "deletionTimestamp": "2026-11-22T10:00:00Z",
        })
        .to_string()
    }

    #[test]
    fn without_managed_fields_keeps_the_rest() {
        let body = stored();
        let mut de = serde_json::Deserializer::from_str(&body);
        let meta = without_managed_fields(&mut de).unwrap();
        let mut full: ObjectMeta = serde_json::from_str(&stored()).unwrap();
        assert!(full.managed_fields.take().is_some());
        assert_eq!(meta, full, "only managedFields left out");
    }

    #[test]
    fn for_lookup_keeps_names_labels_uid_and_deletion() {
        let body = stored();
        let mut de = serde_json::Deserializer::from_str(&body);
        let meta = for_lookup(&mut de).unwrap();
        assert!(meta.managed_fields.is_none() && meta.annotations.is_none());
        assert!(meta.owner_references.is_none());
        assert_eq!(meta.name.as_deref(), Some("vm-1"));
        assert_eq!(meta.namespace.as_deref(), Some("ns"));
        assert_eq!(meta.uid.as_deref(), Some("u1"));
        assert_eq!(meta.resource_version.as_deref(), Some("7"));
        assert_eq!(meta.labels.unwrap().len(), 1);
        assert!(meta.finalizers.is_none());
        assert!(meta.deletion_timestamp.is_some());
    }

    #[test]
    fn escaped_keys_and_bad_values_still_parse_or_fail_as_before() {
        // An escaped key cannot be borrowed from the input; it is read all the same.
        let escaped = r#"{"na\u006de": "x", "managedFields": 5}"#;
        let mut de = serde_json::Deserializer::from_str(escaped);
        assert_eq!(for_lookup(&mut de).unwrap().name.as_deref(), Some("x"));
        let mut de = serde_json::Deserializer::from_str(r#"{"name": 5}"#);
        assert!(
            for_lookup(&mut de).is_err(),
            "a wrong type is still an error"
        );
        let mut de = serde_json::Deserializer::from_str("[]");
        assert!(without_managed_fields(&mut de).is_err());
    }
}
