//! The request side of HTTP/1.1 (RFC 9112) for the static responder: parse
//! one request at the front of a buffer that may hold several (pipelining)
//! or part of one, and write response heads. No allocation but the head
//! the caller owns.

use std::io::Write;

/// Request line and headers together may take at most this many bytes.
pub const MAX_HEAD: usize = 8192;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub keep_alive: bool,
    /// Bytes this request takes at the front of the input: head and body.
    pub consumed: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parse {
    /// A complete request at the front of the input.
    Complete(Request),
    /// A valid prefix: more bytes are needed.
    Partial,
    /// Malformed: answer 400 and close.
    Bad,
    /// The head is longer than [`MAX_HEAD`]: answer 431 and close.
    TooLarge,
}

/// RFC 9110 5.6.2: token characters.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// The next line of `input` from `at`: (line without CR LF, next offset).
fn line(input: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = &input[at..];
    let nl = rest.iter().position(|&c| c == b'\n')?;
    let mut l = &rest[..nl];
    if l.last() == Some(&b'\r') {
        l = &l[..l.len() - 1];
    }
    Some((l, at + nl + 1))
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Does a comma-separated header value hold `token` (case-insensitive)?
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&c| c == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token.as_bytes()))
}

/// Parse the first request in `input`.
pub fn parse_request(input: &[u8]) -> Parse {
    let mut at = 0;
    // RFC 9112 2.2: empty lines before the request line are ignored.
    let request_line = loop {
        match line(input, at) {
            Some((b"", next)) => at = next,
            Some((l, next)) => {
                at = next;
                break l;
            }
            None => return partial_or_too_large(input),
        }
    };
    let (method, http11) = match parse_request_line(request_line) {
        Some(m) => m,
        None => return Parse::Bad,
    };
    let mut keep_alive = http11;
    let mut content_length: Option<usize> = None;
    loop {
        let Some((l, next)) = line(input, at) else {
            return partial_or_too_large(input);
        };
        if next > MAX_HEAD {
            return Parse::TooLarge;
        }
        at = next;
        if l.is_empty() {
            break;
        }
        if l[0] == b' ' || l[0] == b'\t' {
            // obs-fold (RFC 9112 5.2).
            return Parse::Bad;
        }
        if l.iter().any(|&c| c != b'\t' && (c < 0x20 || c == 0x7f)) {
            return Parse::Bad;
        }
        let Some(colon) = l.iter().position(|&c| c == b':') else {
            return Parse::Bad;
        };
        let name = &l[..colon];
        if name.is_empty() || !name.iter().all(|&c| is_tchar(c)) {
            return Parse::Bad;
        }
        let value = trim(&l[colon + 1..]);
        if name.eq_ignore_ascii_case(b"connection") {
            if has_token(value, "close") {
                keep_alive = false;
            } else if has_token(value, "keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) || value.len() > 18 {
                return Parse::Bad;
            }
            let n: usize = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(usize::MAX);
            match content_length {
                Some(prev) if prev != n => return Parse::Bad,
                _ => content_length = Some(n),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // A static responder accepts no chunked request bodies: refusing
            // them also rules out request smuggling (RFC 9112 6.1).
            return Parse::Bad;
        }
    }
    let consumed = at.saturating_add(content_length.unwrap_or(0));
    if consumed > input.len() {
        return Parse::Partial;
    }
    Parse::Complete(Request {
        method,
        keep_alive,
        consumed,
    })
}

fn partial_or_too_large(input: &[u8]) -> Parse {
    if input.len() >= MAX_HEAD {
        Parse::TooLarge
    } else {
        Parse::Partial
    }
}

/// `METHOD SP target SP HTTP/1.x`: the method and whether it is 1.1.
fn parse_request_line(l: &[u8]) -> Option<(Method, bool)> {
    let mut parts = l.split(|&c| c == b' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let version = parts.next()?;
    if parts.next().is_some() || method.is_empty() || target.is_empty() {
        return None;
    }
    if !method.iter().all(|&c| is_tchar(c)) {
        return None;
    }
    if target.iter().any(|&c| c <= 0x20 || c == 0x7f) {
        return None;
    }
    let http11 = match version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        _ => return None,
    };
    let m = match method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        _ => Method::Other,
    };
    Some((m, http11))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Write a response head into `out` (cleared first).
pub fn write_head(out: &mut Vec<u8>, status: u16, content_length: usize, keep_alive: bool) {
    out.clear();
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\nServer: dpstack\r\n",
        reason(status)
    );
    if status == 200 {
        out.extend_from_slice(b"Content-Type: text/plain\r\n");
    }
    let _ = write!(
        out,
        "Content-Length: {content_length}\r\nConnection: {}\r\n\r\n",
        if keep_alive { "keep-alive" } else { "close" }
    );
}

const PATTERN: &[u8; 37] = b"0123456789abcdefghijklmnopqrstuvwxyz\n";

/// The body's byte at `offset`.
pub fn body_byte(offset: usize) -> u8 {
    PATTERN[offset % PATTERN.len()]
}

/// The body from `offset`, into all of `out`.
pub fn fill_body(offset: usize, out: &mut [u8]) {
    let mut i = 0;
    let mut p = offset % PATTERN.len();
    while i < out.len() {
        let n = (PATTERN.len() - p).min(out.len() - i);
        out[i..i + n].copy_from_slice(&PATTERN[p..p + n]);
        i += n;
        p = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn complete(input: &[u8]) -> Request {
        match parse_request(input) {
            Parse::Complete(r) => r,
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(input)),
        }
    }

    #[test]
    fn get_and_head() {
        let r = complete(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.method, Method::Get);
        assert!(r.keep_alive);
        assert_eq!(r.consumed, 27);
        assert_eq!(complete(b"HEAD /x HTTP/1.1\n\n").method, Method::Head);
        assert_eq!(
            complete(b"\r\n\r\nPUT /x HTTP/1.1\r\n\r\n").method,
            Method::Other
        );
    }

    #[test]
    fn pipelined() {
        let two = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nConnection: close\r\n\r\n";
        let a = complete(two);
        let b = complete(&two[a.consumed..]);
        assert!(a.keep_alive && !b.keep_alive);
        assert_eq!(a.consumed + b.consumed, two.len());
    }

    #[test]
    fn every_split_point_is_partial() {
        let req = b"GET /abc HTTP/1.1\r\nHost: example\r\nContent-Length: 3\r\n\r\nxyz";
        for i in 0..req.len() {
            assert_eq!(parse_request(&req[..i]), Parse::Partial, "at {i}");
        }
        assert_eq!(complete(req).consumed, req.len());
    }

    #[test]
    fn keep_alive_rules() {
        assert!(!complete(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(complete(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!complete(b"GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n").keep_alive);
    }

    #[test]
    fn malformed() {
        for bad in [
            &b"GET /\r\n\r\n"[..],
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / http/1.1\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nName : x\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n",
            b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GARBAGE\r\n\r\n",
        ] {
            assert_eq!(
                parse_request(bad),
                Parse::Bad,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // The same length twice is fine.
        let r = complete(b"POST / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\nz");
        assert_eq!(r.method, Method::Other);
    }

    #[test]
    fn too_large() {
        let mut req = b"GET / HTTP/1.1\r\nX: ".to_vec();
        req.extend(std::iter::repeat_n(b'a', 9000));
        assert_eq!(parse_request(&req), Parse::TooLarge);
        req.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_request(&req), Parse::TooLarge);
    }

    #[test]
    fn heads() {
        let mut v = Vec::new();
        write_head(&mut v, 200, 12, true);
        assert_eq!(
            v,
            b"HTTP/1.1 200 OK\r\nServer: dpstack\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\n"
        );
        write_head(&mut v, 400, 0, false);
        assert!(v.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
        assert!(v.ends_with(b"Connection: close\r\n\r\n"));
    }

    #[test]
    fn body_fill_matches_bytes() {
        for (off, len) in [(0, 0), (0, 100), (5, 37), (36, 2), (1000, 333)] {
            let mut b = vec![0u8; len];
            fill_body(off, &mut b);
            let want: Vec<u8> = (off..off + len).map(body_byte).collect();
            assert_eq!(b, want);
        }
    }

    proptest! {
        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Parse::Complete(r) = parse_request(&b) {
                prop_assert!(r.consumed <= b.len());
            }
        }
    }
}
