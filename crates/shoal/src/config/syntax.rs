//! The syntax of the values shoal hands to HAProxy, Docker, SSH and the operating system: one
//! check per kind of value. [`Config::validate`](super::Config::validate) runs them at load
//! time with the value's position, and the code that uses a value (the `haproxy.cfg`
//! renderer, the runtime-API client) runs the same check again before using it, so what a
//! user can write in the config and what the runtime accepts are the same set.
//!
//! Each check returns why a value is refused, in words that complete "`key` `value` ...".

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Longest host name (RFC 1035).
pub const MAX_HOST_LEN: usize = 253;

/// Longest image reference accepted (Docker's limit on the name part is 255 characters).
pub const MAX_IMAGE_LEN: usize = 512;

/// Longest health-check path.
pub const MAX_HTTP_PATH_LEN: usize = 1024;

/// Fewest characters of an API token.
pub const MIN_TOKEN_LEN: usize = 16;

/// Longest API token (it travels in one HTTP header).
pub const MAX_TOKEN_LEN: usize = 4096;

/// An IP address or a DNS name (letters, digits, `-`, `.`, `_`), at most
/// [`MAX_HOST_LEN`] characters, not starting with `-` (so no program reads it as an
/// option). IPv6 addresses without brackets.
pub fn host(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > MAX_HOST_LEN {
        return Err(format!("is longer than {MAX_HOST_LEN} characters"));
    }
    if s.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
    {
        return Err(format!(
            "must be an IP address or a DNS name (letters, digits, '-', '.'); {c:?} is not allowed"
        ));
    }
    if s.starts_with('-') || s.starts_with('.') {
        return Err("must not start with '-' or '.'".into());
    }
    Ok(())
}

/// A server or service name: 1-63 characters of `a-z`, `0-9`, `-` or `_`, starting with a
/// letter or digit. Names become parts of container names, labels, HAProxy backends and
/// API paths, so nothing else is allowed.
pub fn object_name(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_');
    if ok {
        Ok(())
    } else {
        Err(
            "must be 1-63 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
                .into(),
        )
    }
}

/// A free-form argument that goes into a `haproxy.cfg` line or a runtime-API command (a
/// path, an address): not empty, and no whitespace, control character, `;`, `#`, `\`,
/// `"` or `'`.
pub fn safe_arg(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, ';' | '#' | '\\' | '"' | '\''))
    {
        return Err(format!("character {c:?} is not allowed"));
    }
    Ok(())
}

/// A health-check path: starts with `/`, at most [`MAX_HTTP_PATH_LEN`] characters, and
/// passes [`safe_arg`] (it is written into `option httpchk GET <path>`).
pub fn http_path(s: &str) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err("must start with '/'".into());
    }
    if s.len() > MAX_HTTP_PATH_LEN {
        return Err(format!("is longer than {MAX_HTTP_PATH_LEN} characters"));
    }
    safe_arg(s)
}

/// A file path shoal opens or hands to another program: not empty, no control character
/// (a NUL cannot reach the OS; a newline would break the log line that names it).
pub fn file_path(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!("character {c:?} is not allowed in a path"));
    }
    Ok(())
}

/// Where the HAProxy runtime API listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeApi {
    /// A unix socket (`unix:/path`, `unix:relative/path` or `/abs/path`).
    Unix(PathBuf),
    /// A TCP socket (`host:port`, IPv6 as `[addr]:port`).
    Tcp {
        /// Host name or IP address (without brackets).
        host: String,
        /// Port, 1-65535.
        port: u16,
    },
}

impl RuntimeApi {
    /// Whether only this machine can reach it: a unix socket, a loopback address or
    /// `localhost`.
    #[must_use]
    pub fn is_local(&self) -> bool {
        match self {
            Self::Unix(_) => true,
            Self::Tcp { host, .. } => {
                host.eq_ignore_ascii_case("localhost")
                    || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
            }
        }
    }
}

/// Parses `load_balancer.runtime_api`: `unix:/path`, `/abs/path` or `host:port`. A socket
/// path passes [`safe_arg`] (it is written into `haproxy.cfg`), a host [`host`].
pub fn runtime_api(s: &str) -> Result<RuntimeApi, String> {
    if s != s.trim() {
        return Err("must not start or end with spaces".into());
    }
    if let Some(path) = s.strip_prefix("unix:") {
        if path.is_empty() {
            return Err("the unix socket path is empty".into());
        }
        safe_arg(path).map_err(|e| format!("the socket path: {e}"))?;
        return Ok(RuntimeApi::Unix(PathBuf::from(path)));
    }
    if s.starts_with('/') {
        safe_arg(s).map_err(|e| format!("the socket path: {e}"))?;
        return Ok(RuntimeApi::Unix(PathBuf::from(s)));
    }
    let (h, port) = host_and_port(s)
        .map_err(|e| format!("must be unix:/path/to/socket, /absolute/path or host:port ({e})"))?;
    Ok(RuntimeApi::Tcp { host: h, port })
}

/// `host:port` with [`host`] rules (IPv6 in brackets) and a port 1-65535.
pub fn host_and_port(s: &str) -> Result<(String, u16), String> {
    let (h, port) = s
        .rsplit_once(':')
        .ok_or_else(|| "expected host:port".to_owned())?;
    let h = match h.strip_prefix('[') {
        Some(inner) => inner
            .strip_suffix(']')
            .ok_or_else(|| "an IPv6 address needs a closing ']'".to_owned())?,
        None if h.contains(':') => return Err("write an IPv6 address as [addr]:port".into()),
        None => h,
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("the port {port:?} must be 1-65535"))?;
    host(h).map_err(|e| format!("the host {h:?} {e}"))?;
    Ok((h.to_owned(), port))
}

/// Parses `load_balancer.bind_address`: `*` (all addresses: `None`), or an IP address
/// (IPv6 with or without brackets) or a host name (`Some`, without brackets).
pub fn bind_address(s: &str) -> Result<Option<String>, String> {
    if s == "*" {
        return Ok(None);
    }
    let inner = s
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(s);
    host(inner).map_err(|e| format!("must be *, an IP address or a host name ({e})"))?;
    Ok(Some(inner.to_owned()))
}

/// How a server's Docker Engine is reached when `docker_host` is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DockerHost {
    /// `unix:///absolute/path`.
    Unix(PathBuf),
    /// `tcp://host:port`.
    Tcp(String),
}

/// Parses a `docker_host`: `unix:///absolute/path` (no whitespace or control character)
/// or `tcp://host:port` ([`host_and_port`]).
pub fn docker_host(s: &str) -> Result<DockerHost, String> {
    let expected = "must be unix:///absolute/path or tcp://host:port";
    match s.split_once("://") {
        Some(("unix", path)) => {
            if !path.starts_with('/') {
                return Err(format!("{expected} (the socket path must be absolute)"));
            }
            if let Some(c) = path.chars().find(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!(
                    "{expected} (character {c:?} is not allowed in the path)"
                ));
            }
            Ok(DockerHost::Unix(PathBuf::from(path)))
        }
        Some(("tcp", addr)) => {
            host_and_port(addr).map_err(|e| format!("{expected} ({e})"))?;
            Ok(DockerHost::Tcp(addr.to_owned()))
        }
        _ => Err(expected.into()),
    }
}

/// Parses `api.bind`: an `IP:port` socket address (`[::1]:8000` for IPv6), what the API
/// listener binds. Port 0 (any free port) only on a loopback address.
pub fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s
        .parse()
        .map_err(|_| "must be IP:port, e.g. 127.0.0.1:8000 or [::1]:8000".to_owned())?;
    if addr.port() == 0 && !addr.ip().is_loopback() {
        return Err("port 0 (any free port) is only allowed on a loopback address".into());
    }
    Ok(addr)
}

/// An API bearer token: at least [`MIN_TOKEN_LEN`] and at most [`MAX_TOKEN_LEN`]
/// characters, all visible ASCII (no space, no control character, so it fits an HTTP
/// header as it is and cannot be blank).
pub fn api_token(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err("is blank".into());
    }
    if let Some(c) = s.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "must be visible ASCII characters only (no spaces); {c:?} is not allowed"
        ));
    }
    if s.len() < MIN_TOKEN_LEN {
        return Err(format!(
            "is {} characters long; at least {MIN_TOKEN_LEN} are required \
             (generate one with: head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \\n')",
            s.len()
        ));
    }
    if s.len() > MAX_TOKEN_LEN {
        return Err(format!("is longer than {MAX_TOKEN_LEN} characters"));
    }
    Ok(())
}

/// An SSH login name: 1-32 characters of letters, digits, `.`, `_`, `-`, not starting with
/// `-` (POSIX portable user names, which every sshd accepts).
pub fn ssh_user(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 32 {
        return Err("must be 1-32 characters".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "character {c:?} is not allowed (letters, digits, '.', '_', '-')"
        ));
    }
    if s.starts_with('-') {
        return Err("must not start with '-'".into());
    }
    Ok(())
}

/// A Docker image reference as Docker's `distribution/reference` grammar has it:
/// `[registry[:port]/]path[:tag][@algorithm:hex]`, path components lowercase
/// alphanumerics joined by `.`, `_`, `__` or dashes, a tag `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn image_reference(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > MAX_IMAGE_LEN {
        return Err(format!("is longer than {MAX_IMAGE_LEN} characters"));
    }
    if let Some(c) = s.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "character {c:?} is not allowed in an image reference"
        ));
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        image_digest(d)?;
    }
    // A tag is after the last ':' that follows the last '/' (a registry port comes before it).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        image_tag(t)?;
    }
    if name.len() > 255 {
        return Err("the name is longer than 255 characters".into());
    }
    let mut components: Vec<&str> = name.split('/').collect();
    if components.len() > 1 && looks_like_registry(components[0]) {
        let registry = components.remove(0);
        registry_host(registry)?;
    }
    for c in components {
        path_component(c)?;
    }
    Ok(())
}

fn looks_like_registry(c: &str) -> bool {
    c.contains('.')
        || c.contains(':')
        || c == "localhost"
        || c.chars().any(|ch| ch.is_ascii_uppercase())
}

fn registry_host(r: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("registry {r:?} {why}"));
    let (h, port) = if let Some(inner) = r.strip_prefix('[') {
        match inner.split_once(']') {
            Some((h, rest)) if h.parse::<std::net::Ipv6Addr>().is_ok() => {
                (h, rest.strip_prefix(':'))
            }
            _ => return bad("is not a valid [IPv6] address"),
        }
    } else {
        match r.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (r, None),
        }
    };
    if let Some(p) = port {
        if p.parse::<u16>().ok().filter(|p| *p > 0).is_none() {
            return bad("has a port that is not 1-65535");
        }
    }
    if r.starts_with('[') {
        return Ok(());
    }
    if h.is_empty()
        || !h.split('.').all(|l| {
            !l.is_empty()
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
    {
        return bad("is not a host name");
    }
    Ok(())
}

fn path_component(c: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "path component {c:?} must be lowercase letters and digits, joined by '.', '_', '__' or '-'"
        ))
    };
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return bad();
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: '.', '_', '__' or a run of '-'.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return bad();
        }
    }
    Ok(())
}

fn image_tag(t: &str) -> Result<(), String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let ok = !t.is_empty()
        && t.len() <= 128
        && t.chars().next().is_some_and(word)
        && t.chars().all(|c| word(c) || c == '.' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag {t:?} must be 1-128 letters, digits, '_', '.', '-', not starting with '.' or '-'"
        ))
    }
}

fn image_digest(d: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "digest {d:?} must be ALGORITHM:HEX such as sha256:<64 hex digits>"
        ))
    };
    let Some((algo, hex)) = d.split_once(':') else {
        return bad();
    };
    let algo_ok = algo.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && algo
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-' | '_'));
    if !algo_ok || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return bad();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for good in [
            "10.0.0.1",
            "::1",
            "fe80::1",
            "server-1.example.com",
            "localhost",
            "a_b",
        ] {
            host(good).unwrap();
        }
        for bad in [
            "",
            "a b",
            "a\nb",
            "1.2.3.4;x",
            "[::1]",
            "h#",
            "a/b",
            "-oProxyCommand",
            ".x",
            "é",
        ] {
            assert!(host(bad).is_err(), "{bad:?}");
        }
        assert!(host(&"a".repeat(254)).is_err());
    }

    #[test]
    fn image_references_follow_dockers_grammar() {
        for good in [
            "ollama/ollama:latest",
            "nginx",
            "shoal-workload:latest",
            "127.0.0.1:5000/shoal-workload:v2",
            "registry.example.com/team/app:1.2.3",
            "localhost/app",
            "localhost:5000/a/b/c",
            "my_app__x:1",
            "a--b",
            "img@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "img:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "[::1]:5000/app:tag",
        ] {
            image_reference(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        }
        for bad in [
            "",
            "a b",
            "img\n",
            "img:",
            "Img",
            "img:-x",
            "img::x",
            "/img",
            "img/",
            "a//b",
            "a..b",
            "a___b",
            "_a",
            "img@sha256:short",
            "img@",
            "host:99999/app",
            "img:tag with space",
        ] {
            assert!(image_reference(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn runtime_api_addresses() {
        assert_eq!(
            runtime_api("unix:/run/haproxy/admin.sock").unwrap(),
            RuntimeApi::Unix("/run/haproxy/admin.sock".into())
        );
        assert_eq!(
            runtime_api("/run/a.sock").unwrap(),
            RuntimeApi::Unix("/run/a.sock".into())
        );
        assert_eq!(
            runtime_api("[::1]:9999").unwrap(),
            RuntimeApi::Tcp {
                host: "::1".into(),
                port: 9999
            }
        );
        for bad in [
            "unix:",
            "unix:/a b",
            "/a\nb",
            "host",
            "a b:80",
            "h:0",
            "h:70000",
            "::1:80",
            " 127.0.0.1:9999",
            "1.2.3.4:9999\nx",
        ] {
            assert!(runtime_api(bad).is_err(), "{bad:?}");
        }
        assert!(runtime_api("127.0.0.1:9999").unwrap().is_local());
        assert!(runtime_api("localhost:9999").unwrap().is_local());
        assert!(!runtime_api("0.0.0.0:9999").unwrap().is_local());
        assert!(!runtime_api("[::]:9999").unwrap().is_local());
        assert!(!runtime_api("haproxy.lan:9999").unwrap().is_local());
    }

    #[test]
    fn docker_hosts() {
        assert_eq!(
            docker_host("unix:///var/run/docker.sock").unwrap(),
            DockerHost::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(
            docker_host("tcp://10.0.0.2:2375").unwrap(),
            DockerHost::Tcp("10.0.0.2:2375".into())
        );
        for bad in [
            "http://x",
            "unix://rel",
            "unix:///a b",
            "tcp://a b:1",
            "tcp://h",
            "tcp://h:0",
            "tcp://h\n:1",
        ] {
            assert!(docker_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn listen_addresses() {
        listen_addr("127.0.0.1:8000").unwrap();
        listen_addr("[::1]:8000").unwrap();
        listen_addr("127.0.0.1:0").unwrap();
        for bad in [
            "a b c:8000",
            "localhost:8000",
            "0.0.0.0:0",
            "127.0.0.1",
            ":8000",
            "1.2.3.4:99999",
        ] {
            assert!(listen_addr(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tokens() {
        api_token("0123456789abcdef").unwrap();
        for bad in [
            "",
            "   ",
            "\t\n",
            "short",
            "0123456789abcde",
            "0123456789 abcdef",
            "0123456789abcdéf",
        ] {
            assert!(api_token(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ssh_users() {
        ssh_user("ubuntu").unwrap();
        ssh_user("deploy.bot_1").unwrap();
        for bad in ["", "-oX", "a b", "a\nb", "a@b", &"a".repeat(33)] {
            assert!(ssh_user(bad).is_err(), "{bad:?}");
        }
    }
}
