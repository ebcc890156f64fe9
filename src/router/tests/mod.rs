//! Tests of the router over real HTTP on loopback.
