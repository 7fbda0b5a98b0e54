//! The edges of the shared HTTP client (issue 14, items 8 and 11): answers larger than the cap
//! are refused without being held, and requests that cannot be built are never sent or retried.
#![allow(clippy::unwrap_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use connectors::{
    ErrorCode, ErrorKind, Retry,
    http::{Call, DEFAULT_MAX_BODY, NoObserver, RetryPolicy, UpstreamClient},
};
use domain::Platform;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A plain HTTP/1.1 server on port 0 (one request per connection): `/big` answers 4 MiB with a
/// Content-Length, `/stream` 4 MiB chunked (no length), `/small` 1 KiB; every request is
/// counted.
async fn server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if conn.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let line = String::from_utf8_lossy(&head);
                let path = line.split(' ').nth(1).unwrap_or("/").to_owned();
                let _ = match path.as_str() {
                    "/big" => {
                        let body = vec![b' '; 4 << 20];
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        write_all(&mut conn, &[head.as_bytes(), &body]).await
                    }
                    "/stream" => {
                        let mut parts = vec![
                            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
                                .to_vec(),
                        ];
                        for _ in 0..64 {
                            let chunk = vec![b'x'; 64 << 10];
                            parts.push(format!("{:x}\r\n", chunk.len()).into_bytes());
                            parts.push(chunk);
                            parts.push(b"\r\n".to_vec());
                        }
                        parts.push(b"0\r\n\r\n".to_vec());
                        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
                        write_all(&mut conn, &refs).await
                    }
                    _ => {
                        let body = vec![b'y'; 1024];
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        write_all(&mut conn, &[head.as_bytes(), &body]).await
                    }
                };
            });
        }
    });
    (origin, hits)
}

/// Writes every part; the client may hang up early (that is the point of a cap).
async fn write_all(conn: &mut tokio::net::TcpStream, parts: &[&[u8]]) -> std::io::Result<()> {
    for p in parts {
        conn.write_all(p).await?;
    }
    conn.flush().await
}

fn client() -> UpstreamClient {
    UpstreamClient::new(
        Platform::Keap,
        Duration::from_secs(5),
        &[],
        Arc::new(NoObserver),
    )
    .with_policy(RetryPolicy {
        max_attempts: 4,
        base: Duration::from_millis(100),
        cap: Duration::from_millis(400),
        max_total_wait: Duration::from_secs(3),
    })
}

fn call() -> Call<'static> {
    Call {
        operation: "test",
        class: "x",
        budget_key: "digest",
        idempotent: true,
    }
}

#[test]
fn the_default_cap_is_32_mib() {
    assert_eq!(DEFAULT_MAX_BODY, 32 * 1024 * 1024);
    let c = client();
    assert_eq!(c.max_body(), DEFAULT_MAX_BODY);
    assert_eq!(c.with_max_body(10).max_body(), 10);
}

#[tokio::test]
async fn an_answer_over_the_cap_is_connection_failed_and_not_retried() {
    let (origin, hits) = server().await;
    let capped = client().with_max_body(1 << 20);
    for path in ["/big", "/stream"] {
        hits.store(0, Ordering::SeqCst);
        let url = format!("{origin}{path}");
        let err = capped.send(call(), |h| h.get(&url)).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable, "{path}");
        assert_eq!(err.code(), ErrorCode::ConnectionFailed, "{path}");
        assert_eq!(err.retry, Retry::Permanent, "{path}");
        assert!(
            err.message.contains("larger than 1048576 bytes"),
            "{path}: {}",
            err.message
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1, "{path}: asked once");
    }
    // Under the cap, the same client reads the answer whole.
    let url = format!("{origin}/small");
    let answer = capped.send(call(), |h| h.get(&url)).await.unwrap();
    assert_eq!(answer.body.len(), 1024);
    // The default cap reads 4 MiB.
    let url = format!("{origin}/stream");
    let answer = client().send(call(), |h| h.get(&url)).await.unwrap();
    assert_eq!(answer.body.len(), 4 << 20);
}

#[tokio::test]
async fn a_request_that_cannot_be_built_is_never_sent_nor_retried() {
    let (origin, hits) = server().await;
    let url = format!("{origin}/small");
    let started = Instant::now();
    let err = client()
        .send(call(), |h| {
            h.get(&url)
                .header("X-Keap-API-Key", "KeapAK-abc\u{1}def")
                .bearer_auth("tok\nen")
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidRequest);
    assert_eq!(err.code(), ErrorCode::ValidationError);
    assert_eq!(err.retry, Retry::Permanent);
    assert_eq!(err.platform_status, None);
    assert!(
        err.message.contains("could not be built"),
        "{}",
        err.message
    );
    assert!(
        !err.message.contains("KeapAK-abc"),
        "no credential in the message"
    );
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "no backoff: {:?}",
        started.elapsed()
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached the server");
}
