//! `dpstack-ss`'s view: the records of `/dpstack/tcp/conns` and
//! `/dpstack/udp/sockets` pages (JSON, as telemetry sends them), filtered
//! and printed as `ss -tin` prints Linux's sockets.
//!
//! Filters are a subset of ss's: `state NAME` (repeatable; ss's names and
//! groups `all`, `connected`, `synchronized`), `sport OP :PORT` and
//! `dport OP :PORT` with OP `=`, `==`, `!=`, `eq`, `neq` (or none), all
//! joined by AND; ss's `and` is taken and ignored. No `or`, `not`,
//! parentheses or address matches.

use serde_json::{Map, Value};

type Record = Map<String, Value>;

/// ss's name for a state as telemetry names it.
pub fn ss_state(state: &str) -> &str {
    match state {
        "ESTABLISHED" => "ESTAB",
        "SYN-RECEIVED" => "SYN-RECV",
        "CLOSED" => "UNCONN",
        s => s,
    }
}

/// The states a filter word names (ss's words, ss's groups).
fn state_words(word: &str) -> Option<&'static [&'static str]> {
    const CONNECTED: &[&str] = &[
        "ESTAB",
        "SYN-SENT",
        "FIN-WAIT-1",
        "FIN-WAIT-2",
        "CLOSE-WAIT",
        "LAST-ACK",
        "CLOSING",
    ];
    Some(match word.to_ascii_lowercase().as_str() {
        "all" => &[
            "ESTAB",
            "SYN-SENT",
            "SYN-RECV",
            "FIN-WAIT-1",
            "FIN-WAIT-2",
            "CLOSE-WAIT",
            "LAST-ACK",
            "CLOSING",
            "TIME-WAIT",
            "LISTEN",
            "UNCONN",
        ],
        "connected" => CONNECTED,
        "synchronized" => &[
            "ESTAB",
            "FIN-WAIT-1",
            "FIN-WAIT-2",
            "CLOSE-WAIT",
            "LAST-ACK",
            "CLOSING",
        ],
        "established" => &["ESTAB"],
        "syn-sent" => &["SYN-SENT"],
        "syn-recv" => &["SYN-RECV"],
        "fin-wait-1" => &["FIN-WAIT-1"],
        "fin-wait-2" => &["FIN-WAIT-2"],
        "time-wait" => &["TIME-WAIT"],
        "close-wait" => &["CLOSE-WAIT"],
        "last-ack" => &["LAST-ACK"],
        "closing" => &["CLOSING"],
        "listening" => &["LISTEN", "UNCONN"],
        _ => return None,
    })
}

/// Which records to show.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// ss state names; empty: as ss, everything but listeners, unconnected
    /// UDP sockets, TIME-WAIT and SYN-RECV.
    pub states: Vec<&'static str>,
    /// (port, equal): the local or remote port is (or is not) `port`.
    pub sport: Vec<(u16, bool)>,
    pub dport: Vec<(u16, bool)>,
}

impl Filter {
    /// From `-l` (listening), `-a` (all) and the filter's words.
    pub fn parse(listening: bool, all: bool, words: &[String]) -> Result<Filter, String> {
        let mut f = Filter::default();
        if listening {
            f.states.extend(["LISTEN", "UNCONN"]);
        } else if all {
            f.states.extend(state_words("all").unwrap_or(&[]));
        }
        let mut states = Vec::new();
        let mut it = words.iter().map(String::as_str).peekable();
        while let Some(w) = it.next() {
            match w {
                "and" | "&&" => {}
                "state" => {
                    let s = it.next().ok_or("state: which state?")?;
                    states.extend(state_words(s).ok_or_else(|| format!("unknown state '{s}'"))?);
                }
                "sport" | "dport" => {
                    let mut equal = true;
                    let mut v = it.next().ok_or_else(|| format!("{w}: which port?"))?;
                    match v {
                        "=" | "==" | "eq" => {
                            v = it.next().ok_or_else(|| format!("{w}: which port?"))?;
                        }
                        "!=" | "neq" | "ne" => {
                            equal = false;
                            v = it.next().ok_or_else(|| format!("{w}: which port?"))?;
                        }
                        _ => {}
                    }
                    let port: u16 = v
                        .trim_start_matches(':')
                        .parse()
                        .map_err(|_| format!("{w}: bad port '{v}' (expected :PORT)"))?;
                    if w == "sport" {
                        f.sport.push((port, equal));
                    } else {
                        f.dport.push((port, equal));
                    }
                }
                _ => {
                    return Err(format!(
                        "unsupported filter word '{w}' (see dpstack-ss --help)"
                    ))
                }
            }
        }
        if !states.is_empty() {
            f.states = states;
        }
        Ok(f)
    }

    pub fn matches(&self, r: &Record) -> bool {
        let state = ss_state(str_of(r, "state"));
        let state_ok = if self.states.is_empty() {
            !matches!(state, "LISTEN" | "UNCONN" | "TIME-WAIT" | "SYN-RECV")
        } else {
            self.states.contains(&state)
        };
        let port_ok = |addr: &str, conds: &[(u16, bool)]| {
            let port = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
            conds.iter().all(|&(p, eq)| (port == Some(p)) == eq)
        };
        state_ok
            && port_ok(str_of(r, "local"), &self.sport)
            && port_ok(str_of(r, "remote"), &self.dport)
    }
}

fn str_of<'a>(r: &'a Record, k: &str) -> &'a str {
    r.get(k).and_then(Value::as_str).unwrap_or("")
}

fn num(r: &Record, k: &str) -> u64 {
    r.get(k).and_then(Value::as_u64).unwrap_or(0)
}

/// The records of one page, in their order on the page.
pub fn page_records(page: &Value) -> Vec<Record> {
    let Some(m) = page.as_object() else {
        return Vec::new();
    };
    let mut v: Vec<(usize, Record)> = m
        .iter()
        .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_object()?.clone())))
        .collect();
    v.sort_by_key(|(i, _)| *i);
    v.into_iter().map(|(_, r)| r).collect()
}

/// The heading line.
pub fn header() -> String {
    format!(
        "{:<10} {:>6} {:>6} {:<21} {:<21} Process",
        "State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port"
    )
}

/// Milliseconds with ss's three decimals, from microseconds.
fn ms3(us: u64) -> String {
    format!("{}.{:03}", us / 1000, us % 1000)
}

/// One record as ss prints it: the socket line, and for a TCP connection
/// (with `info`) an indented line of its internals.
pub fn format_record(r: &Record, info: bool) -> String {
    let state = ss_state(str_of(r, "state"));
    let remote = match str_of(r, "remote") {
        "*" => "*:*",
        s => s,
    };
    let app = str_of(r, "app");
    let process = if app.is_empty() {
        format!("core:{}", num(r, "core"))
    } else {
        format!("core:{} app:{app}", num(r, "core"))
    };
    let mut out = format!(
        "{:<10} {:>6} {:>6} {:<21} {:<21} {process}",
        state,
        num(r, "recv_queued"),
        num(r, "send_queued"),
        str_of(r, "local"),
        remote
    );
    if !info {
        return out;
    }
    let mut i = Vec::new();
    if r.contains_key("timewait_ms") {
        i.push(format!(
            "timer:(timewait,{}ms) snd_nxt:{} rcv_nxt:{}",
            num(r, "timewait_ms"),
            num(r, "snd_nxt"),
            num(r, "rcv_nxt")
        ));
    } else if r.contains_key("syn_cache") {
        // A half-open connection: ss shows its SYN-ACK timer the same way.
        i.push(format!(
            "timer:(on,{}ms,{}) age:{}ms",
            num(r, "rto_us") / 1000,
            num(r, "retrans"),
            num(r, "age_ms")
        ));
    } else if r.contains_key("cwnd") {
        let mss = num(r, "mss").max(1);
        for flag in ["ts", "sack", "ecn"] {
            if num(r, flag) == 1 {
                i.push(flag.to_string());
            }
        }
        i.push(str_of(r, "cc").to_string());
        i.push(format!(
            "wscale:{},{}",
            num(r, "snd_wscale"),
            num(r, "rcv_wscale")
        ));
        i.push(format!("rto:{}", num(r, "rto_us") / 1000));
        if num(r, "backoff") > 0 {
            i.push(format!("backoff:{}", num(r, "backoff")));
        }
        i.push(format!(
            "rtt:{}/{}",
            ms3(num(r, "srtt_us")),
            ms3(num(r, "rttvar_us"))
        ));
        if num(r, "min_rtt_us") > 0 {
            i.push(format!("minrtt:{}", ms3(num(r, "min_rtt_us"))));
        }
        i.push(format!("mss:{mss}"));
        i.push(format!("cwnd:{}", num(r, "cwnd") / mss));
        // ss leaves ssthresh out while it is "infinite" (slow start).
        let ssthresh = num(r, "ssthresh");
        if ssthresh < u64::from(u32::MAX) {
            i.push(format!("ssthresh:{}", ssthresh / mss));
        }
        for k in [
            "bytes_sent",
            "bytes_retrans",
            "bytes_acked",
            "bytes_received",
            "segs_out",
            "segs_in",
        ] {
            i.push(format!("{k}:{}", num(r, k)));
        }
        i.push(format!("retrans:{}", num(r, "retrans")));
        i.push(format!(
            "snd_una:{} snd_nxt:{} rcv_nxt:{}",
            num(r, "snd_una"),
            num(r, "snd_nxt"),
            num(r, "rcv_nxt")
        ));
        i.push(format!(
            "snd_wnd:{} rcv_wnd:{}",
            num(r, "snd_wnd"),
            num(r, "rcv_wnd")
        ));
        i.push(format!(
            "sndbuf:{}/{} rcvbuf:{}/{}",
            num(r, "send_queued"),
            num(r, "send_buffer"),
            num(r, "recv_queued"),
            num(r, "recv_buffer")
        ));
        if num(r, "in_recovery") == 1 {
            i.push("recovery".into());
        }
        i.push(format!("age:{}ms", num(r, "age_ms")));
    } else if r.contains_key("rx_datagrams") {
        i.push(format!(
            "rx_datagrams:{} tx_datagrams:{}",
            num(r, "rx_datagrams"),
            num(r, "tx_datagrams")
        ));
    }
    if !i.is_empty() {
        out.push_str("\n\t ");
        out.push_str(&i.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(v: Value) -> Record {
        v.as_object().unwrap().clone()
    }

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn estab() -> Record {
        rec(json!({
            "core": 1, "local": "198.18.0.1:80", "remote": "198.18.0.2:46398",
            "state": "ESTABLISHED", "app": "http:80", "cc": "cubic",
            "snd_una": 5, "snd_nxt": 6, "snd_max": 6, "snd_wnd": 76800, "snd_wscale": 10,
            "rcv_nxt": 9, "rcv_wnd": 131072, "rcv_wscale": 7, "mss": 1448,
            "cwnd": 14480, "ssthresh": u64::MAX, "srtt_us": 14140, "rttvar_us": 20468,
            "min_rtt_us": 68, "rto_us": 200000, "backoff": 0, "retrans": 2,
            "bytes_sent": 103006, "bytes_retrans": 2896, "bytes_acked": 100110,
            "bytes_received": 27, "segs_out": 72, "segs_in": 26, "send_queued": 3,
            "send_buffer": 131072, "recv_queued": 4, "recv_buffer": 131072,
            "ts": 1, "sack": 1, "ecn": 0, "in_recovery": 0, "passive": 1, "age_ms": 1085
        }))
    }

    #[test]
    fn a_connection_prints_as_ss_tin() {
        let s = format_record(&estab(), true);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 2);
        let cols: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "ESTAB",
                "4",
                "3",
                "198.18.0.1:80",
                "198.18.0.2:46398",
                "core:1",
                "app:http:80"
            ]
        );
        assert!(lines[1].starts_with("\t ts sack cubic wscale:10,7 rto:200 rtt:14.140/20.468 minrtt:0.068 mss:1448 cwnd:10 bytes_sent:103006 bytes_retrans:2896 bytes_acked:100110 bytes_received:27 segs_out:72 segs_in:26 retrans:2 "), "{s}");
        assert!(!s.contains("ssthresh"), "{s}");
        assert!(s.ends_with("age:1085ms"), "{s}");
        let tw = rec(
            json!({"core": 0, "local": "198.18.0.1:80", "remote": "198.18.0.2:1",
            "state": "TIME-WAIT", "snd_nxt": 1, "rcv_nxt": 2, "timewait_ms": 900}),
        );
        assert!(format_record(&tw, true).ends_with("timer:(timewait,900ms) snd_nxt:1 rcv_nxt:2"));
        assert_eq!(format_record(&tw, false).lines().count(), 1);
    }

    #[test]
    fn filters_by_state_and_ports() {
        let e = estab();
        let l = rec(json!({"core": 0, "local": "198.18.0.1:80", "remote": "*", "state": "LISTEN"}));
        let tw =
            rec(json!({"local": "198.18.0.1:80", "remote": "198.18.0.2:5", "state": "TIME-WAIT"}));
        let f = |l: bool, a: bool, w: &str| Filter::parse(l, a, &words(w)).unwrap();
        // ss's default: connected sockets only.
        assert!(f(false, false, "").matches(&e));
        assert!(!f(false, false, "").matches(&l));
        assert!(!f(false, false, "").matches(&tw));
        assert!(f(true, false, "").matches(&l));
        assert!(!f(true, false, "").matches(&e));
        assert!(f(false, true, "").matches(&tw));
        assert!(f(false, false, "state time-wait").matches(&tw));
        assert!(!f(false, false, "state established").matches(&tw));
        assert!(f(false, false, "state established sport = :80").matches(&e));
        assert!(!f(false, false, "sport = :81").matches(&e));
        assert!(f(false, false, "sport :80 and dport == :46398").matches(&e));
        assert!(!f(false, false, "dport != :46398").matches(&e));
        assert!(f(false, false, "dport neq 5").matches(&e));
        for bad in ["state nope", "sport", "sport = :x", "src 1.2.3.4", "state"] {
            assert!(Filter::parse(false, false, &words(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_half_open_connection_prints_its_syn_ack_timer() {
        let r = rec(
            json!({"core": 1, "local": "198.18.0.1:80", "remote": "198.18.0.2:9",
            "state": "SYN-RECEIVED", "app": "http:80", "retrans": 2, "rto_us": 1_500_000,
            "age_ms": 3100, "syn_cache": 1}),
        );
        let s = format_record(&r, true);
        let lines: Vec<&str> = s.lines().collect();
        assert!(lines[0].starts_with("SYN-RECV "), "{s}");
        assert_eq!(lines[1].trim(), "timer:(on,1500ms,2) age:3100ms");
        let f = |w: &str| Filter::parse(false, false, &words(w)).unwrap();
        assert!(!f("").matches(&r), "ss leaves SYN-RECV out by default");
        assert!(f("state syn-recv").matches(&r));
    }

    #[test]
    fn records_come_in_page_order() {
        let page = json!({"core": 0, "next": "*,1,0", "10": {"state": "b"}, "2": {"state": "a"}});
        let r = page_records(&page);
        assert_eq!(r.len(), 2);
        assert_eq!(str_of(&r[0], "state"), "a");
    }
}
