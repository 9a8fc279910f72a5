//! Flat questionnaire ↔ ten-block responses (owned by the mapping library work).
