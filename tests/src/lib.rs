//! cloudkit test bed.
pub mod aap_sim;
pub mod control_plane;
