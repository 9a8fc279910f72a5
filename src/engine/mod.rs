//! The phase 2 engine's machinery: the per-user merge join, the lease lock,
//! run records and checkpoints. The phase itself lives in `phase2`.

pub mod cores;
pub mod leases;
pub mod lock;
pub mod merge;
pub mod plan;
