//! The scanner against serde_json, broken JSON, and depth.

use super::*;

fn path(text: &str) -> JsonPath {
    let mut segments = Vec::new();
    for part in text.split('.') {
        let (key, indices) = part.split_once('[').unwrap_or((part, ""));
        segments.push(PathSegment::Key(key.to_owned()));
        for i in indices.split('[').filter(|s| !s.is_empty()) {
            segments.push(PathSegment::Index(i.trim_end_matches(']').parse().unwrap()));
        }
    }
    JsonPath(segments)
}

/// Each path's raw text and kind in `payload`, or `Err` when it is not JSON.
fn scan(payload: &[u8], paths: &[&str]) -> Result<Vec<Option<(String, Kind)>>> {
    let paths: Vec<JsonPath> = paths.iter().map(|p| path(p)).collect();
    let refs: Vec<&JsonPath> = paths.iter().collect();
    let trie = PathTrie::new(&refs);
    let mut found = vec![None; trie.slots()];
    Scanner::default().scan(payload, &trie, &mut found)?;
    Ok(found
        .iter()
        .map(|f| {
            f.map(|f| {
                let text = String::from_utf8_lossy(&payload[f.start..f.end]).into_owned();
                (text, f.kind)
            })
        })
        .collect())
}

fn text(payload: &str, paths: &[&str]) -> Vec<Option<String>> {
    scan(payload.as_bytes(), paths)
        .expect("JSON")
        .into_iter()
        .map(|v| v.map(|(t, _)| t))
        .collect()
}

#[test]
fn finds_nested_values_and_their_kinds() {
    let doc = r#" {"a": 1, "b": {"c": [10, {"d": "x"}], "n": null},
        "e": "s\"q", "t": true, "f": false, "o": {}, "l": []} "#;
    let got = scan(
        doc.as_bytes(),
        &["a", "b.c[1].d", "b.c", "e", "z", "b.n", "t", "f"],
    )
    .expect("JSON");
    let want = [
        Some(("1", Kind::Number)),
        Some((r#""x""#, Kind::String)),
        Some((r#"[10, {"d": "x"}]"#, Kind::Array)),
        Some((r#""s\"q""#, Kind::EscapedString)),
        None,
        Some(("null", Kind::Null)),
        Some(("true", Kind::True)),
        Some(("false", Kind::False)),
    ];
    let got: Vec<_> = got
        .iter()
        .map(|v| v.as_ref().map(|(t, k)| (t.as_str(), *k)))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        text(doc, &["o", "l"]),
        [Some("{}".into()), Some("[]".into())]
    );
}

#[test]
fn agrees_with_serde_json_on_valid_documents() {
    let docs = [
        r#"{"a":{"b":[1,2,{"c":-0.5e+3}]},"d":"\u00e9","a2":[[1],[2,[3]]]}"#,
        r#"{"a":5,"d":[],"a2":{"x":1}}"#,
        r#"{"d":{"k":"v"},"a":{"b":"not an array"}}"#,
        r#"{ "a" : { "b" : [ 0 , 1 , { "c" : 7 } ] } , "te\u0073t": 1 }"#,
        r#"[{"a": 1}]"#,
        r#""a""#,
        "42",
    ];
    let paths = ["a", "a.b", "a.b[2].c", "a.b[0]", "d", "a2[1][1][0]", "test"];
    for doc in docs {
        let value: serde_json::Value = serde_json::from_str(doc).unwrap();
        let got = text(doc, &paths);
        for (p, g) in paths.iter().zip(got) {
            let pointer = format!("/{}", p.replace(['.', '['], "/").replace(']', ""));
            let want = value.pointer(&pointer);
            let g: Option<serde_json::Value> = g.map(|t| serde_json::from_str(&t).unwrap());
            assert_eq!(g.as_ref(), want, "{doc} {p}");
        }
    }
}

#[test]
fn refuses_broken_json_before_the_needed_values() {
    let broken = [
        "",
        " ",
        "hi",
        "{",
        "{\"a\"",
        "{\"a\":",
        "{\"a\" 1}",
        "{\"a\":}",
        "{\"x\":1,}",
        "{\"x\":[1,]}",
        "{\"x\":tru}",
        "{\"x\":01}",
        "{\"x\":-}",
        "{\"x\":1.}",
        "{\"x\":1e}",
        "{\"x\":[1}",
        "{\"x\":{\"y\":1]}",
        "{\"x\":\"a\nb\"}",
        "{\"x\":\"\\q\"}",
        "{\"x\":\"\\u12G4\"}",
        "{\"x\":\"abc",
        "{x:1}",
        "{'x':1}",
        "\u{feff}{}",
        "{\"x\":[{\"y\":1}{}]}",
        "{\"x\":1 \"a\":2}",
    ];
    for b in broken {
        assert_eq!(scan(b.as_bytes(), &["a"]), Err(NotJson), "{b:?}");
    }
}

#[test]
fn stops_once_every_value_is_found() {
    assert_eq!(
        text(r#"{"a":1,"b":2, garbage"#, &["a", "b"]),
        [Some("1".into()), Some("2".into())]
    );
    // A container that is itself selected is read to its end.
    assert_eq!(scan(br#"{"a":{"b":1, oops"#, &["a", "a.b"]), Err(NotJson));
    // A repeated key keeps its first value.
    assert_eq!(text(r#"{"a":1,"a":2}"#, &["a"]), [Some("1".into())]);
}

#[test]
fn depth_costs_no_recursion() {
    let depth = 200_000;
    let deep = format!(
        "{{\"x\":{}{}, \"a\": 1}}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    assert_eq!(text(&deep, &["a"]), [Some("1".into())]);
    let open = format!("{{\"x\":{}", "[{\"k\":".repeat(depth));
    assert_eq!(scan(open.as_bytes(), &["a"]), Err(NotJson));
    let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    assert_eq!(text(&objects, &["a.a.a.b"]), [None]);
}

#[test]
fn invalid_utf8_outside_read_values_is_not_checked() {
    let mut doc = br#"{"x":"#.to_vec();
    doc.extend_from_slice(b"\"\xff\xfe\", \"a\": \"\xc3\x28\"}");
    let got = scan(&doc, &["a"]).expect("structure is JSON");
    assert_eq!(got[0].as_ref().map(|(_, k)| *k), Some(Kind::String));
}

#[test]
fn plain_runs_end_at_quotes_backslashes_and_control_bytes() {
    let word = |b: &[u8; 8]| u64::from_le_bytes(*b);
    assert!(!ends_plain_run(word(b"abcdefgh")));
    assert!(!ends_plain_run(word(b"\xff\x7f !#[]~")));
    for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
        for at in 0..8 {
            let mut b = *b"abcdefgh";
            b[at] = special;
            assert!(ends_plain_run(word(&b)), "{special:#x} at {at}");
        }
    }
}

#[test]
fn numbers_parse_as_the_standard_parser_does() {
    let mut cases: Vec<String> = [
        "0",
        "-0",
        "1",
        "-1",
        "31.5",
        "0.1",
        "0.30000000000000004",
        "123456789012345",
        "1234567890123456",
        "99999999999999999999",
        "1e3",
        "-2.5E-3",
        "1e999",
        "0.000000000000001",
        "3.141592653589793",
        "-61",
        "87",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let digits = (state % 15 + 1) as usize;
        let text = format!("{:015}", state >> 14);
        let int = (state >> 60) as usize % digits;
        let (a, b) = text[text.len() - digits..].split_at(int + 1);
        cases.push(if b.is_empty() {
            a.to_owned()
        } else {
            format!("{a}.{b}")
        });
    }
    for c in cases {
        let want: f64 = c.parse().unwrap();
        let got = number_value(c.as_bytes()).unwrap();
        assert_eq!(got.to_bits(), want.to_bits(), "{c}");
    }
}
