//! Certificates for a Docker Engine with TLS, made with the `openssl` CLI: a CA, a server
//! certificate naming an IP address, and client certificates, laid out as Docker's
//! `DOCKER_CERT_PATH` (`ca.pem`, `cert.pem`, `key.pem`).

use std::path::{Path, PathBuf};

use super::cmd::run;

/// A test CA: `ca.pem` and its key in `dir`.
pub struct TestCa {
    /// Directory of `ca.pem` and `ca-key.pem`.
    pub dir: PathBuf,
}

impl TestCa {
    /// Makes a CA named `name` in `dir` (created).
    pub fn new(dir: &Path, name: &str) -> Self {
        std::fs::create_dir_all(dir).expect("CA dir");
        let (key, ca) = (dir.join("ca-key.pem"), dir.join("ca.pem"));
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                s(&key),
                "-out",
                s(&ca),
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Self {
            dir: dir.to_owned(),
        }
    }

    /// The CA certificate.
    pub fn cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Issues a certificate and key into `out` (`cert.pem`, `key.pem`) with `ext` (the
    /// X.509 v3 extensions, one per line) and copies `ca.pem` there: a `DOCKER_CERT_PATH`.
    pub fn issue(&self, out: &Path, cn: &str, ext: &str) -> PathBuf {
        std::fs::create_dir_all(out).expect("cert dir");
        let (key, csr, cert, extfile) = (
            out.join("key.pem"),
            out.join("req.csr"),
            out.join("cert.pem"),
            out.join("ext.cnf"),
        );
        std::fs::write(&extfile, ext).expect("ext file");
        run(
            "openssl",
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                s(&key),
                "-out",
                s(&csr),
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        run(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                s(&csr),
                "-CA",
                s(&self.cert()),
                "-CAkey",
                s(&self.dir.join("ca-key.pem")),
                "-CAcreateserial",
                "-out",
                s(&cert),
                "-days",
                "2",
                "-extfile",
                s(&extfile),
            ],
        );
        std::fs::copy(self.cert(), out.join("ca.pem")).expect("copy ca.pem");
        out.to_owned()
    }

    /// A server certificate for `ip` in `out`.
    pub fn server(&self, out: &Path, ip: &str) -> PathBuf {
        self.issue(
            out,
            "dockerd",
            &format!("subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n"),
        )
    }

    /// A client certificate in `out`.
    pub fn client(&self, out: &Path) -> PathBuf {
        self.issue(
            out,
            "shoal",
            "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n",
        )
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}
