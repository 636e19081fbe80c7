//! The `vmjit` command line (being written).
fn main() {}
