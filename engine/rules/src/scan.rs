//! Finding a rule's payload paths in a JSON payload, in one pass, without building
//! anything.
//!
//! The scanner walks the payload's bytes once. It descends only into the objects and
//! arrays that lead to a referenced path, skips everything else, and records where each
//! referenced value starts and ends and what JSON type it is; the caller reads the
//! value's text straight out of the payload. It stops as soon as every referenced value
//! has been seen, so fields after the last one needed are never read. Nothing is
//! allocated per payload: keys are compared as bytes against the few the rule names.
//!
//! What it must never do: panic or recurse on payload content. Descent is bounded by the
//! rule's longest path; skipping a nested value is iterative, whatever its depth.
//!
//! Leniency, as documented in the crate: the bytes read are checked against JSON's
//! grammar (a payload that breaks it before the last needed value is "not JSON"), but
//! what follows the last needed value is not read, a repeated key keeps its first value,
//! and UTF-8 is checked only in the values the rule reads.

use crate::columns::{JsonPath, PathSegment};

/// One step of the trie: the children a rule's paths continue into, and the slot of the
/// path that ends here, if one does.
#[derive(Debug, Default)]
struct Node {
    keys: Vec<(Box<[u8]>, usize)>,
    indices: Vec<(usize, usize)>,
    slot: Option<usize>,
}

/// A rule's distinct payload paths as a trie; path `i` of [`PathTrie::new`] is slot `i`.
#[derive(Debug)]
pub(crate) struct PathTrie {
    nodes: Vec<Node>,
    slots: usize,
}

impl PathTrie {
    pub(crate) fn new(paths: &[&JsonPath]) -> Self {
        let mut nodes = vec![Node::default()];
        for (slot, path) in paths.iter().enumerate() {
            let mut at = 0;
            for segment in &path.0 {
                let next = nodes.len();
                let existing = match segment {
                    PathSegment::Key(k) => {
                        let children = &mut nodes[at].keys;
                        match children.iter().find(|(c, _)| **c == *k.as_bytes()) {
                            Some(&(_, n)) => Some(n),
                            None => {
                                children.push((k.as_bytes().into(), next));
                                None
                            }
                        }
                    }
                    PathSegment::Index(i) => {
                        let children = &mut nodes[at].indices;
                        match children.iter().find(|(c, _)| c == i) {
                            Some(&(_, n)) => Some(n),
                            None => {
                                children.push((*i, next));
                                None
                            }
                        }
                    }
                };
                at = existing.unwrap_or_else(|| {
                    nodes.push(Node::default());
                    next
                });
            }
            nodes[at].slot = Some(slot);
        }
        Self {
            nodes,
            slots: paths.len(),
        }
    }

    pub(crate) fn slots(&self) -> usize {
        self.slots
    }
}

/// The JSON type of a found value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Null,
    True,
    False,
    Number,
    /// A string with no escape: its text is the bytes between the quotes.
    String,
    /// A string holding at least one backslash escape.
    EscapedString,
    Object,
    Array,
}

/// Where a found value lies in the payload (its raw JSON text) and its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) kind: Kind,
}

/// The payload broke JSON's grammar before every needed value was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotJson;

type Result<T> = std::result::Result<T, NotJson>;

/// Reusable scanning state: one per batch, so the skip stack is allocated once.
#[derive(Debug, Default)]
pub(crate) struct Scanner {
    stack: Vec<u8>,
}

impl Scanner {
    /// Fills `found[slot]` for every path of `trie` present in `payload`; the others are
    /// left `None`. `found` must have `trie.slots()` entries.
    pub(crate) fn scan(
        &mut self,
        payload: &[u8],
        trie: &PathTrie,
        found: &mut [Option<Found>],
    ) -> Result<()> {
        found.fill(None);
        let mut cursor = Cursor {
            bytes: payload,
            at: 0,
            trie,
            found,
            remaining: trie.slots,
            done: false,
            stack: &mut self.stack,
        };
        cursor.value(Some(0), true).map(|_| ())
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    trie: &'a PathTrie,
    found: &'a mut [Option<Found>],
    /// Slots not found yet; at 0 the scan stops.
    remaining: usize,
    /// Set once every slot is found: callers unwind without reading further.
    done: bool,
    stack: &'a mut Vec<u8>,
}

impl Cursor<'_> {
    fn peek(&self) -> Result<u8> {
        self.bytes.get(self.at).copied().ok_or(NotJson)
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// Skips whitespace, then consumes `byte` or fails.
    fn expect(&mut self, byte: u8) -> Result<()> {
        self.skip_ws();
        if self.peek()? == byte {
            self.at += 1;
            Ok(())
        } else {
            Err(NotJson)
        }
    }

    /// Reads one value at trie node `node` (`None`: nothing referenced below here).
    /// `may_stop`: no enclosing value still needs its end, so the scan may stop inside.
    fn value(&mut self, node: Option<usize>, may_stop: bool) -> Result<()> {
        self.skip_ws();
        let start = self.at;
        let trie = self.trie;
        let n = node.map(|n| &trie.nodes[n]);
        let inner_may_stop = may_stop && n.is_none_or(|n| n.slot.is_none());
        let kind = match self.peek()? {
            b'{' => {
                match node.filter(|&i| !trie.nodes[i].keys.is_empty()) {
                    Some(i) => self.object(i, inner_may_stop)?,
                    None => self.skip_container()?,
                }
                Kind::Object
            }
            b'[' => {
                match node.filter(|&i| !trie.nodes[i].indices.is_empty()) {
                    Some(i) => self.array(i, inner_may_stop)?,
                    None => self.skip_container()?,
                }
                Kind::Array
            }
            b'"' => {
                if self.string()? {
                    Kind::EscapedString
                } else {
                    Kind::String
                }
            }
            b't' => self.literal(b"true", Kind::True)?,
            b'f' => self.literal(b"false", Kind::False)?,
            b'n' => self.literal(b"null", Kind::Null)?,
            b'-' | b'0'..=b'9' => {
                self.number()?;
                Kind::Number
            }
            _ => return Err(NotJson),
        };
        if self.done {
            return Ok(());
        }
        if let Some(slot) = n.and_then(|n| n.slot)
            && let Some(entry @ None) = self.found.get_mut(slot)
        {
            *entry = Some(Found {
                start,
                end: self.at,
                kind,
            });
            self.remaining -= 1;
            self.done = self.remaining == 0 && may_stop;
        }
        Ok(())
    }

    /// An object some referenced path runs through: keys the trie names are descended.
    fn object(&mut self, node: usize, may_stop: bool) -> Result<()> {
        self.at += 1;
        self.skip_ws();
        if self.peek()? == b'}' {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.expect(b'"')?;
            self.at -= 1;
            let key_start = self.at + 1;
            let escaped = self.string()?;
            let key = &self.bytes[key_start..self.at - 1];
            let child = if escaped {
                // Rare: compare the unescaped key (the only allocation in the scanner).
                match sonic_rs::from_slice::<String>(&self.bytes[key_start - 1..self.at]) {
                    Ok(k) => self.child_by_key(node, k.as_bytes()),
                    Err(_) => return Err(NotJson),
                }
            } else {
                self.child_by_key(node, key)
            };
            self.expect(b':')?;
            self.value(child, may_stop)?;
            if self.done {
                return Ok(());
            }
            self.skip_ws();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(NotJson),
            }
        }
    }

    fn child_by_key(&self, node: usize, key: &[u8]) -> Option<usize> {
        let keys = &self.trie.nodes[node].keys;
        keys.iter().find(|(k, _)| **k == *key).map(|&(_, n)| n)
    }

    /// An array some referenced path indexes into.
    fn array(&mut self, node: usize, may_stop: bool) -> Result<()> {
        self.at += 1;
        self.skip_ws();
        if self.peek()? == b']' {
            self.at += 1;
            return Ok(());
        }
        let mut index = 0;
        loop {
            let indices = &self.trie.nodes[node].indices;
            let child = indices.iter().find(|(i, _)| *i == index).map(|&(_, n)| n);
            self.value(child, may_stop)?;
            if self.done {
                return Ok(());
            }
            index += 1;
            self.skip_ws();
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(NotJson),
            }
        }
    }

    /// Skips an object or array nothing is referenced in, iteratively: `stack` holds the
    /// closing byte of each open container, so depth costs memory, never recursion.
    fn skip_container(&mut self) -> Result<()> {
        let base = self.stack.len();
        let result = self.skip_container_inner(base);
        self.stack.truncate(base);
        result
    }

    fn skip_container_inner(&mut self, base: usize) -> Result<()> {
        loop {
            // At the start of a value.
            self.skip_ws();
            match self.peek()? {
                open @ (b'{' | b'[') => {
                    self.at += 1;
                    self.skip_ws();
                    let close = if open == b'{' { b'}' } else { b']' };
                    if self.peek()? == close {
                        self.at += 1;
                    } else {
                        self.stack.push(close);
                        if close == b'}' {
                            self.key()?;
                        }
                        continue;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b't' => _ = self.literal(b"true", Kind::True)?,
                b'f' => _ = self.literal(b"false", Kind::False)?,
                b'n' => _ = self.literal(b"null", Kind::Null)?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return Err(NotJson),
            }
            // After a complete value: close containers until a comma starts the next one.
            loop {
                let Some(&close) = self.stack.get(base..).and_then(<[u8]>::last) else {
                    return Ok(());
                };
                self.skip_ws();
                let byte = self.peek()?;
                self.at += 1;
                if byte == close {
                    self.stack.pop();
                } else if byte == b',' {
                    if close == b'}' {
                        self.key()?;
                    }
                    break;
                } else {
                    return Err(NotJson);
                }
            }
        }
    }

    /// An object key and its colon.
    fn key(&mut self) -> Result<()> {
        self.expect(b'"')?;
        self.at -= 1;
        self.string()?;
        self.expect(b':')
    }

    /// Consumes a string at its opening quote; returns whether it holds an escape.
    fn string(&mut self) -> Result<bool> {
        self.at += 1;
        let mut escaped = false;
        loop {
            // Eight bytes at a time while none of them ends the plain run.
            while let Some(chunk) = self.bytes.get(self.at..self.at + 8) {
                let mut word = [0; 8];
                word.copy_from_slice(chunk);
                if ends_plain_run(u64::from_le_bytes(word)) {
                    break;
                }
                self.at += 8;
            }
            let rest = self.bytes.get(self.at..).ok_or(NotJson)?;
            let stop = rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .ok_or(NotJson)?;
            self.at += stop;
            match rest[stop] {
                b'"' => {
                    self.at += 1;
                    return Ok(escaped);
                }
                b'\\' => {
                    escaped = true;
                    match self.bytes.get(self.at + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.at += 2;
                        }
                        Some(b'u') => {
                            let hex = self.bytes.get(self.at + 2..self.at + 6).ok_or(NotJson)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(NotJson);
                            }
                            self.at += 6;
                        }
                        _ => return Err(NotJson),
                    }
                }
                // A raw control character: not allowed inside a JSON string.
                _ => return Err(NotJson),
            }
        }
    }

    fn literal(&mut self, text: &[u8], kind: Kind) -> Result<Kind> {
        if self.bytes.get(self.at..self.at + text.len()) == Some(text) {
            self.at += text.len();
            Ok(kind)
        } else {
            Err(NotJson)
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Result<()> {
        if self.peek()? == b'-' {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return Err(NotJson),
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            self.need_digits()?;
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            self.need_digits()?;
        }
        Ok(())
    }

    fn digits(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
    }

    fn need_digits(&mut self) -> Result<()> {
        let from = self.at;
        self.digits();
        if self.at == from {
            Err(NotJson)
        } else {
            Ok(())
        }
    }
}

/// Whether any of the eight bytes in `word` is a quote, a backslash or a control
/// character (below 0x20): the bytes that end a run of plain string text. Exact as a yes
/// or no (the classic "has zero byte" / "has byte less than" bit tricks).
fn ends_plain_run(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let quote = has_zero(word ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    quote | backslash | control != 0
}

/// A JSON number's value. Numbers of at most 15 significant digits and no exponent (what
/// devices send) take Clinger's fast path: the digits as an exact integer divided by an
/// exact power of ten, one correctly rounded operation, so the same f64 as the standard
/// parser; anything else goes to the standard parser.
pub(crate) fn number_value(raw: &[u8]) -> Option<f64> {
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (negative, digits) = match raw.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, raw),
    };
    let (mut mantissa, mut count, mut fraction, mut dot) = (0u64, 0usize, 0usize, false);
    for &b in digits {
        match b {
            b'0'..=b'9' if count < 15 => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                count += 1;
                fraction += usize::from(dot);
            }
            b'.' if !dot => dot = true,
            _ => return std::str::from_utf8(raw).ok()?.parse().ok(),
        }
    }
    if count == 0 {
        return None;
    }
    let value = mantissa as f64 / POW10[fraction];
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests;
