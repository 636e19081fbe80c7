//! The VM engine (being written).
