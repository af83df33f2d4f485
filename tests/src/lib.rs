//! cloudkit test bed.
pub mod aap_sim;
pub mod control_plane;
pub mod bed;
pub mod kubevirt_sim;
pub mod runner_process;
