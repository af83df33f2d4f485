//! cloudkit shared types.
