//! OpenWrt's UCI configuration format (`/etc/config/<package>`): a parser with line-numbered errors, and a
//! serde deserializer over a tree of UCI values, so that the config module reads UCI and TOML through the
//! same types and the same validation.
//!
//! The parser follows libuci (`file.c`) rather than a simplified grammar, so that a file means to us what
//! it means to `uci show`:
//! - statements `package NAME`, `config TYPE [NAME]`, `option NAME VALUE`, `list NAME VALUE`; the
//!   one-letter forms `p`, `c`, `o`, `l` too; `;` separates statements on one line;
//! - a word is any mix of `'single quoted'` text (literal), `"double quoted"` text and bare text, glued
//!   together (`'a'"b"c` is `abc`); in double quotes and bare text a backslash takes the next character
//!   literally (`\"`, `\\`, `\'`), and a backslash at the end of a line joins the next line; quoted text
//!   may span lines;
//! - `#` outside quotes starts a comment that runs to the end of the line;
//! - option and section names are letters, digits and `_`; section types also allow `-`;
//! - a named section given again continues the first one (its type must match); an option given again
//!   replaces the earlier value; `list` after `option` of the same name turns it into a list; setting an
//!   option to `''` deletes it (as `uci set` does).

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A parse error: the line (1-based) and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct UciError {
    /// Line where the offending statement or quoted string starts.
    pub line: usize,
    /// What is wrong, in one line.
    pub problem: String,
}

/// A parsed UCI file: its sections in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Package {
    /// The name of a `package NAME` statement, if the file has one.
    pub name: Option<String>,
    /// The sections, in the order they first appear.
    pub sections: Vec<Section>,
}

/// One `config TYPE [NAME]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The section type (`target` in `config target`).
    pub kind: String,
    /// The section name (`wan` in `config uplink 'wan'`); `None` for an anonymous section.
    pub name: Option<String>,
    /// Line of the `config` statement.
    pub line: usize,
    /// Options and lists, in the order they first appear.
    pub options: Vec<UciOption>,
}

/// One option or list of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UciOption {
    /// The option name.
    pub name: String,
    /// Its value.
    pub value: Value,
    /// Line of the statement that last set it.
    pub line: usize,
}

/// An option's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `option NAME VALUE`.
    Single(String),
    /// One or more `list NAME VALUE` lines.
    List(Vec<String>),
}

impl Section {
    /// The option with this name.
    pub fn option(&self, name: &str) -> Option<&UciOption> {
        self.options.iter().find(|o| o.name == name)
    }
}

/// Parses the text of a UCI file.
pub fn parse(text: &str) -> Result<Package, UciError> {
    let mut parser = Parser {
        chars: text.chars().collect(),
        pos: 0,
        line: 1,
    };
    let mut package = Package::default();
    let mut current: Option<usize> = None;
    while let Some(statement) = parser.statement()? {
        let Statement { line, words } = statement;
        let err = |problem: String| UciError { line, problem };
        let Some((command, args)) = words.split_first() else {
            continue;
        };
        match command.as_str() {
            "package" | "p" => {
                let [name] = args else {
                    return Err(err(arity("package", "a name", args.len())));
                };
                if package.name.is_some() || !package.sections.is_empty() {
                    return Err(err("only one package per file, before any section".into()));
                }
                check_name(name, true).map_err(err)?;
                package.name = Some(name.clone());
            }
            "config" | "c" => {
                let (kind, name) = match args {
                    [kind] => (kind, None),
                    [kind, name] if name.is_empty() => (kind, None),
                    [kind, name] => (kind, Some(name)),
                    _ => {
                        return Err(err(arity(
                            "config",
                            "a type and an optional name",
                            args.len(),
                        )))
                    }
                };
                check_type(kind).map_err(err)?;
                if let Some(name) = name {
                    check_name(name, false).map_err(err)?;
                }
                let existing = name.and_then(|n| {
                    package
                        .sections
                        .iter()
                        .position(|s| s.name.as_deref() == Some(n.as_str()))
                });
                match existing {
                    Some(i) if package.sections[i].kind != *kind => {
                        return Err(err(format!(
                            "section {:?} given again with type {:?} (line {} has type {:?})",
                            name.map_or("", |n| n.as_str()),
                            kind,
                            package.sections[i].line,
                            package.sections[i].kind
                        )));
                    }
                    Some(i) => current = Some(i),
                    None => {
                        package.sections.push(Section {
                            kind: kind.clone(),
                            name: name.cloned(),
                            line,
                            options: Vec::new(),
                        });
                        current = Some(package.sections.len() - 1);
                    }
                }
            }
            cmd @ ("option" | "o" | "list" | "l") => {
                let is_list = cmd.starts_with('l');
                let keyword = if is_list { "list" } else { "option" };
                let (name, value) = match args {
                    [name] => (name, String::new()),
                    [name, value] => (name, value.clone()),
                    _ => return Err(err(arity(keyword, "a name and a value", args.len()))),
                };
                check_name(name, false).map_err(err)?;
                let Some(section) = current.and_then(|i| package.sections.get_mut(i)) else {
                    return Err(err(format!("{keyword} before the first config section")));
                };
                set(section, name, value, is_list, line);
            }
            other => {
                return Err(err(format!(
                    "unknown statement {other:?} (expected package, config, option or list)"
                )))
            }
        }
    }
    Ok(package)
}

fn arity(keyword: &str, wants: &str, got: usize) -> String {
    if got == 0 {
        format!("{keyword} needs {wants}")
    } else {
        format!("too many arguments to {keyword} (it takes {wants})")
    }
}

fn set(section: &mut Section, name: &str, value: String, is_list: bool, line: usize) {
    let existing = section.options.iter().position(|o| o.name == name);
    match (existing, is_list) {
        (Some(i), true) => {
            let option = &mut section.options[i];
            option.line = line;
            match &mut option.value {
                Value::List(items) => items.push(value),
                Value::Single(old) => {
                    let old = std::mem::take(old);
                    option.value = Value::List(vec![old, value]);
                }
            }
        }
        (None, true) => section.options.push(UciOption {
            name: name.to_owned(),
            value: Value::List(vec![value]),
            line,
        }),
        // `uci set x.y.z=''` deletes the option; the file format means the same.
        (Some(i), false) if value.is_empty() => {
            section.options.remove(i);
        }
        (None, false) if value.is_empty() => {}
        (Some(i), false) => {
            section.options[i].value = Value::Single(value);
            section.options[i].line = line;
        }
        (None, false) => section.options.push(UciOption {
            name: name.to_owned(),
            value: Value::Single(value),
            line,
        }),
    }
}

fn check_name(name: &str, package: bool) -> Result<(), String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || (package && c == '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid name {name:?} (letters, digits and _ only)"
        ))
    }
}

fn check_type(kind: &str) -> Result<(), String> {
    let ok = !kind.is_empty()
        && kind
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid section type {kind:?} (letters, digits, _ and - only)"
        ))
    }
}

struct Statement {
    line: usize,
    words: Vec<String>,
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    line: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// A backslash before a line end (`\n` or `\r\n`) joins the lines: consumes the line end.
    fn line_continuation(&mut self) -> bool {
        match (self.peek(), self.peek_at(1)) {
            (Some('\n'), _) => {
                self.bump();
                true
            }
            (Some('\r'), Some('\n')) => {
                self.bump();
                self.bump();
                true
            }
            (None, _) => true,
            _ => false,
        }
    }

    fn skip_comment(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            self.bump();
        }
    }

    /// The next statement's words, or `None` at the end of the input. Empty statements are skipped.
    fn statement(&mut self) -> Result<Option<Statement>, UciError> {
        loop {
            let mut words = Vec::new();
            let mut line = self.line;
            loop {
                match self.peek() {
                    None => break,
                    Some('\n') => {
                        self.bump();
                        break;
                    }
                    Some(';') => {
                        self.bump();
                        break;
                    }
                    Some('#') => self.skip_comment(),
                    Some(c) if c.is_whitespace() => {
                        self.bump();
                    }
                    Some(_) => {
                        if words.is_empty() {
                            line = self.line;
                        }
                        words.push(self.word()?);
                    }
                }
            }
            if !words.is_empty() {
                return Ok(Some(Statement { line, words }));
            }
            if self.peek().is_none() {
                return Ok(None);
            }
        }
    }

    /// One word: quoted and bare pieces glued together, up to white space, `;`, `#` or the line end.
    fn word(&mut self) -> Result<String, UciError> {
        let mut word = String::new();
        while let Some(c) = self.peek() {
            match c {
                '\'' => {
                    let start = self.line;
                    self.bump();
                    loop {
                        match self.bump() {
                            Some('\'') => break,
                            Some(c) => word.push(c),
                            None => return Err(unterminated(start, '\'')),
                        }
                    }
                }
                '"' => {
                    let start = self.line;
                    self.bump();
                    loop {
                        match self.bump() {
                            Some('"') => break,
                            Some('\\') => {
                                if self.line_continuation() {
                                    if self.peek().is_none() {
                                        return Err(unterminated(start, '"'));
                                    }
                                    continue;
                                }
                                if let Some(c) = self.bump() {
                                    word.push(c);
                                }
                            }
                            Some(c) => word.push(c),
                            None => return Err(unterminated(start, '"')),
                        }
                    }
                }
                '\\' => {
                    self.bump();
                    if !self.line_continuation() {
                        if let Some(c) = self.bump() {
                            word.push(c);
                        }
                    }
                }
                '#' | ';' => break,
                c if c.is_whitespace() => break,
                c => {
                    self.bump();
                    word.push(c);
                }
            }
        }
        Ok(word)
    }
}

fn unterminated(line: usize, quote: char) -> UciError {
    UciError {
        line,
        problem: format!("unterminated {quote} quote (the file ends inside it)"),
    }
}

/// A UCI value tree for [`NodeDeserializer`]: what the config module builds from a [`Package`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// An option's value.
    Str(String),
    /// A list's values.
    List(Vec<String>),
    /// A section (options by name, in file order) or the whole file (section types by name).
    Map(Vec<(String, Node)>),
    /// Repeated sections of one type.
    Seq(Vec<Node>),
}

/// A deserialize error from a UCI value: what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeError(pub String);

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

/// Deserializes a [`Node`]. UCI has only strings, so numbers and booleans are parsed from text when the
/// target type asks for them; booleans take UCI's spellings (`1`/`0`, `yes`/`no`, `on`/`off`,
/// `true`/`false`, `enabled`/`disabled`). A single `option` is accepted where a list is expected.
pub struct NodeDeserializer(pub Node);

impl<'de> IntoDeserializer<'de, DeError> for Node {
    type Deserializer = NodeDeserializer;
    fn into_deserializer(self) -> NodeDeserializer {
        NodeDeserializer(self)
    }
}

impl NodeDeserializer {
    fn string(self, what: &str) -> Result<String, DeError> {
        match self.0 {
            Node::Str(s) => Ok(s),
            Node::List(_) => Err(DeError(format!("expected {what} (option), found a list"))),
            Node::Map(_) | Node::Seq(_) => {
                Err(DeError(format!("expected {what}, found a section")))
            }
        }
    }

    fn number<T: std::str::FromStr>(self) -> Result<T, DeError> {
        let s = self.string("a number")?;
        s.trim()
            .parse()
            .map_err(|_| DeError(format!("invalid number {s:?}")))
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "on" | "true" | "enabled" => Some(true),
        "0" | "no" | "off" | "false" | "disabled" => Some(false),
        _ => None,
    }
}

macro_rules! number {
    ($($method:ident => $visit:ident as $t:ty,)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            visitor.$visit(self.number::<$t>()?)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for NodeDeserializer {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Node::Str(s) => visitor.visit_string(s),
            Node::List(items) => visitor.visit_seq(Items::new(items.into_iter().map(Node::Str))),
            Node::Seq(items) => visitor.visit_seq(Items::new(items.into_iter())),
            Node::Map(entries) => visitor.visit_map(Entries {
                entries: entries.into_iter(),
                value: None,
            }),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let s = self.string("a boolean")?;
        match parse_bool(&s) {
            Some(b) => visitor.visit_bool(b),
            None => Err(DeError(format!(
                "invalid boolean {s:?} (expected 1 or 0, yes or no, on or off, true or false)"
            ))),
        }
    }

    number! {
        deserialize_u8 => visit_u64 as u64,
        deserialize_u16 => visit_u64 as u64,
        deserialize_u32 => visit_u64 as u64,
        deserialize_u64 => visit_u64 as u64,
        deserialize_i8 => visit_i64 as i64,
        deserialize_i16 => visit_i64 as i64,
        deserialize_i32 => visit_i64 as i64,
        deserialize_i64 => visit_i64 as i64,
        deserialize_f32 => visit_f64 as f64,
        deserialize_f64 => visit_f64 as f64,
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_string(self.string("a single value")?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_string(self.string("a single value")?)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_string(self.string("a single value")?)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_string(self.string("a name")?)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // An absent option is a missing field, handled by serde; a present one is `Some`.
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Node::Str(s) => visitor.visit_seq(Items::new(std::iter::once(Node::Str(s)))),
            Node::Map(_) => Err(DeError("expected a list, found a section".into())),
            other => NodeDeserializer(other).deserialize_any(visitor),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Node::Map(_) => self.deserialize_any(visitor),
            Node::Seq(_) => Err(DeError("this section type may appear only once".into())),
            Node::Str(_) | Node::List(_) => {
                Err(DeError("expected a section, found an option".into()))
            }
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let s = self.string("a single value")?;
        visitor.visit_enum(IntoDeserializer::<DeError>::into_deserializer(s))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bytes byte_buf unit unit_struct tuple tuple_struct
    }
}

struct Items<I> {
    items: I,
}

impl<I> Items<I> {
    fn new(items: I) -> Self {
        Self { items }
    }
}

impl<'de, I: Iterator<Item = Node>> SeqAccess<'de> for Items<I> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some(node) => seed.deserialize(NodeDeserializer(node)).map(Some),
            None => Ok(None),
        }
    }
}

struct Entries {
    entries: std::vec::IntoIter<(String, Node)>,
    value: Option<Node>,
}

impl<'de> MapAccess<'de> for Entries {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(NodeDeserializer(Node::Str(key))).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let value = self
            .value
            .take()
            .ok_or_else(|| DeError("a value without a key".into()))?;
        seed.deserialize(NodeDeserializer(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single<'a>(p: &'a Package, section: usize, option: &str) -> &'a str {
        match &p.sections[section].option(option).unwrap().value {
            Value::Single(s) => s,
            Value::List(l) => panic!("{option} is a list: {l:?}"),
        }
    }

    #[test]
    fn quoting_matches_libuci() {
        let p = parse(concat!(
            "config test 'x'\n",
            "\toption a 'it''s'\n",
            "\toption b \"say \\\"hi\\\"\"\n",
            "\toption c bare\\ word\n",
            "\toption d 'a'\"b\"c\n",
            "\toption e 'no \\ escape'\n",
            "\toption f \"first\n",
            "second\"\n",
            "\toption g 'x#y' # comment\n",
            "\toption h one\\\n",
            "two\n",
            "\toption i v1; option j v2\n",
        ))
        .unwrap();
        assert_eq!(single(&p, 0, "a"), "its");
        assert_eq!(single(&p, 0, "b"), "say \"hi\"");
        assert_eq!(single(&p, 0, "c"), "bare word");
        assert_eq!(single(&p, 0, "d"), "abc");
        assert_eq!(single(&p, 0, "e"), "no \\ escape");
        assert_eq!(single(&p, 0, "f"), "first\nsecond");
        assert_eq!(single(&p, 0, "g"), "x#y");
        assert_eq!(single(&p, 0, "h"), "onetwo");
        assert_eq!(single(&p, 0, "i"), "v1");
        assert_eq!(single(&p, 0, "j"), "v2");
        assert_eq!(p.sections[0].option("j").unwrap().line, 12);
    }

    #[test]
    fn sections_packages_abbreviations_and_crlf() {
        let p = parse(
            "package 'o365probe'\r\nc target 'owa'\r\n\to host outlook.office365.com\r\n\tl tcp 443\r\n\tl tcp 80 # http\r\n\r\nconfig target\r\n\toption host b.example\r\n",
        )
        .unwrap();
        assert_eq!(p.name.as_deref(), Some("o365probe"));
        assert_eq!(p.sections.len(), 2);
        assert_eq!(p.sections[0].name.as_deref(), Some("owa"));
        assert_eq!(p.sections[1].name, None);
        assert_eq!(p.sections[1].line, 7);
        assert_eq!(single(&p, 0, "host"), "outlook.office365.com");
        assert_eq!(
            p.sections[0].option("tcp").unwrap().value,
            Value::List(vec!["443".into(), "80".into()])
        );
    }

    #[test]
    fn a_list_after_an_option_extends_it() {
        let p = parse("config dns\n\toption resolver a\n\tlist resolver b\n").unwrap();
        assert_eq!(
            p.sections[0].option("resolver").unwrap().value,
            Value::List(vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn unterminated_quote_names_the_line_it_starts_on() {
        let e = parse("config a\n\toption x 'open\n\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.problem.contains("unterminated '"), "{e}");
    }
}
