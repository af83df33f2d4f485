//! The pinned Ansible environment installs (first run only) and its programs run.

use std::process::Command;

use cloudkit_testbed::ansible_env;

fn version_of(program: &std::path::Path, env: &ansible_env::AnsibleEnv) -> String {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(program)
        .arg("--version")
        .envs(env.envs(home.path()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} --version: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_pinned_tools_run() {
    let env = ansible_env::ensure().unwrap();
    assert!(version_of(&env.ansible_playbook, &env).contains("ansible-playbook [core 2.19"));
    assert!(version_of(&env.ansible_rulebook, &env).contains("1.3.2"));
    assert!(!version_of(&env.ansible_runner, &env).trim().is_empty());
    // kubernetes.core is in the ansible package: the playbooks' modules are there.
    let home = tempfile::tempdir().unwrap();
    let doc = Command::new(env.dir.join("bin").join("ansible-doc"))
        .args(["-t", "module", "kubernetes.core.k8s", "--json"])
        .envs(env.envs(home.path()))
        .output()
        .unwrap();
    assert!(
        doc.status.success(),
        "{}",
        String::from_utf8_lossy(&doc.stderr)
    );
}

#[test]
fn java_is_new_enough_for_the_rulebook() {
    ansible_env::require_java().unwrap();
}
