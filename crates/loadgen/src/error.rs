//! The load generator's errors. A bad scenario names the key and the reason, like the gateway's config.

pub use spillway_config::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[error("{0}")]
    Scenario(Invalid),
    #[error("{path}: cannot read the scenario: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot start the load generator's threads: {0}")]
    Runtime(String),
    #[error("{path}: cannot write the report: {source}")]
    Write { path: String, source: std::io::Error },
}

impl LoadgenError {
    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Scenario(Invalid { key: key.into(), reason: reason.into(), line: None })
    }

    pub(crate) fn from_toml(key: &str, err: &toml::de::Error, text: &str) -> Self {
        Self::Scenario(Invalid::from_toml(key, err, text))
    }
}
