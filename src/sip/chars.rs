//! RFC 3261 character classes as 256-entry tables: the parser asks one of these per byte,
//! so a lookup beats scanning a list of punctuation each time.

const fn table(extra: &[u8], alnum: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = alnum && b.is_ascii_alphanumeric();
        c += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}

static TOKEN: [bool; 256] = table(b"-.!%*_+`'~", true);
static WORD: [bool; 256] = table(b"-.!%*_+`'~()<>:\\\"/[]?{}", true);
static UNRESERVED: [bool; 256] = table(b"-_.!~*'()%", true);
static USER: [bool; 256] = table(b"-_.!~*'()%&=+$,;?/", true);
static PASSWORD: [bool; 256] = table(b"-_.!~*'()%&=+$,", true);
static PARAM: [bool; 256] = table(b"-_.!~*'()%[]/:&+$", true);
static HEADER: [bool; 256] = table(b"-_.!~*'()%[]/?:+$=&", true);
static HOST: [bool; 256] = table(b"-._", true);
/// Bytes never allowed anywhere in a URI: controls, space, DEL and above, `<`, `>`, `"`.
static URI_FORBIDDEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = c <= 0x20
            || c >= 0x7f
            || c == b'<' as usize
            || c == b'>' as usize
            || c == b'"' as usize;
        c += 1;
    }
    t
};

/// RFC 3261 `token`.
#[inline]
pub fn is_token(c: u8) -> bool {
    TOKEN[c as usize]
}

/// RFC 3261 `word` (Call-ID).
#[inline]
pub fn is_word(c: u8) -> bool {
    WORD[c as usize]
}

/// `unreserved` plus `%` (escapes are checked loosely, as RFC 4475 esc02 requires).
#[inline]
pub fn is_unreserved(c: u8) -> bool {
    UNRESERVED[c as usize]
}

/// Characters of a URI user part.
#[inline]
pub fn is_user(c: u8) -> bool {
    USER[c as usize]
}

/// Characters of a URI password.
#[inline]
pub fn is_password(c: u8) -> bool {
    PASSWORD[c as usize]
}

/// Characters of a URI parameter name or value.
#[inline]
pub fn is_param(c: u8) -> bool {
    PARAM[c as usize]
}

/// Characters of the URI headers part.
#[inline]
pub fn is_header(c: u8) -> bool {
    HEADER[c as usize]
}

/// Characters of a host name or IPv4 address.
#[inline]
pub fn is_host(c: u8) -> bool {
    HOST[c as usize]
}

/// Bytes that may never appear in a URI.
#[inline]
pub fn is_uri_forbidden(c: u8) -> bool {
    URI_FORBIDDEN[c as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn uri_forbidden_bytes_are_controls_space_del_and_up_and_angle_brackets_and_quote() {
        let forbidden: Vec<u8> = (0..=255u8).filter(|&c| is_uri_forbidden(c)).collect();
        let mut want: Vec<u8> = (0..=0x20).chain(0x7f..=0xff).collect();
        want.extend([b'"', b'<', b'>']);
        want.sort_unstable();
        assert_eq!(forbidden, want);
    }

    #[test]
    fn a_uri_password_takes_unreserved_escapes_and_its_own_marks_only() {
        for c in b"aZ9-_.!~*'()%&=+$," {
            assert!(is_password(*c), "{}", *c as char);
        }
        for c in b"@:;?/<> \"" {
            assert!(!is_password(*c), "{}", *c as char);
        }
    }

    /// Every byte a class holds: the alphanumerics (when the class has them) and exactly
    /// the marks RFC 3261's grammar gives it (§25.1), with `%` for escapes.
    fn members(f: fn(u8) -> bool) -> Vec<u8> {
        (0..=255u8).filter(|&c| f(c)).collect()
    }

    fn expected(alnum: bool, marks: &[u8]) -> Vec<u8> {
        let mut v: Vec<u8> = (0..=255u8)
            .filter(|c| alnum && c.is_ascii_alphanumeric())
            .chain(marks.iter().copied())
            .collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn each_character_class_holds_exactly_its_grammar() {
        // unreserved = alphanum / mark; mark = - _ . ! ~ * ' ( )
        assert_eq!(members(is_unreserved), expected(true, b"!%'()*-._~"));
        // user = 1*( unreserved / escaped / user-unreserved ); user-unreserved = & = + $ , ; ? /
        assert_eq!(members(is_user), expected(true, b"!$%&'()*+,-./;=?_~"));
        // paramchar = param-unreserved / unreserved / escaped; param-unreserved = [ ] / : & + $
        assert_eq!(members(is_param), expected(true, b"!$%&'()*+-./:[]_~"));
        // hnv-unreserved = [ ] / ? : + $, plus unreserved, escaped and the `=`/`&` between
        assert_eq!(members(is_header), expected(true, b"!$%&'()*+-./:=?[]_~"));
        // hostname = *( domainlabel "." ) toplabel; IPv4 digits and dots
        assert_eq!(members(is_host), expected(true, b"-._"));
        // token = 1*(alphanum / - . ! % * _ + ` ' ~)
        assert_eq!(members(is_token), expected(true, b"!%'*+-._`~"));
        // word adds ( ) < > : \ DQUOTE / [ ] ? { }
        assert_eq!(
            members(is_word),
            expected(true, b"!\"%'()*+-./:<>?[\\]_`{}~")
        );
    }
}
