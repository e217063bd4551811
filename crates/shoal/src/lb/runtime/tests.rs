//! Unit tests of the runtime-API client: answer parsing, addresses, command checks, and the
//! client against fake sockets.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::exchange::looks_failed;
use super::stat::{parse_stats, split_csv};
use super::state::parse_servers_state;
use super::*;
use crate::lb::{HealthCheck, LbError};

/// `show servers state web_backend` from HAProxy 2.6.12: a config server UP, a dynamic
/// server just added (maintenance, checks not enabled), one failing its check, one
/// with a host name it could not resolve.
const STATE: &str = "1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
4 web_backend 1 s0 127.0.0.1 2 0 1 1 2 15 3 4 6 0 0 0 - 19001 - 0 0 - - 0
4 web_backend 2 d1 127.0.0.1 0 1 1 1 0 1 0 0 2 0 0 0 - 19002 - 0 0 - - 0
4 web_backend 3 d2 127.0.0.1 0 0 1 1 3 17 2 0 6 0 0 0 - 19003 - 0 0 - - 0
4 web_backend 7 h2 - 0 1 1 1 0 1 0 0 0 0 0 0 nonexistent.invalid 19001 - 0 0 - - 0
4 web_backend 4 d3 ::1 2 8 1 1 48 15 3 4 6 0 0 0 - 19002 - 0 0 - - 0

";

#[test]
fn parses_servers_state() {
    let s = parse_servers_state(STATE).unwrap();
    assert_eq!(s.len(), 5);
    assert_eq!(s[0].backend, "web_backend");
    assert_eq!((s[0].backend_id, s[0].id), (4, 1));
    assert_eq!(s[0].name, "s0");
    assert_eq!(s[0].addr, "127.0.0.1");
    assert_eq!(s[0].port, 19001);
    assert_eq!(s[0].op_state, OpState::Running);
    assert_eq!(s[0].admin.state(), AdminState::Ready);
    assert_eq!(s[0].check_result, CheckResult::Passed);
    assert_eq!(s[0].check_status, 15); // L7OK
    assert_eq!(s[0].check_state, 6); // configured and enabled
    assert!(s[0].in_rotation());
    assert!(!s[0].is_maint());
    assert_eq!(s[0].status_word(), "UP");
    assert!(s[0].check_passing(2));

    // A freshly added dynamic server.
    assert_eq!(s[1].op_state, OpState::Stopped);
    assert!(s[1].admin.contains(AdminFlags::FMAINT));
    assert_eq!(s[1].admin.state(), AdminState::Maint);
    assert_eq!(s[1].check_state, 2); // configured, not enabled
    assert_eq!(s[1].check_status, 1); // INI
    assert_eq!(s[1].check_result, CheckResult::Unknown);
    assert!(!s[1].in_rotation());
    assert!(s[1].is_maint());
    assert_eq!(s[1].status_word(), "MAINT");
    assert!(!s[1].check_passing(1));

    assert_eq!(s[2].check_result, CheckResult::Failed);
    assert_eq!(s[2].check_status, 17); // L7STS
    assert!(!s[2].in_rotation());
    assert_eq!(s[2].status_word(), "DOWN");
    assert_eq!(s[2].op_state, OpState::Stopped);

    assert_eq!(s[3].addr, "-");
    assert_eq!(s[3].fqdn.as_deref(), Some("nonexistent.invalid"));
    assert_eq!(s[3].port, 19001);

    assert_eq!(s[4].addr, "::1");
    assert!(s[4].admin.contains(AdminFlags::FDRAIN));
    assert_eq!(s[4].admin.state(), AdminState::Drain);
    assert!(!s[4].in_rotation());
    assert!(!s[4].is_maint());
    assert_eq!(s[4].status_word(), "DRAIN");
    assert_eq!(s[4].since_last_change, Duration::from_secs(48));
}

#[test]
fn empty_backend_parses_to_nothing() {
    let s = parse_servers_state(
        "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n\n",
    )
    .unwrap();
    assert!(s.is_empty());
}

#[test]
fn bad_state_answers_are_parse_errors() {
    assert!(parse_servers_state("").is_err());
    assert!(parse_servers_state("2\n# be_id\n").is_err());
    assert!(parse_servers_state("1\n4 web 1 s0\n").is_err());
    let truncated = STATE.replace(" 19001 - 0 0 - - 0\n4 web_backend 2", "\n4 web_backend 2");
    assert!(parse_servers_state(&truncated).is_err());
}

#[test]
fn admin_flags_follow_haproxy_masks() {
    assert_eq!(AdminFlags(0).state(), AdminState::Ready);
    assert_eq!(AdminFlags(AdminFlags::FMAINT).state(), AdminState::Maint);
    assert_eq!(AdminFlags(AdminFlags::RMAINT).state(), AdminState::Maint);
    assert_eq!(
        AdminFlags(AdminFlags::FMAINT | AdminFlags::FDRAIN).state(),
        AdminState::Maint
    );
    assert_eq!(AdminFlags(AdminFlags::IDRAIN).state(), AdminState::Drain);
    // Configuration-disabled alone and FQDN-changed are not maintenance by themselves.
    assert_eq!(AdminFlags(AdminFlags::CMAINT).state(), AdminState::Ready);
    assert_eq!(AdminFlags(AdminFlags::HMAINT).state(), AdminState::Ready);
}

/// `show stat` from HAProxy 2.6.12 (columns cut after `h1_spliced_bytes_out`).
const STAT: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,
stats,FRONTEND,,,0,0,1000,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,0,,,,0,0,0,0,0,0,,0,0,0,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,0,0,0,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
web_frontend,FRONTEND,,,0,1,1000,10,830,1290,0,0,0,,,,,OPEN,,,,,,,,,1,3,0,,,,0,0,0,10,,,,0,10,0,0,0,0,,0,10,10,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,0,10,10,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,10,10,800,1260,0,0,
web_backend,s0,0,0,0,1,,4,332,516,,0,,0,0,0,0,UP,1,1,0,1,1,74,2,,1,4,1,,4,,2,0,,4,L7OK,200,2,0,4,0,0,0,0,,,,4,0,0,,,,,4,,,0,0,1,33,,,,Layer7 check passed,,2,3,4,,,,127.0.0.1:19001,,http,,,,,,,,0,1,3,,,1,,0,0,2,46,0,0,1,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
web_backend,d2,0,0,2,3,,7,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,61,61,,1,4,3,,0,,2,0,,0,* L7STS,500,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,\"Internal, Server Error\",,0,0,0,0,,,,Layer7 wrong status,,2,3,0,,,,127.0.0.1:19003,,http,,,,,,,,0,0,0,,,0,0,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
web_backend,BACKEND,0,0,0,1,100,10,830,1290,0,0,,0,0,0,0,UP,2,2,0,,1,74,2,,1,4,0,,10,,1,0,,10,,,,0,10,0,0,0,0,,,,10,0,0,0,0,0,0,4,,,0,0,1,14,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,7,3,0,0,,,0,0,2,46,0,,,,,2,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,463,466,60941,11720,0,0,
";

#[test]
fn parses_show_stat() {
    let rows = parse_stats(STAT).unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0].kind, StatKind::Frontend);
    assert_eq!(rows[0].status, "OPEN");
    assert_eq!(rows[0].weight, None);
    let s0 = &rows[2];
    assert_eq!(
        (s0.proxy.as_str(), s0.server.as_str()),
        ("web_backend", "s0")
    );
    assert_eq!(s0.kind, StatKind::Server);
    assert_eq!((s0.scur, s0.qcur, s0.smax, s0.stot), (0, 0, 1, 4));
    assert_eq!(s0.status, "UP");
    assert_eq!(s0.check_status.as_deref(), Some("L7OK"));
    assert_eq!(s0.weight, Some(1));
    let d2 = &rows[3];
    assert_eq!((d2.scur, d2.smax, d2.stot), (2, 3, 7));
    assert_eq!(d2.status, "DOWN");
    // In-progress marker stripped; a quoted field with a comma does not shift columns.
    assert_eq!(d2.check_status.as_deref(), Some("L7STS"));
    assert_eq!(rows[4].kind, StatKind::Backend);
    assert_eq!(rows[4].weight, Some(2));
    assert_eq!(rows[4].stot, 10);
}

#[test]
fn stat_without_header_is_a_parse_error() {
    assert!(parse_stats("web_backend,s0,0\n").is_err());
    assert!(parse_stats("").is_err());
}

#[test]
fn csv_quotes() {
    assert_eq!(split_csv("a,\"b,c\",\"d\"\"e\","), ["a", "b,c", "d\"e", ""]);
}

#[test]
fn runtime_addresses_parse() {
    assert_eq!(
        RuntimeAddr::parse("unix:/run/haproxy/admin.sock").unwrap(),
        RuntimeAddr::Unix("/run/haproxy/admin.sock".into())
    );
    assert_eq!(
        RuntimeAddr::parse("/tmp/a.sock").unwrap(),
        RuntimeAddr::Unix("/tmp/a.sock".into())
    );
    assert_eq!(
        RuntimeAddr::parse("127.0.0.1:9999").unwrap(),
        RuntimeAddr::Tcp {
            host: "127.0.0.1".into(),
            port: 9999
        }
    );
    assert_eq!(
        RuntimeAddr::parse("[::1]:9999").unwrap(),
        RuntimeAddr::Tcp {
            host: "::1".into(),
            port: 9999
        }
    );
    assert_eq!(
        RuntimeAddr::parse("[::1]:9999").unwrap().to_string(),
        "[::1]:9999"
    );
    for bad in [
        "",
        "unix:",
        "haproxy",
        "host:0",
        "host:99999",
        "a b:1",
        ":80",
    ] {
        assert!(
            matches!(RuntimeAddr::parse(bad), Err(LbError::InvalidAddress { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn failure_answers_are_recognised() {
    for a in [
        "No such server.\n\n",
        "No such backend.\n",
        "Can't find backend.\n\n",
        "Unknown command, but maybe one of the following ones is a better match:\n  x\n",
        "Require 'admin' level.\n",
        "Permission denied\n",
        "Only servers in maintenance mode can be deleted.\n",
        "Invalid addr '1.2.3.4.5' by 'stats socket command'\n",
        "invalid port '99999'\n",
        "unknown keyword 'bogus'.\n",
        "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n",
        "Already exists a server with the same name in backend.\n",
        "Server is not in maintenance mode.\n",
    ] {
        assert!(looks_failed(a), "{a:?}");
    }
    for a in [
        "",
        "\n",
        "New server registered.\n\n",
        "Server deleted.\n",
        "Name: HAProxy\nVersion: 2.6.12\n",
        "no need to change the addr, port changed from '1' to '2' by 'stats socket command'\n",
    ] {
        assert!(!looks_failed(a), "{a:?}");
    }
}

fn client(path: &std::path::Path, timeout: Duration) -> HaproxyClient {
    HaproxyClient::new(&format!("unix:{}", path.display()), timeout).unwrap()
}

#[tokio::test]
async fn invalid_names_are_refused_before_connecting() {
    // Nothing listens there: any connection attempt would be a Connect error.
    let c = client(
        std::path::Path::new("/nonexistent/haproxy.sock"),
        Duration::from_secs(1),
    );
    let check = HealthCheck {
        inter: Duration::from_secs(1),
        fall: 3,
        rise: 2,
        timeout: Duration::from_secs(1),
    };
    let invalid = |e: LbError| assert!(matches!(e, LbError::InvalidName { .. }), "{e}");
    for (be, srv) in [
        ("web_backend", "a b"),
        ("web_backend", "a;b"),
        ("a#b", "s1"),
    ] {
        invalid(
            c.register_server(be, srv, "127.0.0.1", 80, &check)
                .await
                .unwrap_err(),
        );
        invalid(c.set_state(be, srv, AdminState::Drain).await.unwrap_err());
        invalid(c.set_addr(be, srv, "127.0.0.1", 80).await.unwrap_err());
        invalid(c.server_stats(be, srv).await.unwrap_err());
        for shutdown_sessions in [false, true] {
            invalid(c.remove(be, srv, shutdown_sessions).await.unwrap_err());
        }
    }
    for be in ["a#b", "a b", ""] {
        invalid(c.servers_state(be).await.unwrap_err());
        invalid(c.backend_stats(be).await.unwrap_err());
    }
    for host in ["1.2.3.4;x", "a b"] {
        let e = c
            .register_server("web_backend", "s1", host, 80, &check)
            .await
            .unwrap_err();
        assert!(
            matches!(e, LbError::InvalidName { what: "host", .. }),
            "{e}"
        );
        let e = c.set_addr("web_backend", "s1", host, 80).await.unwrap_err();
        assert!(
            matches!(e, LbError::InvalidName { what: "host", .. }),
            "{e}"
        );
    }
    let e = c.servers_state("web_backend").await.unwrap_err();
    assert!(matches!(e, LbError::Connect { .. }), "{e}");
}

#[tokio::test]
async fn a_silent_socket_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let c = client(&path, Duration::from_millis(200));
    let start = Instant::now();
    let e = c.servers_state("web_backend").await.unwrap_err();
    assert!(matches!(e, LbError::Timeout { .. }), "{e}");
    assert!(start.elapsed() < Duration::from_secs(2));
    hold.abort();
}

/// A fake runtime API on `path`: records every command, answers `del server` for `busy`
/// with "still has connections" twice then "Server deleted.", for `stuck` always with
/// "still has connections", `set server` and `shutdown sessions` with an empty line, and
/// anything else with "No such server.".
fn fake_runtime_api(
    path: &std::path::Path,
) -> (
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::UnixListener::bind(path).unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    let server = tokio::spawn(async move {
        let mut busy_refusals = 0;
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 1024];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let cmd = String::from_utf8_lossy(&buf[..n]).trim_end().to_owned();
            let still = "Server still has connections attached to it, cannot remove it.\n";
            let answer = if cmd == "del server web_backend/busy" && busy_refusals < 2 {
                busy_refusals += 1;
                still
            } else if cmd == "del server web_backend/busy" {
                "Server deleted.\n"
            } else if cmd == "del server web_backend/stuck" {
                still
            } else if cmd.starts_with("set server") || cmd.starts_with("shutdown sessions") {
                "\n"
            } else {
                "No such server.\n\n"
            };
            log.lock().unwrap().push(cmd);
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    (seen, server)
}

#[tokio::test]
async fn error_answers_become_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.sock");
    let (_seen, server) = fake_runtime_api(&path);
    let c = client(&path, Duration::from_secs(2));
    let e = c.servers_state("web_backend").await.unwrap_err();
    assert!(
        matches!(&e, LbError::Refused { answer, .. } if answer == "No such server."),
        "{e}"
    );
    server.abort();
}

#[tokio::test]
async fn remove_retries_deletion_while_connections_linger() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.sock");
    let (seen, server) = fake_runtime_api(&path);
    let c = client(&path, Duration::from_secs(2));
    let take = || std::mem::take(&mut *seen.lock().unwrap());

    // Maintenance, sessions shut down, then `del server` until HAProxy deletes it.
    c.remove("web_backend", "busy", true).await.unwrap();
    assert_eq!(
        take(),
        [
            "set server web_backend/busy state maint",
            "shutdown sessions server web_backend/busy",
            "del server web_backend/busy",
            "del server web_backend/busy",
            "del server web_backend/busy",
        ]
    );

    // Without shutting sessions down, and HAProxy never letting go: bounded retries, then
    // StillConnected.
    let start = Instant::now();
    let e = c.remove("web_backend", "stuck", false).await.unwrap_err();
    let took = start.elapsed();
    assert!(matches!(e, LbError::StillConnected { .. }), "{e}");
    assert!(took >= crate::timings::DEL_RETRY_FOR, "{took:?}");
    assert!(
        took < crate::timings::DEL_RETRY_FOR + Duration::from_secs(2),
        "{took:?}"
    );
    let cmds = take();
    assert_eq!(cmds[0], "set server web_backend/stuck state maint");
    assert!(cmds.len() > 2, "{cmds:?}");
    assert!(
        cmds[1..]
            .iter()
            .all(|c| c == "del server web_backend/stuck"),
        "{cmds:?}"
    );
    server.abort();
}
