use std::fmt;

/// A configuration problem, always naming the key it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the file: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{0}")]
    Invalid(Invalid),
}

/// The key (`routes[2].upstream`), the reason, and the line when the parser knows it.
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

impl ConfigError {
    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid(Invalid { key: key.into(), reason: reason.into(), line: None })
    }

    /// The key this error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Read { .. } => None,
            Self::Invalid(i) => Some(&i.key),
        }
    }

    pub(crate) fn from_toml(key: &str, err: toml::de::Error, text: &str) -> Self {
        Self::Invalid(Invalid::from_toml(key, &err, text))
    }
}

impl Invalid {
    /// A TOML parse or shape error at `key`, with the line it is on. Shared by every TOML file Spillway
    /// reads (the config, load-generator scenarios), so all of them name the key the same way.
    pub fn from_toml(key: &str, err: &toml::de::Error, text: &str) -> Self {
        let line = err.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        let mut reason = err.message().trim().to_string();
        let mut key = key.to_string();
        // serde reports an unknown key at its parent; move it into the path so the message names it.
        if let Some(rest) = reason.strip_prefix("unknown field `")
            && let Some((field, expected)) = rest.split_once('`')
        {
            if key.is_empty() || key == "." {
                key = field.to_string();
            } else if !key.ends_with(field) {
                key = format!("{key}.{field}");
            }
            reason = format!("unknown key{}", expected.replacen(", expected", "; expected", 1));
        }
        Self { key, reason, line }
    }
}
