//! cloudkit test bed.
pub mod aap_sim;
pub mod ansible_env;
pub mod bed;
pub mod bench;
pub mod control_plane;
pub mod deletion;
pub mod demo;
pub mod eda_sim;
pub mod krew;
pub mod kubevirt_sim;
pub mod observe;
pub mod release;
pub mod rulebook;
pub mod runner_process;
mod sim_server;
pub mod stack;
pub mod tenants;
