use serde::{Deserialize, Serialize};

use crate::Secret;

/// An HMAC key for tickets and admission passes. The id travels in every token so verification knows which
/// key to use after a rotation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKey {
    pub id: String,
    pub secret: Secret,
}

/// Below this a key can be brute-forced offline from one captured token.
pub(crate) const MIN_SECRET_BYTES: usize = 32;
