//! Drawer builder and validator (owned by the mapping library work).
