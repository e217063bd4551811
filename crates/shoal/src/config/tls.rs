//! The rules for a server whose engine is a `tcp://` `docker_host`: TLS with
//! `docker_cert_path` (Docker's `DOCKER_CERT_PATH` layout), or plain TCP, which beyond
//! loopback must be asked for with `docker_tls: false` (whoever reaches a plain Docker port
//! controls that engine, and through it the server).

use super::validate::Validator;
use super::ServerConfig;

/// The files of a `docker_cert_path` directory, as Docker's client names them.
pub const CERT_FILES: [&str; 3] = ["ca.pem", "cert.pem", "key.pem"];

impl Validator {
    /// Checks `docker_tls` and `docker_cert_path` of server `s` (`key`: `servers[i]`).
    pub(super) fn docker_tls(&mut self, s: &ServerConfig, key: &str) {
        let tcp = s
            .docker_host
            .as_ref()
            .is_some_and(|h| h.starts_with("tcp://"));
        if !tcp {
            if let Some(p) = &s.docker_cert_path {
                self.at(
                    p,
                    format!("{key}.docker_cert_path applies only to a tcp:// docker_host"),
                );
            }
            if let Some(t) = &s.docker_tls {
                self.at(
                    t,
                    format!("{key}.docker_tls applies only to a tcp:// docker_host"),
                );
            }
            return;
        }
        match (&s.docker_tls, &s.docker_cert_path) {
            (Some(t), Some(_)) if !t.value => self.at(
                t,
                format!(
                    "{key}.docker_tls is false but docker_cert_path is set: remove one of them"
                ),
            ),
            (Some(t), None) if t.value => self.at(
                t,
                format!(
                    "{key}.docker_tls: true needs docker_cert_path: a directory holding {}",
                    CERT_FILES.join(", ")
                ),
            ),
            (None, None) if s.plain_tcp_beyond_loopback() => {
                if let Some(h) = &s.docker_host {
                    self.at(
                        h,
                        format!(
                            "{key}.docker_host {:?} is plain TCP to an address that is not \
                             loopback: whoever reaches that port controls Docker there. Set \
                             docker_cert_path: a directory holding {} (as DOCKER_CERT_PATH, for \
                             a dockerd started with --tlsverify), or docker_tls: false to accept \
                             plain TCP",
                            h.value,
                            CERT_FILES.join(", ")
                        ),
                    );
                }
            }
            _ => {}
        }
        if let Some(p) = &s.docker_cert_path {
            if p.value.as_os_str().is_empty() {
                self.at(p, format!("{key}.docker_cert_path must not be empty"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, DockerEndpoint};

    fn server(lines: &str) -> String {
        format!(
            "servers:\n  - host: 10.0.0.5\n    name: remote\n{lines}services:\n  web:\n    image: img\n    port: 8080\n"
        )
    }

    fn issues(yaml: &str) -> Vec<(u64, u64, String)> {
        Config::parse(yaml, "t.yaml")
            .map(|_| Vec::new())
            .unwrap_or_else(|e| {
                e.issues
                    .into_iter()
                    .map(|i| (i.line, i.column, i.message))
                    .collect()
            })
    }

    #[test]
    fn plain_tcp_beyond_loopback_is_refused_with_its_position_and_the_way_out() {
        let e = issues(&server("    docker_host: tcp://10.0.0.5:2375\n"));
        assert_eq!(e.len(), 1, "{e:?}");
        let (line, col, msg) = &e[0];
        assert_eq!((*line, *col), (4, 18), "{e:?}");
        assert!(
            msg.contains("servers[0].docker_host \"tcp://10.0.0.5:2375\" is plain TCP"),
            "{msg}"
        );
        assert!(
            msg.contains("docker_cert_path") && msg.contains("docker_tls: false"),
            "{msg}"
        );
    }

    #[test]
    fn plain_tcp_is_accepted_on_loopback_or_when_asked_for() {
        for host in ["127.0.0.1:2375", "localhost:2375", "[::1]:2375"] {
            let e = issues(&server(&format!("    docker_host: tcp://{host}\n")));
            assert!(e.is_empty(), "{host}: {e:?}");
        }
        let yaml = server("    docker_host: tcp://10.0.0.5:2375\n    docker_tls: false\n");
        let c = Config::parse(&yaml, "t.yaml").unwrap();
        assert!(c.servers[0].plain_tcp_beyond_loopback());
        assert_eq!(
            c.servers[0].endpoint(),
            DockerEndpoint::Tcp("10.0.0.5:2375".into())
        );
    }

    #[test]
    fn a_cert_path_makes_the_endpoint_tls() {
        let yaml = server(
            "    docker_host: tcp://10.0.0.5:2376\n    docker_cert_path: /etc/shoal/docker-certs\n",
        );
        let c = Config::parse(&yaml, "t.yaml").unwrap();
        assert_eq!(
            c.servers[0].endpoint(),
            DockerEndpoint::TcpTls {
                addr: "10.0.0.5:2376".into(),
                cert_path: "/etc/shoal/docker-certs".into()
            }
        );
        assert!(!c.servers[0].plain_tcp_beyond_loopback());
        // docker_tls: true says the same.
        let yaml = server("    docker_host: tcp://10.0.0.5:2376\n    docker_tls: true\n    docker_cert_path: certs\n");
        assert!(issues(&yaml).is_empty());
    }

    #[test]
    fn contradictions_and_misplaced_keys_are_refused() {
        let e = issues(&server(
            "    docker_host: tcp://10.0.0.5:2376\n    docker_tls: false\n    docker_cert_path: /c\n",
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, 5);
        assert!(
            e[0].2
                .contains("docker_tls is false but docker_cert_path is set"),
            "{e:?}"
        );

        let e = issues(&server(
            "    docker_host: tcp://10.0.0.5:2376\n    docker_tls: true\n",
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].2.contains("docker_tls: true needs docker_cert_path"),
            "{e:?}"
        );

        let e = issues(&server(
            "    ssh_user: root\n    docker_cert_path: /c\n    docker_tls: false\n",
        ));
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].2
                .contains("docker_cert_path applies only to a tcp:// docker_host"),
            "{e:?}"
        );
        assert!(
            e[1].2
                .contains("docker_tls applies only to a tcp:// docker_host"),
            "{e:?}"
        );
    }

    #[test]
    fn a_relative_cert_path_is_taken_from_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            server("    docker_host: tcp://10.0.0.5:2376\n    docker_cert_path: certs/remote\n"),
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        let DockerEndpoint::TcpTls { cert_path, .. } = c.servers[0].endpoint() else {
            panic!("TLS endpoint");
        };
        assert_eq!(
            cert_path,
            std::path::absolute(dir.path())
                .unwrap()
                .join("certs/remote")
        );
    }
}
