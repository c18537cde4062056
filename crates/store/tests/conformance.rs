//! The embedded backend passes the suite every backend must pass (`spillway_store::conformance`).

use spillway_store::{Embedded, conformance};

#[tokio::test]
async fn rooms() {
    conformance::room(&Embedded::new()).await;
}

#[tokio::test]
async fn limits() {
    conformance::limit(&Embedded::new()).await;
}

#[tokio::test]
async fn ledgers() {
    let dir = tempfile::tempdir().expect("temp dir");
    conformance::ledger(&Embedded::new(), &dir.path().join("ledger.db")).await;
}
