//! The plain loop: the same request again and again, the way wrk or oha load a server, but with users that
//! arrive on a schedule rather than a fixed set of connections.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use tokio::time::Instant;

use super::{Call, exchange};
use crate::LoadgenError;
use crate::cookies::Jar;
use crate::record::Recorder;
use crate::runner::Ctx;

/// The request, built once for every user.
pub(crate) fn call(
    url: &str,
    method: &str,
    body: Option<&String>,
    headers: &BTreeMap<String, String>,
) -> Result<Call, LoadgenError> {
    let uri: Uri = url.parse().map_err(|_| LoadgenError::invalid("journey.url", "not a URL"))?;
    let method =
        Method::from_bytes(method.as_bytes()).map_err(|_| LoadgenError::invalid("journey.method", "not a method"))?;
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let key = format!("journey.headers.{k}");
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| LoadgenError::invalid(&key, "bad name"))?;
        let value = HeaderValue::from_str(v).map_err(|_| LoadgenError::invalid(&key, "bad value"))?;
        map.insert(name, value);
    }
    let body = body.map(|b| Bytes::from(b.clone())).unwrap_or_default();
    Ok(Call::new(method, uri, body, map))
}

/// `count` requests, or as many as fit before the end of the run with `until_end`.
pub(crate) async fn run(ctx: &Ctx, rec: &mut Recorder<'_>, call: &Call, count: u64, until_end: bool, start: Instant) {
    let mut jar = Jar::default();
    let mut intended = start;
    let mut done = 0u64;
    loop {
        if until_end {
            if Instant::now() >= ctx.end {
                break;
            }
        } else if done >= count {
            break;
        }
        let _ = exchange(ctx, rec, &mut jar, call, intended).await;
        done += 1;
        intended = Instant::now();
        if let Some(think) = ctx.scenario.think_time {
            intended += think.get();
            tokio::time::sleep_until(intended).await;
        }
    }
}
