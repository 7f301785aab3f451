//! HTTPS on the API's own listener (issue 10), on a real socket with a certificate made for
//! the test: the API and the portal answer over TLS with `Secure` cookies and HSTS; a plain
//! HTTP client on the TLS port is told to use https:// and the server carries on; a client
//! that opens a connection and never handshakes is closed after the header timeout and holds
//! one of the connection slots until then.

mod support;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use callrec_api::server::Limits;
use callrec_api::tls::Tls;
use callrec_api::{ApiConfig, PortalConfig};
use support::{Running, World, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PASSWORD: &str = "correct horse battery";

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM files.
struct Certificate {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    pem: String,
}

fn make_certificate() -> Certificate {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, signing_key.serialize_pem()).unwrap();
    Certificate {
        _dir: dir,
        cert: cert_path,
        key: key_path,
        pem: cert.pem(),
    }
}

fn url(server: &Running, path: &str) -> String {
    format!("https://{}{path}", server.addr)
}

fn tls_config(certificate: &Certificate, limits: Limits) -> ApiConfig {
    ApiConfig {
        limits,
        // Not asked for: TLS alone makes the cookies Secure.
        portal: PortalConfig {
            secure_cookies: false,
            ..PortalConfig::default()
        },
        tls: Some(Tls::load(&certificate.cert, &certificate.key).unwrap()),
        ..ApiConfig::default()
    }
}

/// A client that trusts the test's certificate and nothing else, and follows no redirect.
fn client(certificate: &Certificate) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(certificate.pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn cookie_value(cookies: &[String], name: &str) -> Option<String> {
    cookies.iter().find_map(|c| {
        let pair = c.split(';').next()?;
        let (n, v) = pair.split_once('=')?;
        (n == name).then(|| v.to_owned())
    })
}

fn assert_hsts(what: &str, r: &reqwest::Response) {
    assert_eq!(
        r.headers()
            .get("strict-transport-security")
            .map(|v| v.to_str().unwrap()),
        Some(callrec_api::STRICT_TRANSPORT_SECURITY),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_the_api_and_portal_answer_with_secure_cookies_and_hsts() {
    let certificate = make_certificate();
    let w = World::with_config(tls_config(&certificate, Limits::default()));
    let (site, ext) = (w.alice.user.site.clone(), w.alice.user.extension.clone());
    w.store
        .write_blocking(move |s| s.set_password(&site, &ext, PASSWORD, "test"))
        .unwrap();
    let server = start(&w).await;
    let http = client(&certificate);

    let health = http.get(url(&server, "/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.version(),
        reqwest::Version::HTTP_11,
        "ALPN chose http/1.1"
    );
    assert_hsts("/healthz", &health);

    let search = http
        .get(url(&server, "/api/v1/recordings"))
        .bearer_auth(&w.alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(search.status(), 200);
    assert_hsts("a search", &search);

    // Sign in to the portal as a browser does: the form, its cookie, the post.
    let form = http.get(url(&server, "/signin")).send().await.unwrap();
    assert_eq!(form.status(), 200);
    assert_hsts("the sign-in page", &form);
    let cookies = set_cookies(&form);
    assert!(
        cookies.iter().all(|c| c.contains("; Secure")),
        "{cookies:?}"
    );
    let token = cookie_value(&cookies, "callrec_signin").expect("the form's cookie");
    let signed = http
        .post(url(&server, "/signin"))
        .header("cookie", format!("callrec_signin={token}"))
        .form(&[
            ("csrf", token.as_str()),
            ("account", "1001"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    assert_hsts("the sign-in", &signed);
    let cookies = set_cookies(&signed);
    let session = cookies
        .iter()
        .find(|c| c.starts_with("callrec_session="))
        .expect("a session cookie");
    for flag in ["; Secure", "; HttpOnly", "; SameSite=Strict"] {
        assert!(session.contains(flag), "{flag} missing: {session}");
    }
    let secret = cookie_value(&cookies, "callrec_session").unwrap();
    let page = http
        .get(url(&server, "/recordings"))
        .header("cookie", format!("callrec_session={secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_hsts("the recordings page", &page);

    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_on_the_tls_port_is_told_to_use_https_and_the_server_carries_on() {
    let certificate = make_certificate();
    let w = World::with_config(tls_config(&certificate, Limits::default()));
    let server = start(&w).await;

    // A plain HTTP request: a 400 in the API's error shape, then the connection closes.
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), plain.read_to_end(&mut raw))
        .await
        .expect("the server closed the connection")
        .unwrap();
    let reply = String::from_utf8_lossy(&raw);
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
    let body = &reply[reply.find("\r\n\r\n").unwrap() + 4..];
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["error"]["code"], "https_required", "{json}");

    // Bytes that are neither HTTP nor TLS: the handshake fails, the connection closes.
    let mut garbage = TcpStream::connect(server.addr).await.unwrap();
    garbage
        .write_all(&[0x00, 0x01, 0x02, 0x03, 0xff])
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), garbage.read_to_end(&mut rest))
        .await
        .expect("the server closed the connection");
    assert!(closed.is_err() || !rest.starts_with(b"HTTP"), "{rest:?}");

    // And HTTPS still works.
    let health = client(&certificate)
        .get(url(&server, "/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    server.shut_down().await;
}

/// Whether the peer has closed `s`, judged from what has already arrived (no waiting).
fn already_closed(s: TcpStream) -> bool {
    let s = s.into_std().unwrap();
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 16];
    match (&s).read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_handshakes_holds_its_slot_only_until_the_header_timeout() {
    let certificate = make_certificate();
    let limits = Limits {
        max_connections: 1,
        header_timeout: Duration::from_secs(1),
    };
    let w = World::with_config(tls_config(&certificate, limits));
    let server = start(&w).await;

    // Takes the only connection slot and sends nothing, not even a ClientHello.
    let silent = TcpStream::connect(server.addr).await.unwrap();
    // An HTTPS request meanwhile waits in the kernel's accept queue behind it.
    let health = tokio::time::timeout(
        Duration::from_secs(60),
        client(&certificate).get(url(&server, "/healthz")).send(),
    )
    .await
    .expect("HTTPS answered once the silent connection was closed")
    .unwrap();
    assert_eq!(health.status(), 200);
    // The request could only be served once the silent connection's slot was free, and the
    // server closes a connection before it frees its slot.
    assert!(
        already_closed(silent),
        "the HTTPS request was served while the silent connection still held the only slot"
    );

    // A handshake begun and never finished is closed the same way.
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), stalled.read_to_end(&mut rest))
        .await
        .expect("a stalled handshake was closed after the header timeout");

    server.shut_down().await;
}

#[test]
fn a_missing_key_or_a_key_of_another_certificate_is_refused_naming_the_files() {
    let certificate = make_certificate();
    let missing = Path::new("/nonexistent/callrec/key.pem");
    let err = Tls::load(&certificate.cert, missing).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("/nonexistent/callrec/key.pem") && text.contains("api.tls_key"),
        "{text}"
    );

    let other = make_certificate();
    let err = Tls::load(&certificate.cert, &other.key).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&certificate.cert.display().to_string())
            && text.contains(&other.key.display().to_string()),
        "{text}"
    );

    // The key file given as the certificate: no certificate in it.
    let err = Tls::load(&certificate.key, &certificate.key).unwrap_err();
    assert!(err.to_string().contains("BEGIN CERTIFICATE"), "{err}");
}
