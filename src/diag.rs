//! Error reports an admin can act on: `file:line:column`, the line, a caret, a hint; and the
//! "did you mean" distance behind the hints. A leaf shared by the config and the dialplan
//! parser, so that neither has to import the other for it.

use std::fmt;
use std::ops::Range;
use std::path::Path;

/// A configuration problem, located in its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// 1-based line (0 when the problem has no place, e.g. the file is missing).
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// The offending line's text.
    pub source_line: String,
    /// How many characters the caret underlines.
    pub width: usize,
    /// What to do about it.
    pub hint: Option<String>,
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    pub(crate) fn io(path: &Path, e: &std::io::Error) -> Self {
        Self {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
            source_line: String::new(),
            width: 0,
            hint: Some(
                "pass --config PATH, or run from the directory holding config/switchboard.toml"
                    .into(),
            ),
        }
    }

    pub(crate) fn at(
        file: &str,
        text: &str,
        span: Range<usize>,
        message: String,
        hint: Option<String>,
    ) -> Self {
        let start = span.start.min(text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = text[..start].matches('\n').count() + 1;
        let column = text[line_start..start].chars().count() + 1;
        let end = span.end.clamp(start, line_end);
        let width = text[start..end].chars().count().max(1);
        Self {
            file: file.to_string(),
            line,
            column,
            message,
            source_line: text[line_start..line_end]
                .trim_end_matches('\r')
                .to_string(),
            width,
            hint,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            writeln!(f, "error: {}: {}", self.file, self.message)?;
        } else {
            writeln!(f, "error: {}", self.message)?;
            writeln!(f, "  --> {}:{}:{}", self.file, self.line, self.column)?;
            let n = self.line.to_string();
            let pad = " ".repeat(n.len());
            writeln!(f, "{pad} |")?;
            writeln!(f, "{n} | {}", self.source_line)?;
            writeln!(
                f,
                "{pad} | {}{}",
                " ".repeat(self.column - 1),
                "^".repeat(self.width)
            )?;
        }
        if let Some(h) = &self.hint {
            writeln!(f, "  = hint: {h}")?;
        }
        Ok(())
    }
}

/// Levenshtein distance, for "did you mean" hints on short key names.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
