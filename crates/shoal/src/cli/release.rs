//! `shoal deploy` and `shoal rollback`: start the update, then (with `--watch`, and always
//! for a rollback) follow it until it ends: pulls per server and replicas replaced, redrawn
//! in place on a terminal, one line per change otherwise. Exit 4 when the update was rolled
//! back or failed.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use super::{service_path, Client, Failure};
use crate::api::model::{UpdateBody, UpdateInfo, UpdateState};

/// Exit code of an update that was rolled back or failed.
pub const EXIT_ROLLED_BACK: u8 = 4;

/// How often the update's progress is read.
const POLL: Duration = Duration::from_millis(500);

impl Client {
    async fn send_update(
        &self,
        path: &str,
        body: Option<&UpdateBody>,
    ) -> Result<UpdateInfo, Failure> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.post(&url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        self.read(req, &url).await
    }

    fn fail(&self, f: Failure) -> ExitCode {
        match f {
            Failure::Unreachable(m) => {
                eprintln!("error: {m} (is `shoal serve` running? set --api or SHOAL_API)");
                ExitCode::from(3)
            }
            Failure::Api(401, m) => {
                eprintln!("error (401): {m} (set SHOAL_API_TOKEN)");
                ExitCode::from(1)
            }
            Failure::Api(code, m) => {
                eprintln!("error ({code}): {m}");
                ExitCode::from(1)
            }
        }
    }
}

/// `shoal deploy SERVICE [--all] [--image X] [--watch]`.
pub async fn deploy(
    c: &Client,
    service: &str,
    all: bool,
    image: Option<String>,
    watch: bool,
) -> ExitCode {
    let path = match service_path(service, if all { "/rolling-update" } else { "/deploy" }) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let body = image.map(|i| UpdateBody { image: Some(i) });
    match c.send_update(&path, body.as_ref()).await {
        Ok(u) if watch => follow(c, service, u).await,
        Ok(u) => {
            if c.json {
                println!("{}", serde_json::to_string_pretty(&u).unwrap_or_default());
            } else {
                print!("{}", summary(&u));
                println!(
                    "follow with `shoal deploy {service} --watch` or `shoal events {service}`"
                );
            }
            ExitCode::SUCCESS
        }
        Err(f) => c.fail(f),
    }
}

/// `shoal rollback SERVICE [--no-watch]`.
pub async fn rollback(c: &Client, service: &str, watch: bool) -> ExitCode {
    let path = match service_path(service, "/rollback") {
        Ok(p) => p,
        Err(code) => return code,
    };
    match c.send_update(&path, None).await {
        Ok(u) if watch => follow(c, service, u).await,
        Ok(u) => {
            print!("{}", summary(&u));
            ExitCode::SUCCESS
        }
        Err(f) => c.fail(f),
    }
}

/// Follows the update until it ends, printing its progress.
async fn follow(c: &Client, service: &str, mut u: UpdateInfo) -> ExitCode {
    let tty = std::io::stdout().is_terminal() && !c.json;
    let mut printer = Printer::new(tty);
    let Ok(path) = service_path(service, "/update") else {
        return ExitCode::from(2);
    };
    loop {
        if !c.json {
            printer.show(&u, &mut std::io::stdout().lock());
        }
        if !u.running {
            break;
        }
        tokio::time::sleep(POLL).await;
        let url = format!("{}{path}", c.base);
        match c.read::<UpdateInfo>(c.http.get(&url), &url).await {
            Ok(next) if next.started_at == u.started_at => u = next,
            Ok(_) => {
                eprintln!("error: another update replaced this one");
                return ExitCode::from(1);
            }
            Err(f) => return c.fail(f),
        }
    }
    if c.json {
        println!("{}", serde_json::to_string_pretty(&u).unwrap_or_default());
    }
    match u.phase {
        UpdateState::Done => ExitCode::SUCCESS,
        _ => {
            if !c.json {
                eprintln!(
                    "{service}: update {}: {}",
                    phase_word(u.phase),
                    u.reason.as_deref().unwrap_or("no reason recorded")
                );
            }
            ExitCode::from(EXIT_ROLLED_BACK)
        }
    }
}

fn phase_word(p: UpdateState) -> &'static str {
    match p {
        UpdateState::Pulling => "pulling",
        UpdateState::Rolling => "rolling",
        UpdateState::RollingBack => "rolling back",
        UpdateState::Done => "done",
        UpdateState::RolledBack => "rolled back",
        UpdateState::Failed => "failed",
    }
}

/// The update in a few lines: what to what, each server's pull, replicas replaced.
fn lines(u: &UpdateInfo) -> Vec<String> {
    let rev = |r: &Option<crate::api::model::RevisionInfo>| {
        r.as_ref().map_or_else(
            || "-".to_owned(),
            |r| format!("{} ({})", r.id, crate::release::short_image_id(&r.image_id)),
        )
    };
    let mut out = vec![format!(
        "{} {}: {} {} -> {}",
        u.service,
        u.kind.replace('_', " "),
        phase_word(u.phase),
        rev(&u.from),
        if u.to.is_some() {
            rev(&u.to)
        } else {
            u.image.clone()
        }
    )];
    for p in &u.pulls {
        let mut l = format!("  pull {:<12} {}", p.server, p.state);
        if let Some(s) = p.seconds {
            l.push_str(&format!(" {s:.1}s"));
        }
        if let Some(e) = &p.error {
            l.push_str(&format!(": {e}"));
        }
        out.push(l);
    }
    if u.phase != UpdateState::Pulling {
        out.push(format!(
            "  replicas replaced {}/{}{}",
            u.replaced,
            u.to_replace,
            if u.phase == UpdateState::RollingBack || u.phase == UpdateState::RolledBack {
                " (rolling back)"
            } else {
                ""
            }
        ));
    }
    if let Some(r) = &u.reason {
        out.push(format!("  reason: {r}"));
    }
    out
}

fn summary(u: &UpdateInfo) -> String {
    lines(u).into_iter().map(|l| l + "\n").collect()
}

/// Redraws the block in place on a terminal; elsewhere prints each line that changed.
struct Printer {
    tty: bool,
    shown: Vec<String>,
}

impl Printer {
    fn new(tty: bool) -> Self {
        Self {
            tty,
            shown: Vec::new(),
        }
    }

    fn show(&mut self, u: &UpdateInfo, out: &mut impl Write) {
        let now = lines(u);
        if self.tty {
            if now == self.shown {
                return;
            }
            // Up over the block drawn last, clearing each line.
            for _ in 0..self.shown.len() {
                let _ = write!(out, "\x1b[1A\x1b[2K");
            }
            for l in &now {
                let _ = writeln!(out, "{l}");
            }
        } else {
            for l in now.iter().filter(|l| !self.shown.contains(l)) {
                let _ = writeln!(out, "{l}");
            }
        }
        let _ = out.flush();
        self.shown = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::model::PullInfo;

    fn update(phase: UpdateState) -> UpdateInfo {
        UpdateInfo {
            service: "web".into(),
            kind: "rolling_update".into(),
            phase,
            running: true,
            image: "reg:5000/web:v2".into(),
            pulls: vec![PullInfo {
                server: "s1".into(),
                state: "pulled".into(),
                seconds: Some(1.25),
                error: None,
                image_id: Some("sha256:abcdef0123456789".into()),
            }],
            from: None,
            to: None,
            to_replace: 3,
            replaced: 1,
            reason: None,
            started_at: "t".into(),
            finished_at: None,
        }
    }

    #[test]
    fn a_terminal_redraws_the_block_and_a_pipe_gets_each_new_line_once() {
        let mut first = update(UpdateState::Rolling);
        let mut second = first.clone();
        second.replaced = 2;
        let mut tty = Printer::new(true);
        let mut out = Vec::new();
        tty.show(&first, &mut out);
        tty.show(&first, &mut out); // unchanged: nothing drawn
        let once = String::from_utf8(out.clone()).unwrap();
        assert!(!once.contains('\x1b'), "{once:?}");
        tty.show(&second, &mut out);
        let text = String::from_utf8(out).unwrap();
        // Up and clear over the three lines drawn, then the block again.
        assert_eq!(text.matches("\x1b[1A\x1b[2K").count(), 3, "{text:?}");
        assert!(text.ends_with("  replicas replaced 2/3\n"), "{text:?}");

        let mut pipe = Printer::new(false);
        let mut out = Vec::new();
        pipe.show(&first, &mut out);
        first.pulls[0].state = "pulled".into();
        pipe.show(&first, &mut out);
        pipe.show(&second, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains('\x1b'), "{text:?}");
        assert_eq!(
            text.lines().count(),
            4,
            "three lines, then the one that changed: {text}"
        );
        assert!(text.ends_with("  replicas replaced 2/3\n"), "{text:?}");
    }

    #[test]
    fn progress_lines_name_each_pull_and_the_replicas_replaced() {
        let l = lines(&update(UpdateState::Rolling));
        assert_eq!(l[0], "web rolling update: rolling - -> reg:5000/web:v2");
        assert!(
            l[1].contains("pull s1") && l[1].contains("pulled 1.2s"),
            "{l:?}"
        );
        assert_eq!(l[2], "  replicas replaced 1/3");
        let mut back = update(UpdateState::RolledBack);
        back.reason = Some("new replica x failed".into());
        let l = lines(&back);
        assert!(l.iter().any(|x| x.ends_with("(rolling back)")), "{l:?}");
        assert!(
            l.iter().any(|x| x.contains("reason: new replica x failed")),
            "{l:?}"
        );
    }
}
