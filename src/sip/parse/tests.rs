use super::*;

const REG: &str = "REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\n\
From: <sip:1001@example.com>;tag=a\r\n\
To: <sip:1001@example.com>\r\n\
Call-ID: abc@host\r\n\
CSeq: 1 REGISTER\r\n\
Contact: <sip:1001@127.0.0.1:5070>\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n";

fn dgram(s: &str) -> Result<Message, ParseError> {
    parse_datagram(Bytes::copy_from_slice(s.as_bytes()), &Limits::default())
}

#[test]
fn parses_register() {
    let m = dgram(REG).unwrap();
    assert_eq!(m.request_line().unwrap().method, Method::Register);
    assert_eq!(m.cseq().unwrap().seq, 1);
    assert_eq!(m.top_via().unwrap().branch().unwrap().as_ref(), b"z9hG4bK1");
    assert_eq!(m.headers.len(), 8);
}

#[test]
fn print_then_parse_is_identity() {
    let m = dgram(REG).unwrap();
    let again = parse_datagram(m.to_bytes(), &Limits::default()).unwrap();
    assert_eq!(m.headers, again.headers);
    assert_eq!(m.start, again.start);
}

#[test]
fn stream_framing_waits_and_splits() {
    let two = format!("{REG}{REG}");
    let mut buf = BytesMut::from(&two.as_bytes()[..10]);
    assert!(parse_stream(&mut buf, &Limits::default())
        .unwrap()
        .is_none());
    let mut buf = BytesMut::from(two.as_bytes());
    assert!(matches!(
        parse_stream(&mut buf, &Limits::default()),
        Ok(Some(Frame::Message(_)))
    ));
    assert!(matches!(
        parse_stream(&mut buf, &Limits::default()),
        Ok(Some(Frame::Message(_)))
    ));
    assert!(buf.is_empty());
    let mut ping = BytesMut::from(&b"\r\n\r\n"[..]);
    assert!(matches!(
        parse_stream(&mut ping, &Limits::default()),
        Ok(Some(Frame::Ping))
    ));
}

#[test]
fn stream_without_content_length_is_answered() {
    let no_cl = REG.replace("Content-Length: 0\r\n", "");
    let mut buf = BytesMut::from(no_cl.as_bytes());
    let e = parse_stream(&mut buf, &Limits::default()).unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::BAD_REQUEST));
}

#[test]
fn oversized_stream_messages_get_413() {
    let limits = Limits {
        max_body_bytes: 100,
        max_header_bytes: 2048,
        ..Limits::default()
    };
    let big_body = REG.replace("Content-Length: 0", "Content-Length: 101");
    let mut buf = BytesMut::from(big_body.as_bytes());
    let e = parse_stream(&mut buf, &limits).unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::ENTITY_TOO_LARGE));
    assert!(e.response().is_some());
    // A header section that never ends within the limit: refused without a reply
    // (there is no complete request to answer), and the connection is closed.
    let mut buf = BytesMut::from(
        format!("{}X-Pad: {}\r\n", &REG[..REG.len() - 2], "a".repeat(4096)).as_bytes(),
    );
    let e = parse_stream(&mut buf, &limits).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::HeadersTooLarge);
}

#[test]
fn errors_map_to_one_response() {
    let e = dgram(&REG.replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia")).unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::VERSION_NOT_SUPPORTED));
    let r = e.response().unwrap();
    assert_eq!(r.status(), Some(StatusCode::VERSION_NOT_SUPPORTED));
    assert!(r.header(&HeaderName::Via).is_some());
    let e = dgram(&REG.replace("CSeq: 1 REGISTER", "CSeq: 1 INVITE")).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::CSeqMismatch);
    assert_eq!(e.status(), Some(StatusCode::BAD_REQUEST));
    let long = format!("sip:{}@example.com", "a".repeat(5000));
    let e = dgram(&REG.replace("sip:example.com SIP", &format!("{long} SIP"))).unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::URI_TOO_LONG));
    // A request without a Via cannot be answered: dropped.
    let e = dgram(&REG.replace(
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\n",
        "",
    ))
    .unwrap_err();
    assert_eq!(e.status(), None);
    // A broken response is dropped.
    let e = dgram("SIP/2.0 999 Nope\r\nVia: SIP/2.0/UDP h\r\n\r\n").unwrap_err();
    assert_eq!(e.status(), None);
    // A request with only its Via and CSeq is told it is bad, with nothing invented.
    let e = dgram(
        "INVITE sip:u@example.com SIP/2.0\r\nCSeq: 1 INVITE\r\n\
Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKx\r\nl: 0\r\n\r\n",
    )
    .unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::Missing("From"));
    let r = e.response().unwrap();
    assert_eq!(r.status(), Some(StatusCode::BAD_REQUEST));
    let names: Vec<_> = r.headers.iter().map(|h| h.name.clone()).collect();
    assert_eq!(names, [HeaderName::CSeq, HeaderName::Via]);
    // Without its CSeq the client could not match an answer: dropped.
    let e = dgram(&REG.replace("CSeq: 1 REGISTER\r\n", "")).unwrap_err();
    assert_eq!(e.status(), None);
    // An ACK is never answered, however broken.
    let e = dgram(
        "ACK sip:u@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\n\
CSeq: 1 ACK\r\nl: 0\r\n\r\n",
    )
    .unwrap_err();
    assert_eq!(e.status(), None);
}

#[test]
fn header_ends_crlf_runs_unterminated_datagrams_and_bodies_in_pieces() {
    assert_eq!(find_header_end(b"A\r\nBB\r\n\r\nbody", 0), Some((7, 9)));
    assert_eq!(find_header_end(b"A\nBB\n\nbody", 0), Some((5, 6)));
    assert_eq!(find_header_end(b"A\r\nBB\r\n", 0), None);
    assert_eq!(skip_crlf(b"\r\n\n\rX", 0), 4);
    assert_eq!(skip_crlf(b"\nX", 0), 1);
    let l = Limits::default();
    // Leading blank lines (keep-alives) before a datagram are skipped.
    let m = parse_datagram(Bytes::from(format!("\n\r\n{REG}")), &l).unwrap();
    assert_eq!(m.method(), Some(Method::Register));
    // No blank line: a datagram that ends its last line is all head; one cut inside a
    // line is not a message.
    let head = REG.trim_end_matches("\r\n").to_string() + "\r\n";
    assert!(parse_datagram(Bytes::from(head.clone()), &l).is_ok());
    let cut = head.trim_end_matches("\r\n").to_string();
    assert!(parse_datagram(Bytes::from(cut), &l).is_err());
    // A body that arrives in two pieces on a stream waits for the second.
    let msg = REG.replace("Content-Length: 0", "Content-Length: 10") + "0123456789";
    let (a, b) = msg.split_at(msg.len() - 4);
    let mut buf = BytesMut::from(a);
    assert!(matches!(parse_stream(&mut buf, &l), Ok(None)));
    buf.extend_from_slice(b.as_bytes());
    let Ok(Some(Frame::Message(m))) = parse_stream(&mut buf, &l) else {
        panic!("one message");
    };
    assert_eq!(&m.body[..], b"0123456789");
    assert!(buf.is_empty());
}

#[test]
fn start_lines_and_header_names_are_held_to_their_grammar() {
    let l = Limits::default();
    let resp = |line: &str| {
        let m = format!(
            "{line}\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n\
             To: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
        );
        parse_datagram(Bytes::from(m), &l)
    };
    let m = resp("SIP/2.0 180 Ringing").unwrap();
    let StartLine::Response(sl) = &m.start else {
        panic!()
    };
    assert_eq!((sl.code.as_u16(), &sl.reason[..]), (180, &b"Ringing"[..]));
    let m = resp("SIP/2.0 200").unwrap();
    let StartLine::Response(sl) = &m.start else {
        panic!()
    };
    assert_eq!(
        (sl.code.as_u16(), &sl.reason[..]),
        (200, &b""[..]),
        "no reason phrase"
    );
    assert!(resp("SIP/2.0 2000 OK").is_err());
    assert!(resp("SIP/2.0 20 OK").is_err());
    // Another version well formed is 505's business; a garbled one is not a version.
    let kind = |r: Result<Message, ParseError>| r.unwrap_err().kind;
    let req = |line: &str| {
        parse_datagram(
            Bytes::from(REG.replacen("REGISTER sip:example.com SIP/2.0", line, 1)),
            &l,
        )
    };
    assert_eq!(
        kind(req("REGISTER sip:example.com SIP/3.0")),
        ParseErrorKind::Version
    );
    assert_eq!(
        kind(req("REGISTER sip:example.com SIP/2.x")),
        ParseErrorKind::StartLine("bad SIP version")
    );
    assert_eq!(
        kind(req("REGISTER sip:example.com SIP/.20")),
        ParseErrorKind::StartLine("bad SIP version")
    );
    assert_eq!(
        kind(req("REG@STER sip:example.com SIP/2.0")),
        ParseErrorKind::StartLine("bad method")
    );
    // A header line with no name, or a name with a space in it.
    for bad in [": x", "Bad Name: x"] {
        let m = REG.replacen("Max-Forwards: 70", bad, 1);
        assert_eq!(
            kind(parse_datagram(Bytes::from(m), &l)),
            ParseErrorKind::HeaderLine,
            "{bad}"
        );
    }
}

fn with_limits(s: &str, limits: &Limits) -> Result<Message, ParseError> {
    parse_datagram(Bytes::copy_from_slice(s.as_bytes()), limits)
}

#[test]
fn every_limit_takes_exactly_its_size_and_refuses_one_more() {
    let head = REG.len() - 2; // the header section up to its blank line
    let at = |n: usize| Limits {
        max_header_bytes: n,
        ..Limits::default()
    };
    assert!(with_limits(REG, &at(head)).is_ok());
    assert!(
        with_limits(&format!("\r\n\r\n{REG}"), &at(head)).is_ok(),
        "leading CRLFs are not counted"
    );
    assert_eq!(
        with_limits(REG, &at(head - 1)).unwrap_err().kind,
        ParseErrorKind::HeadersTooLarge
    );
    let uri = |n: usize| Limits {
        max_uri_len: n,
        ..Limits::default()
    };
    let len = "sip:example.com".len();
    assert!(with_limits(REG, &uri(len)).is_ok());
    assert_eq!(
        with_limits(REG, &uri(len - 1)).unwrap_err().kind,
        ParseErrorKind::UriTooLong
    );

    // On a stream: a complete head of exactly the limit, a body of exactly the limit.
    let body = "v=0\r\n";
    let msg = REG.replace(
        "Content-Length: 0",
        &format!("Content-Length: {}", body.len()),
    ) + body;
    let head = msg.len() - body.len();
    let stream = |l: &Limits| {
        let mut b = BytesMut::from(msg.as_bytes());
        parse_stream(&mut b, l).map(|f| matches!(f, Some(Frame::Message(_))))
    };
    let limits = Limits {
        max_header_bytes: head - 2,
        max_body_bytes: body.len(),
        ..Limits::default()
    };
    assert!(stream(&limits).unwrap());
    let small_body = Limits {
        max_body_bytes: body.len() - 1,
        ..limits
    };
    assert_eq!(
        stream(&small_body).unwrap_err().kind,
        ParseErrorKind::BodyTooLarge
    );
    let small_head = Limits {
        max_header_bytes: head - 3,
        ..limits
    };
    assert_eq!(
        stream(&small_head).unwrap_err().kind,
        ParseErrorKind::HeadersTooLarge
    );
    // An unfinished head waits until it is longer than the limit.
    let part = &msg.as_bytes()[..40];
    let mut b = BytesMut::from(part);
    assert!(parse_stream(
        &mut b,
        &Limits {
            max_header_bytes: 40,
            ..limits
        }
    )
    .unwrap()
    .is_none());
    let mut b = BytesMut::from(part);
    assert_eq!(
        parse_stream(
            &mut b,
            &Limits {
                max_header_bytes: 39,
                ..limits
            }
        )
        .unwrap_err()
        .kind,
        ParseErrorKind::HeadersTooLarge
    );
}

#[test]
fn a_stream_keeps_at_most_three_bytes_of_blank_lines_and_drops_them_before_a_message() {
    for n in 1..=7 {
        let mut b = BytesMut::from("\n".repeat(n).as_bytes());
        assert!(
            parse_stream(&mut b, &Limits::default()).unwrap().is_none(),
            "{n}"
        );
        assert_eq!(b.len(), n.min(3), "{n} line feeds");
    }
    let mut b = BytesMut::from(format!("\r\n{REG}").as_bytes());
    let f = parse_stream(&mut b, &Limits::default()).unwrap();
    assert!(matches!(f, Some(Frame::Message(_))));
    assert!(b.is_empty());
}

#[test]
fn header_names_and_values_are_trimmed_and_framing_headers_checked() {
    let m = dgram(&REG.replace("Max-Forwards: 70", "Subject \t:\t  hello there \t")).unwrap();
    let v = m.header(&HeaderName::Subject).unwrap();
    assert_eq!(&v[..], b"hello there");
    let e = dgram(&REG.replace("Via:", "\tVia:")).unwrap_err();
    assert_eq!(
        e.kind,
        ParseErrorKind::HeaderLine,
        "a first line that continues nothing"
    );
    // Content-Length: absent on a datagram means the rest; twice the same is fine;
    // two values, or more than the datagram holds, are refused.
    let body = "v=0\r\n";
    let m = dgram(&(REG.replace("Content-Length: 0\r\n", "") + body)).unwrap();
    assert_eq!(&m.body[..], body.as_bytes());
    let twice = REG.replace(
        "Content-Length: 0",
        "Content-Length: 5\r\nContent-Length: 5",
    ) + body;
    assert_eq!(&dgram(&twice).unwrap().body[..], body.as_bytes());
    let differ = REG.replace(
        "Content-Length: 0",
        "Content-Length: 5\r\nContent-Length: 4",
    ) + body;
    assert_eq!(
        dgram(&differ).unwrap_err().kind,
        ParseErrorKind::ContentLength
    );
    let short = REG.replace("Content-Length: 0", "Content-Length: 9") + body;
    assert_eq!(
        dgram(&short).unwrap_err().kind,
        ParseErrorKind::ContentLength
    );
    for bad in ["Max-Forwards: many", "Max-Forwards: 70\r\nExpires: soon"] {
        let e = dgram(&REG.replace("Max-Forwards: 70", bad)).unwrap_err();
        assert!(
            matches!(e.kind, ParseErrorKind::Header { .. }),
            "{bad}: {e:?}"
        );
    }
    assert_eq!(
        dgram("SIP/2.0 20\r\nCall-ID: x\r\n\r\n").unwrap_err().kind,
        ParseErrorKind::StatusCode
    );
}

#[test]
fn an_error_response_names_the_problem_and_keeps_a_folded_via_whole() {
    let bad = REG
        .replace(
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport",
            "Via: SIP/2.0/UDP 127.0.0.1:5070\r\n ;branch=z9hG4bK1;rport",
        )
        .replace("Max-Forwards: 70", "Max-Forwards: many");
    let e = dgram(&bad).unwrap_err();
    let resp = e.response().unwrap();
    let StartLine::Response(sl) = &resp.start else {
        panic!("{resp}")
    };
    assert_eq!(
        std::str::from_utf8(&sl.reason).unwrap(),
        format!("Bad Request ({})", e.kind)
    );
    assert_eq!(
        &resp.header(&HeaderName::Via).unwrap()[..],
        b"SIP/2.0/UDP 127.0.0.1:5070 ;branch=z9hG4bK1;rport"
    );
}

/// REG with `extra` header lines put before Content-Length.
fn reg_with(extra: &str) -> String {
    REG.replace(
        "Content-Length: 0\r\n",
        &format!("{extra}Content-Length: 0\r\n"),
    )
}

fn subject(m: &Message) -> Vec<u8> {
    let name = HeaderName::from_bytes(&Bytes::from_static(b"Subject"));
    m.header(&name).unwrap().to_vec()
}

#[test]
fn folded_and_blank_header_values() {
    let m = dgram(&reg_with("Subject: one\r\n  two\r\n\tthree\r\n")).unwrap();
    assert_eq!(subject(&m), b"one two three", "folds joined with one space");
    let m = dgram(&reg_with("Subject:\r\n two\r\n")).unwrap();
    assert_eq!(subject(&m), b"two", "no space before the first word");
    let m = dgram(&reg_with("Subject: one\r\n \r\n")).unwrap();
    assert_eq!(subject(&m), b"one", "a blank fold adds nothing");
    let m = dgram(&reg_with("Subject:    \r\n")).unwrap();
    assert_eq!(subject(&m), b"", "only spaces after the colon");
}

#[test]
fn bare_line_feeds_end_lines_without_eating_a_character() {
    let lf = reg_with("Subject: abc\r\n").replace("\r\n", "\n");
    let m = dgram(&lf).unwrap();
    assert_eq!(subject(&m), b"abc");
    assert_eq!(m.cseq().unwrap().seq, 1);
}

#[test]
fn a_line_that_only_looks_like_the_headers_end_is_an_error() {
    // A one-character line ended by a bare LF, and a line starting with CR: neither
    // is the empty line that ends the headers, and neither is a header.
    assert!(dgram(&reg_with("X\nSubject: y\r\n")).is_err());
    assert!(dgram(&reg_with("\rX: y\r\n")).is_err());
}

#[test]
fn status_codes_are_read_digit_by_digit() {
    for code in [183u16, 486, 202, 999] {
        let r = format!(
            "SIP/2.0 {code} Whatever\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        let got = dgram(&r).map(|m| m.status().map(|s| s.as_u16()));
        match code {
            999 => assert!(got.is_err(), "{got:?}"),
            _ => assert_eq!(got.unwrap(), Some(code)),
        }
    }
}

#[test]
fn a_malformed_response_is_never_answered() {
    // RFC 3261 §18.1.2: a response that fails to parse is dropped, whatever is wrong.
    let bad = "SIP/2.0 2x0 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let e = dgram(bad).unwrap_err();
    assert!(e.response().is_none(), "{e}");
    // A request broken the same way is answered (the positive control).
    let e = dgram(&REG.replacen("Max-Forwards: 70", "Max-Forwards: x", 1)).unwrap_err();
    assert!(e.response().is_some(), "{e}");
}

#[test]
fn a_contact_expires_that_is_no_number_is_refused() {
    let bad = REG.replace(
        "Contact: <sip:1001@127.0.0.1:5070>",
        "Contact: <sip:1001@127.0.0.1:5070>;expires=soon",
    );
    let e = dgram(&bad).unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::BAD_REQUEST), "{e}");
    let good = REG.replace(
        "Contact: <sip:1001@127.0.0.1:5070>",
        "Contact: <sip:1001@127.0.0.1:5070>;expires=60",
    );
    assert!(dgram(&good).is_ok());
}

#[test]
fn quoted_parameter_values_parse() {
    let m = REG.replace(
        "From: <sip:1001@example.com>;tag=a",
        "From: <sip:1001@example.com>;tag=a;note=\"two words\"",
    );
    assert!(dgram(&m).is_ok());
}
