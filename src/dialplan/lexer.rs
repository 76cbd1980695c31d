//! The dialplan's tokens: words, strings, regexes, numbers, durations, variables and
//! punctuation, each with its byte span, so the parser's errors can point at them.

use std::ops::Range;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Str(String),
    Regex(String),
    Num(u64),
    Dur(Duration),
    Var(String),
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    Semi,
    EqEq,
    NotEq,
    Matches,
    Assign,
}

pub(super) struct Lexer<'a> {
    s: &'a str,
    i: usize,
}

pub(super) type PResult<T> = Result<T, (Range<usize>, String, Option<String>)>;

impl<'a> Lexer<'a> {
    pub(super) fn tokens(s: &'a str) -> PResult<Vec<(Tok, Range<usize>)>> {
        let mut lx = Lexer { s, i: 0 };
        let mut out = Vec::new();
        while let Some(t) = lx.next()? {
            out.push(t);
        }
        Ok(out)
    }

    fn peek(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }

    fn next(&mut self) -> PResult<Option<(Tok, Range<usize>)>> {
        // Whitespace and comments.
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => self.i += c.len_utf8(),
                Some('#') => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.i += c.len_utf8();
                    }
                }
                _ => break,
            }
        }
        let start = self.i;
        let Some(c) = self.peek() else {
            return Ok(None);
        };
        let tok = match c {
            '{' => {
                self.i += 1;
                Tok::LBrace
            }
            '(' => {
                self.i += 1;
                Tok::LParen
            }
            ')' => {
                self.i += 1;
                Tok::RParen
            }
            ',' => {
                self.i += 1;
                Tok::Comma
            }
            '}' => {
                self.i += 1;
                Tok::RBrace
            }
            ';' => {
                self.i += 1;
                Tok::Semi
            }
            '=' if self.s[self.i..].starts_with("==") => {
                self.i += 2;
                Tok::EqEq
            }
            '=' if self.s[self.i..].starts_with("=~") => {
                self.i += 2;
                Tok::Matches
            }
            '=' => {
                self.i += 1;
                Tok::Assign
            }
            '!' if self.s[self.i..].starts_with("!=") => {
                self.i += 2;
                Tok::NotEq
            }
            '"' => {
                self.i += 1;
                let mut v = String::new();
                loop {
                    match self.peek() {
                        None | Some('\n') => {
                            return Err((
                                start..self.i,
                                "unterminated string".into(),
                                Some("close it with \"".into()),
                            ));
                        }
                        Some('"') => {
                            self.i += 1;
                            break;
                        }
                        Some('\\') => {
                            self.i += 1;
                            if let Some(n) = self.peek() {
                                v.push(n);
                                self.i += n.len_utf8();
                            }
                        }
                        Some(ch) => {
                            v.push(ch);
                            self.i += ch.len_utf8();
                        }
                    }
                }
                Tok::Str(v)
            }
            '/' => {
                self.i += 1;
                let mut v = String::new();
                loop {
                    match self.peek() {
                        None | Some('\n') => {
                            return Err((
                                start..self.i,
                                "unterminated regex".into(),
                                Some("close it with /".into()),
                            ));
                        }
                        Some('/') => {
                            self.i += 1;
                            break;
                        }
                        Some('\\') if self.s[self.i..].starts_with("\\/") => {
                            v.push('/');
                            self.i += 2;
                        }
                        Some(ch) => {
                            v.push(ch);
                            self.i += ch.len_utf8();
                        }
                    }
                }
                Tok::Regex(v)
            }
            '$' => {
                self.i += 1;
                let braced = self.peek() == Some('{');
                if braced {
                    self.i += 1;
                }
                let ns = self.i;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    self.i += 1;
                }
                let name = self.s[ns..self.i].to_string();
                if braced {
                    if self.peek() != Some('}') {
                        return Err((
                            start..self.i,
                            "expected `}` after variable name".into(),
                            None,
                        ));
                    }
                    self.i += 1;
                }
                if name.is_empty() {
                    return Err((
                        start..self.i,
                        "expected a variable name after `$`".into(),
                        None,
                    ));
                }
                Tok::Var(name)
            }
            c if c.is_ascii_digit() => {
                while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
                    self.i += 1;
                }
                let text = &self.s[start..self.i];
                let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
                let unit = &text[digits.len()..];
                let n: u64 = digits
                    .parse()
                    .map_err(|_| (start..self.i, "number too large".to_string(), None))?;
                match unit {
                    "" => Tok::Num(n),
                    "ms" => Tok::Dur(Duration::from_millis(n)),
                    "s" => Tok::Dur(Duration::from_secs(n)),
                    "m" => Tok::Dur(Duration::from_secs(n * 60)),
                    _ => {
                        return Err((
                            start..self.i,
                            format!("unknown unit `{unit}`"),
                            Some("durations are written 500ms, 20s or 2m".into()),
                        ));
                    }
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                while self
                    .peek()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
                {
                    self.i += self.peek().map_or(1, char::len_utf8);
                }
                Tok::Ident(self.s[start..self.i].to_string())
            }
            other => {
                self.i += other.len_utf8();
                return Err((
                    start..self.i,
                    format!("unexpected character `{other}`"),
                    None,
                ));
            }
        };
        Ok(Some((tok, start..self.i)))
    }
}
