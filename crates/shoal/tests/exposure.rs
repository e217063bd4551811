//! What shoal exposes, tried from outside against the real binary: the CLI cannot be made to
//! call another endpoint through a service name, and a real `shoal serve` closes
//! connections that do not send their headers in time, refuses bodies over its limit and
//! serves at most `api.max_connections` connections at once.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::serve::{unreachable_fleet, Serve};
use common::{http_client, shoal, TOKEN};

/// A listener that records the request line of every connection it gets.
fn recording_listener() -> (u16, std::sync::mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let text = String::from_utf8_lossy(&buf[..n]);
            let _ = tx.send(text.lines().next().unwrap_or("").to_owned());
            let _ = s.write_all(
                b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 16\r\nconnection: close\r\n\r\n{\"error\":\"nope\"}",
            );
        }
    });
    (port, rx)
}

#[test]
fn a_service_name_cannot_make_the_cli_call_another_endpoint() {
    let (port, requests) = recording_listener();
    let api = format!("http://127.0.0.1:{port}");
    for args in [
        &["deploy", "../config/reload#"][..],
        &["deploy", "--all", "../../config/reload?"],
        &["scale", "..", "up"],
        &["stats", "web/../../config/reload"],
        &["events", "."],
    ] {
        let out = shoal()
            .args(["--api", &api])
            .args(args)
            .env("SHOAL_API_TOKEN", TOKEN)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("is not a service name"),
            "{args:?}: {stderr}"
        );
    }
    // A real name does reach the listener, on its own path: the listener works.
    let out = shoal()
        .args(["--api", &api, "deploy", "web"])
        .env("SHOAL_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Vec<String> = requests.try_iter().collect();
    assert_eq!(seen, vec!["POST /services/web/deploy HTTP/1.1".to_owned()]);
}

/// A real `shoal serve` (no Docker or HAProxy reachable) with extra `api:` settings.
fn serve_with(api_settings: &str) -> (tempfile::TempDir, Serve, u16) {
    let dir = tempfile::tempdir().unwrap();
    let (config, port) = unreachable_fleet(dir.path());
    let mut yaml = std::fs::read_to_string(&config).unwrap();
    assert!(yaml
        .trim_end()
        .ends_with(&format!("bind: 127.0.0.1:{port}")));
    yaml.push_str(api_settings);
    std::fs::write(&config, yaml).unwrap();
    let log = dir.path().join("serve.log");
    let serve = Serve::start(&config, port, &log);
    (dir, serve, port)
}

/// Reads until the server closes the connection; returns what it sent and when it closed.
fn read_until_closed(mut s: TcpStream, limit: Duration) -> (String, Duration) {
    let start = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server kept the connection open for {limit:?}: {e}"),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), start.elapsed())
}

#[test]
fn a_client_that_does_not_finish_its_headers_is_disconnected() {
    let (_dir, _serve, port) = serve_with("  header_read_timeout: 1\n");
    // Half a request, then nothing (a slow-loris client).
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n").unwrap();
    let (answer, after) = read_until_closed(s, Duration::from_secs(10));
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );
    assert!(after < Duration::from_secs(5), "closed after {after:?}");
    assert!(!answer.contains("200 OK"), "{answer}");
    // A connection that sends nothing at all is closed too.
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (_, after) = read_until_closed(s, Duration::from_secs(10));
    assert!(after < Duration::from_secs(5), "closed after {after:?}");
    // A complete request is still answered.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (answer, _) = read_until_closed(s, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413() {
    let (_dir, _serve, port) = serve_with("  max_body_bytes: 1024\n");
    let client = http_client(Duration::from_secs(10));
    let url = format!("http://127.0.0.1:{port}/config/reload");
    let resp = client
        .post(&url)
        .bearer_auth(TOKEN)
        .body(vec![b'x'; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("1024-byte limit"),
        "{body}"
    );
    // Within the limit the same request goes through to the endpoint.
    let resp = client
        .post(&url)
        .bearer_auth(TOKEN)
        .body(vec![b'x'; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{:?}", resp.text().await);
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let (_dir, _serve, port) = serve_with("  max_connections: 2\n  header_read_timeout: 30\n");
    let client = http_client(Duration::from_secs(10));
    let url = format!("http://127.0.0.1:{port}/status");
    // Two idle connections take both slots.
    let idle: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = tokio::time::timeout(Duration::from_millis(1500), client.get(&url).send()).await;
    assert!(
        waiting.is_err(),
        "a third connection was served beyond max_connections: {waiting:?}"
    );
    // One closes: the next request is served at once.
    drop(idle);
    let start = Instant::now();
    let resp = tokio::time::timeout(Duration::from_secs(5), client.get(&url).send())
        .await
        .expect("served after a slot freed")
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn no_script_or_document_puts_the_token_on_a_command_line() {
    // `curl -H "Authorization: Bearer $TOKEN"` puts the token in curl's argv, which every
    // local user can read with `ps`; scripts and documented commands use `-H @file`.
    let mut files = Vec::new();
    for dir in ["scripts", "deploy", "docs", "examples", "loadtest", "tests"] {
        let mut stack = vec![common::repo(dir)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    files.push(p);
                }
            }
        }
    }
    for f in [
        "README.md",
        "ARCHITECTURE.md",
        "BENCHMARKS.md",
        "SECURITY.md",
    ] {
        files.push(common::repo(f));
    }
    let mut found = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            let l = line.to_ascii_lowercase();
            if l.contains("bearer $") || l.contains("bearer \\$") || l.contains("bearer ${") {
                // printf's format argument holds no token; its data argument goes through a
                // shell builtin into a file.
                if !l.contains("printf 'authorization: bearer %s") {
                    found.push(format!("{}:{}: {line}", f.display(), i + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "a token expanded into a command line:\n{}",
        found.join("\n")
    );
}
