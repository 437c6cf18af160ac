//! `rediss://` against a private TLS `redis-server` whose certificate is
//! signed by a private CA: the bus works with the CA configured and refuses
//! the server without it (the certificate is really verified).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::{RedisServer, plain, unique};
use sse_bridge_core::{Delivery, EventBus};
use sse_bridge_redis::{RedisBus, RedisConfig};

/// A private CA and a server certificate for 127.0.0.1 signed by it:
/// (CA certificate, server certificate, server key), in a fresh directory.
fn certificates() -> (PathBuf, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(unique("sse-bridge-tls"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    std::fs::write(path("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=sse-bridge test CA",
            "-keyout",
            &path("ca.key"),
            "-out",
            &path("ca.pem"),
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &path("key.pem"),
            "-out",
            &path("server.csr"),
        ],
        &[
            "x509",
            "-req",
            "-in",
            &path("server.csr"),
            "-CA",
            &path("ca.pem"),
            "-CAkey",
            &path("ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &path("san.ext"),
            "-out",
            &path("cert.pem"),
        ],
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl on PATH");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

fn tls_server(cert: &Path, key: &Path) -> (RedisServer, u16) {
    let tls_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let (port, cert, key) = (
        tls_port.to_string(),
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
    );
    let args = [
        "--tls-port",
        &port,
        "--tls-cert-file",
        cert,
        "--tls-key-file",
        key,
        "--tls-auth-clients",
        "no",
    ];
    (RedisServer::start_with(&args), tls_port)
}

#[tokio::test]
async fn rediss_with_a_private_ca_subscribes_and_receives() {
    let (ca, cert, key) = certificates();
    let (server, tls_port) = tls_server(&cert, &key);
    let config = RedisConfig {
        tls_ca_file: Some(ca),
        ..RedisConfig::new(format!("rediss://127.0.0.1:{tls_port}"))
    };
    let bus = RedisBus::connect(config).await.expect("TLS connection");
    let channel = unique("tls");
    let mut sub = bus.subscribe(&channel).await.unwrap();
    // Published over the plain port: same server, so TLS is only on our side.
    let mut publisher = plain(&server.url()).await;
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg(&channel)
        .arg("over tls")
        .query_async(&mut publisher)
        .await
        .unwrap();
    assert_eq!(receivers, 1);
    let got = tokio::time::timeout(Duration::from_secs(5), sub.recv())
        .await
        .unwrap();
    assert_eq!(got, Delivery::Message(Bytes::from_static(b"over tls")));
    assert_eq!(
        bus.publish(&channel, Bytes::from_static(b"back"))
            .await
            .unwrap(),
        1
    );
    bus.check_ready().await.unwrap();
}

#[tokio::test]
async fn rediss_without_the_ca_is_refused() {
    let (_ca, cert, key) = certificates();
    let (_server, tls_port) = tls_server(&cert, &key);
    let config = RedisConfig {
        connect_timeout: Duration::from_secs(2),
        ..RedisConfig::new(format!("rediss://127.0.0.1:{tls_port}"))
    };
    assert!(
        RedisBus::connect(config).await.is_err(),
        "an untrusted certificate was accepted"
    );
}
