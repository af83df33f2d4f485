//! cloudkit test bed.
