//! Serving threads (`threads: N`): connections are served on the ingress's own threads, every
//! endpoint listens once per thread, the endpoint's connection limit holds across them, and
//! the threads end with the ingress.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::support::ingress;

/// A keep-alive HTTP/1.1 backend on plain threads, so it answers while the test's runtime is
/// blocked.
fn blocking_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    // The proxy sends no body with a GET: the head ends at the blank line.
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => {}
                        }
                    }
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if reader.get_mut().write_all(answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Sends a GET on `stream` and reads the answer's head and 2-byte body; `None` when nothing
/// comes within the stream's read timeout.
fn get(stream: &mut TcpStream) -> Option<String> {
    stream.write_all(b"GET / HTTP/1.1\r\nhost: app\r\n\r\n").ok()?;
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\nok") {
        match stream.read(&mut byte) {
            Ok(1) => answer.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&answer).into_owned())
}

fn connect(addr: SocketAddr, wait: Duration) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    stream
}

fn serving_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("ingress-serve-"))
        .count()
}

// The test's runtime has one thread, and everything below blocks it: only the ingress's
// own threads can answer. (No other test in this binary starts serving threads, so the
// thread count at the end is this ingress's.)
#[tokio::test]
async fn serving_threads_answer_share_the_connection_limit_and_end_with_the_ingress() {
    let backend = blocking_backend();
    let (ingress, cancel) = ingress(
        r#"
threads: 2
endpoints:
  - { name: web, listen: "127.0.0.1:0", protocol: http, max_connections: 2 }
pools:
  app: { backends: ["{backend}"] }
routes:
  - { id: app, host: app, pool: app }
"#,
        &[("backend", backend.to_string())],
    )
    .await;
    let addr = ingress.local_addr("web").unwrap();
    // A thread takes its name once it runs.
    assert!(threads_become(2).await, "{} serving threads, not 2", serving_threads());

    let answer = Duration::from_secs(10);
    let mut held: Vec<TcpStream> = (0..2).map(|_| connect(addr, answer)).collect();
    for stream in &mut held {
        let reply = get(stream).expect("served by a serving thread while the test's runtime is blocked");
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }

    // Both permits are taken. Were the limit per listener, some of these would land on the
    // listener with permits left and be answered at once. (Were a permit taken before
    // accepting, an idle listener holding one could leave the clients queued on its sibling
    // unserved, and the requests above would time out.)
    let mut waiting: Vec<TcpStream> = (0..4).map(|_| connect(addr, Duration::from_millis(300))).collect();
    for stream in &mut waiting {
        assert_eq!(get(stream), None, "a connection past the endpoint's limit was served");
    }
    // A freed permit lets one waiting connection in; its request, sent earlier, is answered.
    drop(held.pop());
    let mut answered = 0;
    for stream in &mut waiting {
        stream.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).is_ok_and(|n| n == 1) {
            answered += 1;
        }
    }
    assert_eq!(answered, 1, "one permit freed, one waiting connection served");

    drop((held, waiting));
    cancel.cancel();
    ingress.stopped().await;
    assert!(threads_become(0).await, "{} serving threads outlived the ingress", serving_threads());
}

async fn threads_become(count: usize) -> bool {
    for _ in 0..100 {
        if serving_threads() == count {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
