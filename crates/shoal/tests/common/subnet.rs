//! A /24 for a test's network namespace, reserved among concurrent test processes.

use std::path::PathBuf;

use super::cmd::stdout_of;

/// Picks a /24 of 10.77.0.0/16 (third octet 20..=219, starting at pid % 200 + 20) that no
/// address or route on the machine uses and no other live test process has reserved. The
/// reservation is a directory `/tmp/shoal-netns-10.77.N` holding the owner's pid (created
/// atomically; a dead owner's is taken over).
pub fn reserve_subnet(pid: u32) -> (u32, PathBuf) {
    let used = format!(
        "{}\n{}",
        stdout_of("ip", &["-4", "addr"]),
        stdout_of("ip", &["-4", "route"])
    );
    for i in 0..200u32 {
        let octet = (pid % 200 + i) % 200 + 20;
        let marker = PathBuf::from(format!("/tmp/shoal-netns-10.77.{octet}"));
        let owner_alive = |m: &PathBuf| {
            std::fs::read_to_string(m.join("pid")).map_or(true, |p| {
                let p = p.trim();
                p.is_empty() || std::path::Path::new(&format!("/proc/{p}")).exists()
            })
        };
        if std::fs::create_dir(&marker).is_err() {
            if owner_alive(&marker) {
                continue;
            }
            let _ = std::fs::remove_dir_all(&marker);
            if std::fs::create_dir(&marker).is_err() {
                continue;
            }
        }
        std::fs::write(marker.join("pid"), pid.to_string()).expect("write reservation");
        if used.contains(&format!("10.77.{octet}.")) {
            let _ = std::fs::remove_dir_all(&marker);
            continue;
        }
        return (octet, marker);
    }
    panic!("no free /24 in 10.77.0.0/16");
}
