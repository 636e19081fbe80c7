//! The unified code cache (being written).
