//! edn-migrate: move EDN360's legacy collections into one `client_drawers`
//! document per client, in phases, resumably and reversibly.
//!
//! Pure logic (`mapping`, `drawer`) never touches I/O; `store` is the only
//! seam to a database; the phase modules orchestrate the two, one module per
//! command family, each with one entry function.

pub mod backup;
pub mod config;
pub mod confirm;
pub mod drawer;
pub mod dump;
pub mod encoded;
pub mod engine;
pub mod error;
pub mod extjson;
pub mod flags;
pub mod gates;
pub mod mapping;
pub mod phase0;
pub mod phase1;
pub mod phase2;
pub mod phase3;
pub mod phase4;
pub mod private;
pub mod redact;
pub mod rehearse;
pub mod report;
pub mod restart;
pub mod rollback;
pub mod run;
pub mod status;
pub mod store;
pub mod toggle;
pub mod transfer;
