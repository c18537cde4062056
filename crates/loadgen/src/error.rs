//! The load generator's errors. A bad scenario names the key and the reason, like the gateway's config.

use std::fmt;

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

/// The key (`arrival.rate`), the reason, and the line when the parser knows it.
#[derive(Debug)]
pub struct Invalid {
    pub key: String,
    pub reason: String,
    pub line: Option<usize>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = if self.key.is_empty() || self.key == "." { "(top level)" } else { &self.key };
        write!(f, "{key}: {}", self.reason)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

impl LoadgenError {
    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Scenario(Invalid { key: key.into(), reason: reason.into(), line: None })
    }

    pub(crate) fn from_toml(key: &str, err: &toml::de::Error, text: &str) -> Self {
        let line = err.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        let mut reason = err.message().trim().to_string();
        let mut key = key.to_string();
        // serde reports an unknown key at its parent; move it into the path so the message names it.
        if let Some(rest) = reason.strip_prefix("unknown field `") {
            if let Some((field, expected)) = rest.split_once('`') {
                key = if key.is_empty() || key == "." { field.to_string() } else { format!("{key}.{field}") };
                reason = format!("unknown key{}", expected.replacen(", expected", "; expected", 1));
            }
        }
        Self::Scenario(Invalid { key, reason, line })
    }
}
