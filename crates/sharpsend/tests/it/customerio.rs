//! Customer.io through the real server against its simulator.
