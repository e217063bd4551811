//! `GET /ui`: the status page. Server-rendered HTML, refreshed by the browser every few
//! seconds (`<meta http-equiv="refresh">`), no JavaScript, no assets: servers, services with
//! their replicas per server, utilization against the thresholds, the business window,
//! recent decisions with their reasons, and an inline SVG chart of the desired and ready
//! replicas and the utilization over the last hours (from [`crate::metrics::Metrics`]'s
//! history, which the autoscaler fills at each evaluation).
//!
//! Read-only and open like the other reads; it shows nothing secret (no token, no
//! environment values, no command lines).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Html;

use super::ApiState;
use crate::app::App;
use crate::metrics::{Point, ServiceSample};

/// Seconds between two reloads of the page by the browser.
pub const REFRESH_SECONDS: u32 = 5;

/// How far back the chart looks.
const CHART_SPAN_SECONDS: i64 = 3 * 3600;

/// The status page (HTML).
#[utoipa::path(
    get, path = "/ui", tag = "status",
    responses((
        status = 200,
        description = "The status page: servers, services, utilization, decisions and a chart; \
                       refreshes itself, no JavaScript",
        body = String,
        content_type = "text/html; charset=utf-8",
    )),
)]
pub(super) async fn ui(State(s): State<Arc<ApiState>>) -> Html<String> {
    Html(page(&s.app))
}

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'DejaVu Sans',sans-serif;margin:1.2rem 2rem;color:#1d2430;background:#f7f8fa}
h1{font-size:1.4rem;margin:0 0 .2rem} h2{font-size:1.1rem;margin:1.4rem 0 .5rem}
h3{font-size:1rem;margin:0 0 .4rem}
.muted{color:#667085;font-size:.85rem}
table{border-collapse:collapse;background:#fff;font-size:.9rem;margin-bottom:.4rem}
th,td{border:1px solid #e3e6eb;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}
.up{color:#147a3d;font-weight:600}.down{color:#b42318;font-weight:600}
.svc{background:#fff;border:1px solid #e3e6eb;border-radius:6px;padding:.8rem 1rem;margin:.8rem 0}
.bar{position:relative;width:220px;height:14px;background:#eef1f5;border-radius:3px;display:inline-block;vertical-align:middle}
.bar .fill{position:absolute;left:0;top:0;bottom:0;background:#f79009;border-radius:3px}
.bar .mark{position:absolute;top:-2px;bottom:-2px;width:2px}
.grid{display:flex;flex-wrap:wrap;gap:1.2rem;align-items:flex-start}
svg text{font-size:10px;fill:#667085}
";

/// The whole page for `app` now.
#[must_use]
pub fn page(app: &App) -> String {
    let cfg = app.config();
    let now = app.clock.now();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>shoal status</title><style>{STYLE}</style></head><body>\
         <h1>shoal</h1><div class=\"muted\">version {} · up {} · {} UTC · refreshes every {REFRESH_SECONDS} s · \
         <a href=\"/metrics\">metrics</a> · <a href=\"/openapi.json\">API</a></div>",
        env!("CARGO_PKG_VERSION"),
        human_duration(app.started.elapsed().as_secs()),
        esc(&now.strftime("%Y-%m-%d %H:%M:%S").to_string()),
    );

    // Servers.
    h.push_str(
        "<h2>Servers</h2><table id=\"servers\"><tr><th>server</th><th>host</th><th>state</th>\
         <th>containers</th><th>Docker</th><th>last seen</th></tr>",
    );
    for s in app.fleet.all() {
        let st = s.status();
        let state = if st.up {
            "<span class=\"up\">up</span>".to_owned()
        } else {
            format!(
                "<span class=\"down\">{}</span> <span class=\"muted\">{}</span>",
                st.state.as_str(),
                esc(st.reason.as_deref().unwrap_or(""))
            )
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{state}</td><td>{} / {}</td><td>{}</td><td>{}</td></tr>",
            esc(s.name()),
            esc(&s.config.host.value),
            st.containers,
            *s.config.max_containers,
            esc(st.docker_version.as_deref().unwrap_or("—")),
            esc(st.last_seen.as_deref().unwrap_or("—")),
        );
    }
    h.push_str("</table>");

    // Services.
    h.push_str("<h2>Services</h2>");
    let servers: Vec<String> = app
        .fleet
        .all()
        .iter()
        .map(|s| s.name().to_owned())
        .collect();
    for sample in crate::metrics::service_samples(app) {
        let Some(svc) = cfg.services.get(&sample.name) else {
            continue;
        };
        let st = app.service(&sample.name).map(|rt| rt.snapshot());
        let per_server = st
            .as_ref()
            .map(crate::service::ServiceState::replicas_per_server)
            .unwrap_or_default();
        let window = crate::autoscale::window_state(&cfg, svc, now);
        let id = esc(&sample.name);
        let _ = write!(
            h,
            "<div class=\"svc\" id=\"service-{id}\"><h3>{id} <span class=\"muted\">{} · :{}</span></h3>\
             <div class=\"grid\"><div>",
            esc(&svc.image.value),
            *svc.port,
        );
        // Replicas.
        let _ = write!(
            h,
            "<table><tr><th>replicas</th><td class=\"replicas\"><b>{}</b> ready of <b>{}</b> desired \
             (min {}, max {})</td></tr><tr><th>phases</th><td>",
            sample.ready, sample.desired, sample.min_replicas, sample.max_replicas
        );
        let phases: Vec<String> = crate::metrics::PHASES
            .iter()
            .filter_map(|p| {
                let n = sample.phases.get(p).copied().unwrap_or(0);
                (n > 0).then(|| format!("{p} {n}"))
            })
            .collect();
        h.push_str(&if phases.is_empty() {
            "none".to_owned()
        } else {
            phases.join(", ")
        });
        h.push_str("</td></tr><tr><th>per server</th><td>");
        let placed: Vec<String> = servers
            .iter()
            .map(|s| format!("{} {}", esc(s), per_server.get(s).copied().unwrap_or(0)))
            .collect();
        h.push_str(&placed.join(" · "));
        h.push_str("</td></tr>");
        // Utilization.
        let _ = write!(
            h,
            "<tr><th>utilization</th><td>{}</td></tr>",
            utilization_bar(&sample)
        );
        let _ = write!(
            h,
            "<tr><th>cooldown</th><td>{}</td></tr>",
            if sample.cooldown_remaining == 0 {
                "none".to_owned()
            } else {
                format!("{} s left", sample.cooldown_remaining)
            }
        );
        let window_text = match &window {
            None => "always (business_hours_only: false)".to_owned(),
            Some(w) => format!(
                "{} · next change {}",
                if w.open { "open" } else { "closed" },
                esc(w.next_change_local.as_deref().unwrap_or("never"))
            ),
        };
        let _ = write!(h, "<tr><th>business window</th><td>{window_text}</td></tr>");
        if let Some(r) = st.as_ref().and_then(|s| s.rollout.as_ref()) {
            let _ = write!(
                h,
                "<tr><th>rollout</th><td>to {} · {} replaced, {} to go</td></tr>",
                esc(&r.revision),
                r.replaced,
                r.replace_ids.len()
            );
        }
        if let Some(u) = st.as_ref().and_then(|s| s.update.as_ref()) {
            let _ = write!(
                h,
                "<tr><th>update</th><td>{} of {} · {} · {}/{} replaced{}</td></tr>",
                esc(&format!("{:?}", u.kind).to_lowercase()),
                esc(&u.image),
                u.phase.as_str(),
                u.replaced,
                u.to_replace,
                u.reason
                    .as_deref()
                    .map(|r| format!(" · {}", esc(r)))
                    .unwrap_or_default()
            );
        }
        if let Some(e) = st.as_ref().and_then(|s| s.last_error.as_deref()) {
            let _ = write!(h, "<tr><th>last error</th><td>{}</td></tr>", esc(e));
        }
        h.push_str("</table>");
        // Replicas' last samples.
        if !sample.replicas.is_empty() {
            h.push_str(
                "<table><tr><th>replica</th><th>server</th><th>CPU</th><th>memory</th></tr>",
            );
            for r in &sample.replicas {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{:.1} %</td><td>{:.1} MiB</td></tr>",
                    esc(&r.name),
                    esc(&r.server),
                    r.cpu_percent,
                    r.memory_bytes as f64 / 1_048_576.0
                );
            }
            h.push_str("</table>");
        }
        h.push_str("</div><div>");
        h.push_str(&chart(&sample, &app.metrics.history(&sample.name), now));
        h.push_str("</div></div>");
        // Recent decisions.
        let (events, _) = app.journal.list(&sample.name, 0, 200);
        let decisions: Vec<_> = events
            .iter()
            .filter(|e| e.action.starts_with("scale_"))
            .take(8)
            .collect();
        h.push_str("<h3 style=\"margin-top:.8rem\">Recent decisions</h3>");
        if decisions.is_empty() {
            h.push_str("<div class=\"muted\">none yet</div>");
        } else {
            h.push_str(
                "<table class=\"decisions\"><tr><th>at</th><th>action</th><th>desired</th><th>reason</th></tr>",
            );
            for e in decisions {
                let desired = match (e.desired_before, e.desired_after) {
                    (Some(b), Some(a)) => format!("{b} → {a}"),
                    _ => String::new(),
                };
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{desired}</td><td>{}</td></tr>",
                    esc(e.at.get(..19).unwrap_or(&e.at)),
                    esc(&e.action),
                    esc(&e.reason)
                );
            }
            h.push_str("</table>");
        }
        h.push_str("</div>");
    }
    h.push_str("</body></html>\n");
    h
}

fn human_duration(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// A bar of the utilization with the thresholds (or the target) marked on it.
fn utilization_bar(s: &ServiceSample) -> String {
    let Some(u) = s.utilization else {
        return "<span class=\"muted\">no sample yet</span>".to_owned();
    };
    let scale = 100f64.max(s.scale_up_threshold * 1.25).max(u);
    let pct = |v: f64| (v / scale * 100.0).clamp(0.0, 100.0);
    let mut marks = format!(
        "<span class=\"mark\" style=\"left:{:.1}%;background:#b42318\" title=\"scale up above {}\"></span>\
         <span class=\"mark\" style=\"left:{:.1}%;background:#2e90fa\" title=\"scale down below {}\"></span>",
        pct(s.scale_up_threshold),
        s.scale_up_threshold,
        pct(s.scale_down_threshold),
        s.scale_down_threshold,
    );
    let mut text = format!(
        "{u:.1} % (up above {}, down below {})",
        s.scale_up_threshold, s.scale_down_threshold
    );
    if let Some(t) = s.target_utilization {
        let _ = write!(
            marks,
            "<span class=\"mark\" style=\"left:{:.1}%;background:#147a3d\"></span>",
            pct(t)
        );
        text = format!("{u:.1} % (target {t})");
    }
    format!(
        "<span class=\"bar\"><span class=\"fill\" style=\"width:{:.1}%\"></span>{marks}</span> {text}",
        pct(u)
    )
}

/// An SVG chart of desired and ready replicas (left axis) and utilization (right axis,
/// thresholds dashed) over the last hours.
fn chart(s: &ServiceSample, points: &[Point], now: jiff::Timestamp) -> String {
    const W: f64 = 520.0;
    const H: f64 = 170.0;
    const L: f64 = 30.0;
    const R: f64 = 40.0;
    const T: f64 = 10.0;
    const B: f64 = 22.0;
    let id = esc(&s.name);
    let end = now.as_second();
    let start = points
        .iter()
        .map(|p| p.at.as_second())
        .find(|t| *t >= end - CHART_SPAN_SECONDS)
        .unwrap_or(end)
        .min(end - 60);
    let points: Vec<&Point> = points
        .iter()
        .filter(|p| p.at.as_second() >= start)
        .collect();
    let span = (end - start).max(1) as f64;
    let x = |t: i64| L + (t - start) as f64 / span * (W - L - R);
    let max_rep = f64::from(
        s.max_replicas
            .max(
                points
                    .iter()
                    .map(|p| p.desired.max(p.ready))
                    .max()
                    .unwrap_or(0),
            )
            .max(1),
    );
    let y_rep = |n: u32| T + (1.0 - f64::from(n) / max_rep) * (H - T - B);
    let max_util = points
        .iter()
        .filter_map(|p| p.utilization)
        .fold(100f64.max(s.scale_up_threshold * 1.25), f64::max);
    let y_util = |u: f64| T + (1.0 - u / max_util) * (H - T - B);
    let mut svg = format!(
        "<svg class=\"chart\" id=\"chart-{id}\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" \
         xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"replicas and utilization of {id}\">\
         <rect x=\"{L}\" y=\"{T}\" width=\"{}\" height=\"{}\" fill=\"#fff\" stroke=\"#e3e6eb\"/>",
        W - L - R,
        H - T - B
    );
    // Axes' labels.
    let _ = write!(
        svg,
        "<text x=\"2\" y=\"{:.1}\">{max_rep}</text><text x=\"2\" y=\"{:.1}\">0</text>\
         <text x=\"{:.1}\" y=\"{:.1}\">{max_util:.0}%</text><text x=\"{:.1}\" y=\"{:.1}\">0%</text>\
         <text x=\"{L}\" y=\"{:.1}\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">now</text>",
        T + 8.0,
        H - B,
        W - R + 3.0,
        T + 8.0,
        W - R + 3.0,
        H - B,
        H - 6.0,
        esc(&human_duration(u64::try_from(end - start).unwrap_or(0))) + " ago",
        W - R,
        H - 6.0,
    );
    // Thresholds.
    for (v, color) in [
        (Some(s.scale_up_threshold), "#b42318"),
        (Some(s.scale_down_threshold), "#2e90fa"),
        (s.target_utilization, "#147a3d"),
    ] {
        if let Some(v) = v {
            let y = y_util(v);
            let _ = write!(
                svg,
                "<line x1=\"{L}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{color}\" \
                 stroke-dasharray=\"4 3\" stroke-width=\"1\"/>",
                W - R
            );
        }
    }
    // Series.
    let step = |f: &dyn Fn(&Point) -> u32| {
        let mut d = String::new();
        let mut last: Option<f64> = None;
        for p in &points {
            let (px, py) = (x(p.at.as_second()), y_rep(f(p)));
            match last {
                None => {
                    let _ = write!(d, "{px:.1},{py:.1}");
                }
                Some(ly) => {
                    let _ = write!(d, " {px:.1},{ly:.1} {px:.1},{py:.1}");
                }
            }
            last = Some(py);
        }
        if let Some(ly) = last {
            let _ = write!(d, " {:.1},{ly:.1}", x(end));
        }
        d
    };
    let util: Vec<String> = points
        .iter()
        .filter_map(|p| {
            p.utilization
                .map(|u| format!("{:.1},{:.1}", x(p.at.as_second()), y_util(u)))
        })
        .collect();
    let _ = write!(
        svg,
        "<polyline class=\"utilization\" fill=\"none\" stroke=\"#f79009\" stroke-width=\"1.5\" points=\"{}\"/>\
         <polyline class=\"desired\" fill=\"none\" stroke=\"#1d2430\" stroke-width=\"2\" points=\"{}\"/>\
         <polyline class=\"ready\" fill=\"none\" stroke=\"#147a3d\" stroke-width=\"1.5\" stroke-dasharray=\"5 2\" points=\"{}\"/>",
        util.join(" "),
        step(&|p| p.desired),
        step(&|p| p.ready),
    );
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" style=\"fill:#1d2430\">— desired</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" style=\"fill:#147a3d\">- - ready</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" style=\"fill:#f79009\">— utilization %</text>",
        L + 60.0,
        H - 6.0,
        L + 125.0,
        H - 6.0,
        L + 185.0,
        H - 6.0,
    );
    if points.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\">no evaluation yet</text>",
            L + 10.0,
            H / 2.0
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_chart_draws_every_series_and_the_thresholds() {
        let s = ServiceSample {
            name: "web".into(),
            max_replicas: 4,
            scale_up_threshold: 75.0,
            scale_down_threshold: 25.0,
            ..Default::default()
        };
        let now = jiff::Timestamp::from_second(10_000).unwrap();
        let pts: Vec<Point> = (0..10)
            .map(|i| Point {
                at: jiff::Timestamp::from_second(9_000 + i * 60).unwrap(),
                desired: 1 + (i as u32 / 5),
                ready: 1,
                utilization: Some(10.0 * i as f64),
            })
            .collect();
        let svg = chart(&s, &pts, now);
        assert!(
            svg.starts_with("<svg class=\"chart\" id=\"chart-web\""),
            "{svg}"
        );
        for class in ["utilization", "desired", "ready"] {
            let at = svg.find(&format!("class=\"{class}\"")).expect(class);
            let points = &svg[at..];
            let points = &points[points.find("points=\"").unwrap() + 8..];
            let points = &points[..points.find('"').unwrap()];
            assert!(points.split(' ').count() >= 10, "{class}: {points}");
        }
        assert_eq!(svg.matches("stroke-dasharray=\"4 3\"").count(), 2, "{svg}");
        // Points older than the span are left out; an empty history says so.
        let empty = chart(&s, &[], now);
        assert!(empty.contains("no evaluation yet"), "{empty}");
    }
}
