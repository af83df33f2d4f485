//! AAP controller REST API provider.
