//! The connections view as telemetry carries it: records as dictionaries
//! of named values, cut into pages that fit one telemetry reply.
//!
//! DPDK 22.11's telemetry answers a command with at most 16 KiB of JSON
//! (`max_output_len` in its greeting) and silently leaves out what does
//! not fit, so a page is filled by the JSON length of its records, each
//! counted as DPDK writes it, and the reply names where the next page
//! starts (`next`). Records are built on the core that owns them (see
//! `shard/conns.rs`); this module only encodes, and knows no protocol.

/// One value of a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    U64(u64),
    Str(String),
}

impl Value {
    /// Bytes of its JSON form (a string holds no character to escape:
    /// names and addresses only).
    fn json_len(&self) -> usize {
        match self {
            Value::U64(v) => digits(*v),
            Value::Str(s) => s.len() + 2,
        }
    }
}

fn digits(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

/// A record: its fields in order.
pub type Fields = Vec<(&'static str, Value)>;

/// A reply entry: a value, or a record (a nested dictionary).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Value(Value),
    Record(Fields),
}

/// A reply: a dictionary of entries, in order.
pub type Reply = Vec<(String, Entry)>;

/// JSON bytes a reply may take: DPDK's 16 KiB less the command's name
/// and room to spare.
pub const PAGE_BUDGET: usize = 15 * 1024;

/// DPDK keeps at most this many entries in one dictionary.
pub const MAX_DICT_ENTRIES: usize = 256;

/// Bytes one entry takes in the reply's JSON: `"name":value,` (a nested
/// record is `"name":{...},`).
pub fn entry_len(name: &str, e: &Entry) -> usize {
    name.len()
        + 4
        + match e {
            Entry::Value(v) => v.json_len(),
            Entry::Record(fields) => {
                2 + fields
                    .iter()
                    .map(|(k, v)| k.len() + 4 + v.json_len())
                    .sum::<usize>()
            }
        }
}

/// Add records to `reply` (which holds the page's other entries already)
/// while they fit [`PAGE_BUDGET`] and DPDK's dictionary size; each is
/// keyed by its place on the page ("0", "1", ...). Returns how many were
/// taken: at least one if any was offered, whatever its size, so that a
/// listing always moves on.
pub fn fill_page(reply: &mut Reply, records: impl Iterator<Item = Fields>) -> usize {
    let mut used: usize = 2 + reply.iter().map(|(k, e)| entry_len(k, e)).sum::<usize>();
    let mut taken = 0;
    for r in records {
        let key = taken.to_string();
        let e = Entry::Record(r);
        let len = entry_len(&key, &e);
        if taken > 0 && (used + len > PAGE_BUDGET || reply.len() >= MAX_DICT_ENTRIES) {
            break;
        }
        used += len;
        reply.push((key, e));
        taken += 1;
    }
    taken
}

/// Where a listing is: which core, and from which cursor on that core;
/// `all`: go on to the next core after this one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub all: bool,
    pub core: usize,
    pub cursor: u64,
}

impl Position {
    /// A command's parameters: "" or "*" (every core from the start),
    /// "CORE", "CORE,CURSOR", "*,CORE,CURSOR". None for anything else.
    pub fn parse(params: &str) -> Option<Position> {
        let parts: Vec<&str> = params
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let num = |s: &str| s.parse::<u64>().ok();
        let (all, rest) = match parts.first() {
            None => (true, &parts[..0]),
            Some(&"*") => (true, &parts[1..]),
            Some(_) => (false, &parts[..]),
        };
        let (core, cursor) = match rest {
            [] => (0, 0),
            [c] => (num(c)?, 0),
            [c, x] => (num(c)?, num(x)?),
            _ => return None,
        };
        Some(Position {
            all,
            core: usize::try_from(core).ok()?,
            cursor,
        })
    }

    /// The parameters that name this position (the `next` of a reply).
    pub fn params(&self) -> String {
        if self.all {
            format!("*,{},{}", self.core, self.cursor)
        } else {
            format!("{},{}", self.core, self.cursor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u64) -> Fields {
        vec![
            ("local", Value::Str(format!("198.18.0.1:{}", 40000 + i))),
            ("state", Value::Str("ESTABLISHED".into())),
            ("bytes_sent", Value::U64(i * 1_000_000)),
        ]
    }

    /// The length counted is the JSON's (serde_json writes the same
    /// compact form as DPDK), with a byte to spare per record.
    #[test]
    fn entry_length_is_the_json_length() {
        let r = record(7);
        let e = Entry::Record(r.clone());
        let mut m = serde_json::Map::new();
        for (k, v) in &r {
            let v = match v {
                Value::U64(x) => serde_json::json!(x),
                Value::Str(s) => serde_json::json!(s),
            };
            m.insert(k.to_string(), v);
        }
        let json = serde_json::to_string(&serde_json::json!({ "12": m })).unwrap();
        // Without the outer object's braces; with a comma after the entry
        // and after each field, the last one too: one byte more than the
        // JSON needs, never less.
        assert_eq!(entry_len("12", &e), json.len() - 2 + 1 + 1);
        for v in [0, 9, 10, 99, 100, u64::MAX] {
            assert_eq!(Value::U64(v).json_len(), v.to_string().len());
        }
    }

    #[test]
    fn pages_stay_within_the_budget_and_take_at_least_one() {
        let mut reply: Reply = vec![("core".into(), Entry::Value(Value::U64(0)))];
        let n = fill_page(&mut reply, (0..10_000).map(record));
        assert!(n > 50 && n < 10_000, "{n}");
        let used: usize = reply.iter().map(|(k, e)| entry_len(k, e)).sum();
        assert!(used <= PAGE_BUDGET);
        assert!(reply.len() <= MAX_DICT_ENTRIES);
        // One record larger than a page still goes, alone.
        let big: Fields = vec![("x", Value::Str("y".repeat(PAGE_BUDGET)))];
        let mut reply = Reply::new();
        assert_eq!(fill_page(&mut reply, vec![big.clone(), big].into_iter()), 1);
    }

    #[test]
    fn positions_parse_and_print() {
        let p = |s: &str| Position::parse(s);
        let all0 = Position {
            all: true,
            core: 0,
            cursor: 0,
        };
        assert_eq!(p(""), Some(all0));
        assert_eq!(p("*"), Some(all0));
        assert_eq!(
            p("1"),
            Some(Position {
                all: false,
                core: 1,
                cursor: 0
            })
        );
        let x = Position {
            all: true,
            core: 1,
            cursor: 70,
        };
        assert_eq!(p("*,1,70"), Some(x));
        assert_eq!(p(&x.params()), Some(x));
        let y = Position { all: false, ..x };
        assert_eq!(p(&y.params()), Some(y));
        for bad in ["x", "1,x", "1,2,3", "*,1,2,3", "-1"] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }
}
