//! Synthetic legacy EDN360 data for benchmarks.
//!
//! ```text
//! cargo run --release --example gen_legacy -- --users 100000 --seed 1 OUT_DIR
//! ```
//!
//! writes `OUT_DIR/test_database/<collection>.jsonl` (and, with `--drawers P`,
//! `OUT_DIR/edn360_app/client_drawers.jsonl`) in the line format of
//! `edn-migrate import`: one relaxed Extended JSON document per line, each file
//! sorted by `_id`. The shapes follow `fixtures/legacy` (see its README).
//!
//! Streaming: users are generated one at a time, in order, and every document
//! goes straight to its collection's `BufWriter`. Ids are zero-padded counters
//! (strings) or counter-based ObjectIds, so generation order is `_id` order and
//! nothing has to be sorted or buffered. Memory does not grow with `--users`.
//!
//! Deterministic: each user draws from its own PRNG stream seeded from
//! `--seed` and the user's number, so the same seed gives byte-identical files,
//! and `--drawers` / `--jobs` add files without changing the others.
//!
//! About 10.7 documents per user (without `--jobs`): 1 user, 1 submission
//! (10% of users have 2-3), 2-3 follow-ups, 3 training plans, 3 nutrition plans.
//! Edge cases, by share of documents or users:
//! - submissions: 0.1% without `user_id`, 0.1% with `responses` as a string,
//!   1% `edad: ""`, 5% with 1-2 unmapped keys, ~30% comma decimals;
//! - training plans: 5% in the `e1_output … e12_output` layout; 3% of users
//!   have plans whose `_id` order is the reverse of `generated_at` order;
//! - nutrition plans: ~10% without `job_id` within 30 min of their training
//!   plan, ~2% without `job_id` and days away from any training plan;
//! - follow-ups: 1% name an unknown `previous_plan_id`, 2% have it null.
//!
//! `--varied` is the benchmark's harder shape (about 18 documents per user):
//! six plans of each kind, five or six follow-ups, 50% of submissions with
//! unmapped keys, 20% with an unparsable number, 10% `edad: ""`.

#![recursion_limit = "256"]

use bson::oid::ObjectId;
use bson::{doc, Bson, DateTime, Document};
use chrono::Datelike;
use clap::Parser;
use edn_migrate::extjson;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Generate a synthetic legacy EDN360 dataset for `edn-migrate import`.
#[derive(Parser, Debug)]
#[command(name = "gen_legacy")]
struct Args {
    /// Number of clients (user documents) to generate.
    #[arg(long)]
    users: u64,
    /// PRNG seed; the same seed gives byte-identical output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Percent of users (0-100) that already have a dual-write drawer in
    /// edn360_app.client_drawers.
    #[arg(long, default_value_t = 0.0)]
    drawers: f64,
    /// Also write generation_jobs (one per training plan).
    #[arg(long)]
    jobs: bool,
    /// A harder shape for benchmarks: six plans per user (and five or six
    /// follow-ups), half the submissions with unmapped keys, a fifth with a
    /// number the mapping cannot parse, 10% `edad: ""`. The default shape's
    /// files are unchanged without it.
    #[arg(long)]
    varied: bool,
    /// Output directory (created if missing; existing files are overwritten).
    out_dir: PathBuf,
}

/// `--varied`, read where the traps are drawn.
static VARIED: AtomicBool = AtomicBool::new(false);

fn varied() -> bool {
    VARIED.load(Ordering::Relaxed)
}

/// A trap's probability: the default shape's, or the varied shape's.
fn rate(default: f64, varied_rate: f64) -> f64 {
    if varied() {
        varied_rate
    } else {
        default
    }
}

// ---------------------------------------------------------------- PRNG

/// splitmix64: tiny, fast, good enough for test data, and stable forever.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// A stream for one (seed, user, purpose) triple, independent of the others.
    fn stream(seed: u64, user: u64, salt: u64) -> Self {
        let mut r = Rng(seed ^ 0x5851_f42d_4c95_7f2d);
        let a = r.next_u64();
        let mut r = Rng(a ^ user.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let b = r.next_u64();
        Rng::new(b ^ salt.wrapping_mul(0xd6e8_feb8_6659_fd93))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is irrelevant here.
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `p` (0.0..=1.0).
    fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64) < p * (1u64 << 53) as f64
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

// ---------------------------------------------------------------- vocabulary

const FIRST_F: &[&str] = &[
    "Ana", "Lucía", "María", "Elena", "Sara", "Carmen", "Marta", "Laura", "Natalia", "Rocío",
    "Paula", "Irene", "Cristina", "Beatriz", "Nuria", "Silvia", "Alba", "Julia", "Noelia", "Inés",
];
const FIRST_M: &[&str] = &[
    "Javier", "Carlos", "Pablo", "Diego", "Alberto", "Raúl", "Sergio", "Andrés", "Iván", "David",
    "Jorge", "Manuel", "Álvaro", "Rubén", "Adrián", "Hugo", "Óscar", "Víctor", "Tomás", "Gonzalo",
];
const SURNAMES: &[&str] = &[
    "García",
    "López",
    "Martín",
    "Ruiz",
    "Fernández",
    "Gil",
    "Sánchez",
    "Prieto",
    "Rodríguez",
    "Vidal",
    "Gómez",
    "Herrero",
    "Torres",
    "Marín",
    "Navarro",
    "Campos",
    "Molina",
    "Reyes",
    "Jiménez",
    "Soto",
    "Ortega",
    "Blanco",
    "Castro",
    "Medina",
    "Ramos",
    "Iglesias",
    "Delgado",
    "Pastor",
    "Vega",
    "Santos",
    "Herrera",
    "Lozano",
    "Morales",
    "Cano",
    "Suárez",
    "Peña",
    "Cabrera",
    "Fuentes",
    "Alonso",
    "Ríos",
    "Lorenzo",
    "Gallego",
    "Muñoz",
    "Romero",
    "Díaz",
];
const PROFESSIONS: &[&str] = &[
    "Enfermera",
    "Ingeniero de software",
    "Profesora",
    "Jefe de ventas",
    "Administrativo",
    "Abogada",
    "Camarero",
    "Periodista",
    "Médico",
    "Arquitecta",
    "Comercial",
    "Autónomo",
    "Conductor",
    "Estudiante",
    "Diseñadora gráfica",
    "Policía",
    "Fisioterapeuta",
    "Contable",
];
const MEDICATIONS: &[&str] = &[
    "Ninguno",
    "Ninguno",
    "Ninguno",
    "Eutirox 50",
    "Metformina 850 mg",
    "Ibuprofeno ocasional",
    "Anticonceptivos",
    "Enalapril 10 mg",
];
const ALLERGIES: &[&str] = &[
    "Ninguna",
    "Ninguna",
    "Lactosa",
    "Gluten",
    "Frutos secos",
    "Marisco",
    "Polen",
];
const CHRONIC: &[&str] = &["No", "No", "No", "Asma leve", "Hipotiroidismo", "Migrañas"];
const HERNIAS: &[&str] = &["No", "No", "No", "Protusión L4-L5", "Hernia cervical"];
const HYPERTENSION: &[&str] = &["No", "No", "No", "Sí, controlada"];
const DIABETES: &[&str] = &["No", "No", "No", "No", "Tipo 2", "Prediabetes"];
const LEVEL3: &[&str] = &["Bajo", "Medio", "Alto"];
const WORK_MOVE: &[&str] = &[
    "Sentado la mayor parte del día",
    "De pie",
    "Camino bastante",
    "Trabajo físico",
];
const ACTIVITY: &[&str] = &["Baja", "Moderada", "Alta"];
const SPORTS: &[&str] = &[
    "No",
    "Natación en el colegio",
    "Sí, fútbol hasta los 20",
    "Baloncesto",
    "Running",
    "Pádel los fines de semana",
    "Ciclismo",
];
const YES_NO: &[&str] = &["Sí", "No"];
const QUALITY: &[&str] = &["Baja", "Regular", "Media", "Buena"];
const SESSION_MIN: &[&str] = &["30", "45", "60", "75", "90"];
const TIME_OF_DAY: &[&str] = &["Mañana", "Mediodía", "Tarde", "Noche"];
const HOME_KIT: &[&str] = &[
    "Nada",
    "Mancuernas",
    "Mancuernas y bandas elásticas",
    "Esterilla",
    "Bicicleta estática",
];
const WAKE: &[&str] = &[
    "06:00", "06:30", "07:00", "07:15", "07:45", "08:00", "09:00",
];
const BREAKFAST: &[&str] = &["07:00", "07:15", "08:00", "08:30", "09:30", "10:00"];
const LUNCH: &[&str] = &["13:30", "14:00", "14:30", "15:00", "15:30"];
const DINNER: &[&str] = &["20:00", "20:30", "21:00", "21:30", "22:00"];
const BED: &[&str] = &["22:30", "23:00", "23:30", "00:00", "00:30"];
const SLEEP_H: &[&str] = &["5", "6", "6,5", "7", "7,5", "8", "9"];
const MEALS: &[&str] = &["3", "4", "5", "6"];
const DISLIKED: &[&str] = &[
    "Coliflor",
    "Berenjena",
    "Hígado",
    "Pescado azul",
    "Setas",
    "Aceitunas",
    "Ninguno",
];
const FAVORITE: &[&str] = &[
    "Paella",
    "Tortilla de patatas",
    "Lentejas",
    "Pasta",
    "Sushi",
    "Cocido",
    "Hamburguesa",
    "Ensalada de pollo",
];
const DIETS: &[&str] = &[
    "Ninguna",
    "Ayuno intermitente 16/8",
    "Keto en 2022, sin éxito",
    "Dieta de la zona",
    "Contar calorías con app",
    "Nutricionista hace 2 años",
];
const EATS_OUT: &[&str] = &[
    "Nunca",
    "1 vez por semana",
    "2-3 veces por semana",
    "A diario por trabajo",
];
const SUGAR: &[&str] = &["Casi nunca", "A veces", "A menudo", "Todos los días"];
const GOALS: &[&str] = &[
    "Perder grasa",
    "Ganar masa muscular",
    "Recomposición corporal",
    "Mejorar salud",
    "Rendimiento deportivo",
];
const CONSISTENCY: &[&str] = &[
    "Nunca he sido constante",
    "Constante 6 meses",
    "Entreno desde hace años",
    "Lo dejo a las pocas semanas",
];
const MOTIVATION: &[&str] = &[
    "Salud y verme mejor",
    "Rendir en mi trabajo",
    "Una boda en verano",
    "Recomendación médica",
    "Sentirme con energía",
];
const COMMENTS: &[&str] = &[
    "",
    "",
    "",
    "",
    "Prefiero rutinas cortas",
    "Viajo mucho por trabajo",
    "Tengo turnos rotativos",
    "Me cuesta desayunar",
];
const UNMAPPED: &[(&str, &[&str])] = &[
    (
        "lesiones_previas",
        &["Esguince de tobillo", "Rotura de menisco 2019", "Ninguna"],
    ),
    ("suplementacion", &["Creatina", "Proteína whey", "Ninguna"]),
    ("ciclo_menstrual", &["Regular", "Irregular", "No aplica"]),
    (
        "como_nos_conociste",
        &["Instagram", "Recomendación de una amiga", "Google"],
    ),
];

const EXERCISES: &[(&str, &str, i32)] = &[
    ("Sentadilla goblet", "10-12", 4),
    ("Press banca", "8", 4),
    ("Remo con mancuerna", "12", 3),
    ("Press militar", "10", 3),
    ("Peso muerto rumano", "10", 3),
    ("Hip thrust", "10", 4),
    ("Zancadas", "12 por pierna", 3),
    ("Plancha", "30 s", 3),
    ("Dominadas asistidas", "6-8", 4),
    ("Jalón al pecho", "10-12", 3),
    ("Curl de bíceps", "12", 3),
    ("Extensión de tríceps", "12", 3),
    ("Elevaciones laterales", "15", 3),
    ("Prensa de piernas", "12", 4),
    ("Face pull", "15", 3),
    ("Puente de glúteo", "15", 3),
];
const SESSION_NAMES: &[&str] = &[
    "Torso",
    "Pierna",
    "Full body",
    "Empuje",
    "Tirón",
    "Core y cardio",
];
const EXERCISE_NOTES: &[&str] = &[
    "Controlar la bajada en 3 s",
    "Mantener la espalda neutra",
    "Subir carga si completas todas las series",
    "Sin bloquear rodillas",
];
const WEEKDAYS: &[&str] = &[
    "lunes",
    "martes",
    "miércoles",
    "jueves",
    "viernes",
    "sábado",
    "domingo",
];
const FOODS: &[&str] = &[
    "Avena con leche",
    "Tostada integral con tomate",
    "Yogur natural",
    "Fruta de temporada",
    "Pechuga de pollo",
    "Arroz integral",
    "Ensalada verde",
    "Merluza al horno",
    "Huevos revueltos",
    "Legumbres",
    "Frutos secos (30 g)",
    "Verduras salteadas",
    "Patata cocida",
    "Queso fresco",
];

// ---------------------------------------------------------------- dates

/// 2024-01-01T00:00:00Z.
const START_2024: i64 = 1_704_067_200;
/// 2025-06-01T00:00:00Z: latest user creation, so every document stays in 2025.
const LAST_CREATED: i64 = 1_748_736_000;
const MIN: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

fn date(secs: i64) -> DateTime {
    DateTime::from_millis(secs * 1000)
}

fn ymd(secs: i64) -> (i32, u32, u32) {
    let d = chrono::DateTime::from_timestamp(secs, 0)
        .expect("timestamp in range")
        .date_naive();
    (d.year(), d.month(), d.day())
}

// ---------------------------------------------------------------- ids

const USER_ID_BASE: u64 = 1_730_000_000_000_000;
const STRING_ID_BASE: u64 = 1_700_000_000_000_000;
/// Unknown plan ids named by follow-ups: below every generated plan id.
const UNKNOWN_PLAN_BASE: u64 = 1_690_000_000_000_000;

/// Per-collection counters: string order of the ids equals generation order.
#[derive(Default)]
struct Counters {
    user: u64,
    submission: u64,
    followup: u64,
    training: u64,
    nutrition: u64,
    job: u64,
}

fn string_id(prefix: &str, n: u64) -> String {
    format!("{prefix}_{:016}", STRING_ID_BASE + n)
}

/// ObjectId whose hex order is `n`'s order: fixed timestamp (2024-01-01),
/// three tag bytes, then `n` big-endian in the last five bytes.
fn counter_oid(tag: &[u8; 3], n: u64) -> ObjectId {
    let mut b = [0u8; 12];
    b[..4].copy_from_slice(&(START_2024 as u32).to_be_bytes());
    b[4..7].copy_from_slice(tag);
    b[7..].copy_from_slice(&n.to_be_bytes()[3..]);
    ObjectId::from_bytes(b)
}

// ---------------------------------------------------------------- output

struct Sink {
    name: &'static str,
    path: PathBuf,
    w: BufWriter<File>,
    docs: u64,
    bytes: u64,
    bson_bytes: u64,
    scratch: Vec<u8>,
}

impl Sink {
    fn create(dir: &Path, name: &'static str) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        let path = dir.join(format!("{name}.jsonl"));
        let w = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        Ok(Sink {
            name,
            path,
            w,
            docs: 0,
            bytes: 0,
            bson_bytes: 0,
            scratch: Vec::new(),
        })
    }

    fn write(&mut self, doc: &Document) -> std::io::Result<()> {
        let line = extjson::to_line(doc);
        self.w.write_all(line.as_bytes())?;
        self.w.write_all(b"\n")?;
        self.docs += 1;
        self.bytes += line.len() as u64 + 1;
        self.scratch.clear();
        doc.to_writer(&mut self.scratch)
            .map_err(std::io::Error::other)?;
        self.bson_bytes += self.scratch.len() as u64;
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<(u64, u64)> {
        self.w.flush()?;
        eprintln!(
            "{:<36} {:>9} docs {:>13} bytes  (avg BSON {:>5} B)  {}",
            self.name,
            self.docs,
            self.bytes,
            self.bson_bytes.checked_div(self.docs).unwrap_or(0),
            self.path.display()
        );
        Ok((self.docs, self.bytes))
    }
}

struct Sinks {
    users: Sink,
    submissions: Sink,
    followups: Sink,
    training: Sink,
    nutrition: Sink,
    jobs: Option<Sink>,
    drawers: Option<Sink>,
}

// ---------------------------------------------------------------- documents

/// The person behind one user: fixed across all their documents.
struct Person {
    user_id: String,
    name: String,
    email: String,
    woman: bool,
    birth: (i32, u32, u32),
    phone: String,
    profession: &'static str,
    weight: f64,
    height: i64,
    fat: f64,
    waist: f64,
    hip: f64,
    goal: &'static str,
    days: i64,
    comma: bool,
}

fn ascii_fold(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'á' | 'Á' => 'a',
            'é' | 'É' => 'e',
            'í' | 'Í' => 'i',
            'ó' | 'Ó' => 'o',
            'ú' | 'Ú' | 'ü' => 'u',
            'ñ' | 'Ñ' => 'n',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// "83,2" (comma decimal, as the form sends it) or "83" when whole.
fn comma(x: f64) -> String {
    let s = format!("{x:.1}");
    match s.strip_suffix(".0") {
        Some(whole) => whole.to_string(),
        None => s.replace('.', ","),
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn person(rng: &mut Rng, n: u64) -> Person {
    let woman = rng.chance(0.55);
    let first = if woman {
        rng.pick(FIRST_F)
    } else {
        rng.pick(FIRST_M)
    };
    let s1 = rng.pick(SURNAMES);
    let s2 = rng.pick(SURNAMES);
    let height = if woman {
        rng.range(150, 180)
    } else {
        rng.range(160, 198)
    };
    let bmi = 19.0 + rng.range(0, 150) as f64 / 10.0;
    let weight = round1(bmi * (height as f64 / 100.0).powi(2));
    let fat = round1(if woman { 20.0 } else { 12.0 } + rng.range(0, 180) as f64 / 10.0);
    Person {
        user_id: (USER_ID_BASE + n).to_string(),
        name: format!("{first} {s1} {s2}"),
        email: format!("{}.{}.{n}@example.com", ascii_fold(first), ascii_fold(s1)),
        woman,
        birth: (
            rng.range(1960, 2004) as i32,
            rng.range(1, 12) as u32,
            rng.range(1, 28) as u32,
        ),
        phone: format!(
            "+34 6{:02} {:03} {:03}",
            rng.below(100),
            rng.below(1000),
            rng.below(1000)
        ),
        profession: rng.pick(PROFESSIONS),
        weight,
        height,
        fat,
        waist: round1(weight * 0.85 + rng.range(0, 100) as f64 / 10.0),
        hip: round1(weight * 0.9 + 25.0 + rng.range(0, 100) as f64 / 10.0),
        goal: rng.pick(GOALS),
        days: rng.range(2, 6),
        comma: rng.chance(0.3),
    }
}

fn age_at(p: &Person, secs: i64) -> i32 {
    let (y, m, d) = ymd(secs);
    let (by, bm, bd) = p.birth;
    y - by - i32::from((m, d) < (bm, bd))
}

fn number_str(p: &Person, x: f64) -> String {
    if p.comma {
        comma(x)
    } else {
        format!("{}", x.round() as i64)
    }
}

/// The 50 flat keys of the plan's `field_mapping` (section 4.3), in the
/// fixture's order, all strings as the web form sends them.
fn responses(rng: &mut Rng, p: &Person, at: i64, weight: f64) -> Document {
    let (by, bm, bd) = p.birth;
    let edad = if rng.chance(rate(0.01, 0.10)) {
        String::new()
    } else {
        age_at(p, at).to_string()
    };
    let mut r = doc! {
        "nombre_completo": &p.name,
        "email": &p.email,
        "fecha_nacimiento": format!("{by:04}-{bm:02}-{bd:02}"),
        "edad": edad,
        "sexo": if p.woman { "Mujer" } else { "Hombre" },
        "profesion": p.profession,
        "telefono": &p.phone,
        "whatsapp": &p.phone,
        "peso": number_str(p, weight),
        "altura_cm": p.height.to_string(),
        "grasa_porcentaje": number_str(p, p.fat),
        "cintura_cm": number_str(p, p.waist),
        "cadera_cm": number_str(p, p.hip),
        "medicamentos": rng.pick(MEDICATIONS),
        "alergias_intolerancias": rng.pick(ALLERGIES),
        "enfermedad_cronica": rng.pick(CHRONIC),
        "hernias_protusiones": rng.pick(HERNIAS),
        "hipertension": rng.pick(HYPERTENSION),
        "diabetes": rng.pick(DIABETES),
        "estres_profesion": rng.pick(LEVEL3),
        "movimiento_trabajo": rng.pick(WORK_MOVE),
        "horas_trabajo": rng.range(4, 12).to_string(),
        "actividad_fisica_diaria": rng.pick(ACTIVITY),
        "practicado_deporte": rng.pick(SPORTS),
        "entrenado_gimnasio": rng.pick(YES_NO),
        "resistencia_cardiorespiratoria": rng.pick(QUALITY),
        "fuerza": rng.pick(QUALITY),
        "flexibilidad": rng.pick(QUALITY),
        "dias_semana_entrenar": p.days.to_string(),
        "tiempo_sesion": rng.pick(SESSION_MIN),
        "entrena_manana_tarde": rng.pick(TIME_OF_DAY),
        "gimnasio": rng.pick(YES_NO),
        "material_casa": rng.pick(HOME_KIT),
        "hora_levanta": rng.pick(WAKE),
        "hora_desayuno": rng.pick(BREAKFAST),
        "hora_comida": rng.pick(LUNCH),
        "hora_cena": rng.pick(DINNER),
        "hora_acuesta": rng.pick(BED),
        "horas_duerme": rng.pick(SLEEP_H),
        "comidas_dia": rng.pick(MEALS),
        "alimento_no_soporta": rng.pick(DISLIKED),
        "comida_favorita": rng.pick(FAVORITE),
        "dietas_anteriores": rng.pick(DIETS),
        "come_fuera_casa": rng.pick(EATS_OUT),
        "azucar_dulces_bolleria": rng.pick(SUGAR),
        "objetivo_fisico": p.goal,
        "experiencia_ejercicio_constante": rng.pick(CONSISTENCY),
        "nivel_energia_dia": rng.pick(LEVEL3),
        "motiva_ejercicio": rng.pick(MOTIVATION),
        "comentarios_adicionales": rng.pick(COMMENTS),
    };
    if rng.chance(rate(0.05, 0.5)) {
        let first = rng.below(UNMAPPED.len() as u64) as usize;
        let count = 1 + rng.below(2) as usize;
        for k in 0..count {
            let (key, values) = UNMAPPED[(first + k) % UNMAPPED.len()];
            r.insert(key, rng.pick(values));
        }
    }
    if varied() && rng.chance(0.2) {
        let field = rng.pick(&["peso", "altura_cm", "grasa_porcentaje", "cintura_cm"]);
        r.insert(field, rng.pick(&["unos 70", "n/s", "1,75 m", "?"]));
    }
    r
}

struct Submission {
    id: String,
    at: i64,
    first: bool,
}

fn submission_doc(rng: &mut Rng, p: &Person, s: &Submission, plan_id: Option<&str>) -> Document {
    let weight = if s.first {
        p.weight
    } else {
        round1(p.weight - rng.range(0, 40) as f64 / 10.0)
    };
    let answers = responses(rng, p, s.at, weight);
    let mut d = Document::new();
    d.insert("_id", &s.id);
    if !rng.chance(0.001) {
        d.insert("user_id", &p.user_id);
    }
    if rng.chance(0.001) {
        d.insert("responses", extjson::document_to_json(&answers).to_string());
    } else {
        d.insert("responses", answers);
    }
    d.insert("submitted_at", date(s.at));
    d.insert("plan_generated", plan_id.is_some());
    d.insert("plan_id", plan_id.map_or(Bson::Null, Bson::from));
    d
}

struct Plan {
    training_id: String,
    nutrition_id: String,
    job_id: String,
    job_n: u64,
    at: i64,
    /// 1-based position in `generated_at` order.
    month_index: i32,
}

fn exercise(rng: &mut Rng) -> Document {
    let (name, reps, series) = EXERCISES[rng.below(EXERCISES.len() as u64) as usize];
    let mut e = doc! {
        "nombre": name,
        "series": series,
        "repeticiones": reps,
        "descanso_s": rng.pick(&[60_i32, 75, 90, 120]),
        "rpe": 6.5 + rng.range(0, 6) as f64 * 0.5,
    };
    if rng.chance(0.3) {
        e.insert("notas", rng.pick(EXERCISE_NOTES));
    }
    e
}

fn training_doc(rng: &mut Rng, p: &Person, plan: &Plan, legacy_layout: bool) -> Document {
    let (year, month, _) = ymd(plan.at);
    let level = rng.pick(&["principiante", "intermedio", "avanzado"]);
    let sessions: Vec<Bson> = (0..p.days.max(3))
        .map(|i| {
            let count = rng.range(3, 5);
            Bson::Document(doc! {
                "dia": (i + 1) as i32,
                "nombre": SESSION_NAMES[(i as usize) % SESSION_NAMES.len()],
                "calentamiento_min": 10_i32,
                "ejercicios": (0..count).map(|_| Bson::Document(exercise(rng))).collect::<Vec<_>>(),
            })
        })
        .collect();
    let injuries: Vec<Bson> = match rng.below(4) {
        0 => vec!["lumbar".into()],
        1 => vec!["rodilla".into(), "hombro".into()],
        _ => vec![],
    };
    let weekly_sets = 30 + rng.below(30) as i32;
    let adjustments: Vec<Bson> = if plan.month_index > 1 {
        vec!["Subir volumen 10%".into()]
    } else {
        vec![]
    };
    let outputs: [(&str, Bson); 12] = [
        (
            "client_summary",
            Bson::Document(doc! {
                "objetivo": p.goal,
                "nivel": level,
                "resumen": format!("Cliente con {} días disponibles", p.days),
            }),
        ),
        (
            "profile",
            Bson::Document(doc! {
                "peso_kg": round1(p.weight - plan.month_index as f64 * 0.8),
                "altura_cm": p.height as f64,
                "edad": age_at(p, plan.at),
            }),
        ),
        (
            "constraints",
            Bson::Document(doc! {
                "lesiones": injuries,
                "material": ["mancuernas", "barra", "polea"],
            }),
        ),
        (
            "prehab",
            Bson::Document(doc! {
                "ejercicios": ["Movilidad de cadera", "Activación glúteo", "Rotaciones torácicas"],
                "minutos": 10_i32,
            }),
        ),
        (
            "progress",
            Bson::Document(doc! {
                "mes": plan.month_index,
                "tendencia": rng.pick(&["mejorando", "estable", "empeorando"]),
            }),
        ),
        (
            "capacity",
            Bson::Document(doc! {
                "volumen_semanal_series": weekly_sets,
                "rpe_objetivo": 7.0 + rng.below(3) as f64 * 0.5,
            }),
        ),
        (
            "adaptation",
            Bson::Document(doc! {
                "ajustes": adjustments,
            }),
        ),
        (
            "mesocycle",
            Bson::Document(doc! {
                "semanas": 4_i32,
                "fases": [
                    { "semana": 1_i32, "intensidad": "media" },
                    { "semana": 2_i32, "intensidad": "media" },
                    { "semana": 3_i32, "intensidad": "alta" },
                    { "semana": 4_i32, "intensidad": "descarga" },
                ],
            }),
        ),
        ("sessions", Bson::Array(sessions)),
        (
            "safe_sessions",
            Bson::Document(doc! { "validadas": true, "sesiones": p.days.max(3) as i32 }),
        ),
        ("audit", Bson::Document(doc! { "ok": true, "avisos": [] })),
        (
            "bridge_for_nutrition",
            Bson::Document(doc! {
                "gasto_entreno_kcal": (250 + rng.below(250)) as f64,
                "dias_entreno": p.days as i32,
            }),
        ),
    ];
    let mut d = doc! {
        "_id": &plan.training_id,
        "user_id": &p.user_id,
        "job_id": &plan.job_id,
        "generated_at": date(plan.at),
        "month": month as i32,
        "year": year,
        "status": "completed",
    };
    for (k, (name, value)) in outputs.into_iter().enumerate() {
        if legacy_layout {
            d.insert(format!("e{}_output", k + 1), value);
        } else {
            d.insert(name, value);
        }
    }
    d
}

fn nutrition_doc(
    rng: &mut Rng,
    p: &Person,
    plan: &Plan,
    job_id: Option<&str>,
    at: i64,
) -> Document {
    let weight = round1(p.weight - plan.month_index as f64 * 0.8);
    let tmb = (10.0 * weight + 6.25 * p.height as f64 - 5.0 * age_at(p, at) as f64
        + if p.woman { -161.0 } else { 5.0 })
    .round();
    let get = (tmb * 1.55).round();
    let delta: i32 = match p.goal {
        "Perder grasa" => -400,
        "Ganar masa muscular" => 250,
        _ => 0,
    };
    let kcal = get + delta as f64;
    let protein = (weight * 1.8).round();
    let fat = (weight * 0.9).round();
    let carbs = round1((kcal - protein * 4.0 - fat * 9.0).max(100.0) / 4.0);
    let training_days = p.days as usize;
    let dias: Vec<Bson> = WEEKDAYS
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let tipo = if i < training_days {
                "entreno"
            } else if i == 6 {
                "libre"
            } else {
                "descanso"
            };
            Bson::Document(doc! { "dia": *d, "tipo": tipo })
        })
        .collect();
    let comidas: Vec<Bson> = [
        ("08:00", "Desayuno"),
        ("11:00", "Media mañana"),
        ("14:00", "Comida"),
        ("18:00", "Merienda"),
        ("21:00", "Cena"),
    ]
    .iter()
    .map(|(hora, nombre)| {
        let foods: Vec<Bson> = (0..2).map(|_| Bson::from(rng.pick(FOODS))).collect();
        Bson::Document(doc! { "hora": *hora, "nombre": *nombre, "alimentos": foods })
    })
    .collect();
    let mut d = Document::new();
    d.insert("_id", &plan.nutrition_id);
    d.insert("user_id", &p.user_id);
    if let Some(job) = job_id {
        d.insert("job_id", job);
    }
    d.insert("generated_at", date(at));
    d.insert(
        "profile",
        doc! { "peso_kg": weight, "actividad": rng.pick(&["sedentaria", "ligera", "moderada", "alta"]) },
    );
    d.insert(
        "metabolism",
        doc! { "tmb_kcal": tmb, "get_kcal": get, "formula": "Mifflin-St Jeor" },
    );
    d.insert(
        "energy_strategy",
        doc! { "deficit_superavit_kcal": delta, "kcal_objetivo": kcal },
    );
    d.insert(
        "macro_design",
        doc! { "proteina_g": protein, "grasa_g": fat, "carbohidratos_g": carbs },
    );
    d.insert("weekly_structure", doc! { "dias": dias });
    d.insert("timing_plan", doc! { "comidas": comidas });
    d.insert(
        "adherence_report",
        doc! { "riesgo": rng.pick(&["bajo", "medio", "alto"]), "notas": ["Planificar comidas fuera de casa"] },
    );
    d.insert("audit", doc! { "ok": true, "avisos": [] });
    d
}

fn followup_doc(
    rng: &mut Rng,
    p: &Person,
    id: String,
    at: i64,
    previous: Bson,
    since: i64,
    month_index: i32,
) -> Document {
    let weight = p.weight - month_index as f64 * 0.8 + rng.range(-5, 5) as f64 / 10.0;
    let kind = rng.below(20);
    let (measurement_type, measurements) = match kind {
        0..=9 => (
            "smart_scale",
            doc! {
                "peso": comma(round1(weight)),
                "grasa_porcentaje": comma(round1(p.fat - month_index as f64 * 0.4)),
                "cintura_cm": comma(round1(p.waist - month_index as f64 * 0.7)),
            },
        ),
        10..=16 => (
            "tape",
            doc! {
                "peso": comma(round1(weight)),
                "cintura_cm": comma(round1(p.waist - month_index as f64 * 0.7)),
                "cadera_cm": comma(round1(p.hip - month_index as f64 * 0.5)),
            },
        ),
        _ => ("none", Document::new()),
    };
    let planned = p.days * 4;
    doc! {
        "_id": id,
        "user_id": &p.user_id,
        "submission_date": date(at),
        "previous_plan_id": previous,
        "days_since_last_plan": (since / DAY) as i32,
        "measurement_type": measurement_type,
        "measurements": measurements,
        "adherence": {
            "entrenamientos_completados": format!("{} de {planned}", rng.range(planned / 2, planned)),
            "adherencia_dieta": format!("{}%", 50 + rng.below(11) * 5),
            "comidas_saltadas": rng.pick(&["Ninguna", "Cenas del fin de semana", "Algún desayuno"]),
        },
        "wellbeing": {
            "energia": rng.pick(&["Baja", "Media", "Alta"]),
            "sueno": rng.pick(&["Duermo bien", "Me despierto cansado", "Insomnio ocasional"]),
            "estres": rng.pick(LEVEL3),
            "molestias": rng.pick(&["Ninguna", "Lumbares tras peso muerto", "Rodilla derecha"]),
        },
        "changes_perceived": {
            "fuerza": rng.pick(&["Igual", "Mejor", "Mucho mejor"]),
            "ropa": rng.pick(&["Igual", "Me queda más holgada", "Más ajustada en hombros"]),
            "animo": rng.pick(&["Igual", "Más motivado", "Algo desanimado"]),
        },
        "feedback": {
            "comentarios": rng.pick(&["Muy contento con el plan", "Las sesiones son algo largas", ""]),
            "dificultades": rng.pick(&["Ninguna", "Cumpleaños y comidas familiares", "Viajes de trabajo"]),
        },
    }
}

fn drawer_doc(p: &Person, submission: &Document, at: i64) -> Document {
    doc! {
        "_id": format!("client_{}", p.user_id),
        "user_id": &p.user_id,
        "profile": {
            "nombre_completo": &p.name,
            "email": &p.email,
            "fecha_nacimiento": null,
            "edad": null,
            "sexo": null,
            "profesion": null,
            "telefono": null,
            "whatsapp": null,
            "created_at": date(at),
            "updated_at": date(at),
        },
        "services": {
            "shared_questionnaires": [{
                "submission_id": submission.get("_id").cloned().unwrap_or(Bson::Null),
                "submitted_at": date(at),
                "source": "nutrition_initial",
                "raw_payload": submission.clone(),
            }],
            "training": {
                "active": false,
                "questionnaires": { "inicial": null, "followups": [] },
                "measurements": [],
                "snapshots": [],
                "plans": [],
            },
            "nutrition": { "active": false, "plans": [] },
        },
        "meta": {
            "created_at": date(at),
            "updated_at": date(at),
            "active_services": [],
            "has_archived_snapshots": false,
            "status": "active",
        },
    }
}

// ---------------------------------------------------------------- one user

const STREAM_DATA: u64 = 1;
const STREAM_DRAWER: u64 = 2;

fn user(args: &Args, n: u64, ids: &mut Counters, out: &mut Sinks) -> std::io::Result<()> {
    let mut rng = Rng::stream(args.seed, n, STREAM_DATA);
    let p = person(&mut rng, n);
    let created = START_2024 + rng.range(0, LAST_CREATED - START_2024);

    // users
    ids.user += 1;
    out.users.write(&doc! {
        "_id": counter_oid(b"usr", ids.user),
        "user_id": &p.user_id,
        "email": &p.email,
        "name": &p.name,
        "role": "client",
        "created_at": date(created),
    })?;

    // Timeline: questionnaire, then three monthly plans, follow-ups in between.
    let first_sub = created + rng.range(10 * MIN, 3 * DAY);
    let count = if varied() { 6 } else { 3 };
    let mut plan_at = vec![0i64; count];
    plan_at[0] = first_sub + rng.range(2 * HOUR, 4 * DAY);
    for k in 1..count {
        plan_at[k] = plan_at[k - 1] + rng.range(28 * DAY, 35 * DAY);
    }
    // Plans: ids in generation order; 3% of users get dates in reverse id order.
    let reversed = rng.chance(0.03);
    let plans: Vec<Plan> = (0..count)
        .map(|k| {
            let chrono_k = if reversed { count - 1 - k } else { k };
            ids.training += 1;
            ids.nutrition += 1;
            ids.job += 1;
            Plan {
                training_id: string_id("training", ids.training),
                nutrition_id: string_id("nutrition", ids.nutrition),
                job_id: format!("job_{:016}", STRING_ID_BASE + ids.job),
                job_n: ids.job,
                at: plan_at[chrono_k],
                month_index: chrono_k as i32 + 1,
            }
        })
        .collect();
    let chrono_plan = |k: usize| &plans[if reversed { count - 1 - k } else { k }];

    // Submissions: 10% of users send the form again (2-3 in all).
    let extra = if rng.chance(0.10) {
        1 + rng.below(2) as usize
    } else {
        0
    };
    let mut sub_dates: Vec<(i64, bool)> = vec![(first_sub, true)];
    for at in plan_at.iter().take(extra) {
        sub_dates.push((at + rng.range(10 * DAY, 20 * DAY), false));
    }
    if extra > 0 && rng.chance(0.5) {
        sub_dates.reverse(); // file order is not date order
    }
    let mut first_valid: Option<(Document, i64)> = None;
    for (at, first) in sub_dates {
        ids.submission += 1;
        let s = Submission {
            id: string_id("submission", ids.submission),
            at,
            first,
        };
        let plan_id = first.then(|| chrono_plan(0).training_id.as_str());
        let d = submission_doc(&mut rng, &p, &s, plan_id);
        let valid = d.contains_key("user_id") && d.get_document("responses").is_ok();
        if valid && first_valid.is_none() {
            first_valid = Some((d.clone(), at));
        }
        out.submissions.write(&d)?;
    }

    // Follow-ups: 2-3, each ~25 days after a plan, naming it.
    let followups = count - 1 + rng.below(2) as usize;
    for k in 0..followups {
        let plan = chrono_plan(k);
        let since = rng.range(24 * DAY, 27 * DAY);
        let at = plan.at + since;
        let previous = match rng.below(1000) {
            0..=9 => Bson::from(format!(
                "training_{:016}",
                UNKNOWN_PLAN_BASE + rng.below(1_000_000_000)
            )),
            10..=29 => Bson::Null,
            _ => Bson::from(&plan.training_id),
        };
        ids.followup += 1;
        let id = string_id("followup", ids.followup);
        let d = followup_doc(&mut rng, &p, id, at, previous, since, plan.month_index);
        out.followups.write(&d)?;
    }

    // Training plans, then their nutrition plans, in id order.
    for plan in &plans {
        let legacy_layout = rng.chance(0.05);
        let d = training_doc(&mut rng, &p, plan, legacy_layout);
        out.training.write(&d)?;
        if let Some(jobs) = out.jobs.as_mut() {
            jobs.write(&doc! {
                "_id": counter_oid(b"job", plan.job_n),
                "job_id": &plan.job_id,
                "user_id": &p.user_id,
                "type": "full_plan",
                "status": "completed",
                "created_at": date(plan.at - 3 * MIN),
            })?;
        }
    }
    for plan in &plans {
        let r = rng.below(100);
        let (job, at) = match r {
            // no job_id, days away from any training plan: unpaired
            0..=1 => (None, plan.at + rng.range(3 * DAY, 10 * DAY)),
            // no job_id, within 30 minutes of its training plan
            2..=11 => (None, plan.at + rng.range(0, 30 * MIN)),
            _ => (Some(plan.job_id.as_str()), plan.at + 2 * MIN),
        };
        let d = nutrition_doc(&mut rng, &p, plan, job, at);
        out.nutrition.write(&d)?;
    }

    // Dual-write drawer, from its own stream so the legacy files don't change.
    if let Some(drawers) = out.drawers.as_mut() {
        let mut drng = Rng::stream(args.seed, n, STREAM_DRAWER);
        if drng.chance(args.drawers / 100.0) {
            if let Some((sub, at)) = first_valid {
                drawers.write(&drawer_doc(&p, &sub, at))?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- main

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    VARIED.store(args.varied, Ordering::Relaxed);
    if !(0.0..=100.0).contains(&args.drawers) {
        eprintln!("--drawers must be a percentage between 0 and 100");
        std::process::exit(2);
    }
    let started = Instant::now();
    let legacy = args.out_dir.join("test_database");
    let app = args.out_dir.join("edn360_app");
    let stale = |path: PathBuf| -> std::io::Result<()> {
        if path.exists() {
            fs::remove_file(&path)?;
            eprintln!("removed stale {}", path.display());
        }
        Ok(())
    };
    if !args.jobs {
        stale(legacy.join("generation_jobs.jsonl"))?;
    }
    if args.drawers <= 0.0 {
        stale(app.join("client_drawers.jsonl"))?;
        // Only if now empty, so that import sees no empty database folder.
        let _ = fs::remove_dir(&app);
    }
    let mut out = Sinks {
        users: Sink::create(&legacy, "users")?,
        submissions: Sink::create(&legacy, "nutrition_questionnaire_submissions")?,
        followups: Sink::create(&legacy, "follow_up_submissions")?,
        training: Sink::create(&legacy, "training_plans")?,
        nutrition: Sink::create(&legacy, "nutrition_plans")?,
        jobs: if args.jobs {
            Some(Sink::create(&legacy, "generation_jobs")?)
        } else {
            None
        },
        drawers: if args.drawers > 0.0 {
            Some(Sink::create(&app, "client_drawers")?)
        } else {
            None
        },
    };
    let mut ids = Counters::default();
    for n in 1..=args.users {
        user(&args, n, &mut ids, &mut out)?;
    }
    let mut sinks = vec![
        out.users,
        out.submissions,
        out.followups,
        out.training,
        out.nutrition,
    ];
    sinks.extend(out.jobs);
    sinks.extend(out.drawers);
    let (mut docs, mut bytes) = (0, 0);
    for sink in sinks {
        let (d, b) = sink.finish()?;
        docs += d;
        bytes += b;
    }
    eprintln!(
        "{:<36} {:>9} docs {:>13} bytes  ({:.1} MB, {} users, seed {}, {:.1} s)",
        "total",
        docs,
        bytes,
        bytes as f64 / 1e6,
        args.users,
        args.seed,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
