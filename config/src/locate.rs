//! Where an option is in a TOML file: a problem's key path (`rules[2].schedule.windows[0].from`)
//! → line and column, so `check-config` (and the center, refusing a push) can point an installer
//! at the exact place to edit.

use toml::de::{DeTable, DeValue};

use super::{ConfigError, Problem};

/// A problem at its line and column (both from 1) in the text it concerns, as `check-config`
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Placed {
    /// The line.
    pub line: usize,
    /// The column.
    pub column: usize,
    /// What is wrong, after the option it concerns (`rules[2].zone: no zone with id "lake"`),
    /// or the TOML parser's message.
    pub message: String,
    /// How to fix it, when that is not obvious from the message.
    pub hint: Option<String>,
}

impl Placed {
    /// Each of `problems` at its option's place in `text` (the start when it is not written
    /// there), in file order, as an installer fixes them.
    pub fn all(text: &str, problems: &[Problem]) -> Vec<Placed> {
        let mut placed: Vec<Placed> = problems
            .iter()
            .map(|p| {
                let (line, column) = locate(text, &p.at).unwrap_or((1, 1));
                Placed { line, column, message: p.to_string(), hint: p.hint.clone() }
            })
            .collect();
        placed.sort_by_key(|p| (p.line, p.column));
        placed
    }

    /// As `check-config` prints it: `FILE:LINE:COL: MESSAGE`, and `    hint: HINT` on the next
    /// line when there is one.
    pub fn report(&self, file: impl std::fmt::Display) -> String {
        let Placed { line, column, message, hint } = self;
        match hint {
            Some(hint) => format!("{file}:{line}:{column}: {message}\n    hint: {hint}"),
            None => format!("{file}:{line}:{column}: {message}"),
        }
    }
}

impl ConfigError {
    /// This error about `text` as `check-config` reports it: a syntax error at its place (the
    /// start when the parser does not say), every problem at its option's.
    pub fn placed(&self, text: &str) -> Vec<Placed> {
        match self {
            ConfigError::Syntax { at, short, .. } => {
                let (line, column) = at.unwrap_or((1, 1));
                vec![Placed { line, column, message: short.clone(), hint: None }]
            }
            ConfigError::Invalid { problems, .. } => Placed::all(text, problems),
            ConfigError::Read { .. } => {
                vec![Placed { line: 1, column: 1, message: self.to_string(), hint: None }]
            }
        }
    }
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Splits `a.b[2].c` into keys and indices; `None` when it is not such a path.
fn steps(path: &str) -> Option<Vec<Step<'_>>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if key.is_empty() {
            return None;
        }
        out.push(Step::Key(key));
        while !rest.is_empty() {
            let (index, after) = rest.split_once(']')?;
            out.push(Step::Index(index.parse().ok()?));
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    Some(out)
}

/// Line and column (both from 1) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The older name an option is still read under (serde aliases), for finding it in a file.
fn older_name(key: &str) -> Option<&'static str> {
    match key {
        "detect_url" => Some("url"),
        _ => None,
    }
}

/// The line and column of the value at `path` in `text`, or of its nearest enclosing table
/// when the option is not written (a default); `None` when the text does not parse.
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let root = DeTable::parse(text).ok()?;
    let steps = steps(path)?;
    let mut best: Option<usize> = None;
    let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
    let mut array: Option<&[toml::Spanned<DeValue<'_>>]> = None;
    for step in steps {
        let value = match step {
            Step::Key(k) => table.and_then(|t| {
                let named = |name: &str| t.iter().find(|(key, _)| key.get_ref().as_ref() == name);
                named(k).or_else(|| older_name(k).and_then(named)).map(|(_, v)| v)
            }),
            Step::Index(i) => array.and_then(|a| a.get(i)),
        };
        let Some(value) = value else { break };
        best = Some(value.span().start);
        table = None;
        array = None;
        match value.get_ref() {
            DeValue::Table(t) => table = Some(t),
            DeValue::Array(a) => array = Some(a.as_ref()),
            _ => {}
        }
    }
    best.map(|at| line_col(text, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"agent_id = "a"

[[rules]]
id = "r0"
zone = "pond"

[[rules]]
id = "r1"
zone = "lake"
schedule = { windows = [{ from = "18:00", to = "1800" }] }
"#;

    #[test]
    fn finds_values_in_arrays_of_tables_and_inline_tables() {
        assert_eq!(locate(TEXT, "agent_id"), Some((1, 12)));
        assert_eq!(locate(TEXT, "rules[1].zone"), Some((9, 8)));
        assert_eq!(locate(TEXT, "rules[1].schedule.windows[0].to"), Some((10, 48)));
    }

    #[test]
    fn an_option_left_to_its_default_points_at_its_table() {
        let (line, _) = locate(TEXT, "rules[0].min_score").unwrap();
        assert!((3..=4).contains(&line), "{line}");
        assert_eq!(
            locate(TEXT, "rules[7].zone").map(|(l, _)| l),
            Some(3),
            "the nearest: the rules"
        );
        assert_eq!(locate("not toml [", "agent_id"), None);
    }

    #[test]
    fn paths_split_into_keys_and_indices() {
        assert_eq!(
            steps("a.b[2][3].c"),
            Some(vec![
                Step::Key("a"),
                Step::Key("b"),
                Step::Index(2),
                Step::Index(3),
                Step::Key("c")
            ])
        );
        assert_eq!(steps("a[x]"), None);
    }
}
