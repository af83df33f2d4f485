//! `testbed up` leaves no process behind after SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cloudkit_testbed::runner_process::workspace_binary;

/// Every descendant of `pid`, from /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // Field 4 (after the parenthesised command name) is the parent pid.
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1)?.parse::<u32>().ok());
            if ppid == Some(parent) {
                all.push(child);
                frontier.push(child);
            }
        }
    }
    all
}

fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // A zombie ("Z") has exited; it only waits to be reaped.
    !stat.is_empty()
        && stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            != Some("Z")
}

#[test]
fn up_stops_everything_on_sigterm() {
    let printed = up_then_sigterm(&["up", "--job-duration", "1s"], 3);
    assert!(printed.contains("kubectl cloudkit"), "{printed}");
}

/// `up --eda` runs the real ansible-rulebook beside the rest, and stops it too.
#[test]
fn up_eda_runs_the_real_rulebook_and_stops_it() {
    let printed = up_then_sigterm(&["up", "--eda"], 4);
    assert!(printed.contains("provider: EDA"), "{printed}");
    assert!(printed.contains("ansible-rulebook.log"), "{printed}");
}

/// Runs `testbed ARGS`, waits for its instructions, checks that at least `processes`
/// children run, sends SIGTERM and checks that it exits cleanly leaving none behind.
/// Returns what it printed.
fn up_then_sigterm(args: &[&str], processes: usize) -> String {
    let bin = workspace_binary("cloudkit-testbed", "testbed").expect("testbed builds");
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("testbed starts");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if line.contains("Ctrl-C stops everything") {
            break;
        }
    }
    assert!(printed.contains("export KUBECONFIG="), "{printed}");
    let children = descendants(child.id());
    assert!(
        children.len() >= processes,
        "etcd, kube-apiserver, the runner (and ansible-rulebook) run: {children:?}"
    );
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "testbed did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    std::thread::sleep(Duration::from_millis(500));
    let left: Vec<_> = children.into_iter().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
    printed
}
