//! Iterable through the real server against its simulator.
