//! How long tests wait for a state before they fail. Each bounds a hang, never a speed:
//! no test asserts that something was quick, so a loaded machine makes them slower, not
//! red.

use std::time::Duration;

/// A simulator's own change, in process: a job's state, a run's end, a request seen.
pub const SIMULATOR: Duration = Duration::from_secs(10);
/// kubectl and the plugin seeing a status the test wrote itself.
pub const PLUGIN: Duration = Duration::from_secs(30);
/// The runner, on the bed's control plane, bringing an instance to a state.
pub const RUNNER: Duration = Duration::from_secs(60);
/// Several namespaces, tenants or runner versions in one test.
pub const SEVERAL: Duration = Duration::from_secs(90);
/// Ansible from the test venv (playbooks, awx.awx, awxkit) against the simulators.
pub const ANSIBLE: Duration = Duration::from_secs(120);
/// The shipped playbooks and ansible-rulebook end to end, KubeVirt simulated: each run
/// starts ansible-playbook and several Python modules, 10-25 s on a loaded machine.
pub const REAL_ANSIBLE: Duration = Duration::from_secs(180);
