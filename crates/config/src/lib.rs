//! Spillway's configuration: one TOML file, parsed into typed sections, then checked as a whole.
//!
//! Two passes keep errors precise. Deserialization catches shapes and types and reports the exact key path
//! (`routes[2].path`); [`validate`] then checks what only the whole file can tell (references between
//! sections, duplicates). Every error names the key and the reason, because the person reading it is usually
//! editing the file at 09:58 before a 10:00 sale.

mod cache;
mod duration;
mod error;
mod inventory;
mod keys;
mod limit;
mod log;
mod room;
mod route;
mod secret;
mod server;
mod shield;
mod size;
mod store;
mod timestamp;
mod upstream;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use cache::CacheConfig;
pub use duration::Seconds;
pub use error::{ConfigError, Invalid};
pub use inventory::{InventoryConfig, MAX_UNITS, ReservationsConfig, expand as expand_units};
pub use keys::SigningKey;
pub use limit::{Action, AlgorithmKind, BandConfig, Cidr, KeyPart, KeySpec, LimitConfig, Rate, Refill};
pub use log::{AccessLog, LogConfig, LogFormat};
pub use room::{Activation, Queueing, RoomConfig};
pub use route::{PolicyKind, PolicyRef, RouteConfig, RouteTarget};
pub use secret::Secret;
pub use server::{ForwardedHeader, ServerConfig, TlsConfig};
pub use shield::{AdaptiveAlgorithm, BreakerScope, Fallback, Priority, ShieldConfig, ShieldWindow};
pub use size::ByteSize;
pub use store::OnStoreError;
pub use timestamp::Timestamp;
pub use upstream::{Balance, UpstreamConfig};

/// The whole configuration file, with defaults filled in.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// Signing keys for tickets and passes. The first signs; every listed key verifies, so a key can be
    /// rotated in without logging out everyone who holds a pass signed by the old one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<SigningKey>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Rate limits, by name; a route applies one with the policy `limit:NAME`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, LimitConfig>,
    /// Waiting rooms, by name; a route applies one with the policy `room:NAME`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rooms: BTreeMap<String, RoomConfig>,
    /// Response caches, by name; a route applies one with the policy `cache:NAME`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub caches: BTreeMap<String, CacheConfig>,
    /// Origin shields, by name; a route applies one with the policy `shield:NAME`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shields: BTreeMap<String, ShieldConfig>,
    /// The reservation engine's ledger and identity settings.
    #[serde(default)]
    pub reservations: ReservationsConfig,
    /// Inventories created at start if the ledger does not have them yet.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inventories: BTreeMap<String, InventoryConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        let mut config = Self::parse(&text)?;
        config.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        Ok(config)
    }

    /// Parses and validates configuration text. Relative file paths in it are left as written.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let deserializer = toml::Deserializer::parse(text).map_err(|e| ConfigError::from_toml("", e, text))?;
        let mut config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::from_toml(&key, e.into_inner(), text)
        })?;
        validate::validate(&config)?;
        for (i, route) in config.routes.iter_mut().enumerate() {
            route.name.get_or_insert_with(|| format!("route{i}"));
        }
        Ok(config)
    }

    /// The effective settings as TOML, secrets redacted: what `spillway check` prints.
    pub fn to_effective_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render effective settings: {e}\n"))
    }

    /// File paths in the config are relative to the config file, so a config and its certificates can move
    /// together.
    fn resolve_paths(&mut self, base: &Path) {
        if let Some(tls) = &mut self.server.tls {
            tls.cert = base.join(&tls.cert);
            tls.key = base.join(&tls.key);
        }
        if let AccessLog::File(path) = &mut self.log.access_log {
            *path = base.join(&*path);
        }
        self.reservations.ledger = base.join(&self.reservations.ledger);
        for room in self.rooms.values_mut() {
            if let Some(path) = &mut room.page_template {
                *path = base.join(&*path);
            }
        }
    }
}
