//! `interproc inspect NAME`: everything about one object.

use std::process::ExitCode;

use interproc::inspect::ObjectInfo;
use interproc::Error;

use crate::{fail, or_dash, out, pids};

/// The arguments of `interproc inspect` (help text: see `Command` in main.rs).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The object's name (without the `interproc.` prefix).
    name: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> ExitCode {
    let info = match interproc::inspect::inspect(&args.name) {
        Ok(info) => info,
        Err(Error::NotFound) => return fail(format_args!("{}: no such object", args.name)),
        Err(e) => return fail(format_args!("{}: {e}", args.name)),
    };
    if args.json {
        match serde_json::to_string_pretty(&info) {
            Ok(json) => out(&(json + "\n")),
            Err(e) => return fail(e),
        }
    } else {
        out(&render(&info));
    }
    match &info.error {
        Some(e) => fail(format_args!("{}: does not check out: {e}", info.name)),
        None => ExitCode::SUCCESS,
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

/// The text form: `key  value` lines, sections indented, values aligned.
pub(crate) fn render(o: &ObjectInfo) -> String {
    // (indent, key, value); a `None` value is a section heading.
    let mut lines: Vec<(usize, String, Option<String>)> = vec![
        (0, "name".into(), Some(o.name.clone())),
        (
            0,
            "kind".into(),
            Some(o.kind.clone().unwrap_or_else(|| "?".into())),
        ),
        (
            0,
            "size".into(),
            Some(or_dash(o.size.map(|s| format!("{s} bytes")))),
        ),
        (0, "capacity".into(), Some(or_dash(o.capacity))),
        (0, "depth".into(), Some(or_dash(o.depth))),
        (0, "owner".into(), Some(o.owner.to_string())),
        (0, "persisted".into(), Some(yes_no(o.persisted))),
        (0, "creator alive".into(), Some(yes_no(o.creator_alive))),
        (
            0,
            "attached".into(),
            Some(match o.participants.len() {
                0 => "none".to_owned(),
                1 => format!("1 handle (pid {})", pids(&o.participants)),
                n => format!("{n} handles (pids {})", pids(&o.participants)),
            }),
        ),
    ];
    if let Some(e) = &o.error {
        lines.push((0, "error".into(), Some(e.clone())));
    }
    if let Some(h) = &o.header {
        let heading = if o.error.is_none() {
            "header"
        } else {
            "header (raw, not validated)"
        };
        lines.push((0, heading.into(), None));
        let params = h.params.map(|p| p.to_string()).join(" ");
        for (k, v) in [
            ("format version", h.format_version.to_string()),
            ("kind tag", h.kind_tag.to_string()),
            ("element size", h.elem_size.to_string()),
            ("element align", h.elem_align.to_string()),
            ("capacity", h.capacity.to_string()),
            ("params", params),
            ("body length", h.body_len.to_string()),
            ("total length", h.total_len.to_string()),
            ("creator pid", h.creator_pid.to_string()),
            ("ready", yes_no(h.ready)),
        ] {
            lines.push((2, k.into(), Some(v)));
        }
    }
    if !o.fields.is_empty() {
        let heading = o.kind.clone().unwrap_or_else(|| "state".into());
        lines.push((0, heading, None));
        for (k, v) in &o.fields {
            lines.push((2, k.clone(), Some(v.clone())));
        }
    }
    let width = lines
        .iter()
        .filter(|(_, _, v)| v.is_some())
        .map(|(i, k, _)| i + k.chars().count())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for (indent, key, value) in lines {
        match value {
            None => text.push_str(&format!("{key}:\n")),
            Some(v) => {
                let pad = width - indent - key.chars().count();
                text.push_str(&format!("{:indent$}{key}{:pad$}  {v}\n", "", ""));
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use interproc::inspect::{HeaderInfo, OwnerState};

    #[test]
    fn renders_sections_with_aligned_values() {
        let o = ObjectInfo {
            name: "hits".into(),
            kind: Some("value".into()),
            size: Some(8192),
            capacity: Some(1),
            depth: None,
            participants: vec![10, 11],
            owner: OwnerState::Persisted,
            persisted: true,
            creator_alive: false,
            header: Some(HeaderInfo {
                format_version: 1,
                kind_tag: 10,
                elem_size: 8,
                elem_align: 8,
                capacity: 1,
                params: [4, 0, 0, 0],
                body_len: 8,
                total_len: 8192,
                creator_pid: 10,
                ready: true,
            }),
            fields: vec![("type".into(), "u64".into()), ("value".into(), "42".into())],
            error: None,
        };
        let text = render(&o);
        assert!(
            text.contains("\nattached          2 handles (pids 10,11)\n"),
            "{text}"
        );
        assert!(text.contains("\nheader:\n  format version  1\n"), "{text}");
        assert!(text.contains("\n  params          4 0 0 0\n"), "{text}");
        assert!(
            text.contains("\nvalue:\n  type            u64\n  value           42\n"),
            "{text}"
        );
        assert!(!text.contains("error"), "{text}");
    }
}
