//! The clinic example.
fn main() {}
