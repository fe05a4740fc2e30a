//! A loopback TCP relay in front of each workspace server, so that an answer can go out
//! without a `Date` header.
//!
//! actix-http writes `Date` itself into every response that has none (`h1/encoder.rs`), so a
//! handler cannot leave it out. Instead the workspace marks such a response with the header
//! [`OMIT_DATE_MARKER`], and this relay — the address clients connect to — deletes the marker
//! and the `Date` line from that response's head. Everything else passes unchanged.
//!
//! To find response heads on a keep-alive connection it follows HTTP/1.1 framing in both
//! directions (request methods, for `HEAD`; `Content-Length`, `chunked`, 1xx/204/304, read to
//! EOF). Body bytes are forwarded as they arrive; only a head is held until it is complete, so
//! the relay never delays an answer beyond its last header line. A head it cannot parse (or
//! one over 64 KiB) switches the connection to plain forwarding.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Response header that tells the relay to send the response without `Date` (and without
/// this header). Lowercase, as actix writes header names.
pub(crate) const OMIT_DATE_MARKER: &str = "x-emulator-omit-date";

const MAX_HEAD: usize = 64 * 1024;

/// Accepts connections on `listener` and relays each to `backend` until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, backend: SocketAddr) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        actix_web::rt::spawn(async move {
            let _ = relay(client, backend).await;
        });
    }
}

async fn relay(client: TcpStream, backend: SocketAddr) -> io::Result<()> {
    let server = TcpStream::connect(backend).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let methods = Arc::new(Mutex::new(VecDeque::new()));
    let up = pump(client_read, server_write, Framer::new(Direction::Requests, methods.clone()));
    let down = pump(server_read, client_write, Framer::new(Direction::Responses, methods));
    tokio::join!(up, down);
    Ok(())
}

/// Copies one direction, passing the bytes through `framer`; on EOF or error shuts the
/// other side's writing half, so each peer sees the other close.
async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, mut framer: Framer) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let out = framer.feed(&buf[..n]);
        if !out.is_empty() && to.write_all(&out).await.is_err() {
            return;
        }
    }
    let rest = framer.finish();
    if !rest.is_empty() {
        let _ = to.write_all(&rest).await;
    }
    let _ = to.shutdown().await;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Requests,
    Responses,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Collecting a message head (up to the blank line).
    Head,
    /// This many body bytes remain.
    Body(u64),
    /// Collecting a chunk-size line.
    ChunkSize,
    /// This many bytes of chunk data plus its CRLF remain.
    ChunkData(u64),
    /// Collecting trailer lines after the last chunk.
    Trailers,
    /// Everything from here on is forwarded unchanged (body read to EOF, an upgrade, or a
    /// head the relay could not parse).
    Passthrough,
}

/// Incremental HTTP/1.1 framing of one direction of a connection.
struct Framer {
    direction: Direction,
    phase: Phase,
    /// Bytes not yet forwarded (an incomplete head or chunk line).
    pending: Vec<u8>,
    /// Whether each request awaiting its response was a `HEAD` (shared by both directions).
    methods: Arc<Mutex<VecDeque<bool>>>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Framer {
    fn new(direction: Direction, methods: Arc<Mutex<VecDeque<bool>>>) -> Framer {
        Framer { direction, phase: Phase::Head, pending: Vec::new(), methods }
    }

    /// Takes the next bytes of the stream, returns the bytes to forward now.
    fn feed(&mut self, input: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(input);
        let mut out = Vec::with_capacity(self.pending.len());
        while self.step(&mut out) {}
        out
    }

    /// The stream ended: whatever is still held goes out unchanged.
    fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    /// Moves as much of `pending` to `out` as the current phase allows. False when it needs
    /// more input.
    fn step(&mut self, out: &mut Vec<u8>) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        match self.phase {
            Phase::Passthrough => {
                out.append(&mut self.pending);
                false
            }
            Phase::Body(n) | Phase::ChunkData(n) => {
                let k = (n as usize).min(self.pending.len());
                out.extend(self.pending.drain(..k));
                let left = n - k as u64;
                self.phase = match (self.phase, left) {
                    (Phase::Body(_), 0) => Phase::Head,
                    (Phase::Body(_), l) => Phase::Body(l),
                    (_, 0) => Phase::ChunkSize,
                    (_, l) => Phase::ChunkData(l),
                };
                true
            }
            Phase::ChunkSize | Phase::Trailers => {
                let Some(i) = find(&self.pending, b"\r\n") else {
                    if self.pending.len() > MAX_HEAD {
                        self.phase = Phase::Passthrough;
                        return true;
                    }
                    return false;
                };
                let line: Vec<u8> = self.pending.drain(..i + 2).collect();
                let text = String::from_utf8_lossy(&line[..i]).to_string();
                out.extend_from_slice(&line);
                self.phase = if self.phase == Phase::Trailers {
                    if text.is_empty() { Phase::Head } else { Phase::Trailers }
                } else {
                    match u64::from_str_radix(text.split(';').next().unwrap_or("").trim(), 16) {
                        Ok(0) => Phase::Trailers,
                        Ok(n) => Phase::ChunkData(n + 2),
                        Err(_) => Phase::Passthrough,
                    }
                };
                true
            }
            Phase::Head => {
                let Some(i) = find(&self.pending, b"\r\n\r\n") else {
                    if self.pending.len() > MAX_HEAD {
                        self.phase = Phase::Passthrough;
                        return true;
                    }
                    return false;
                };
                let head: Vec<u8> = self.pending.drain(..i + 4).collect();
                let (rewritten, next) = self.head(&head);
                out.extend_from_slice(&rewritten);
                self.phase = next;
                true
            }
        }
    }

    /// Handles one complete head: returns the bytes to forward and the phase after it.
    fn head(&mut self, head: &[u8]) -> (Vec<u8>, Phase) {
        let Ok(text) = std::str::from_utf8(head) else { return (head.to_vec(), Phase::Passthrough) };
        let mut lines: Vec<&str> = text.split("\r\n").collect();
        lines.truncate(lines.len().saturating_sub(2)); // the blank line and the empty tail
        let Some(first) = lines.first() else { return (head.to_vec(), Phase::Passthrough) };
        let header = |name: &str| {
            lines[1..]
                .iter()
                .filter_map(|l| l.split_once(':'))
                .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim())
        };
        let chunked = header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length = header("content-length").map(|v| v.parse::<u64>());
        if let Some(Err(_)) = length {
            return (head.to_vec(), Phase::Passthrough);
        }
        let length = length.and_then(Result::ok);
        let body = |none_otherwise: bool| match (chunked, length) {
            (true, _) => Phase::ChunkSize,
            (false, Some(0)) => Phase::Head,
            (false, Some(n)) => Phase::Body(n),
            (false, None) if none_otherwise => Phase::Head,
            (false, None) => Phase::Passthrough,
        };
        match self.direction {
            Direction::Requests => {
                let is_head = first.split(' ').next() == Some("HEAD");
                self.methods.lock().unwrap_or_else(|e| e.into_inner()).push_back(is_head);
                (head.to_vec(), body(true))
            }
            Direction::Responses => {
                let Some(status) = first.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok()) else {
                    return (head.to_vec(), Phase::Passthrough);
                };
                if status == 101 {
                    return (head.to_vec(), Phase::Passthrough);
                }
                let next = if status < 200 {
                    Phase::Head // an interim answer; the request still awaits its final one
                } else {
                    let was_head = self.methods.lock().unwrap_or_else(|e| e.into_inner()).pop_front().unwrap_or(false);
                    if was_head || status == 204 || status == 304 { Phase::Head } else { body(false) }
                };
                let marked = lines[1..]
                    .iter()
                    .any(|l| l.split(':').next().is_some_and(|n| n.trim().eq_ignore_ascii_case(OMIT_DATE_MARKER)));
                if !marked {
                    return (head.to_vec(), next);
                }
                let kept: Vec<&str> = std::iter::once(*first)
                    .chain(lines[1..].iter().copied().filter(|l| {
                        let name = l.split(':').next().unwrap_or("").trim();
                        !name.eq_ignore_ascii_case(OMIT_DATE_MARKER) && !name.eq_ignore_ascii_case("date")
                    }))
                    .collect();
                (format!("{}\r\n\r\n", kept.join("\r\n")).into_bytes(), next)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `requests` to a request framer and `responses` to a response framer sharing one
    /// method queue, each split at every position into two pieces, and checks the output.
    fn check(requests: &str, responses: &str, expected: &str) {
        for split in 0..=responses.len() {
            let methods = Arc::new(Mutex::new(VecDeque::new()));
            let mut up = Framer::new(Direction::Requests, methods.clone());
            let forwarded = [up.feed(requests.as_bytes()), up.finish()].concat();
            assert_eq!(forwarded, requests.as_bytes(), "requests pass unchanged");
            let mut down = Framer::new(Direction::Responses, methods);
            let (a, b) = responses.as_bytes().split_at(split);
            let mut out = down.feed(a);
            out.extend(down.feed(b));
            out.extend(down.finish());
            assert_eq!(String::from_utf8(out).unwrap(), expected, "split at {split}");
        }
    }

    const MARKED: &str = "x-emulator-omit-date: 1";

    #[test]
    fn unmarked_responses_pass_unchanged() {
        let rsp = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ndate: Tue, 01 Jan 2030 00:00:00 GMT\r\n\r\n{}";
        check("GET / HTTP/1.1\r\nhost: x\r\n\r\n", rsp, rsp);
    }

    #[test]
    fn marked_response_loses_marker_and_date_only() {
        let rsp = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n{MARKED}\r\ncontent-type: a\r\ndate: Tue, 01 Jan 2030 00:00:00 GMT\r\n\r\n{{}}"
        );
        check("GET / HTTP/1.1\r\n\r\n", &rsp, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: a\r\n\r\n{}");
    }

    #[test]
    fn keep_alive_sequence_with_bodies_that_look_like_heads() {
        // The first body contains a fake head with the marker: it must not be touched.
        let body1 = format!("HTTP/1.1 200 OK\r\n{MARKED}\r\ndate: x\r\n\r\n");
        let rsp = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ndate: d1\r\n\r\n{body1}\
             HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n{MARKED}\r\ndate: d2\r\n\r\n3;x=y\r\nabc\r\n0\r\nt: 1\r\n\r\n\
             HTTP/1.1 204 No Content\r\n{MARKED}\r\ndate: d3\r\n\r\n\
             HTTP/1.1 200 OK\r\ncontent-length: 200\r\n{MARKED}\r\ndate: d4\r\n\r\n\
             HTTP/1.1 200 OK\r\ncontent-length: 1\r\n{MARKED}\r\ndate: d5\r\n\r\nz",
            body1.len()
        );
        let expected = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ndate: d1\r\n\r\n{body1}\
             HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nt: 1\r\n\r\n\
             HTTP/1.1 204 No Content\r\n\r\n\
             HTTP/1.1 200 OK\r\ncontent-length: 200\r\n\r\n\
             HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nz",
            body1.len()
        );
        // The POST's body looks like the end of a head. The fourth request is a HEAD: its answer
        // announces 200 bytes but carries none (misread, the fifth answer would pass as its
        // body, marker and all).
        let reqs = "GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\ncontent-length: 5\r\n\r\nx\r\n\r\nGET /c HTTP/1.1\r\n\r\nHEAD /d HTTP/1.1\r\n\r\nGET /e HTTP/1.1\r\n\r\n";
        check(reqs, &rsp, &expected);
    }

    #[test]
    fn unparsable_head_falls_back_to_forwarding() {
        let rsp = "garbage\r\n\r\nmore bytes";
        check("GET / HTTP/1.1\r\n\r\n", rsp, rsp);
    }
}
