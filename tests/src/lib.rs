//! cloudkit test bed.
pub mod control_plane;
