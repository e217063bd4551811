//! Releases: a service's `rollout` settings and the top-level `registries` map (both shoal
//! additions), with their checks.
//!
//! ```yaml
//! registries:
//!   registry.example.com:5000:
//!     username: ci
//!     password_env: REGISTRY_PASSWORD     # or password_file: /etc/shoal/registry.pass
//! services:
//!   api:
//!     rollout: {max_surge: 1, max_unavailable: 0, progress_deadline: 600}
//! ```
//!
//! A password is never written in the file: it is read from the environment variable or the
//! file named, when a pull needs it, and never logged or shown.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Config, ConfigIssue, Located};

/// How a service's replicas are replaced by an update (`services.<name>.rollout`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutConfig {
    /// New replicas started above the desired count at once (default 1).
    #[serde(default = "default_surge")]
    pub max_surge: Located<u32>,
    /// Replicas that may be out of rotation at once during an update (default 0). Never
    /// below `min_replicas` ready.
    #[serde(default)]
    pub max_unavailable: Located<u32>,
    /// Seconds the update may go without replacing a replica before it is rolled back
    /// (default 600).
    #[serde(default = "default_progress_deadline")]
    pub progress_deadline: Located<u64>,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        Self {
            max_surge: default_surge(),
            max_unavailable: Located::unlocated(0),
            progress_deadline: default_progress_deadline(),
        }
    }
}

fn default_surge() -> Located<u32> {
    Located::unlocated(1)
}
fn default_progress_deadline() -> Located<u64> {
    Located::unlocated(600)
}

impl super::ServiceConfig {
    /// The service's `rollout` settings, or the defaults (surge 1, unavailable 0, 600 s).
    #[must_use]
    pub fn rollout_settings(&self) -> RolloutConfig {
        self.rollout.clone().unwrap_or_default()
    }
}

/// Longest `progress_deadline` (seconds): a day.
pub const MAX_PROGRESS_DEADLINE: u64 = 86_400;

impl RolloutConfig {
    /// `progress_deadline` as a duration (bounded by [`MAX_PROGRESS_DEADLINE`]).
    #[must_use]
    pub fn progress_deadline(&self) -> Duration {
        Duration::from_secs(self.progress_deadline.value.min(MAX_PROGRESS_DEADLINE))
    }
}

/// Credentials of one registry (`registries.<host>`).
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// User name.
    pub username: Located<String>,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<Located<String>>,
    /// File holding the password (its first line).
    #[serde(default)]
    pub password_file: Option<Located<PathBuf>>,
    /// An inline password is refused (it is here only to name the mistake).
    #[serde(default, skip_serializing)]
    pub password: Option<Located<String>>,
}

impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("username", &self.username.value)
            .field(
                "password_env",
                &self.password_env.as_ref().map(|l| &l.value),
            )
            .field(
                "password_file",
                &self.password_file.as_ref().map(|l| &l.value),
            )
            .finish_non_exhaustive()
    }
}

/// A registry's user name and password, read when a pull needs them. The password is never
/// printed: `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The registry host (`host[:port]`), as keyed in `registries`.
    pub registry: String,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// The registry host of an image reference (`host[:port]/repo:tag`), or `docker.io` when the
/// first path component is not a host (no `.` or `:` and not `localhost`).
#[must_use]
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

impl RegistryConfig {
    /// Reads the password from `password_env` or `password_file`. The error names the
    /// variable or file, never the password.
    pub fn credentials(&self, registry: &str) -> Result<Credentials, String> {
        let password = if let Some(var) = &self.password_env {
            std::env::var(&var.value).map_err(|_| {
                format!(
                    "registry {registry}: environment variable {} (password_env) is not set",
                    var.value
                )
            })?
        } else if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(&path.value).map_err(|e| {
                format!(
                    "registry {registry}: reading password_file {}: {e}",
                    path.value.display()
                )
            })?;
            text.lines().next().unwrap_or_default().to_owned()
        } else {
            return Err(format!(
                "registry {registry}: neither password_env nor password_file is set"
            ));
        };
        if password.is_empty() {
            return Err(format!("registry {registry}: the password is empty"));
        }
        Ok(Credentials {
            registry: registry.to_owned(),
            username: self.username.value.clone(),
            password,
        })
    }
}

impl Config {
    /// The credentials for pulling `image`, when its registry is in `registries`. `Err` when
    /// it is configured but its password cannot be read.
    pub fn credentials_for(&self, image: &str) -> Result<Option<Credentials>, String> {
        let host = registry_of(image);
        match self.registries.get(host) {
            None => Ok(None),
            Some(r) => r.credentials(host).map(Some),
        }
    }
}

/// The checks of `registries` and of every service's `rollout`.
pub(super) fn validate(cfg: &Config) -> Vec<ConfigIssue> {
    let mut out = Vec::new();
    let mut at = |line: u64, column: u64, message: String| {
        out.push(ConfigIssue {
            line,
            column,
            message,
        });
    };
    for (host, r) in &cfg.registries {
        let key = format!("registries.{host}");
        if host.is_empty() || host.contains('/') || host.chars().any(char::is_whitespace) {
            at(
                r.username.line,
                r.username.column,
                format!("{key}: the key must be a registry host such as registry.example.com:5000"),
            );
        }
        if r.username.trim().is_empty() {
            at(
                r.username.line,
                r.username.column,
                format!("{key}.username must not be empty"),
            );
        }
        if let Some(p) = &r.password {
            at(
                p.line,
                p.column,
                format!(
                    "{key}.password: passwords are not written in the config; use password_env or password_file"
                ),
            );
        }
        match (&r.password_env, &r.password_file) {
            (Some(e), Some(_)) => at(
                e.line,
                e.column,
                format!("{key}: set password_env or password_file, not both"),
            ),
            (None, None) if r.password.is_none() => at(
                r.username.line,
                r.username.column,
                format!("{key}: password_env or password_file is required"),
            ),
            (Some(e), None) if e.trim().is_empty() => at(
                e.line,
                e.column,
                format!("{key}.password_env must name an environment variable"),
            ),
            _ => {}
        }
    }
    for (name, svc) in &cfg.services {
        let Some(r) = &svc.rollout else { continue };
        let key = format!("services.{name}.rollout");
        if r.max_surge.value == 0 && r.max_unavailable.value == 0 {
            at(
                r.max_surge.line,
                r.max_surge.column,
                format!("{key}: max_surge and max_unavailable cannot both be 0 (nothing could be replaced)"),
            );
        }
        if r.max_surge.value > svc.max_replicas.value.max(1) {
            at(
                r.max_surge.line,
                r.max_surge.column,
                format!(
                    "{key}.max_surge {} is above max_replicas {}",
                    r.max_surge.value, *svc.max_replicas
                ),
            );
        }
        let d = &r.progress_deadline;
        if d.value < 1 || d.value > MAX_PROGRESS_DEADLINE {
            at(
                d.line,
                d.column,
                format!("{key}.progress_deadline must be 1-{MAX_PROGRESS_DEADLINE} (seconds)"),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(extra: &str, service_extra: &str) -> Result<Config, crate::config::ConfigError> {
        Config::parse(
            &format!(
                "servers: [{{host: h, name: s}}]\n{extra}services:\n  a:\n    image: reg.test:5000/a:1\n    port: 80\n    max_replicas: 3\n{service_extra}"
            ),
            "t.yaml",
        )
    }

    #[test]
    fn registry_hosts_are_found_in_image_references() {
        assert_eq!(registry_of("reg.test:5000/a/b:1"), "reg.test:5000");
        assert_eq!(registry_of("10.77.0.1:5000/app"), "10.77.0.1:5000");
        assert_eq!(registry_of("localhost/app"), "localhost");
        assert_eq!(registry_of("ollama/ollama:latest"), "docker.io");
        assert_eq!(registry_of("busybox"), "docker.io");
    }

    #[test]
    fn rollout_defaults_and_refusals() {
        let c = load("", "").unwrap();
        assert!(c.services["a"].rollout.is_none());
        let c = load("", "    rollout: {max_surge: 2, progress_deadline: 30}\n").unwrap();
        let r = c.services["a"].rollout.as_ref().unwrap();
        assert_eq!((*r.max_surge, *r.max_unavailable), (2, 0));
        assert_eq!(r.progress_deadline(), Duration::from_secs(30));
        let e = load("", "    rollout: {max_surge: 0, max_unavailable: 0}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.yaml:7:"), "{e}");
        assert!(e.contains("cannot both be 0"), "{e}");
        let e = load("", "    rollout: {max_surge: 5}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("above max_replicas 3"), "{e}");
        let e = load("", "    rollout: {max_surge: 1, surge: 1}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("surge"), "{e}");
    }

    #[test]
    fn an_inline_password_is_refused_with_its_position_and_never_shown() {
        let e = load(
            "registries:\n  reg.test:5000:\n    username: ci\n    password: hunter2-secret\n",
            "",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("t.yaml:5:"), "{e}");
        assert!(e.contains("use password_env or password_file"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = load("registries:\n  reg.test:5000:\n    username: ci\n", "")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("password_env or password_file is required"),
            "{e}"
        );
    }

    #[test]
    fn credentials_come_from_a_file_or_the_environment_and_debug_hides_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pass");
        std::fs::write(&file, "s3cret-from-file\n").unwrap();
        let c = load(
            &format!(
                "registries:\n  reg.test:5000:\n    username: ci\n    password_file: {}\n",
                file.display()
            ),
            "",
        )
        .unwrap();
        let creds = c.credentials_for("reg.test:5000/a:1").unwrap().unwrap();
        assert_eq!(creds.password, "s3cret-from-file");
        assert!(!format!("{creds:?}").contains("s3cret"));
        assert!(!format!("{:?}", c.registries).contains("s3cret"));
        assert!(c.credentials_for("other.test/a:1").unwrap().is_none());

        let c = load(
            "registries:\n  reg.test:5000:\n    username: ci\n    password_env: SHOAL_TEST_UNSET_PASSWORD_VAR\n",
            "",
        )
        .unwrap();
        let e = c.credentials_for("reg.test:5000/a:1").unwrap_err();
        assert!(e.contains("SHOAL_TEST_UNSET_PASSWORD_VAR"), "{e}");
        assert!(e.contains("reg.test:5000"), "{e}");
    }
}
