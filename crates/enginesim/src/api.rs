//! The HTTP side of one simulated server: Docker Engine API paths (any `/vX.Y` prefix) to
//! the [`Server`] store. JSON shapes follow the Engine API 1.41 as far as bollard reads them.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State as AxState};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::responder::Responder;
use crate::store::{unix_now, Container, Event, Server, State};

type Params = Query<HashMap<String, String>>;

pub fn router(server: Arc<Server>) -> Router {
    Router::new().fallback(handle).with_state(server)
}

fn message(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "message": msg.into() }))).into_response()
}

fn ok_json(v: Value) -> Response {
    axum::Json(v).into_response()
}

fn no_such(id: &str) -> Response {
    message(
        StatusCode::NOT_FOUND,
        format!("No such container: {id} (simulated engine)"),
    )
}

/// `/v1.41/containers/json` → `["containers", "json"]`.
fn segments(uri: &Uri) -> Vec<String> {
    let mut segs: Vec<String> = uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if segs
        .first()
        .is_some_and(|s| s.starts_with('v') && s[1..].contains('.'))
    {
        segs.remove(0);
    }
    segs
}

async fn handle(
    AxState(srv): AxState<Arc<Server>>,
    method: Method,
    uri: Uri,
    Query(q): Params,
    body: Bytes,
) -> Response {
    if !srv.cfg.latency.is_zero() {
        tokio::time::sleep(srv.cfg.latency).await;
    }
    let segs = segments(&uri);
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (&method, s.as_slice()) {
        (&Method::GET | &Method::HEAD, ["_ping"]) => "OK".into_response(),
        (&Method::GET, ["version"]) => ok_json(json!({
            "Version": "20.10.24-enginesim",
            "ApiVersion": "1.41",
            "MinAPIVersion": "1.12",
            "Os": "linux",
            "Arch": "amd64",
            "KernelVersion": "simulated",
        })),
        (&Method::GET, ["info"]) => info(&srv),
        (&Method::GET, ["containers", "json"]) => list(&srv, &q),
        (&Method::POST, ["containers", "create"]) => create(&srv, &q, &body),
        (&Method::POST, ["containers", id, "start"]) => start(&srv, id).await,
        (&Method::POST, ["containers", id, "stop"]) => stop(&srv, id, "stop", 0),
        (&Method::POST, ["containers", id, "kill"]) => stop(&srv, id, "kill", 137),
        (&Method::DELETE, ["containers", id]) => remove(&srv, id, &q),
        (&Method::GET, ["containers", id, "json"]) => inspect(&srv, id),
        (&Method::GET, ["containers", id, "stats"]) => stats(&srv, id),
        (&Method::GET, ["events"]) => events(&srv, &q),
        (&Method::GET, ["images", rest @ .., "json"]) if !rest.is_empty() => ok_json(json!({
            "Id": "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "RepoTags": [rest.join("/")],
        })),
        (&Method::POST, ["images", "create"]) => {
            let line = json!({"status": "Downloaded (simulated)"}).to_string() + "\n";
            line.into_response()
        }
        _ => message(
            StatusCode::NOT_FOUND,
            format!(
                "{method} {} is not part of the simulated engine",
                uri.path()
            ),
        ),
    }
}

fn info(srv: &Server) -> Response {
    let inner = srv.lock();
    let running = inner
        .containers
        .values()
        .filter(|c| c.state == State::Running)
        .count();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // RFC 3339 in UTC, as dockerd's SystemTime.
    let secs = now.as_secs() as i64;
    let (d, t) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil(d);
    ok_json(json!({
        "Name": srv.name,
        "Containers": inner.containers.len(),
        "ContainersRunning": running,
        "ServerVersion": "20.10.24-enginesim",
        "SystemTime": format!(
            "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
            t / 3600, t / 60 % 60, t % 60, now.subsec_nanos()
        ),
    }))
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The `filters` query parameter as `key → values` (Docker takes a list or a map of
/// `value: true`).
fn filters(q: &HashMap<String, String>) -> Result<BTreeMap<String, Vec<String>>, Box<Response>> {
    let Some(raw) = q.get("filters").filter(|f| !f.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let v: Value = serde_json::from_str(raw).map_err(|e| {
        Box::new(message(
            StatusCode::BAD_REQUEST,
            format!("invalid filters {raw:?}: {e}"),
        ))
    })?;
    let mut out = BTreeMap::new();
    for (k, vals) in v.as_object().into_iter().flatten() {
        let list: Vec<String> = match vals {
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            Value::Object(o) => o.keys().cloned().collect(),
            _ => Vec::new(),
        };
        out.insert(k.clone(), list);
    }
    Ok(out)
}

fn labels_match(labels: &BTreeMap<String, String>, wanted: &[String]) -> bool {
    wanted.iter().all(|w| match w.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(w.as_str()),
    })
}

fn summary(c: &Container, now: i64) -> Value {
    let (private, _) = c
        .port_key
        .as_deref()
        .and_then(|k| k.split_once('/'))
        .unwrap_or(("0", "tcp"));
    let ports: Vec<Value> = c
        .host_port()
        .map(|p| {
            json!({"IP": "0.0.0.0", "PrivatePort": private.parse::<u16>().unwrap_or(0),
                   "PublicPort": p, "Type": "tcp"})
        })
        .into_iter()
        .collect();
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.image,
        "Command": "/simulated",
        "Created": c.created,
        "Labels": c.labels,
        "State": c.state.word(),
        "Status": c.status(now),
        "Ports": ports,
    })
}

fn list(srv: &Server, q: &HashMap<String, String>) -> Response {
    let f = match filters(q) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let all = q.get("all").is_some_and(|v| v == "1" || v == "true");
    let wanted = f.get("label").cloned().unwrap_or_default();
    let now = unix_now();
    let inner = srv.lock();
    let out: Vec<Value> = inner
        .containers
        .values()
        .filter(|c| all || c.state == State::Running)
        .filter(|c| labels_match(&c.labels, &wanted))
        .map(|c| summary(c, now))
        .collect();
    ok_json(Value::Array(out))
}

fn create(srv: &Server, q: &HashMap<String, String>, body: &[u8]) -> Response {
    let spec: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return message(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
    };
    let Some(image) = spec["Image"].as_str().map(str::to_owned) else {
        return message(StatusCode::BAD_REQUEST, "no Image in the create body");
    };
    let labels: BTreeMap<String, String> = spec["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect();
    let port_key = match &spec["ExposedPorts"] {
        Value::Object(o) => o.keys().next().cloned(),
        Value::Array(a) => a.first().and_then(|v| v.as_str().map(str::to_owned)),
        _ => None,
    };
    let mut inner = srv.lock();
    let id = srv.new_id();
    let name = q
        .get("name")
        .cloned()
        .unwrap_or_else(|| id[..12].to_owned());
    if inner.containers.values().any(|c| c.name == name) {
        return message(
            StatusCode::CONFLICT,
            format!("Conflict. The container name \"/{name}\" is already in use"),
        );
    }
    let now = unix_now();
    let c = Container {
        id: id.clone(),
        name,
        image,
        labels,
        port_key,
        state: State::Created,
        created: now,
        changed: now,
        started: None,
        responder: None,
    };
    srv.emit(&mut inner, &c, "create");
    inner.containers.insert(id.clone(), c);
    (
        StatusCode::CREATED,
        axum::Json(json!({"Id": id, "Warnings": []})),
    )
        .into_response()
}

async fn start(srv: &Server, key: &str) -> Response {
    let id = {
        let inner = srv.lock();
        match Server::resolve(&inner, key) {
            Some(id) if inner.containers[&id].state == State::Running => {
                return StatusCode::NOT_MODIFIED.into_response()
            }
            Some(id) => id,
            None => return no_such(key),
        }
    };
    let responder = match Responder::start(srv.ip).await {
        Ok(r) => r,
        Err(e) => {
            return message(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot listen on {}: {e}", srv.ip),
            )
        }
    };
    let mut inner = srv.lock();
    let Some(mut c) = inner.containers.remove(&id) else {
        return no_such(key);
    };
    c.state = State::Running;
    c.changed = unix_now();
    c.started = Some(std::time::SystemTime::now());
    c.responder = Some(responder);
    srv.emit(&mut inner, &c, "start");
    inner.containers.insert(id, c);
    StatusCode::NO_CONTENT.into_response()
}

/// Stop or kill: the responder goes, the container is exited with `code`.
fn stop(srv: &Server, key: &str, action: &'static str, code: i64) -> Response {
    let mut inner = srv.lock();
    let Some(id) = Server::resolve(&inner, key) else {
        return no_such(key);
    };
    let Some(mut c) = inner.containers.remove(&id) else {
        return no_such(key);
    };
    let was_running = c.state == State::Running;
    if was_running {
        c.state = State::Exited(code);
        c.changed = unix_now();
        c.responder = None;
        if action == "kill" {
            srv.emit(&mut inner, &c, "kill");
        }
        srv.emit(&mut inner, &c, "die");
        if action == "stop" {
            srv.emit(&mut inner, &c, "stop");
        }
    }
    inner.containers.insert(id, c);
    if was_running {
        StatusCode::NO_CONTENT.into_response()
    } else if action == "kill" {
        message(
            StatusCode::CONFLICT,
            format!("Container {key} is not running"),
        )
    } else {
        StatusCode::NOT_MODIFIED.into_response()
    }
}

fn remove(srv: &Server, key: &str, q: &HashMap<String, String>) -> Response {
    let force = q.get("force").is_some_and(|v| v == "1" || v == "true");
    let mut inner = srv.lock();
    let Some(id) = Server::resolve(&inner, key) else {
        return no_such(key);
    };
    if inner.containers[&id].state == State::Running && !force {
        return message(
            StatusCode::CONFLICT,
            format!("You cannot remove a running container {id}. Stop the container before attempting removal or force remove"),
        );
    }
    let Some(mut c) = inner.containers.remove(&id) else {
        return no_such(key);
    };
    if c.state == State::Running {
        c.state = State::Exited(137);
        c.responder = None;
        srv.emit(&mut inner, &c, "kill");
        srv.emit(&mut inner, &c, "die");
    }
    srv.emit(&mut inner, &c, "destroy");
    StatusCode::NO_CONTENT.into_response()
}

fn inspect(srv: &Server, key: &str) -> Response {
    let inner = srv.lock();
    let Some(id) = Server::resolve(&inner, key) else {
        return no_such(key);
    };
    let c = &inner.containers[&id];
    let mut ports = serde_json::Map::new();
    if let (Some(k), Some(p)) = (&c.port_key, c.host_port()) {
        ports.insert(
            k.clone(),
            json!([{"HostIp": "0.0.0.0", "HostPort": p.to_string()}]),
        );
    }
    let (running, exit) = match c.state {
        State::Running => (true, 0),
        State::Exited(code) => (false, code),
        State::Created => (false, 0),
    };
    ok_json(json!({
        "Id": c.id,
        "Name": format!("/{}", c.name),
        "Image": c.image,
        "State": {"Status": c.state.word(), "Running": running, "ExitCode": exit},
        "Config": {"Image": c.image, "Labels": c.labels},
        "NetworkSettings": {"Ports": ports},
    }))
}

fn stats(srv: &Server, key: &str) -> Response {
    let inner = srv.lock();
    let Some(id) = Server::resolve(&inner, key) else {
        return no_such(key);
    };
    let c = &inner.containers[&id];
    // A constant load: the CPU time grows by `cpu_percent` of a core per second of system
    // time (2 CPUs), the previous sample one second before.
    let up = c
        .started
        .and_then(|t| t.elapsed().ok())
        .map_or(0.0, |d| d.as_secs_f64())
        .max(1.0);
    let online = 2.0_f64;
    let (cpu, mem) = if c.state == State::Running {
        (srv.cfg.cpu_percent, srv.cfg.memory_bytes)
    } else {
        (0.0, 0)
    };
    let total = |t: f64| (t * cpu / 100.0 * 1e9) as u64;
    let system = |t: f64| (t * online * 1e9) as u64;
    ok_json(json!({
        "id": c.id,
        "name": format!("/{}", c.name),
        "cpu_stats": {"cpu_usage": {"total_usage": total(up)}, "system_cpu_usage": system(up),
                      "online_cpus": online as u32},
        "precpu_stats": {"cpu_usage": {"total_usage": total(up - 1.0)},
                         "system_cpu_usage": system(up - 1.0), "online_cpus": online as u32},
        "memory_stats": {"usage": mem, "limit": 8_u64 << 30},
    }))
}

fn events(srv: &Server, q: &HashMap<String, String>) -> Response {
    let f = match filters(q) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let since: Option<i64> = q
        .get("since")
        .and_then(|s| s.split('.').next().and_then(|x| x.parse().ok()));
    let actions = f.get("event").cloned().unwrap_or_default();
    let labels = f.get("label").cloned().unwrap_or_default();
    let wanted = move |e: &Event| {
        (actions.is_empty() || actions.iter().any(|a| a == e.action))
            && labels_match(&e.attributes, &labels)
    };
    // Subscribing and reading the log under the lock: nothing missed, nothing twice.
    let (backlog, rx) = {
        let inner = srv.lock();
        let backlog: Vec<Event> = match since {
            Some(s) => inner
                .log
                .iter()
                .filter(|e| e.time_nano / 1_000_000_000 >= s)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        (backlog, srv.events.subscribe())
    };
    let wanted2 = wanted.clone();
    let old = futures_util::stream::iter(backlog.into_iter().filter(wanted));
    let live = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(e) => return Some((e, rx)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .filter(move |e| std::future::ready(wanted2(e)));
    let body = old
        .chain(live)
        .map(|e| Ok::<_, Infallible>(Bytes::from(e.json().to_string() + "\n")));
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
