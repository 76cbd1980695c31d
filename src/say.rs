//! Saying numbers and digits as a row of prompt names (`digits/4`, `digits/hundred`, ...).
//! A leaf: the dialplan's `say`, the voicemail menu's counts and the queue's position
//! announcements all use it, and it knows nothing of them.

/// What `say` reads out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SayKind {
    /// Each character: "1 0 0 2".
    Digits,
    /// As a number: "one thousand two".
    Number,
}

/// The prompts (under `sounds/`) that say `text`: `digits/N`, `digits/hundred`, ...
/// Characters with no prompt are skipped; a number too big to say is said digit by digit.
pub fn say_prompts(kind: SayKind, text: &str) -> Vec<String> {
    let digit = |c: char| match c {
        '0'..='9' => Some(format!("digits/{c}")),
        '*' => Some("digits/star".into()),
        '#' => Some("digits/pound".into()),
        _ => None,
    };
    let n = match (kind, text.trim().parse::<u64>()) {
        (SayKind::Number, Ok(n)) if n < 1_000_000 => n,
        _ => return text.chars().filter_map(digit).collect(),
    };
    fn below_thousand(n: u64, out: &mut Vec<String>) {
        if n >= 100 {
            out.push(format!("digits/{}", n / 100));
            out.push("digits/hundred".into());
        }
        let r = n % 100;
        match r {
            0 => {}
            1..=19 => out.push(format!("digits/{r}")),
            _ => {
                out.push(format!("digits/{}", r / 10 * 10));
                if r % 10 != 0 {
                    out.push(format!("digits/{}", r % 10));
                }
            }
        }
    }
    let mut out = Vec::new();
    if n == 0 {
        out.push("digits/0".into());
    }
    if n >= 1000 {
        below_thousand(n / 1000, &mut out);
        out.push("digits/thousand".into());
    }
    below_thousand(n % 1000, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_said_by_name_and_numbers_up_to_a_million_as_numbers() {
        assert_eq!(
            say_prompts(SayKind::Digits, "*1#"),
            ["digits/star", "digits/1", "digits/pound"]
        );
        let n = say_prompts(SayKind::Number, "999999");
        assert_eq!(n.first().map(String::as_str), Some("digits/9"));
        assert!(n.contains(&"digits/thousand".to_string()), "{n:?}");
        assert_eq!(
            say_prompts(SayKind::Number, "1000000"),
            ["digits/1", "digits/0", "digits/0", "digits/0", "digits/0", "digits/0", "digits/0"],
            "too big to say: digit by digit"
        );
    }
}
