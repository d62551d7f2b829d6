//! Label and field selectors with upstream's grammar, validation and error messages
//! (`k8s.io/apimachinery/pkg/labels`, `pkg/fields`, and the per-kind field label sets).

use crate::validation::names::{is_qualified_name, is_valid_label_value};
use serde_json::{Map, Value};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A label selector that does not parse or validate; the text is upstream's message.
    #[error("{0}")]
    Label(String),
    /// A field selector that does not parse.
    #[error("{0}")]
    Field(String),
    /// A field selector naming a field the kind does not index (a 400 BadRequest upstream).
    #[error("field label not supported: {0}")]
    FieldLabelNotSupported(String),
}

pub type Result<T> = std::result::Result<T, SelectorError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    /// Sorted and deduplicated, like upstream's `sets.String`.
    pub values: Vec<String>,
}

impl Requirement {
    /// Upstream's `NewRequirement` checks; errors are joined like an aggregate.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Requirement> {
        let mut errs: Vec<String> = Vec::new();
        let key_errs = is_qualified_name(key);
        if !key_errs.is_empty() {
            errs.push(format!(
                "key: Invalid value: {:?}: {}",
                key,
                key_errs.join("; ")
            ));
        }
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => errs.push(format!(
                "values: Invalid value: {}: for 'in', 'notin' operators, values set can't be empty",
                go_string_slice(&values)
            )),
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                errs.push(format!(
                    "values: Invalid value: {}: exact-match compatible operators must have exactly one value",
                    go_string_slice(&values)
                ))
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => errs.push(format!(
                "values: Invalid value: {}: values set must be empty for exists and does not exist",
                go_string_slice(&values)
            )),
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(format!(
                        "values: Invalid value: {}: for 'Gt', 'Lt' operators, exactly one value is required",
                        go_string_slice(&values)
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(format!(
                            "values[{i}]: Invalid value: {v:?}: for 'Gt', 'Lt' operators, the value must be an integer"
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            let value_errs = is_valid_label_value(v);
            if !value_errs.is_empty() {
                errs.push(format!(
                    "values[{i}][{key}]: Invalid value: {v:?}: {}",
                    value_errs.join("; ")
                ));
            }
        }
        match errs.len() {
            0 => Ok(Requirement {
                key: key.to_string(),
                operator,
                values,
            }),
            1 => Err(SelectorError::Label(errs.remove(0))),
            _ => Err(SelectorError::Label(format!("[{}]", errs.join(", ")))),
        }
    }

    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        let value = labels.get(&self.key).and_then(Value::as_str);
        match self.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In => {
                value.is_some_and(|v| self.values.iter().any(|x| x == v))
            }
            Operator::NotEquals | Operator::NotIn => {
                value.is_none_or(|v| !self.values.iter().any(|x| x == v))
            }
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(label) = value.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                self.values
                    .iter()
                    .filter_map(|v| v.parse::<i64>().ok())
                    .any(|bound| {
                        if self.operator == Operator::GreaterThan {
                            label > bound
                        } else {
                            label < bound
                        }
                    })
            }
        }
    }
}

/// Go's `%#v`-ish rendering of a `[]string` used in upstream's messages.
fn go_string_slice(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.operator {
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::Equals => write!(f, "{}={}", self.key, self.values.join(",")),
            Operator::DoubleEquals => write!(f, "{}=={}", self.key, self.values.join(",")),
            Operator::NotEquals => write!(f, "{}!={}", self.key, self.values.join(",")),
            Operator::GreaterThan => write!(f, "{}>{}", self.key, self.values.join(",")),
            Operator::LessThan => write!(f, "{}<{}", self.key, self.values.join(",")),
            Operator::In => write!(f, "{} in ({})", self.key, self.values.join(",")),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, self.values.join(",")),
        }
    }
}

/// A parsed label selector. `matches_nothing` models a nil `metav1.LabelSelector`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
    pub matches_nothing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Identifier(String),
    DoesNotExist,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
    In,
    NotIn,
    OpenPar,
    ClosedPar,
    Comma,
    End,
}

impl Token {
    fn literal(&self) -> String {
        match self {
            Token::Identifier(s) => s.clone(),
            Token::DoesNotExist => "!".into(),
            Token::Equals => "=".into(),
            Token::DoubleEquals => "==".into(),
            Token::NotEquals => "!=".into(),
            Token::GreaterThan => ">".into(),
            Token::LessThan => "<".into(),
            Token::In => "in".into(),
            Token::NotIn => "notin".into(),
            Token::OpenPar => "(".into(),
            Token::ClosedPar => ")".into(),
            Token::Comma => ",".into(),
            Token::End => String::new(),
        }
    }

    /// In value position the keywords are plain identifiers.
    fn as_value(&self) -> Token {
        match self {
            Token::In | Token::NotIn => Token::Identifier(self.literal()),
            other => other.clone(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn lex(input: &str) -> Vec<Token> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if is_special(c) {
            let next = chars.get(i + 1).copied();
            let (token, width) = match (c, next) {
                ('=', Some('=')) => (Token::DoubleEquals, 2),
                ('!', Some('=')) => (Token::NotEquals, 2),
                ('=', _) => (Token::Equals, 1),
                ('!', _) => (Token::DoesNotExist, 1),
                ('(', _) => (Token::OpenPar, 1),
                (')', _) => (Token::ClosedPar, 1),
                (',', _) => (Token::Comma, 1),
                ('>', _) => (Token::GreaterThan, 1),
                _ => (Token::LessThan, 1),
            };
            tokens.push(token);
            i += width;
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && !is_special(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        tokens.push(match word.as_str() {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Identifier(word),
        });
    }
    tokens.push(Token::End);
    tokens
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
}

impl Parser {
    fn lookahead_value(&self) -> Token {
        self.tokens
            .get(self.position)
            .unwrap_or(&Token::End)
            .as_value()
    }

    fn consume_raw(&mut self) -> Token {
        let token = self
            .tokens
            .get(self.position)
            .cloned()
            .unwrap_or(Token::End);
        self.position += 1;
        token
    }

    fn consume_value(&mut self) -> Token {
        self.consume_raw().as_value()
    }

    fn parse(&mut self) -> std::result::Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            match self.lookahead_value() {
                Token::Identifier(_) | Token::DoesNotExist => {
                    let requirement = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(requirement);
                    match self.consume_value() {
                        Token::End => return Ok(requirements),
                        Token::Comma => {
                            let next = self.lookahead_value();
                            if !matches!(next, Token::Identifier(_) | Token::DoesNotExist) {
                                return Err(format!(
                                    "found '{}', expected: identifier after ','",
                                    next.literal()
                                ));
                            }
                        }
                        other => {
                            return Err(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                other.literal()
                            ));
                        }
                    }
                }
                Token::End => return Ok(requirements),
                other => {
                    return Err(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        other.literal()
                    ));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> std::result::Result<Requirement, String> {
        let mut token = self.consume_value();
        let mut operator = None;
        if token == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            token = self.consume_value();
        }
        let Token::Identifier(key) = token else {
            return Err(format!("found '{}', expected: identifier", token.literal()));
        };
        let key_errs = is_qualified_name(&key);
        if !key_errs.is_empty() {
            // Upstream validates with a nil field path, hence its "<nil>" prefix.
            return Err(format!(
                "<nil>: Invalid value: {key:?}: {}",
                key_errs.join("; ")
            ));
        }
        if operator.is_some() {
            // "!key" takes no operator; anything after it fails in the caller.
            return Requirement::new(&key, Operator::DoesNotExist, Vec::new())
                .map_err(|e| e.to_string());
        }
        if matches!(self.lookahead_value(), Token::End | Token::Comma) {
            return Requirement::new(&key, Operator::Exists, Vec::new()).map_err(|e| e.to_string());
        }
        let operator = self.parse_operator()?;
        let mut values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        values.sort();
        values.dedup();
        Requirement::new(&key, operator, values).map_err(|e| e.to_string())
    }

    fn parse_operator(&mut self) -> std::result::Result<Operator, String> {
        match self.consume_raw() {
            Token::In => Ok(Operator::In),
            Token::NotIn => Ok(Operator::NotIn),
            Token::Equals => Ok(Operator::Equals),
            Token::DoubleEquals => Ok(Operator::DoubleEquals),
            Token::NotEquals => Ok(Operator::NotEquals),
            Token::GreaterThan => Ok(Operator::GreaterThan),
            Token::LessThan => Ok(Operator::LessThan),
            other => Err(format!(
                "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                other.literal()
            )),
        }
    }

    fn parse_values(&mut self) -> std::result::Result<Vec<String>, String> {
        let token = self.consume_value();
        if token != Token::OpenPar {
            return Err(format!("found '{}' expected: '('", token.literal()));
        }
        match self.lookahead_value() {
            Token::Identifier(_) | Token::Comma => {
                let values = self.parse_identifier_list()?;
                let closing = self.consume_value();
                if closing != Token::ClosedPar {
                    return Err(format!("found '{}', expected: ')'", closing.literal()));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume_value();
                Ok(vec![String::new()])
            }
            other => Err(format!(
                "found '{}', expected: ',', ')' or identifier",
                other.literal()
            )),
        }
    }

    fn parse_identifier_list(&mut self) -> std::result::Result<Vec<String>, String> {
        let mut values: Vec<String> = Vec::new();
        loop {
            match self.consume_value() {
                Token::Identifier(value) => {
                    values.push(value);
                    match self.lookahead_value() {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        other => {
                            return Err(format!(
                                "found '{}', expected: ',' or ')'",
                                other.literal()
                            ));
                        }
                    }
                }
                // Empty entries ("(,a)", "(a,)", "(a,,b)") stand for the empty value.
                Token::Comma => {
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    match self.lookahead_value() {
                        Token::ClosedPar => {
                            values.push(String::new());
                            return Ok(values);
                        }
                        Token::Comma => values.push(String::new()),
                        _ => {}
                    }
                }
                other => {
                    return Err(format!(
                        "found '{}', expected: ',', or identifier",
                        other.literal()
                    ));
                }
            }
        }
    }

    fn parse_exact_value(&mut self) -> std::result::Result<Vec<String>, String> {
        if matches!(self.lookahead_value(), Token::End | Token::Comma) {
            return Ok(vec![String::new()]);
        }
        match self.consume_value() {
            Token::Identifier(value) => Ok(vec![value]),
            other => Err(format!("found '{}', expected: identifier", other.literal())),
        }
    }
}

impl LabelSelector {
    /// Everything: the empty selector.
    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    pub fn parse(selector: &str) -> Result<LabelSelector> {
        let mut parser = Parser {
            tokens: lex(selector),
            position: 0,
        };
        let mut requirements = parser.parse().map_err(SelectorError::Label)?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            matches_nothing: false,
        })
    }

    /// `metav1.LabelSelectorAsSelector`: `null` selects nothing, `{}` selects everything.
    pub fn from_label_selector_json(selector: &Value) -> Result<LabelSelector> {
        let obj = match selector {
            Value::Null => {
                return Ok(LabelSelector {
                    requirements: Vec::new(),
                    matches_nothing: true,
                });
            }
            Value::Object(obj) => obj,
            other => {
                return Err(SelectorError::Label(format!(
                    "label selector must be an object, got {other}"
                )));
            }
        };
        let mut requirements = Vec::new();
        if let Some(match_labels) = obj.get("matchLabels").and_then(Value::as_object) {
            for (key, value) in match_labels {
                let value = value.as_str().unwrap_or_default().to_string();
                requirements.push(Requirement::new(key, Operator::Equals, vec![value])?);
            }
        }
        if let Some(expressions) = obj.get("matchExpressions").and_then(Value::as_array) {
            for expression in expressions {
                let key = expression.get("key").and_then(Value::as_str).unwrap_or("");
                let op = expression
                    .get("operator")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let operator = match op {
                    "In" => Operator::In,
                    "NotIn" => Operator::NotIn,
                    "Exists" => Operator::Exists,
                    "DoesNotExist" => Operator::DoesNotExist,
                    _ => {
                        return Err(SelectorError::Label(format!(
                            "{op:?} is not a valid label selector operator"
                        )));
                    }
                };
                let mut values: Vec<String> = expression
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|vs| {
                        vs.iter()
                            .map(|v| v.as_str().unwrap_or_default().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                values.sort();
                values.dedup();
                requirements.push(Requirement::new(key, operator, values)?);
            }
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            matches_nothing: false,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty() && !self.matches_nothing
    }

    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        !self.matches_nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Matches an object's `metadata.labels` (absent labels are an empty set).
    pub fn matches_object(&self, obj: &Value) -> bool {
        let empty = Map::new();
        let labels = obj
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        self.matches(labels)
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.requirements.iter().map(|r| r.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOperator {
    Equals,
    NotEquals,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub operator: FieldOperator,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

/// Splits on commas that are not escaped with a backslash.
fn split_terms(selector: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in selector.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            current.push(c);
            escaped = true;
        } else if c == ',' {
            terms.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    terms.push(current);
    terms
}

fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, operator) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], operator, rhs));
            }
        }
    }
    None
}

/// Upstream's `UnescapeValue`: `\\`, `\,`, `\=` are the only escapes, bare `,`/`=` are errors.
fn unescape_value(value: &str) -> Result<String> {
    let mut out = String::with_capacity(value.len());
    let mut in_slash = false;
    for c in value.chars() {
        if in_slash {
            if matches!(c, '\\' | ',' | '=') {
                out.push(c);
                in_slash = false;
                continue;
            }
            return Err(SelectorError::Field(format!(
                "invalid field selector: invalid escape sequence: \\{c}"
            )));
        }
        match c {
            '\\' => in_slash = true,
            // Upstream formats the rune with %v, i.e. as its code point.
            ',' | '=' => {
                return Err(SelectorError::Field(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                )));
            }
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err(SelectorError::Field(
            "invalid field selector: invalid escape sequence: \\".to_string(),
        ));
    }
    Ok(out)
}

/// Escapes a value for use in a field selector string.
pub fn escape_field_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace('=', "\\=")
}

impl FieldSelector {
    pub fn parse(selector: &str) -> Result<FieldSelector> {
        let mut terms = split_terms(selector);
        terms.sort();
        let mut requirements = Vec::new();
        for term in terms.iter().filter(|t| !t.is_empty()) {
            let Some((field, operator, rhs)) = split_term(term) else {
                return Err(SelectorError::Field(format!(
                    "invalid selector: '{selector}'; can't understand '{term}'"
                )));
            };
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value: unescape_value(rhs)?,
            });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Rejects field labels the kind does not support, as the server does before listing.
    pub fn check_supported(&self, group: &str, kind: &str) -> Result<()> {
        match self
            .requirements
            .iter()
            .find(|r| !supported_field(group, kind, &r.field))
        {
            Some(r) => Err(SelectorError::FieldLabelNotSupported(r.field.clone())),
            None => Ok(()),
        }
    }

    /// Matches an object, taking its kind from `apiVersion`/`kind`.
    pub fn matches(&self, obj: &Value) -> Result<bool> {
        let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        self.matches_kind(group, kind, obj)
    }

    /// Matches an object of the given kind (for objects whose `kind` is not set).
    pub fn matches_kind(&self, group: &str, kind: &str, obj: &Value) -> Result<bool> {
        for requirement in &self.requirements {
            let Some(actual) = field_value(group, kind, &requirement.field, obj) else {
                return Err(SelectorError::FieldLabelNotSupported(
                    requirement.field.clone(),
                ));
            };
            let equal = actual == requirement.value;
            let ok = match requirement.operator {
                FieldOperator::Equals => equal,
                FieldOperator::NotEquals => !equal,
            };
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| {
                let op = match r.operator {
                    FieldOperator::Equals => "=",
                    FieldOperator::NotEquals => "!=",
                };
                format!("{}{}{}", r.field, op, escape_field_value(&r.value))
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// How a selectable field is read from the object.
enum FieldSource {
    Str(&'static str),
    Bool(&'static str),
    Int(&'static str),
}

/// The per-kind selectable fields beyond `metadata.name`/`metadata.namespace`.
fn kind_fields(group: &str, kind: &str) -> &'static [(&'static str, FieldSource)] {
    use FieldSource::*;
    match (group, kind) {
        ("", "Pod") => &[
            ("spec.nodeName", Str("/spec/nodeName")),
            ("spec.restartPolicy", Str("/spec/restartPolicy")),
            ("spec.schedulerName", Str("/spec/schedulerName")),
            ("spec.serviceAccountName", Str("/spec/serviceAccountName")),
            ("spec.hostNetwork", Bool("/spec/hostNetwork")),
            ("status.phase", Str("/status/phase")),
            ("status.podIP", Str("/status/podIP")),
            ("status.nominatedNodeName", Str("/status/nominatedNodeName")),
        ],
        ("", "Event") => &[
            ("involvedObject.kind", Str("/involvedObject/kind")),
            ("involvedObject.namespace", Str("/involvedObject/namespace")),
            ("involvedObject.name", Str("/involvedObject/name")),
            ("involvedObject.uid", Str("/involvedObject/uid")),
            (
                "involvedObject.apiVersion",
                Str("/involvedObject/apiVersion"),
            ),
            (
                "involvedObject.resourceVersion",
                Str("/involvedObject/resourceVersion"),
            ),
            ("involvedObject.fieldPath", Str("/involvedObject/fieldPath")),
            ("reason", Str("/reason")),
            ("reportingComponent", Str("/reportingComponent")),
            ("source", Str("/source/component")),
            ("type", Str("/type")),
        ],
        ("events.k8s.io", "Event") => &[
            ("regarding.kind", Str("/regarding/kind")),
            ("regarding.namespace", Str("/regarding/namespace")),
            ("regarding.name", Str("/regarding/name")),
            ("regarding.uid", Str("/regarding/uid")),
            ("regarding.apiVersion", Str("/regarding/apiVersion")),
            (
                "regarding.resourceVersion",
                Str("/regarding/resourceVersion"),
            ),
            ("regarding.fieldPath", Str("/regarding/fieldPath")),
            ("reason", Str("/reason")),
            ("reportingController", Str("/reportingController")),
            ("type", Str("/type")),
        ],
        ("", "Secret") => &[("type", Str("/type"))],
        ("", "Namespace") => &[("status.phase", Str("/status/phase"))],
        ("", "Node") => &[("spec.unschedulable", Bool("/spec/unschedulable"))],
        ("", "ReplicationController") | ("apps", "ReplicaSet") => {
            &[("status.replicas", Int("/status/replicas"))]
        }
        ("batch", "Job") => &[("status.successful", Int("/status/succeeded"))],
        ("", "Service") => &[
            ("spec.clusterIP", Str("/spec/clusterIP")),
            ("spec.type", Str("/spec/type")),
        ],
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            &[("spec.signerName", Str("/spec/signerName"))]
        }
        _ => &[],
    }
}

/// Whether `field` may be used in a field selector for this kind.
pub fn supported_field(group: &str, kind: &str, field: &str) -> bool {
    field == "metadata.name"
        || field == "metadata.namespace"
        || kind_fields(group, kind)
            .iter()
            .any(|(name, _)| *name == field)
}

/// The string value upstream indexes for `field` (absent fields read as their zero value),
/// or `None` when the field is not selectable for this kind.
pub fn field_value(group: &str, kind: &str, field: &str, obj: &Value) -> Option<String> {
    let read_str = |pointer: &str| {
        obj.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    match field {
        "metadata.name" => return Some(read_str("/metadata/name")),
        "metadata.namespace" => return Some(read_str("/metadata/namespace")),
        _ => {}
    }
    let (_, source) = kind_fields(group, kind)
        .iter()
        .find(|(name, _)| *name == field)?;
    Some(match source {
        FieldSource::Str(pointer) => read_str(pointer),
        FieldSource::Bool(pointer) => obj
            .pointer(pointer)
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .to_string(),
        FieldSource::Int(pointer) => obj
            .pointer(pointer)
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn parses_all_operators() {
        let s =
            LabelSelector::parse(" app = web ,tier==front, env!=prod,x in (a, b),y notin (c),z,!w")
                .unwrap();
        assert_eq!(s.requirements.len(), 7);
        assert_eq!(
            s.to_string(),
            "app=web,env!=prod,tier==front,!w,x in (a,b),y notin (c),z"
        );
        let ok = labels(json!({"app":"web","tier":"front","env":"dev","x":"b","z":""}));
        assert!(s.matches(&ok));
        let mut bad = ok.clone();
        bad.insert("w".into(), json!("1"));
        assert!(!s.matches(&bad));
        let mut bad = ok.clone();
        bad.insert("y".into(), json!("c"));
        assert!(!s.matches(&bad));
        let mut bad = ok.clone();
        bad.insert("env".into(), json!("prod"));
        assert!(!s.matches(&bad));
        let mut bad = ok.clone();
        bad.remove("z");
        assert!(!s.matches(&bad));
    }

    #[test]
    fn empty_selector_matches_everything() {
        let s = LabelSelector::parse("").unwrap();
        assert!(s.is_empty());
        assert!(s.matches(&Map::new()));
        // Keywords are ordinary values in value position.
        let s = LabelSelector::parse("a=in").unwrap();
        assert!(s.matches(&labels(json!({"a":"in"}))));
        // Empty value for exact match.
        let s = LabelSelector::parse("a=").unwrap();
        assert!(s.matches(&labels(json!({"a":""}))));
        assert!(!s.matches(&Map::new()));
    }

    #[test]
    fn numeric_comparisons() {
        let s = LabelSelector::parse("n>3").unwrap();
        assert!(s.matches(&labels(json!({"n":"4"}))));
        assert!(!s.matches(&labels(json!({"n":"3"}))));
        assert!(!s.matches(&labels(json!({"n":"x"}))));
        assert_eq!(
            LabelSelector::parse("n<x").unwrap_err().to_string(),
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
    }

    #[test]
    fn parse_errors_use_upstream_messages() {
        let err = |s: &str| LabelSelector::parse(s).unwrap_err().to_string();
        assert_eq!(
            err("a b"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(err("!a=b"), "found '=', expected: ',' or 'end of string'");
        assert_eq!(
            err("a in b"),
            "unable to parse requirement: found 'b' expected: '('"
        );
        assert_eq!(err("a,"), "found '', expected: identifier after ','");
        assert_eq!(
            err("=a"),
            "found '=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            err("a in (b"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert!(err("a=b c").starts_with("found 'c'"));
        let key_err = err("-bad=1");
        assert!(
            key_err.starts_with("unable to parse requirement: <nil>: Invalid value: \"-bad\": name part must consist of"),
            "{key_err}"
        );
        let value_err = err("a=b@c");
        assert!(
            value_err.starts_with("unable to parse requirement: values[0][a]: Invalid value: \"b@c\": a valid label must be"),
            "{value_err}"
        );
    }

    #[test]
    fn label_selector_json() {
        let s = LabelSelector::from_label_selector_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a", "b"]},
                {"key": "gone", "operator": "DoesNotExist"},
                {"key": "here", "operator": "Exists"},
                {"key": "env", "operator": "NotIn", "values": ["prod"]}
            ]
        }))
        .unwrap();
        assert!(s.matches(&labels(json!({"app":"web","tier":"b","here":"1"}))));
        assert!(!s.matches(&labels(json!({"app":"web","tier":"c","here":"1"}))));
        assert!(!s.matches(&labels(json!({"app":"web","tier":"b"}))));
        assert!(!s.matches(&labels(
            json!({"app":"web","tier":"b","here":"","env":"prod"})
        )));
        let nothing = LabelSelector::from_label_selector_json(&Value::Null).unwrap();
        assert!(!nothing.matches(&Map::new()));
        let everything = LabelSelector::from_label_selector_json(&json!({})).unwrap();
        assert!(everything.matches(&Map::new()));
        let err = LabelSelector::from_label_selector_json(&json!({
            "matchExpressions": [{"key": "a", "operator": "Foo"}]
        }))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"Foo\" is not a valid label selector operator"
        );
        let err = LabelSelector::from_label_selector_json(&json!({
            "matchExpressions": [{"key": "a", "operator": "In", "values": []}]
        }))
        .unwrap_err();
        assert!(err.to_string().contains("values set can't be empty"));
    }

    #[test]
    fn field_selector_parse_and_escape() {
        let s = FieldSelector::parse("metadata.name=a\\,b,status.phase!=Running").unwrap();
        assert_eq!(s.requirements.len(), 2);
        assert_eq!(s.requirements[0].value, "a,b");
        assert_eq!(s.requirements[1].operator, FieldOperator::NotEquals);
        assert_eq!(s.to_string(), "metadata.name=a\\,b,status.phase!=Running");
        assert_eq!(
            FieldSelector::parse("foo").unwrap_err().to_string(),
            "invalid selector: 'foo'; can't understand 'foo'"
        );
        assert_eq!(
            FieldSelector::parse("a=b\\c").unwrap_err().to_string(),
            "invalid field selector: invalid escape sequence: \\c"
        );
        assert_eq!(
            FieldSelector::parse("a=b=c").unwrap_err().to_string(),
            "invalid field selector: unescaped character in value: 61"
        );
        assert!(FieldSelector::parse("").unwrap().is_empty());
        assert_eq!(
            FieldSelector::parse("a==b").unwrap().requirements[0].value,
            "b"
        );
    }

    #[test]
    fn field_selector_matching_per_kind() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"nodeName": "n1", "hostNetwork": true},
            "status": {"phase": "Running"}
        });
        let m = |s: &str| FieldSelector::parse(s).unwrap().matches(&pod);
        assert_eq!(m("spec.nodeName=n1"), Ok(true));
        assert_eq!(m("spec.nodeName=n2"), Ok(false));
        assert_eq!(
            m("status.phase!=Pending,metadata.namespace=default"),
            Ok(true)
        );
        assert_eq!(m("spec.hostNetwork=true"), Ok(true));
        assert_eq!(m("status.podIP="), Ok(true));
        assert_eq!(
            m("spec.foo=x").unwrap_err().to_string(),
            "field label not supported: spec.foo"
        );
        let rs = json!({"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"r"},"status":{"replicas":3}});
        assert_eq!(
            FieldSelector::parse("status.replicas=3")
                .unwrap()
                .matches(&rs),
            Ok(true)
        );
        let node = json!({"apiVersion":"v1","kind":"Node","metadata":{"name":"n"}});
        assert_eq!(
            FieldSelector::parse("spec.unschedulable=false")
                .unwrap()
                .matches(&node),
            Ok(true)
        );
        assert!(supported_field("", "Event", "involvedObject.uid"));
        assert!(supported_field("", "Secret", "type"));
        assert!(supported_field("", "ConfigMap", "metadata.name"));
        assert!(!supported_field("", "ConfigMap", "data"));
        assert!(!supported_field("apps", "Deployment", "status.replicas"));
        let sel = FieldSelector::parse("spec.nodeName=x").unwrap();
        assert_eq!(
            sel.check_supported("", "ConfigMap"),
            Err(SelectorError::FieldLabelNotSupported(
                "spec.nodeName".into()
            ))
        );
        assert_eq!(sel.check_supported("", "Pod"), Ok(()));
    }
}
