//! Thread-per-connection HTTP/1.1 server with graceful shutdown.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::http::{self, json_escape, Head, ParseError, Response};
use crate::work;

/// A connection with no progress for this long is closed.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long in-flight requests may run on after shutdown is requested.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on concurrently served connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Granularity at which blocked reads notice a shutdown request.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct Config {
    /// Reported by `/whoami` and `/api/generate`.
    pub hostname: String,
    /// Fault injection: `/api/tags` answers 503 once the server is this old.
    pub unhealthy_after: Option<Duration>,
    /// Connections beyond this wait in the listen backlog.
    pub max_connections: usize,
    /// Like Ollama loading a model: the first `/api/generate` takes this long more, and
    /// every generate that arrives meanwhile waits for it.
    pub model_load: Option<Duration>,
}

/// Outcome of [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Connections still busy when the drain deadline passed.
    pub abandoned: usize,
}

struct Ctx {
    config: Config,
    started: Instant,
    shutdown: Arc<AtomicBool>,
    active: AtomicUsize,
    /// Whether the "model" is loaded (see [`Config::model_load`]).
    loaded: std::sync::Mutex<bool>,
}

/// Decrements the active-connection count when the connection thread ends
/// (or when the thread could not be spawned and the closure is dropped).
struct ActiveGuard(Arc<Ctx>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serve on `listener` until `shutdown` becomes true, then stop accepting,
/// close idle keep-alive connections, give in-flight requests up to
/// [`DRAIN_TIMEOUT`] to finish, and return.
pub fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: Arc<AtomicBool>,
) -> io::Result<Stopped> {
    // `accept` restarts after signals (SA_RESTART), so a helper thread
    // watches the flag and wakes the accept loop with a local connection.
    let wake_addr = wake_addr(listener.local_addr()?);
    let serving_done = Arc::new(AtomicBool::new(false));
    let waker = {
        let shutdown = Arc::clone(&shutdown);
        let serving_done = Arc::clone(&serving_done);
        thread::Builder::new()
            .name("shutdown-waker".into())
            .spawn(move || {
                while !shutdown.load(Ordering::SeqCst) {
                    if serving_done.load(Ordering::SeqCst) {
                        return;
                    }
                    thread::sleep(Duration::from_millis(20));
                }
                let _ = TcpStream::connect_timeout(&wake_addr, Duration::from_secs(1));
            })?
    };

    let ctx = Arc::new(Ctx {
        config,
        started: Instant::now(),
        shutdown,
        active: AtomicUsize::new(0),
        loaded: std::sync::Mutex::new(false),
    });
    let max = ctx.config.max_connections.max(1);

    'accept: loop {
        // At the cap, leave new connections in the kernel backlog.
        while ctx.active.load(Ordering::SeqCst) >= max {
            if ctx.shutdown.load(Ordering::SeqCst) {
                break 'accept;
            }
            thread::sleep(Duration::from_millis(5));
        }
        if ctx.shutdown.load(Ordering::SeqCst) {
            break;
        }
        match listener.accept() {
            Ok((stream, _peer)) => {
                if ctx.shutdown.load(Ordering::SeqCst) {
                    // The waker's connection, or a client that lost the race.
                    break;
                }
                ctx.active.fetch_add(1, Ordering::SeqCst);
                let guard = ActiveGuard(Arc::clone(&ctx));
                // If spawning fails the closure (and guard) is dropped and
                // the connection closed; nothing else to do.
                let _ = thread::Builder::new().name("conn".into()).spawn(move || {
                    let guard = guard;
                    handle_connection(stream, &guard.0);
                });
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                // E.g. EMFILE or ECONNABORTED: back off briefly and retry.
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    drop(listener);
    serving_done.store(true, Ordering::SeqCst);
    let _ = waker.join();

    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while ctx.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    Ok(Stopped {
        abandoned: ctx.active.load(Ordering::SeqCst),
    })
}

/// Where to connect to reach a listener bound to `local`.
fn wake_addr(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

enum ReadOutcome {
    Data,
    Eof,
    /// No data within [`POLL`]; check shutdown / idle deadline and retry.
    Idle,
    Failed,
}

fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> ReadOutcome {
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return ReadOutcome::Eof,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return ReadOutcome::Data;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return ReadOutcome::Idle
            }
            Err(_) => return ReadOutcome::Failed,
        }
    }
}

fn send(stream: &mut TcpStream, response: &Response, keep_alive: bool, head_only: bool) -> bool {
    stream
        .write_all(&response.to_bytes(keep_alive, head_only))
        .and_then(|()| stream.flush())
        .is_ok()
}

/// After an error response that may leave unread request bytes (e.g. an
/// oversized body), half-close and discard input for a moment so the kernel
/// does not answer the unread data with a RST that could destroy the response
/// before the client reads it.
fn lingering_close(stream: &mut TcpStream, shutdown: &AtomicBool) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut discarded = 0usize;
    let mut sink = [0u8; 8192];
    while Instant::now() < deadline
        && discarded < 2 * http::MAX_BODY
        && !shutdown.load(Ordering::SeqCst)
    {
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(n) => discarded += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

fn handle_connection(mut stream: TcpStream, ctx: &Ctx) {
    // Accepted sockets are blocking; the read timeout is our poll interval.
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut last_progress = Instant::now();

    loop {
        // Request head.
        let (head, head_len) = loop {
            match http::parse_head(&buf) {
                Ok(parsed) => break parsed,
                Err(ParseError::Incomplete) => {
                    if buf.is_empty() && ctx.shutdown.load(Ordering::SeqCst) {
                        return; // idle keep-alive connection: close at shutdown
                    }
                    match read_some(&mut stream, &mut buf) {
                        ReadOutcome::Data => last_progress = Instant::now(),
                        ReadOutcome::Idle => {
                            if last_progress.elapsed() >= IO_TIMEOUT {
                                if !buf.is_empty() {
                                    let r = Response::error(408, "request timeout");
                                    send(&mut stream, &r, false, false);
                                }
                                return;
                            }
                        }
                        ReadOutcome::Eof | ReadOutcome::Failed => return,
                    }
                }
                Err(e) => {
                    if send(&mut stream, &e.response(), false, false) {
                        lingering_close(&mut stream, &ctx.shutdown);
                    }
                    return;
                }
            }
        };
        buf.drain(..head_len);

        // Request body.
        let len = head.content_length;
        if len > buf.len()
            && head.expect_continue
            && stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
        {
            return;
        }
        while buf.len() < len {
            match read_some(&mut stream, &mut buf) {
                ReadOutcome::Data => last_progress = Instant::now(),
                ReadOutcome::Idle => {
                    if last_progress.elapsed() >= IO_TIMEOUT {
                        send(
                            &mut stream,
                            &Response::error(408, "request timeout"),
                            false,
                            false,
                        );
                        return;
                    }
                }
                ReadOutcome::Eof | ReadOutcome::Failed => return,
            }
        }
        let body: Vec<u8> = buf.drain(..len).collect();

        let response = route(&head, &body, ctx);
        let keep_alive = head.keep_alive && !ctx.shutdown.load(Ordering::SeqCst);
        if !send(&mut stream, &response, keep_alive, head.method == "HEAD") || !keep_alive {
            return;
        }
        last_progress = Instant::now();
    }
}

fn route(head: &Head, body: &[u8], ctx: &Ctx) -> Response {
    const GET: &str = "GET, HEAD";
    const POST: &str = "POST";
    let allowed = match head.path.as_str() {
        "/" | "/api/tags" | "/api/version" | "/whoami" => GET,
        "/api/generate" => POST,
        _ => return Response::error(404, "not found"),
    };
    let method_ok = match allowed {
        GET => head.method == "GET" || head.method == "HEAD",
        _ => head.method == "POST",
    };
    if !method_ok {
        let mut r = Response::error(405, "method not allowed");
        r.extra_headers.push(("Allow", allowed.to_string()));
        return r;
    }
    match head.path.as_str() {
        "/" => Response::text(200, "Ollama is running"),
        "/api/tags" => {
            let unhealthy = ctx
                .config
                .unhealthy_after
                .is_some_and(|after| ctx.started.elapsed() >= after);
            if unhealthy {
                Response::error(503, "unhealthy (fault injection)")
            } else {
                Response::json(
                    200,
                    r#"{"models":[{"name":"shoal-workload:latest","model":"shoal-workload:latest","size":0}]}"#,
                )
            }
        }
        "/api/version" => Response::json(200, r#"{"version":"0.0.0-shoal-workload"}"#),
        "/whoami" => Response::json(
            200,
            format!(r#"{{"hostname":"{}"}}"#, json_escape(&ctx.config.hostname)),
        ),
        _ => generate(body, ctx),
    }
}

fn generate(body: &[u8], ctx: &Ctx) -> Response {
    let start = Instant::now();
    let ms = match work::work_ms(body) {
        Ok(ms) => ms,
        Err(e) => return Response::error(400, e.message()),
    };
    // The first generate loads the model; the ones arriving meanwhile wait on the lock.
    let mut cold = false;
    if let Some(load) = ctx.config.model_load {
        let mut loaded = ctx
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*loaded {
            thread::sleep(load);
            *loaded = true;
            cold = true;
        }
    }
    work::burn_cpu(Duration::from_millis(ms));
    let total = start.elapsed().as_nanos();
    // Said only when a model load is configured, so the answer is otherwise unchanged.
    let cold = if ctx.config.model_load.is_some() {
        format!(r#","cold":{cold}"#)
    } else {
        String::new()
    };
    Response::json(
        200,
        format!(
            r#"{{"model":"shoal-workload","response":"ok","done":true,"work_ms":{ms},"hostname":"{}"{cold},"total_duration":{total}}}"#,
            json_escape(&ctx.config.hostname)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Running {
        addr: SocketAddr,
        shutdown: Arc<AtomicBool>,
        handle: thread::JoinHandle<io::Result<Stopped>>,
    }

    fn start(unhealthy_after: Option<Duration>) -> Running {
        start_with(unhealthy_after, None)
    }

    fn start_with(unhealthy_after: Option<Duration>, model_load: Option<Duration>) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Arc::new(AtomicBool::new(false));
        let config = Config {
            hostname: "test-host".into(),
            unhealthy_after,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            model_load,
        };
        let flag = Arc::clone(&shutdown);
        let handle = thread::spawn(move || serve(listener, config, flag));
        Running {
            addr,
            shutdown,
            handle,
        }
    }

    impl Running {
        fn stop(self) -> (Stopped, Duration) {
            let t = Instant::now();
            self.shutdown.store(true, Ordering::SeqCst);
            let stopped = self.handle.join().unwrap().unwrap();
            (stopped, t.elapsed())
        }
    }

    struct Reply {
        status: u16,
        headers: String,
        body: String,
    }

    /// Read exactly one response (relies on Content-Length).
    fn read_reply(stream: &mut TcpStream, head_only: bool) -> Reply {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).unwrap(), 1, "eof inside head");
            buf.push(byte[0]);
        }
        let headers = String::from_utf8(buf).unwrap();
        let status = headers[9..12].parse().unwrap();
        let len: usize = headers
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .expect("Content-Length always sent")
            .parse()
            .unwrap();
        let mut body = vec![0u8; if head_only { 0 } else { len }];
        stream.read_exact(&mut body).unwrap();
        Reply {
            status,
            headers,
            body: String::from_utf8(body).unwrap(),
        }
    }

    fn request(stream: &mut TcpStream, raw: &str) -> Reply {
        stream.write_all(raw.as_bytes()).unwrap();
        read_reply(stream, raw.starts_with("HEAD "))
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    fn assert_closed(stream: &mut TcpStream) {
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "unexpected trailing data: {rest:?}");
    }

    #[test]
    fn the_first_generates_wait_for_the_model_load_once() {
        let server = start_with(None, Some(Duration::from_millis(300)));
        let generate = "POST /api/generate HTTP/1.1\r\nContent-Length: 10\r\n\r\n{\"work\":0}";
        // Health checks do not load the model.
        let t = Instant::now();
        let r = request(&mut connect(server.addr), "GET /api/tags HTTP/1.1\r\n\r\n");
        assert_eq!(r.status, 200);
        assert!(t.elapsed() < Duration::from_millis(200));
        // Two at once: both wait for the one load; one of them loaded it.
        let t = Instant::now();
        let replies: Vec<Reply> = (0..2)
            .map(|_| {
                let addr = server.addr;
                thread::spawn(move || request(&mut connect(addr), generate))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        assert!(t.elapsed() >= Duration::from_millis(300));
        let cold = replies
            .iter()
            .filter(|r| r.body.contains("\"cold\":true"))
            .count();
        assert_eq!(
            cold,
            1,
            "{:?}",
            replies.iter().map(|r| &r.body).collect::<Vec<_>>()
        );
        // Loaded: fast from now on.
        let t = Instant::now();
        let r = request(&mut connect(server.addr), generate);
        assert!(r.body.contains("\"cold\":false"), "{}", r.body);
        assert!(t.elapsed() < Duration::from_millis(200));
        server.stop();
    }

    #[test]
    fn end_to_end_over_tcp() {
        let server = start(None);
        let mut c = connect(server.addr);

        let r = request(&mut c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "Ollama is running");
        assert!(r.headers.contains("Content-Type: text/plain"));
        assert!(r.headers.contains("Connection: keep-alive"));

        // Same connection (keep-alive), body with whitespace and extra fields.
        let body = "{ \"model\": \"m\", \"prompt\": \"hi\",\n \"work\" : 40 }";
        let t = Instant::now();
        let r = request(
            &mut c,
            &format!(
                "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        let took = t.elapsed();
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(took >= Duration::from_millis(40), "{took:?}");
        assert!(r.body.starts_with(
            r#"{"model":"shoal-workload","response":"ok","done":true,"work_ms":40,"hostname":"test-host","total_duration":"#
        ), "{}", r.body);
        let total: u64 = r
            .body
            .rsplit_once(':')
            .unwrap()
            .1
            .trim_end_matches('}')
            .parse()
            .unwrap();
        assert!(total >= 40_000_000, "{total}");

        let r = request(&mut c, "GET /api/tags HTTP/1.1\r\n\r\n");
        assert_eq!(r.status, 200);
        assert!(r.body.contains(r#""name":"shoal-workload:latest""#));
        assert!(r.headers.contains("Content-Type: application/json"));

        let r = request(&mut c, "GET /api/version HTTP/1.1\r\n\r\n");
        assert_eq!(r.body, r#"{"version":"0.0.0-shoal-workload"}"#);

        let r = request(&mut c, "GET /whoami?x=1 HTTP/1.1\r\n\r\n");
        assert_eq!(r.body, r#"{"hostname":"test-host"}"#);

        let r = request(&mut c, "HEAD / HTTP/1.1\r\n\r\n");
        assert_eq!(r.status, 200);
        assert!(r.headers.contains("Content-Length: 17"));

        let r = request(&mut c, "GET /nope HTTP/1.1\r\n\r\n");
        assert_eq!(r.status, 404);
        assert_eq!(r.body, r#"{"error":"not found"}"#);

        let r = request(&mut c, "DELETE /api/tags HTTP/1.1\r\n\r\n");
        assert_eq!(r.status, 405);
        assert!(r.headers.contains("Allow: GET, HEAD"));
        let r = request(&mut c, "GET /api/generate HTTP/1.1\r\n\r\n");
        assert_eq!(r.status, 405);

        let r = request(
            &mut c,
            "POST /api/generate HTTP/1.1\r\nContent-Length: 12\r\n\r\n{\"work\":\"x\"}",
        );
        assert_eq!(r.status, 400);

        // Pipelined: two requests in one write, answered in order.
        c.write_all(b"GET /api/version HTTP/1.1\r\n\r\nPOST /api/generate HTTP/1.1\r\nContent-Length: 12\r\n\r\n{\"work\": 0 }")
            .unwrap();
        assert_eq!(read_reply(&mut c, false).status, 200);
        let r = read_reply(&mut c, false);
        assert!(r.body.contains(r#""work_ms":0,"#), "{}", r.body);

        // Connection: close is honoured.
        let r = request(&mut c, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(r.headers.contains("Connection: close"));
        assert_closed(&mut c);

        // HTTP/1.0 closes by default; empty body means default work.
        let mut c = connect(server.addr);
        let r = request(&mut c, "POST /api/generate HTTP/1.0\r\n\r\n");
        assert!(r.body.contains(r#""work_ms":50,"#), "{}", r.body);
        assert!(r.headers.contains("Connection: close"));
        assert_closed(&mut c);

        // Malformed request: 400 and close.
        let mut c = connect(server.addr);
        let r = request(&mut c, "GARBAGE\r\n\r\n");
        assert_eq!(r.status, 400);
        assert_closed(&mut c);

        // Oversized body: 413 without reading it, then close.
        let mut c = connect(server.addr);
        let r = request(
            &mut c,
            "POST /api/generate HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n",
        );
        assert_eq!(r.status, 413);
        assert_closed(&mut c);

        // Expect: 100-continue gets an interim response before the body.
        let mut c = connect(server.addr);
        c.write_all(
            b"POST /api/generate HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n",
        )
        .unwrap();
        let mut interim = [0u8; 25];
        c.read_exact(&mut interim).unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        c.write_all(b"{\"work\":1}").unwrap();
        assert_eq!(read_reply(&mut c, false).status, 200);

        // Shutdown with an idle keep-alive connection open and a request in
        // flight: the in-flight one completes, the idle one is closed, and
        // serve() returns promptly.
        let mut idle = connect(server.addr);
        assert_eq!(request(&mut idle, "GET / HTTP/1.1\r\n\r\n").status, 200);
        let mut busy = connect(server.addr);
        busy.write_all(b"POST /api/generate HTTP/1.1\r\nContent-Length: 12\r\n\r\n{\"work\":300}")
            .unwrap();
        thread::sleep(Duration::from_millis(50));
        let (stopped, took) = server.stop();
        assert_eq!(stopped.abandoned, 0);
        assert!(took < Duration::from_secs(2), "{took:?}");
        let r = read_reply(&mut busy, false);
        assert_eq!(r.status, 200);
        assert!(r.headers.contains("Connection: close"));
        assert_closed(&mut busy);
        assert_closed(&mut idle);
        assert_closed(&mut c);
    }

    #[test]
    fn unhealthy_after_fault_injection() {
        let server = start(Some(Duration::from_millis(200)));
        let mut c = connect(server.addr);
        assert_eq!(
            request(&mut c, "GET /api/tags HTTP/1.1\r\n\r\n").status,
            200
        );
        thread::sleep(Duration::from_millis(250));
        let r = request(&mut c, "GET /api/tags HTTP/1.1\r\n\r\n");
        assert_eq!(r.status, 503);
        assert_eq!(request(&mut c, "GET / HTTP/1.1\r\n\r\n").status, 200);
        drop(c);
        let (stopped, _) = server.stop();
        assert_eq!(stopped.abandoned, 0);
    }

    #[test]
    fn wake_addr_maps_unspecified_to_loopback() {
        assert_eq!(
            wake_addr("0.0.0.0:80".parse().unwrap()),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(
            wake_addr("[::]:80".parse().unwrap()),
            "[::1]:80".parse().unwrap()
        );
        assert_eq!(
            wake_addr("10.0.0.1:80".parse().unwrap()),
            "10.0.0.1:80".parse().unwrap()
        );
    }
}
