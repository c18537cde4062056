//! HTTP/2 over TLS with ALPN, using a certificate generated for the test.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use spillway_testkit::{Conf, Origin};

#[tokio::test]
async fn http2_over_tls_with_alpn() {
    let origin = Origin::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let tls = format!("cert = \"{}\"\nkey = \"{}\"", cert.display(), key.display());
    let cfg = Conf::new().table("server.tls", &tls).upstream("a", origin.addr).route("/", "a").build();
    let gw = spillway_gateway::start(cfg).await.unwrap();
    let root = reqwest::Certificate::from_pem(generated.cert.pem().as_bytes()).unwrap();
    let base = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .resolve("localhost", gw.public_addr);

    let h2 = base.add_root_certificate(root.clone()).build().unwrap();
    let resp = h2.get(format!("https://localhost:{}/tls", gw.public_addr.port())).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2, "ALPN should pick h2");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["headers"]["x-forwarded-proto"], "https");

    let h1 = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .resolve("localhost", gw.public_addr)
        .http1_only()
        .build()
        .unwrap();
    let resp = h1.get(format!("https://localhost:{}/tls", gw.public_addr.port())).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.status(), reqwest::StatusCode::OK);

    // A client that does not trust the certificate fails the handshake; the gateway keeps serving.
    let untrusting = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .resolve("localhost", gw.public_addr)
        .build()
        .unwrap();
    assert!(untrusting.get(format!("https://localhost:{}/", gw.public_addr.port())).send().await.is_err());
    assert!(
        h2.get(format!("https://localhost:{}/again", gw.public_addr.port()))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    gw.shutdown().await;
}
