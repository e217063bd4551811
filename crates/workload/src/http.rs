//! Minimal HTTP/1.x request-head parsing and response serialisation.
//!
//! Only what the workload needs: request line, headers (names are matched
//! case-insensitively), `Content-Length` bodies, keep-alive negotiation and
//! `Expect: 100-continue`. Chunked request bodies are refused with 501.

use std::fmt::Write as _;

/// Largest request head (request line + headers) accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// Request path with any query string / fragment removed.
    pub path: String,
    pub version: Version,
    /// Header names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
    pub content_length: usize,
    /// Whether the client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    pub expect_continue: bool,
}

impl Head {
    /// First value of the header `name` (which must be given lower-case).
    #[cfg(test)]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The head is not complete yet; read more bytes.
    Incomplete,
    /// 400 Bad Request.
    Malformed(&'static str),
    /// 431 Request Header Fields Too Large.
    HeadTooLarge,
    /// 413 Content Too Large.
    BodyTooLarge,
    /// 505 HTTP Version Not Supported.
    UnsupportedVersion,
    /// 501 Not Implemented (any `Transfer-Encoding` on a request).
    UnsupportedTransferEncoding,
}

impl ParseError {
    /// The error response to send for this parse error (always followed by close).
    pub fn response(self) -> Response {
        let (status, msg) = match self {
            ParseError::Incomplete => (400, "incomplete request"),
            ParseError::Malformed(m) => (400, m),
            ParseError::HeadTooLarge => (431, "request head too large"),
            ParseError::BodyTooLarge => (413, "request body too large"),
            ParseError::UnsupportedVersion => (505, "HTTP version not supported"),
            ParseError::UnsupportedTransferEncoding => (501, "transfer-encoding not supported"),
        };
        Response::error(status, msg)
    }
}

/// Parse a request head from the start of `buf`.
///
/// On success returns the head and the number of bytes it occupied (including
/// the blank line and any leading empty lines), so the body starts right after.
pub fn parse_head(buf: &[u8]) -> Result<(Head, usize), ParseError> {
    // RFC 9112 §2.2: ignore empty lines received before the request line.
    let skip = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let rest = &buf[skip..];
    let Some(end) = find_head_end(rest) else {
        return if buf.len() > MAX_HEAD {
            Err(ParseError::HeadTooLarge)
        } else {
            Err(ParseError::Incomplete)
        };
    };
    if end > MAX_HEAD {
        return Err(ParseError::HeadTooLarge);
    }
    let text = std::str::from_utf8(&rest[..end])
        .map_err(|_| ParseError::Malformed("request head is not valid UTF-8"))?;
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .take_while(|l| !l.is_empty());

    let request_line = lines.next().ok_or(ParseError::Malformed("empty request"))?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::Malformed("malformed request line"));
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(ParseError::Malformed("malformed method"));
    }
    let version = match version {
        "HTTP/1.1" => Version::Http11,
        "HTTP/1.0" => Version::Http10,
        v if v.starts_with("HTTP/") => return Err(ParseError::UnsupportedVersion),
        _ => return Err(ParseError::Malformed("malformed HTTP version")),
    };
    let path = request_path(target)?;

    let mut headers = Vec::new();
    let mut content_length: Option<u64> = None;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut expect_continue = false;
    for line in lines {
        if line.starts_with(' ') || line.starts_with('\t') {
            return Err(ParseError::Malformed("obsolete header line folding"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(ParseError::Malformed("header line without colon"))?;
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(ParseError::Malformed("malformed header name"));
        }
        let name = name.to_ascii_lowercase();
        let value = value.trim_matches(|c| c == ' ' || c == '\t').to_string();
        match name.as_str() {
            "content-length" => {
                for item in value.split(',') {
                    let item = item.trim_matches(|c| c == ' ' || c == '\t');
                    if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(ParseError::Malformed("invalid content-length"));
                    }
                    // Saturate: anything this long is far over MAX_BODY anyway.
                    let n = item.parse::<u64>().unwrap_or(u64::MAX);
                    if content_length.is_some_and(|prev| prev != n) {
                        return Err(ParseError::Malformed("conflicting content-length"));
                    }
                    content_length = Some(n);
                }
            }
            "transfer-encoding" => return Err(ParseError::UnsupportedTransferEncoding),
            "connection" => {
                for token in value.split(',') {
                    let token = token.trim();
                    if token.eq_ignore_ascii_case("close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") {
                        keep_alive_token = true;
                    }
                }
            }
            "expect" => expect_continue |= value.eq_ignore_ascii_case("100-continue"),
            _ => {}
        }
        headers.push((name, value));
    }

    let content_length = content_length.unwrap_or(0);
    if content_length > MAX_BODY as u64 {
        return Err(ParseError::BodyTooLarge);
    }
    let keep_alive = match version {
        Version::Http11 => !close,
        Version::Http10 => keep_alive_token && !close,
    };
    let head = Head {
        method: method.to_string(),
        path,
        version,
        headers,
        content_length: content_length as usize,
        keep_alive,
        expect_continue: expect_continue && version == Version::Http11,
    };
    Ok((head, skip + end))
}

/// Offset just past the blank line ending the head (tolerates bare LF).
fn find_head_end(buf: &[u8]) -> Option<usize> {
    for (i, &b) in buf.iter().enumerate() {
        if b != b'\n' {
            continue;
        }
        match &buf[i + 1..] {
            [b'\n', ..] => return Some(i + 2),
            [b'\r', b'\n', ..] => return Some(i + 3),
            _ => {}
        }
    }
    None
}

/// Reduce an origin-form or absolute-form request target to its path.
fn request_path(target: &str) -> Result<String, ParseError> {
    let path = if target.starts_with('/') || target == "*" {
        target
    } else if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        rest.find('/').map_or("/", |i| &rest[i..])
    } else {
        return Err(ParseError::Malformed("malformed request target"));
    };
    if path.bytes().any(|b| b.is_ascii_control()) {
        return Err(ParseError::Malformed("malformed request target"));
    }
    let end = path.find(['?', '#']).unwrap_or(path.len());
    Ok(path[..end].to_string())
}

/// RFC 9110 token character.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Extra header lines, e.g. `Allow`.
    pub extra_headers: Vec<(&'static str, String)>,
}

impl Response {
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            content_type: "application/json; charset=utf-8",
            body: body.into(),
            extra_headers: Vec::new(),
        }
    }

    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            extra_headers: Vec::new(),
        }
    }

    pub fn error(status: u16, message: &str) -> Self {
        Response::json(
            status,
            format!("{{\"error\":\"{}\"}}", json_escape(message)),
        )
    }

    /// Serialise status line, headers and (unless `head_only`) the body.
    pub fn to_bytes(&self, keep_alive: bool, head_only: bool) -> Vec<u8> {
        let mut head = String::with_capacity(160);
        // Writing to a String cannot fail.
        let _ = write!(
            head,
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len(),
            if keep_alive { "keep-alive" } else { "close" },
        );
        for (name, value) in &self.extra_headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Escape a string for inclusion inside a JSON string literal.
pub fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<(Head, usize), ParseError> {
        parse_head(s.as_bytes())
    }

    #[test]
    fn simple_get() {
        let req = "GET /api/tags?x=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\n\r\nrest";
        let (head, len) = parse(req).unwrap();
        assert_eq!(len, req.len() - 4);
        assert_eq!(head.method, "GET");
        assert_eq!(head.path, "/api/tags");
        assert_eq!(head.version, Version::Http11);
        assert_eq!(head.header("host"), Some("a"));
        assert_eq!(head.content_length, 0);
        assert!(head.keep_alive);
        assert!(!head.expect_continue);
    }

    #[test]
    fn incomplete_until_blank_line() {
        assert_eq!(parse(""), Err(ParseError::Incomplete));
        assert_eq!(
            parse("GET / HTTP/1.1\r\nHost: a\r\n"),
            Err(ParseError::Incomplete)
        );
        assert_eq!(
            parse("GET / HTTP/1.1\r\nHost: a\r\n\r"),
            Err(ParseError::Incomplete)
        );
        assert!(parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
    }

    #[test]
    fn bare_lf_and_leading_empty_lines() {
        let req = "\r\n\r\nGET / HTTP/1.1\nHost: a\n\nBODY";
        let (head, len) = parse(req).unwrap();
        assert_eq!(head.path, "/");
        assert_eq!(&req[len..], "BODY");
    }

    #[test]
    fn headers_are_case_insensitive() {
        let (head, _) = parse(
            "POST /api/generate HTTP/1.1\r\ncOnTeNt-LeNgTh:  12 \r\nCONNECTION: Close\r\n\r\n",
        )
        .unwrap();
        assert_eq!(head.content_length, 12);
        assert!(!head.keep_alive);
        assert_eq!(head.header("content-length"), Some("12"));
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |s: &str| parse(s).unwrap().0.keep_alive;
        assert!(ka("GET / HTTP/1.1\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.1\r\nConnection: upgrade, close\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.0\r\n\r\n"));
        assert!(ka("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }

    #[test]
    fn expect_continue() {
        let (head, _) =
            parse("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert!(head.expect_continue);
        let (head, _) =
            parse("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert!(!head.expect_continue);
    }

    #[test]
    fn absolute_form_target() {
        let (head, _) = parse("GET http://example:1/api/version?q HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(head.path, "/api/version");
        let (head, _) = parse("GET http://example:1 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(head.path, "/");
    }

    #[test]
    fn content_length_validation() {
        assert!(matches!(
            parse("POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n"),
            Err(ParseError::Malformed(_))
        ));
        assert!(matches!(
            parse("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Err(ParseError::Malformed(_))
        ));
        assert!(matches!(
            parse("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(ParseError::Malformed(_))
        ));
        assert_eq!(
            parse("POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n")
                .unwrap()
                .0
                .content_length,
            3
        );
        assert_eq!(
            parse("POST / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n"),
            Err(ParseError::BodyTooLarge)
        );
        assert_eq!(
            parse("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            Err(ParseError::BodyTooLarge)
        );
        assert_eq!(
            parse("POST / HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n")
                .unwrap()
                .0
                .content_length,
            MAX_BODY
        );
        assert_eq!(
            parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(ParseError::UnsupportedTransferEncoding)
        );
    }

    #[test]
    fn malformed_requests() {
        for req in [
            "GET /\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1 extra\r\n\r\n",
            "GET / FTP/1.0\r\n\r\n",
            "G(T / HTTP/1.1\r\n\r\n",
            "GET nopath HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "GET / HTTP/1.1\r\n: empty\r\n\r\n",
            "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
        ] {
            assert!(
                matches!(parse(req), Err(ParseError::Malformed(_))),
                "{req:?} should be malformed, got {:?}",
                parse(req)
            );
        }
        assert!(matches!(
            parse_head(b"GET /\xff HTTP/1.1\r\n\r\n"),
            Err(ParseError::Malformed(_))
        ));
        assert_eq!(
            parse("GET / HTTP/2.0\r\n\r\n"),
            Err(ParseError::UnsupportedVersion)
        );
    }

    #[test]
    fn head_too_large() {
        let mut req = b"GET / HTTP/1.1\r\nX: ".to_vec();
        req.resize(MAX_HEAD + 10, b'a');
        assert_eq!(parse_head(&req), Err(ParseError::HeadTooLarge));
        req.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_head(&req), Err(ParseError::HeadTooLarge));
    }

    #[test]
    fn response_serialisation() {
        let r = Response::text(200, "Ollama is running");
        let bytes = String::from_utf8(r.to_bytes(true, false)).unwrap();
        assert!(bytes.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(bytes.contains("\r\nContent-Length: 17\r\n"));
        assert!(bytes.contains("\r\nConnection: keep-alive\r\n"));
        assert!(bytes.ends_with("\r\n\r\nOllama is running"));
        let head_only = String::from_utf8(r.to_bytes(false, true)).unwrap();
        assert!(head_only.contains("\r\nContent-Length: 17\r\n"));
        assert!(head_only.contains("\r\nConnection: close\r\n"));
        assert!(head_only.ends_with("\r\n\r\n"));
    }

    #[test]
    fn escaping() {
        assert_eq!(json_escape("a\"b\\c\n\u{1}"), "a\\\"b\\\\c\\n\\u0001");
    }
}
