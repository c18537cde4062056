//! Secrets may sit in the file or, written `env:NAME`, in the environment, so the file can be committed.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A resolved secret. It never prints its value: Debug and the effective-settings dump show only where it
/// came from.
#[derive(Clone)]
pub struct Secret {
    value: String,
    source: Option<String>,
}

impl Secret {
    pub fn literal(value: impl Into<String>) -> Self {
        Self { value: value.into(), source: None }
    }

    pub fn expose(&self) -> &str {
        &self.value
    }

    fn describe(&self) -> String {
        match &self.source {
            Some(var) => format!("env:{var}"),
            None => "<redacted>".to_string(),
        }
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        match raw.strip_prefix("env:") {
            Some(var) => match std::env::var(var) {
                Ok(value) if !value.is_empty() => Ok(Self { value, source: Some(var.to_string()) }),
                Ok(_) => Err(serde::de::Error::custom(format!("environment variable {var} is empty"))),
                Err(_) => Err(serde::de::Error::custom(format!("environment variable {var} is not set"))),
            },
            None if raw.is_empty() => Err(serde::de::Error::custom("secret is empty")),
            None => Ok(Self::literal(raw)),
        }
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.describe())
    }
}
