//! Tests of the router over real HTTP on loopback: real backends, a real router, real
//! client connections; every wait has a deadline and none is a fixed sleep.

mod pooling;
mod proxying;
mod routing;
mod support;
mod switching;
