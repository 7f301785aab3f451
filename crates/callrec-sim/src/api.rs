//! The `api` commands the simulated switch understands, with the reply texts of
//! `mod_commands.c` and `mod_event_socket.c` (and of the captures, where they show them).

use tokio::sync::oneshot;

use crate::calls::{CallRecord, Phase};
use crate::channel::Channel;
use crate::event::Event;
use crate::recorder::RecordAction;
use crate::switch::Switch;

/// An API command's output.
#[derive(Debug)]
pub(crate) enum ApiReply {
    /// Ready now.
    Now(String),
    /// Blocks until the switch gets there (`originate` waits for the answer).
    Later(oneshot::Receiver<String>),
    /// The command ends the connection before any reply (`fsctl shutdown`).
    NoReply,
}

const RECORD_USAGE: &str =
    "-USAGE: <uuid> [start|stop|mask|unmask] <path> [<limit>] [<recording_vars>]\n";

/// Splits `cmd args` like `switch_api_execute`'s caller does.
pub(crate) fn split(line: &str) -> (&str, &str) {
    let line = line.trim_start();
    match line.split_once(' ') {
        Some((c, a)) => (c, a.trim_start()),
        None => (line, ""),
    }
}

impl Switch {
    /// The API event `switch_api_execute` creates before running a command and fires after.
    pub(crate) fn api_event(&mut self, cmd: &str, args: &str) -> Event {
        let mut ev = self.new_event(
            "API",
            "switch_loadable_module.c",
            "switch_api_execute",
            3140,
        );
        ev.push("API-Command", cmd);
        if !args.is_empty() {
            ev.push("API-Command-Argument", args);
        }
        ev
    }

    /// Runs one API command.
    pub(crate) fn api(&mut self, cmd: &str, args: &str) -> ApiReply {
        let out = match cmd {
            "status" => self.status_text(),
            "version" => format!(
                "FreeSWITCH Version {} (1.11.3-dev 64bit)\n",
                crate::config::VERSION_TAG
            ),
            "uptime" => format!("{}\n", (self.now() - self.boot_time) / 1_000_000),
            "show" => self.show(args),
            "uuid_record" => self.api_uuid_record(args),
            "uuid_buglist" => match self.channels.get(args.trim()) {
                Some(ch) => crate::recording::buglist(&ch.recordings),
                None => String::new(),
            },
            "uuid_hold" => self.api_uuid_hold(args),
            // mod_commands' replies. The simulator only notes the file: it sends none of the
            // playback's events and mixes nothing into the recording.
            "uuid_broadcast" => {
                let mut it = args.split_whitespace();
                match (it.next(), it.next()) {
                    (Some(uuid), Some(path)) => match self.channels.get_mut(uuid) {
                        Some(ch) if !ch.hungup => {
                            ch.broadcasts.push(path.to_owned());
                            "+OK Message sent\n".into()
                        }
                        _ => "-ERR invalid uuid\n".into(),
                    },
                    _ => "-USAGE: <uuid> <path> [aleg|bleg|holdb|both]\n".into(),
                }
            }
            "uuid_kill" => {
                let mut it = args.split_whitespace();
                match it.next() {
                    None => "-USAGE: <uuid> [cause]\n".into(),
                    Some(uuid) => {
                        let cause = it.next().unwrap_or("NORMAL_CLEARING");
                        if self.hangup(uuid, cause) {
                            "+OK\n".into()
                        } else {
                            "-ERR No such channel!\n".into()
                        }
                    }
                }
            }
            "uuid_exists" => {
                let exists = self.channels.get(args.trim()).is_some_and(|c| !c.hungup);
                (if exists { "true" } else { "false" }).into()
            }
            "uuid_getvar" => {
                let mut it = args.split_whitespace();
                match (it.next(), it.next()) {
                    (Some(uuid), Some(var)) => match self.channels.get(uuid) {
                        Some(ch) => ch
                            .vars
                            .iter()
                            .find(|(n, _)| n.eq_ignore_ascii_case(var))
                            .map(|(_, v)| v.clone())
                            .unwrap_or_else(|| "_undef_".into()),
                        None => "-ERR No such channel!\n".into(),
                    },
                    _ => "-USAGE: <uuid> <var>\n".into(),
                }
            }
            "uuid_setvar" => {
                let mut it = args.splitn(3, ' ');
                match (it.next(), it.next()) {
                    (Some(uuid), Some(var)) if !var.is_empty() => {
                        let value = it.next().unwrap_or("");
                        match self.channels.get_mut(uuid) {
                            Some(ch) => {
                                if value.is_empty() {
                                    ch.unset_var(var);
                                } else {
                                    ch.set_var(var, value);
                                }
                                "+OK\n".into()
                            }
                            None => "-ERR No such channel!\n".into(),
                        }
                    }
                    _ => "-USAGE: <uuid> <var> [value]\n".into(),
                }
            }
            "hupall" => {
                let cause = args.split_whitespace().next().unwrap_or("MANAGER_REQUEST");
                let all: Vec<String> = self
                    .channels_in_order()
                    .iter()
                    .map(|c| c.uuid.clone())
                    .collect();
                for u in all {
                    self.hangup(&u, cause);
                }
                format!("+OK hangup all channels with cause {cause}\n")
            }
            "fsctl" => {
                if args.split_whitespace().next() == Some("shutdown") {
                    // The command returns (its API event fires); the core acts on it at
                    // its next one-second tick (in the `shutdown` capture 0.74 s later, in
                    // phase with the heartbeats). The client gets the shutdown notice,
                    // not a reply.
                    let since_boot = self.now() - self.boot_time;
                    let wait = 1_000_000 - since_boot.rem_euclid(1_000_000);
                    self.schedule_in(wait, Box::new(|sw: &mut Switch| sw.shutdown()));
                    return ApiReply::NoReply;
                }
                "-ERR Invalid command\n".into()
            }
            "originate" => return self.api_originate(args),
            "hash" => self.api_hash(args),
            "hash_dump" => self.api_hash_dump(args),
            _ => return ApiReply::Now(format!("-ERR {cmd} Command not found!\n")),
        };
        // A command that wrote nothing stays empty here: `api` turns that into `-ERR no
        // reply` (`no_reply`), `bgapi` sends it as it is.
        ApiReply::Now(out)
    }

    /// mod_hash's `hash` API (`hash_api_function`): `insert`, `delete`, `select` in the
    /// `db` hash, with its replies (`select` of a missing key writes nothing).
    fn api_hash(&mut self, args: &str) -> String {
        const USAGE: &str = "-ERR Usage: hash insert|insert_ifempty|select|delete|delete_ifmatch/realm/key[/value]\n";
        let parts: Vec<&str> = args.splitn(4, '/').collect();
        let (Some(op), Some(realm), Some(key)) = (parts.first(), parts.get(1), parts.get(2)) else {
            return USAGE.into();
        };
        let hash_key = format!("{realm}_{key}");
        match (op.to_ascii_lowercase().as_str(), parts.get(3)) {
            ("insert", Some(value)) => {
                self.db_hash.insert(hash_key, (*value).to_owned());
                "+OK\n".into()
            }
            ("delete", _) => match self.db_hash.remove(&hash_key) {
                Some(_) => "+OK\n".into(),
                None => "-ERR Not found\n".into(),
            },
            ("select", _) => self.db_hash.get(&hash_key).cloned().unwrap_or_default(),
            _ => USAGE.into(),
        }
    }

    /// mod_hash's `hash_dump db [<realm>]`: a `D/<realm>_<key>/<value>` line per entry whose
    /// key holds `<realm>_` (a substring match, as `strstr` there).
    fn api_hash_dump(&self, args: &str) -> String {
        let mut it = args.split_whitespace();
        if it.next() != Some("db") {
            return "Usage: all|limit|db [<realm>]\n".into();
        }
        let realm = it.next().map(|r| format!("{r}_"));
        self.db_hash
            .iter()
            .filter(|(k, _)| realm.as_deref().is_none_or(|r| k.contains(r)))
            .map(|(k, v)| format!("D/{k}/{v}\n"))
            .collect()
    }

    fn status_text(&self) -> String {
        let up = crate::switch::uptime_text(self.now() - self.boot_time);
        format!(
            "UP {up}\nFreeSWITCH (Version 1.11.3-dev  64bit) is ready\n{} session(s) since startup\n\
             {} session(s) - peak {}, last 5min {} \n0 session(s) per Sec out of max 30, peak 2, last 5min 2 \n\
             1000 session(s) max\nmin idle cpu 0.00/99.40\nCurrent Stack Size/Max 240K/8192K\n",
            self.sessions_since_startup,
            self.channels.len(),
            self.session_peak,
            self.session_peak,
        )
    }

    fn api_uuid_record(&mut self, args: &str) -> String {
        // switch_separate_string(..., 5): the fifth field keeps the rest.
        let argv: Vec<&str> = args.splitn(5, ' ').filter(|s| !s.is_empty()).collect();
        if argv.len() < 3 {
            return RECORD_USAGE.into();
        }
        let (uuid, action, path) = (argv[0], argv[1], argv[2]);
        if !self.channels.contains_key(uuid) {
            return "-ERR Cannot locate session!\n".into();
        }
        if action.eq_ignore_ascii_case("start") {
            let limit = argv.get(3).and_then(|l| l.parse::<u32>().ok()).unwrap_or(0);
            let vars = argv.get(4).map(|v| parse_brackets(v)).unwrap_or_default();
            return match self.record_start(uuid, path, limit, vars) {
                Ok(()) => "+OK Success\n".into(),
                Err(e) => e.into(),
            };
        }
        let Some(action) = RecordAction::parse(action) else {
            return RECORD_USAGE.into();
        };
        match self.record_action(uuid, action, path) {
            Ok(()) => "+OK Success\n".into(),
            Err(e) => e.into(),
        }
    }

    fn api_uuid_hold(&mut self, args: &str) -> String {
        let argv: Vec<&str> = args.split_whitespace().collect();
        let ok = match argv.as_slice() {
            [] => return "-USAGE: [off|toggle] <uuid> [<display>]\n".into(),
            ["off", uuid, ..] => self.unhold(uuid),
            ["toggle", uuid, ..] => {
                if self.channels.get(*uuid).is_some_and(|c| c.held) {
                    self.unhold(uuid)
                } else {
                    self.hold(uuid)
                }
            }
            [uuid, ..] => self.hold(uuid),
        };
        if ok {
            "+OK Success\n".into()
        } else {
            "-ERR Operation failed\n".into()
        }
    }

    /// `originate [{vars}]loopback/<ext>[/<context>] &<app>|<ext>`: a loopback pair; the
    /// reply waits for the A leg to answer.
    fn api_originate(&mut self, args: &str) -> ApiReply {
        let words = words_outside_quotes(args);
        let mut it = words.into_iter();
        let (Some(url), Some(_app)) = (it.next(), it.next()) else {
            return ApiReply::Now(
                "-USAGE: <call url> <exten>|&<application_name>(<app_args>) [<dialplan>] [<context>] [<cid_name>] [<cid_num>] [<timeout_sec>]\n"
                    .into(),
            );
        };
        let (vars, endpoint) = match url.strip_prefix('{').and_then(|r| r.split_once('}')) {
            Some((v, rest)) => (parse_brackets(&format!("{{{v}}}")), rest),
            None => (Vec::new(), url),
        };
        let Some(rest) = endpoint.strip_prefix("loopback/") else {
            return ApiReply::Now("-ERR CHAN_NOT_IMPLEMENTED\n".into());
        };
        let extension = rest.split('/').next().unwrap_or_default().to_string();
        if extension.is_empty() {
            return ApiReply::Now("-ERR DESTINATION_OUT_OF_ORDER\n".into());
        }
        let get = |n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let caller = crate::Party {
            number: get("origination_caller_id_number").unwrap_or_else(|| "0000000000".into()),
            name: get("origination_caller_id_name"),
            directory_user: false,
        };
        // `origination_uuid` names the A leg, as the switch's originate does, unless a
        // channel has it already: the switch then picks one of its own (measured); the B
        // leg's uuid is always the switch's choice.
        let a = get("origination_uuid")
            .filter(|u| !self.channels.contains_key(u))
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let id = self.next_call;
        self.next_call += 1;
        let (tx, rx) = oneshot::channel();
        self.calls.insert(
            id,
            CallRecord {
                id,
                a,
                b: uuid::Uuid::new_v4().to_string(),
                phase: Phase::Ringing,
                b_created: true,
                bridged: false,
                originate_reply: Some(tx),
            },
        );
        let ring = self.cfg.dialplan_sleep;
        self.loop_start(id, &extension, &caller, vars, ring);
        self.bump();
        ApiReply::Later(rx)
    }

    /// `show channels|calls [as json]`.
    fn show(&self, args: &str) -> String {
        let words: Vec<&str> = args.split_whitespace().collect();
        let json = words.windows(2).any(|w| w[0] == "as" && w[1] == "json");
        match words.first().copied() {
            Some("channels") if words.get(1) == Some(&"count") => {
                format!("\n{} total.\n", self.channels.len())
            }
            Some("channels") => {
                let rows: Vec<Vec<(&'static str, String)>> = self
                    .channels_in_order()
                    .into_iter()
                    .map(|c| channel_row(c, &self.identity.hostname))
                    .collect();
                render_rows(&rows, json)
            }
            Some("calls") => {
                let rows: Vec<Vec<(&'static str, String)>> = self
                    .channels_in_order()
                    .into_iter()
                    .filter(|c| !self.is_bridged_b_leg(c))
                    .map(|c| self.call_row(c))
                    .collect();
                render_rows(&rows, json)
            }
            _ => "-USAGE: codec|endpoint|application|api|dialplan|file|timer|calls [count]|channels [count|like <match string>]|calls|detailed_calls|bridged_calls|detailed_bridged_calls|aliases|complete|chat|management|modules|nat_map|say|interfaces|interface_types|tasks|limits|status\n".into(),
        }
    }

    fn is_bridged_b_leg(&self, c: &Channel) -> bool {
        c.call_handle
            .and_then(|h| self.calls.get(&h))
            .is_some_and(|call| call.bridged && call.b == c.uuid)
    }

    fn call_row(&self, c: &Channel) -> Vec<(&'static str, String)> {
        let row = channel_row(c, &self.identity.hostname);
        let get = |r: &[(&'static str, String)], k: &str| {
            r.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let mut out: Vec<(&'static str, String)> = [
            "uuid",
            "direction",
            "created",
            "created_epoch",
            "name",
            "state",
            "cid_name",
            "cid_num",
            "ip_addr",
            "dest",
            "presence_id",
            "presence_data",
            "accountcode",
            "callstate",
            "callee_name",
            "callee_num",
            "callee_direction",
            "call_uuid",
            "hostname",
            "sent_callee_name",
            "sent_callee_num",
        ]
        .iter()
        .map(|k| (*k, get(&row, k)))
        .collect();
        let b = c
            .call_handle
            .and_then(|h| self.calls.get(&h))
            .filter(|call| call.bridged && call.a == c.uuid)
            .and_then(|call| self.channels.get(&call.b));
        let b_row = b.map(|b| channel_row(b, &self.identity.hostname));
        for (k, bk) in [
            ("b_uuid", "uuid"),
            ("b_direction", "direction"),
            ("b_created", "created"),
            ("b_created_epoch", "created_epoch"),
            ("b_name", "name"),
            ("b_state", "state"),
            ("b_cid_name", "cid_name"),
            ("b_cid_num", "cid_num"),
            ("b_ip_addr", "ip_addr"),
            ("b_dest", "dest"),
            ("b_presence_id", "presence_id"),
            ("b_presence_data", "presence_data"),
            ("b_accountcode", "accountcode"),
            ("b_callstate", "callstate"),
            ("b_callee_name", "callee_name"),
            ("b_callee_num", "callee_num"),
            ("b_callee_direction", "callee_direction"),
            ("b_sent_callee_name", "sent_callee_name"),
            ("b_sent_callee_num", "sent_callee_num"),
        ] {
            out.push((k, b_row.as_ref().map(|r| get(r, bk)).unwrap_or_default()));
        }
        let call_created = b
            .map(|_| (c.profile.times.created / 1_000_000).to_string())
            .unwrap_or_default();
        out.push(("call_created_epoch", call_created));
        out
    }
}

/// One row of `show channels` (the `channels` table of the core database).
fn channel_row(c: &Channel, hostname: &str) -> Vec<(&'static str, String)> {
    let created = c.profile.times.created;
    let p = &c.profile;
    let codec = c.var("read_codec").unwrap_or("").to_string();
    let rate = c.var("read_rate").unwrap_or("").to_string();
    let bit_rate = match (codec.as_str(), rate.is_empty()) {
        ("L16", false) => "128000".to_string(),
        ("PCMU" | "PCMA", false) => "64000".to_string(),
        _ => String::new(),
    };
    let outbound_a = c.kind == crate::channel::LegKind::LoopA;
    let initial_cid_name = if outbound_a {
        p.orig_caller_id_name.clone()
    } else {
        p.caller_id_name.clone()
    };
    vec![
        ("uuid", c.uuid.clone()),
        ("direction", p.direction.clone()),
        ("created", crate::clock::local_stamp(created)),
        ("created_epoch", (created / 1_000_000).to_string()),
        ("name", p.channel_name.clone()),
        ("state", c.channel_state.clone()),
        ("cid_name", p.caller_id_name.clone()),
        ("cid_num", p.caller_id_number.clone()),
        ("ip_addr", p.network_addr.clone()),
        ("dest", p.destination_number.clone()),
        ("application", c.application.clone()),
        ("application_data", c.application_data.clone()),
        ("dialplan", p.dialplan.clone()),
        ("context", p.context.clone()),
        ("read_codec", codec.clone()),
        ("read_rate", rate.clone()),
        ("read_bit_rate", bit_rate.clone()),
        ("write_codec", codec),
        ("write_rate", rate),
        ("write_bit_rate", bit_rate),
        ("secure", String::new()),
        ("hostname", hostname.to_string()),
        ("presence_id", c.presence_id.clone()),
        ("presence_data", String::new()),
        (
            "accountcode",
            c.var("accountcode").unwrap_or("").to_string(),
        ),
        ("callstate", c.call_state.clone()),
        ("callee_name", p.callee_id_name.clone()),
        ("callee_num", p.callee_id_number.clone()),
        (
            "callee_direction",
            if outbound_a && c.answered { "RECV" } else { "" }.to_string(),
        ),
        (
            "call_uuid",
            if c.kind == crate::channel::LegKind::LoopB
                || c.kind == crate::channel::LegKind::SipCallee
            {
                String::new()
            } else {
                c.uuid.clone()
            },
        ),
        ("sent_callee_name", String::new()),
        ("sent_callee_num", String::new()),
        ("initial_cid_name", initial_cid_name),
        ("initial_cid_num", p.orig_caller_id_number.clone()),
        ("initial_ip_addr", p.network_addr.clone()),
        ("initial_dest", p.destination_number.clone()),
        ("initial_dialplan", p.dialplan.clone()),
        ("initial_context", p.context.clone()),
    ]
}

fn render_rows(rows: &[Vec<(&'static str, String)>], json: bool) -> String {
    if json {
        if rows.is_empty() {
            return "{\"row_count\":0}".into();
        }
        let rows_json: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::Value::Object(
                    r.iter()
                        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
                        .collect(),
                )
            })
            .collect();
        let mut obj = serde_json::Map::new();
        obj.insert("row_count".into(), rows.len().into());
        obj.insert("rows".into(), serde_json::Value::Array(rows_json));
        return serde_json::Value::Object(obj).to_string();
    }
    if rows.is_empty() {
        return "\n0 total.\n".into();
    }
    let mut out = String::new();
    let header: Vec<&str> = rows[0].iter().map(|(k, _)| *k).collect();
    out.push_str(&header.join(","));
    out.push('\n');
    for r in rows {
        let vals: Vec<&str> = r.iter().map(|(_, v)| v.as_str()).collect();
        out.push_str(&vals.join(","));
        out.push('\n');
    }
    out.push_str(&format!("\n{} total.\n", rows.len()));
    out
}

/// Splits on spaces that are neither inside `{…}` nor inside single quotes, as the switch
/// reads `originate`'s arguments (`{execute_on_answer='sched_hangup +3 normal_clearing'}…`
/// is one word).
fn words_outside_quotes(s: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let (mut depth, mut quoted, mut start) = (0usize, false, None);
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '{' if !quoted => depth += 1,
            '}' if !quoted => depth = depth.saturating_sub(1),
            ' ' | '\t' if !quoted && depth == 0 => {
                if let Some(b) = start.take() {
                    words.push(&s[b..i]);
                }
                continue;
            }
            _ => {}
        }
        start.get_or_insert(i);
    }
    if let Some(b) = start {
        words.push(&s[b..]);
    }
    words
}

/// Parses `{a=b,c='d e'}` (recording or originate variables): commas inside single quotes
/// belong to the value, and the quotes around a value are dropped, as the switch does.
pub(crate) fn parse_brackets(s: &str) -> Vec<(String, String)> {
    let inner = s.trim().trim_start_matches('{').trim_end_matches('}');
    let mut pairs = Vec::new();
    let (mut quoted, mut from) = (false, 0);
    for (i, c) in inner
        .char_indices()
        .chain(std::iter::once((inner.len(), ',')))
    {
        match c {
            '\'' => quoted = !quoted,
            ',' if !quoted => {
                if let Some((k, v)) = inner[from..i].split_once('=') {
                    let k = k.trim();
                    if !k.is_empty() {
                        let v = v
                            .strip_prefix('\'')
                            .and_then(|v| v.strip_suffix('\''))
                            .unwrap_or(v);
                        pairs.push((k.to_string(), v.to_string()));
                    }
                }
                from = i + 1;
            }
            _ => {}
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_give_ordered_pairs() {
        assert_eq!(
            parse_brackets("{callrec_id=abc123,owner=1001}"),
            vec![
                ("callrec_id".to_string(), "abc123".to_string()),
                ("owner".to_string(), "1001".to_string())
            ]
        );
        assert!(parse_brackets("{}").is_empty());
    }

    #[test]
    fn quoted_values_keep_their_spaces_and_commas() {
        assert_eq!(
            parse_brackets("{a=1,execute_on_answer='sched_hangup +3 normal_clearing',b='x,y'}"),
            vec![
                ("a".to_string(), "1".to_string()),
                (
                    "execute_on_answer".to_string(),
                    "sched_hangup +3 normal_clearing".to_string()
                ),
                ("b".to_string(), "x,y".to_string())
            ]
        );
        assert_eq!(
            words_outside_quotes("{a='b c'}loopback/9999/default  &park"),
            vec!["{a='b c'}loopback/9999/default", "&park"]
        );
    }

    #[test]
    fn empty_show_is_a_zero_row_count() {
        assert_eq!(render_rows(&[], true), "{\"row_count\":0}");
    }
}
