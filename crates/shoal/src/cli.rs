//! Client commands: call the API of a running `shoal serve` and print tables or JSON.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

/// A client of the shoal API.
#[derive(Debug)]
pub struct Client {
    base: String,
    token: Option<String>,
    json: bool,
    http: reqwest::Client,
}

/// The API could not be reached (exit 3) or answered an error (exit 1).
#[derive(Debug)]
enum Failure {
    Unreachable(String),
    Api(u16, String),
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:8000`).
    #[must_use]
    pub fn new(base: &str, token: Option<String>, json: bool) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
            json,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("HTTP client"),
        }
    }

    async fn call(&self, post: bool, path: &str) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.base);
        let mut req = if post {
            self.http.post(&url)
        } else {
            self.http.get(&url)
        };
        if post {
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Failure::Unreachable(format!("cannot reach {url}: {e}")))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .map_err(|e| Failure::Api(status.as_u16(), format!("{url}: unreadable answer: {e}")))?;
        if status.is_success() {
            Ok(body)
        } else {
            let msg = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("error")
                .to_owned();
            Err(Failure::Api(status.as_u16(), msg))
        }
    }

    async fn run(&self, post: bool, path: &str, table: impl FnOnce(&Value) -> String) -> ExitCode {
        match self.call(post, path).await {
            Ok(v) => {
                if self.json {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                } else {
                    print!("{}", table(&v));
                }
                ExitCode::SUCCESS
            }
            Err(Failure::Unreachable(m)) => {
                eprintln!("error: {m} (is `shoal serve` running? set --api or SHOAL_API)");
                ExitCode::from(3)
            }
            Err(Failure::Api(code, m)) => {
                if code == 401 {
                    eprintln!("error ({code}): {m} (set SHOAL_API_TOKEN)");
                } else {
                    eprintln!("error ({code}): {m}");
                }
                ExitCode::from(1)
            }
        }
    }
}

/// Renders rows as an aligned table with a header.
#[must_use]
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

fn services_table(list: &[Value]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|v| {
            let window = &v["business_hours"];
            vec![
                s(&v["name"]),
                s(&v["image"]),
                s(&v["port"]),
                format!("{}/{}", s(&v["replicas"]["ready"]), s(&v["desired"])),
                format!("{}..{}", s(&v["min_replicas"]), s(&v["max_replicas"])),
                s(&v["autoscaler"]["policy"]),
                s(&v["utilization"]),
                match window["open"].as_bool() {
                    None => "any time".to_owned(),
                    Some(true) => format!("open until {}", s(&window["next_change_local"])),
                    Some(false) => format!("closed until {}", s(&window["next_change_local"])),
                },
                s(&v["last_error"]),
            ]
        })
        .collect();
    let header = [
        "SERVICE",
        "IMAGE",
        "PORT",
        "READY/DESIRED",
        "BOUNDS",
        "POLICY",
        "UTIL%",
        "SCALING",
        "LAST ERROR",
    ];
    table(&header, &rows)
}

/// `shoal status`.
pub async fn status(c: &Client) -> ExitCode {
    c.run(false, "/status", |v| {
        let mut out = format!(
            "shoal {} up {}s; servers {}/{} up\n\n",
            s(&v["version"]),
            s(&v["uptime_seconds"]),
            s(&v["servers"]["up"]),
            s(&v["servers"]["total"])
        );
        out.push_str(&services_table(v["services"].as_array().map_or(&[], |a| a)));
        out
    })
    .await
}

/// `shoal services`.
pub async fn services(c: &Client) -> ExitCode {
    c.run(false, "/services", |v| {
        services_table(v["services"].as_array().map_or(&[], |a| a))
    })
    .await
}

/// `shoal servers`.
pub async fn servers(c: &Client) -> ExitCode {
    c.run(false, "/servers", |v| {
        let rows: Vec<Vec<String>> = v["servers"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|x| {
                vec![
                    s(&x["name"]),
                    s(&x["host"]),
                    s(&x["status"]),
                    format!("{}/{}", s(&x["containers"]), s(&x["max_containers"])),
                    s(&x["docker_version"]),
                    s(&x["endpoint"]),
                    s(&x["reason"]),
                ]
            })
            .collect();
        table(
            &[
                "SERVER",
                "HOST",
                "STATUS",
                "CONTAINERS",
                "DOCKER",
                "ENDPOINT",
                "REASON",
            ],
            &rows,
        )
    })
    .await
}

/// `shoal stats SERVICE`.
pub async fn stats(c: &Client, service: &str) -> ExitCode {
    c.run(false, &format!("/services/{service}/stats"), |v| {
        let mut out = format!(
            "{}: {}/{} ready, desired {}, utilization {}%\n\n",
            s(&v["name"]),
            s(&v["replicas"]["ready"]),
            s(&v["replicas"]["total"]),
            s(&v["desired"]),
            s(&v["utilization"])
        );
        let rows: Vec<Vec<String>> = v["containers"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|x| {
                vec![
                    s(&x["name"]),
                    s(&x["server"]),
                    s(&x["address"]),
                    s(&x["phase"]),
                    s(&x["lb_status"]),
                    s(&x["cpu_percent"]),
                    s(&x["revision"]),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "REPLICA", "SERVER", "ADDRESS", "PHASE", "HAPROXY", "CPU%", "REVISION",
            ],
            &rows,
        ));
        out
    })
    .await
}

/// `shoal scale SERVICE up|down`.
pub async fn scale(c: &Client, service: &str, up: bool) -> ExitCode {
    let dir = if up { "up" } else { "down" };
    c.run(true, &format!("/services/{service}/scale/{dir}"), |v| {
        format!(
            "{service}: desired {} -> {}\n",
            s(&v["previous"]),
            s(&v["desired"])
        )
    })
    .await
}

/// `shoal deploy SERVICE [--all]`.
pub async fn deploy(c: &Client, service: &str, all: bool) -> ExitCode {
    let path = if all {
        format!("/services/{service}/rolling-update")
    } else {
        format!("/services/{service}/deploy")
    };
    c.run(true, &path, |v| {
        if all {
            format!(
                "{service}: pulling {} on {}, then replacing every replica one at a time; \
                 follow with `shoal events {service}`\n",
                s(&v["image"]),
                s(&v["pulling_on"])
            )
        } else {
            format!(
                "{service}: rolling to revision {} ({} replica(s) to replace); follow with \
                 `shoal events {service}`\n",
                s(&v["revision"]),
                s(&v["replicas_to_replace"])
            )
        }
    })
    .await
}

/// `shoal reload`.
pub async fn reload(c: &Client) -> ExitCode {
    c.run(true, "/config/reload", |v| {
        let changes = v["changes"].as_array().map_or(&[][..], |a| a);
        if changes.is_empty() {
            "reloaded; nothing changed\n".to_owned()
        } else {
            let mut out = "reloaded:\n".to_owned();
            for ch in changes {
                out.push_str(&format!("  {}\n", s(ch)));
            }
            out
        }
    })
    .await
}

/// `shoal events SERVICE`.
pub async fn events(c: &Client, service: &str, limit: usize) -> ExitCode {
    c.run(
        false,
        &format!("/services/{service}/events?limit={limit}"),
        |v| {
            let rows: Vec<Vec<String>> = v["events"]
                .as_array()
                .map_or(&[][..], |a| a)
                .iter()
                .map(|e| {
                    let change = match (e["desired_before"].as_u64(), e["desired_after"].as_u64()) {
                        (Some(a), Some(b)) if a != b => format!("{a}->{b}"),
                        (Some(a), Some(_)) => a.to_string(),
                        _ => "-".to_owned(),
                    };
                    vec![s(&e["at"]), s(&e["action"]), change, s(&e["reason"])]
                })
                .collect();
            table(&["TIME", "ACTION", "DESIRED", "REASON"], &rows)
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let t = table(&["A", "LONGER"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    LONGER\nxxx  y\n");
    }
}
