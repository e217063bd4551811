//! Reading a config file: parse, validate, and make its relative paths absolute.

use std::path::Path;

use super::error::issue_from_yaml_error;
use super::{Config, ConfigError, ConfigIssue};

impl Config {
    /// Reads and validates a config file. Contacts nothing.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            issues: vec![ConfigIssue {
                line: 0,
                column: 0,
                message: format!("cannot read the file: {e}"),
            }],
        })?;
        let mut config = Self::parse(&text, &file)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_owned());
        config.resolve_relative_paths(&base);
        Ok(config)
    }

    /// Makes file paths in the config absolute, relative to `base` (the config file's
    /// directory), so they mean the same whatever the working directory of `serve` or HAProxy.
    pub fn resolve_relative_paths(&mut self, base: &Path) {
        let lb = &mut self.load_balancer;
        if let Some(rest) = lb.runtime_api.value.strip_prefix("unix:") {
            if !rest.starts_with('/') {
                lb.runtime_api.value = format!("unix:{}", base.join(rest).display());
            }
        }
        if let Some(f) = &lb.config_file {
            if f.is_relative() {
                lb.config_file = Some(base.join(f));
            }
        }
        if self.autoscaler.state_file.is_relative() {
            self.autoscaler.state_file = base.join(&self.autoscaler.state_file);
        }
        for s in &mut self.servers {
            if let Some(k) = &s.ssh_key {
                if k.is_relative() {
                    s.ssh_key = Some(base.join(k));
                }
            }
            if let Some(p) = &mut s.docker_cert_path {
                if p.value.is_relative() {
                    p.value = base.join(&p.value);
                }
            }
        }
    }

    /// Parses and validates YAML text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let config: Config = serde_saphyr::from_str(text).map_err(|e| ConfigError {
            file: file.to_owned(),
            issues: vec![issue_from_yaml_error(&e)],
        })?;
        let issues = config.validate();
        if issues.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError {
                file: file.to_owned(),
                issues,
            })
        }
    }
}
