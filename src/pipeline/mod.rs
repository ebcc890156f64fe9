//! The pipeline core: the operation state machine, the plans of each operation kind,
//! and the worker that runs an environment's operations in order. It does no IO of its
//! own: it talks to the world through the traits in `traits`.

pub mod log;
pub mod model;
pub mod traits;
