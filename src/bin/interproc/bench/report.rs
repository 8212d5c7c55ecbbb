//! The rows a scenario reports, and how a row is judged. Shared with the criterion benches
//! (`benches/ipc.rs` includes this file and `scenarios.rs` by path).

/// The baseline name of rows that show the floor itself (no comparison).
pub const FLOOR: &str = "(floor itself)";

/// Whether bigger numbers are better for a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// One measured scenario.
#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: String,
    pub unit: &'static str,
    pub interproc: f64,
    pub baseline: String,
    pub baseline_value: f64,
    pub better: Better,
    /// Minimum ratio the benchmark issue asks for, if any.
    pub target: Option<f64>,
}

impl Row {
    pub fn ratio(&self) -> f64 {
        match self.better {
            Better::Higher => self.interproc / self.baseline_value,
            Better::Lower => self.baseline_value / self.interproc,
        }
    }

    pub fn verdict(&self) -> String {
        if self.baseline == FLOOR {
            return "reference: the machine now".to_string();
        }
        let r = self.ratio();
        match self.target {
            Some(t) if r >= t => format!("ok (target >= {t:.2})"),
            Some(t) => format!("BELOW target >= {t:.2}"),
            None if r >= 1.0 => "faster".to_string(),
            None => "slower".to_string(),
        }
    }
}

/// Effort knobs: repetitions and sizes, scaled by `--quick`.
#[derive(Debug, Clone, Copy)]
pub struct Effort {
    pub reps: usize,
    pub scale: u64,
}
