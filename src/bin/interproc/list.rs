//! `interproc list`: every object as an aligned table, or as JSON.

use std::process::ExitCode;

use interproc::inspect::ObjectInfo;

use crate::{fail, or_dash, out, pids};

/// The arguments of `interproc list` (help text: see `Command` in main.rs).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print a JSON array of objects instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> ExitCode {
    let objects = match interproc::inspect::list() {
        Ok(objects) => objects,
        Err(e) => return fail(format_args!("cannot list objects: {e}")),
    };
    if args.json {
        match serde_json::to_string_pretty(&objects) {
            Ok(json) => out(&(json + "\n")),
            Err(e) => return fail(e),
        }
    } else {
        out(&table(&objects));
    }
    ExitCode::SUCCESS
}

const HEADINGS: [&str; 8] = [
    "NAME", "KIND", "SIZE", "CAPACITY", "DEPTH", "OWNER", "PIDS", "NOTE",
];
/// Columns printed right-aligned (numbers).
const RIGHT: [bool; 8] = [false, false, true, true, true, false, false, false];

fn row(o: &ObjectInfo) -> [String; 8] {
    [
        o.name.clone(),
        o.kind.clone().unwrap_or_else(|| "?".to_owned()),
        or_dash(o.size),
        or_dash(o.capacity),
        or_dash(o.depth),
        o.owner.to_string(),
        pids(&o.participants),
        o.error.clone().unwrap_or_default(),
    ]
}

/// The aligned table of `objects` (a note line if there are none).
pub(crate) fn table(objects: &[ObjectInfo]) -> String {
    if objects.is_empty() {
        return "no interproc objects\n".to_owned();
    }
    let rows: Vec<[String; 8]> = std::iter::once(HEADINGS.map(str::to_owned))
        .chain(objects.iter().map(row))
        .collect();
    let mut widths = [0usize; 8];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            if RIGHT[i] {
                line.push_str(&format!("{cell:>w$}", w = widths[i]));
            } else {
                line.push_str(&format!("{cell:<w$}", w = widths[i]));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use interproc::inspect::OwnerState;

    fn object(name: &str, kind: Option<&str>, error: Option<&str>) -> ObjectInfo {
        ObjectInfo {
            name: name.into(),
            kind: kind.map(Into::into),
            size: Some(8192),
            capacity: kind.map(|_| 1),
            depth: None,
            participants: vec![41, 4242],
            owner: OwnerState::Alive,
            persisted: false,
            creator_alive: true,
            header: None,
            fields: Vec::new(),
            error: error.map(Into::into),
        }
    }

    #[test]
    fn table_columns_line_up() {
        let t = table(&[
            object("a", Some("value"), None),
            object("longer-name", None, Some("bad magic")),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("NAME         KIND   "), "{t}");
        assert!(lines[1].starts_with("a            value  8192"), "{t}");
        assert!(lines[2].contains("?  "), "{t}");
        assert!(lines[2].ends_with("41,4242  bad magic"), "{t}");
        // Every column starts at the same offset on every line.
        let col = lines[0].find("OWNER").unwrap();
        assert_eq!(&lines[1][col..col + 5], "alive");
        assert_eq!(&lines[2][col..col + 5], "alive");
        let size_end = lines[0].find("SIZE").unwrap() + 4;
        assert_eq!(&lines[1][size_end - 4..size_end], "8192");
    }

    #[test]
    fn empty_listing_says_so() {
        assert_eq!(table(&[]), "no interproc objects\n");
    }
}
