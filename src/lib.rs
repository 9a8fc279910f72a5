//! edn-migrate: move EDN360's legacy collections into one `client_drawers`
//! document per client, in phases, resumably and reversibly.
//!
//! Pure logic (`mapping`, `drawer`) never touches I/O; the `store` module is
//! the only seam to a database; `commands` orchestrate the two.

pub mod drawer;
pub mod extjson;
pub mod mapping;
pub mod redact;
pub mod store;
