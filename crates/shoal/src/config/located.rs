//! [`Located`]: a parsed value together with the line and column it was written at, so
//! semantic errors can point at `file:line:column`.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::ServiceConfig;

/// A value together with where it was written in the YAML (1-based; 0 when defaulted).
#[derive(Clone, Debug, PartialEq)]
pub struct Located<T> {
    /// The parsed value.
    pub value: T,
    /// 1-based line, 0 when the value was not written (a default).
    pub line: u64,
    /// 1-based column, 0 when the value was not written (a default).
    pub column: u64,
}

impl<T> Located<T> {
    /// A value that was not written in the file.
    #[must_use]
    pub const fn unlocated(value: T) -> Self {
        Self {
            value,
            line: 0,
            column: 0,
        }
    }
}

impl<T: Default> Default for Located<T> {
    fn default() -> Self {
        Self::unlocated(T::default())
    }
}

impl<T> Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = serde_saphyr::Spanned::<T>::deserialize(d)?;
        Ok(Self {
            value: s.value,
            line: s.referenced.line(),
            column: s.referenced.column(),
        })
    }
}

impl<T: Serialize> Serialize for Located<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

/// Deserializes `services:` keeping where each name was written ([`ServiceConfig::name_at`]),
/// so a bad service name is refused with its position like any other value.
pub(super) fn services_with_positions<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, ServiceConfig>, D::Error> {
    struct Services;
    impl<'de> Visitor<'de> for Services {
        type Value = BTreeMap<String, ServiceConfig>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of service names to services")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(name) = map.next_key::<Located<String>>()? {
                let mut svc: ServiceConfig = map.next_value()?;
                svc.name_at = Located {
                    value: (),
                    line: name.line,
                    column: name.column,
                };
                if out.insert(name.value.clone(), svc).is_some() {
                    return Err(serde::de::Error::custom(format!(
                        "duplicate service name {:?}",
                        name.value
                    )));
                }
            }
            Ok(out)
        }
    }
    d.deserialize_map(Services)
}
