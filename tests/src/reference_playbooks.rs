//! The reference playbooks (`ansible/provision.yml`, `ansible/deprovision.yml`) as what
//! the AAP simulator's templates run: `ansible-playbook` from the pinned environment,
//! acting on the test bed's API server through `K8S_AUTH_KUBECONFIG`.

use std::path::Path;

use crate::aap_sim::PlaybookRun;
use crate::ansible_env::AnsibleEnv;
use crate::rulebook::ansible_dir;

pub const PROVISION_PLAYBOOK: &str = "provision.yml";
pub const DEPROVISION_PLAYBOOK: &str = "deprovision.yml";

/// How a template runs `playbook` (a file in `ansible/`): with the reference inventory,
/// the environment's interpreter (discovery may pick a `python3` without the kubernetes
/// client), `ansible_home` as `ANSIBLE_HOME` and `kubeconfig` as the identity.
pub fn playbook_run(
    env: &AnsibleEnv,
    playbook: &str,
    kubeconfig: &Path,
    ansible_home: &Path,
) -> PlaybookRun {
    let mut run = PlaybookRun::new(&env.ansible_playbook, ansible_dir())
        .arg("-i")
        .arg("inventory.yml")
        .arg("-e")
        .arg(format!(
            "ansible_python_interpreter={}",
            env.python.display()
        ))
        .arg(playbook)
        .env("K8S_AUTH_KUBECONFIG", kubeconfig)
        .env("PYTHONUNBUFFERED", "1");
    for (key, value) in env.envs(ansible_home) {
        run = run.env(key, value);
    }
    run
}
