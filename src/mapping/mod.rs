//! Flat questionnaire ↔ ten-block responses, and typed extraction (profile,
//! measurements). Pure: no I/O, no clock.

mod field_map;
pub mod typed;

use bson::{doc, Bson, Document};

pub use field_map::{FieldMap, FieldMapError, UNMAPPED_BLOCK, UNMAPPED_KEY};
pub use typed::{
    date_millis, doc_id_key, id_key, id_key_ref, parse_date, parse_int, parse_number, Parsed,
};

/// The ten blocks of the TO BE questionnaire, in their canonical order.
pub const BLOCKS: [&str; 10] = [
    "personal_data",
    "measurements",
    "health",
    "work_life",
    "sports_background",
    "availability",
    "daily_schedule",
    "nutrition_habits",
    "goals",
    "additional_info",
];

/// The text profile fields copied verbatim from the latest submission
/// (`edad` is derived as an integer).
pub const PROFILE_TEXT_FIELDS: [&str; 7] = [
    "nombre_completo",
    "email",
    "fecha_nacimiento",
    "sexo",
    "profesion",
    "telefono",
    "whatsapp",
];

/// The flat keys of the initial measurement's `data` (plan section 9).
pub const INITIAL_MEASUREMENT_FIELDS: [&str; 3] = ["peso", "altura_cm", "grasa_porcentaje"];

/// What a warning is about. Stable snake_case names (`as_str`) for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WarningKind {
    /// A flat key with no row in the field map; kept under `additional_info.unmapped`.
    UnmappedField,
    /// A value that should be a number (or an age, or a date) and is not: null instead.
    UnparsableValue,
    /// The user has several initial submissions: earliest is `inicial`, profile from the latest.
    SeveralInitialSubmissions,
    /// The user has plans or follow-ups but no questionnaire: drawer `needs_review`.
    NoQuestionnaire,
    /// A nutrition plan paired with no training plan; listed without a snapshot.
    UnpairedNutritionPlan,
    /// A follow-up's `previous_plan_id` matched no snapshot; linked by date.
    FollowupLinkedByDate,
    /// A follow-up linked to no snapshot at all.
    FollowupUnlinked,
    /// A drawer field that dual-write (or the new system) already filled was kept.
    ExistingValueKept,
    /// An entry that dual-write already wrote under the same key was kept as is.
    ExistingEntryKept,
    /// The drawer is still over the size limit after archiving every snapshot it may.
    DrawerTooLarge,
}

impl WarningKind {
    /// Every kind, for parsing.
    pub const ALL: [WarningKind; 10] = [
        WarningKind::UnmappedField,
        WarningKind::UnparsableValue,
        WarningKind::SeveralInitialSubmissions,
        WarningKind::NoQuestionnaire,
        WarningKind::UnpairedNutritionPlan,
        WarningKind::FollowupLinkedByDate,
        WarningKind::FollowupUnlinked,
        WarningKind::ExistingValueKept,
        WarningKind::ExistingEntryKept,
        WarningKind::DrawerTooLarge,
    ];

    /// The stable name used in reports and in `meta.migration.warnings`.
    pub fn as_str(self) -> &'static str {
        match self {
            WarningKind::UnmappedField => "unmapped_field",
            WarningKind::UnparsableValue => "unparsable_value",
            WarningKind::SeveralInitialSubmissions => "several_initial_submissions",
            WarningKind::NoQuestionnaire => "no_questionnaire",
            WarningKind::UnpairedNutritionPlan => "unpaired_nutrition_plan",
            WarningKind::FollowupLinkedByDate => "followup_linked_by_date",
            WarningKind::FollowupUnlinked => "followup_unlinked",
            WarningKind::ExistingValueKept => "existing_value_kept",
            WarningKind::ExistingEntryKept => "existing_entry_kept",
            WarningKind::DrawerTooLarge => "drawer_too_large",
        }
    }

    /// The kind named by [`WarningKind::as_str`].
    pub fn parse(name: &str) -> Option<WarningKind> {
        WarningKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for WarningKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A warning: what, in which source document, at which field path. Never a value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Warning {
    pub kind: WarningKind,
    /// The source document's `_id` as an id key (see [`id_key`]), or the drawer path.
    pub source_id: String,
    /// A field path (`responses.edad`, `measurements.peso`), or `""`.
    pub field: String,
}

impl Warning {
    pub fn new(kind: WarningKind, source_id: impl Into<String>, field: impl Into<String>) -> Self {
        Warning {
            kind,
            source_id: source_id.into(),
            field: field.into(),
        }
    }

    /// The form kept in `meta.migration.warnings`.
    pub fn to_document(&self) -> Document {
        doc! { "kind": self.kind.as_str(), "source_id": &self.source_id, "field": &self.field }
    }

    /// Reads the form of [`Warning::to_document`]; `None` when it is not one.
    pub fn from_document(d: &Document) -> Option<Warning> {
        Some(Warning {
            kind: WarningKind::parse(d.get_str("kind").ok()?)?,
            source_id: d.get_str("source_id").ok()?.to_owned(),
            field: d.get_str("field").ok()?.to_owned(),
        })
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} in {}", self.kind, self.source_id)?;
        if !self.field.is_empty() {
            write!(f, " at {}", self.field)?;
        }
        Ok(())
    }
}

/// Typed number or null, recording a warning for unparsable values.
fn number_or_null(
    value: Option<&Bson>,
    source_id: &str,
    field: &str,
    warnings: &mut Vec<Warning>,
) -> Bson {
    match parse_number(value) {
        Parsed::Value(x) => Bson::Double(x),
        Parsed::Missing => Bson::Null,
        Parsed::Unparsable => {
            warnings.push(Warning::new(WarningKind::UnparsableValue, source_id, field));
            Bson::Null
        }
    }
}

/// The profile fields a submission's flat responses give: the text fields
/// verbatim (null when absent), `fecha_nacimiento` as a BSON date and `edad`
/// as an integer (each null, plus a warning, when present but not parsable).
/// `created_at`/`updated_at` are the builder's business.
pub fn profile_from_responses(flat: &Document, source_id: &str) -> (Document, Vec<Warning>) {
    let mut warnings = Vec::new();
    let mut profile = Document::new();
    for field in ["nombre_completo", "email"] {
        profile.insert(field, flat.get(field).cloned().unwrap_or(Bson::Null));
    }
    let born = match parse_date(flat.get("fecha_nacimiento")) {
        Parsed::Value(d) => Bson::DateTime(d),
        Parsed::Missing => Bson::Null,
        Parsed::Unparsable => {
            warnings.push(Warning::new(
                WarningKind::UnparsableValue,
                source_id,
                "responses.fecha_nacimiento",
            ));
            Bson::Null
        }
    };
    profile.insert("fecha_nacimiento", born);
    let edad = match parse_int(flat.get("edad")) {
        Parsed::Value(n) => Bson::Int32(n),
        Parsed::Missing => Bson::Null,
        Parsed::Unparsable => {
            warnings.push(Warning::new(
                WarningKind::UnparsableValue,
                source_id,
                "responses.edad",
            ));
            Bson::Null
        }
    };
    profile.insert("edad", edad);
    for field in ["sexo", "profesion", "telefono", "whatsapp"] {
        profile.insert(field, flat.get(field).cloned().unwrap_or(Bson::Null));
    }
    (profile, warnings)
}

/// The `data` of an initial measurement: `peso`, `altura_cm`, `grasa_porcentaje`
/// as numbers (null when absent or unparsable; unparsable adds a warning).
pub fn initial_measurement_data(flat: &Document, source_id: &str) -> (Document, Vec<Warning>) {
    let mut warnings = Vec::new();
    let mut data = Document::new();
    for field in INITIAL_MEASUREMENT_FIELDS {
        let v = number_or_null(
            flat.get(field),
            source_id,
            &format!("responses.{field}"),
            &mut warnings,
        );
        data.insert(field, v);
    }
    (data, warnings)
}

/// The `data` of a follow-up measurement: every key of the follow-up's
/// `measurements`, as a number (null when empty or unparsable; unparsable adds a warning).
pub fn followup_measurement_data(
    measurements: &Document,
    source_id: &str,
) -> (Document, Vec<Warning>) {
    let mut warnings = Vec::new();
    let mut data = Document::new();
    for (key, value) in measurements {
        let v = number_or_null(
            Some(value),
            source_id,
            &format!("measurements.{key}"),
            &mut warnings,
        );
        data.insert(key.clone(), v);
    }
    (data, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_types_edad_and_keeps_text_verbatim() {
        let flat = doc! { "nombre_completo": "Ana", "edad": " 34 ", "telefono": "600" };
        let (p, w) = profile_from_responses(&flat, "s1");
        assert_eq!(p.get("edad"), Some(&Bson::Int32(34)));
        assert_eq!(p.get("nombre_completo"), Some(&Bson::from("Ana")));
        assert_eq!(p.get("email"), Some(&Bson::Null));
        assert!(w.is_empty());
    }

    #[test]
    fn birth_dates_become_bson_dates_and_odd_ones_a_warning() {
        let (p, w) = profile_from_responses(&doc! { "fecha_nacimiento": "1988-06-21" }, "s1");
        assert_eq!(
            p.get("fecha_nacimiento"),
            Some(&Bson::DateTime(bson::DateTime::from_millis(
                582_854_400_000
            )))
        );
        assert!(w.is_empty());
        let (p, w) = profile_from_responses(&doc! { "fecha_nacimiento": "21 de junio" }, "s1");
        assert_eq!(p.get("fecha_nacimiento"), Some(&Bson::Null));
        assert_eq!(
            w,
            vec![Warning::new(
                WarningKind::UnparsableValue,
                "s1",
                "responses.fecha_nacimiento"
            )]
        );
    }

    #[test]
    fn unparsable_edad_is_null_with_a_warning_naming_field_and_submission() {
        let (p, w) = profile_from_responses(&doc! { "edad": "treinta" }, "s1");
        assert_eq!(p.get("edad"), Some(&Bson::Null));
        assert_eq!(
            w,
            vec![Warning::new(
                WarningKind::UnparsableValue,
                "s1",
                "responses.edad"
            )]
        );
        assert!(!w[0].to_string().contains("treinta"));
    }

    #[test]
    fn measurement_data_is_numeric() {
        let (d, w) =
            initial_measurement_data(&doc! { "peso": "85,5", "altura_cm": "1,78 m" }, "s1");
        assert_eq!(
            d,
            doc! { "peso": 85.5, "altura_cm": Bson::Null, "grasa_porcentaje": Bson::Null }
        );
        assert_eq!(
            w,
            vec![Warning::new(
                WarningKind::UnparsableValue,
                "s1",
                "responses.altura_cm"
            )]
        );
    }

    #[test]
    fn warnings_round_trip_through_documents() {
        for kind in WarningKind::ALL {
            let w = Warning::new(kind, "x", "y");
            assert_eq!(Warning::from_document(&w.to_document()), Some(w));
        }
    }
}
