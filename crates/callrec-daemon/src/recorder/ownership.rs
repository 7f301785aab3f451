//! Whose leg an event describes (SPEC §3.2): the first ownership header naming a user of
//! the directory, the side of the call that header puts them on, and the parties.

use callrec_model::Direction;

use super::Recorder;
use crate::calls::Owner;
use crate::directory::UserKey;
use crate::event::ChannelEvent;

/// Whose side a header puts the user on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Caller,
    Callee,
    Unknown,
}

fn side_of_header(name: &str) -> Side {
    match name.to_ascii_lowercase().as_str() {
        "variable_user_name" | "caller-caller-id-number" => Side::Caller,
        "variable_dialed_user" | "caller-destination-number" => Side::Callee,
        _ => Side::Unknown,
    }
}

impl Recorder {
    /// The owner of the leg an event describes (SPEC §3.2), with direction and parties.
    pub fn owner_of(&self, ev: &ChannelEvent) -> Option<Owner> {
        let header_name = |i: usize| {
            self.settings
                .owner_headers
                .get(i)
                .map_or("", String::as_str)
        };
        let (index, user) = ev.owner_headers.iter().enumerate().find_map(|(i, value)| {
            if names_the_reached_party(header_name(i), ev) {
                return None;
            }
            value
                .as_deref()
                .and_then(|v| self.owners.find(v))
                .map(|u| (i, u))
        })?;
        let header = header_name(index);
        let is_user = |number: Option<&str>| {
            number
                .and_then(|n| self.owners.find(n))
                .is_some_and(|u| UserKey::of(u) == UserKey::of(user))
        };
        let side = match side_of_header(header) {
            Side::Unknown if is_user(ev.caller_number.as_deref()) => Side::Caller,
            Side::Unknown if is_user(ev.destination.as_deref()) => Side::Callee,
            // The switch's view of the leg: an `inbound` leg called the switch, so its
            // party is calling out.
            Side::Unknown => match ev.call_direction.as_deref() {
                Some("inbound") => Side::Caller,
                _ => Side::Callee,
            },
            known => known,
        };
        let other_party = match side {
            Side::Caller => ev.destination.as_deref(),
            _ => ev.caller_number.as_deref(),
        };
        let other_is_user = other_party
            .and_then(|n| self.owners.find(n))
            .is_some_and(|u| UserKey::of(u) != UserKey::of(user));
        let direction = match (side, other_is_user) {
            (_, true) => Direction::Internal,
            (Side::Caller, false) => Direction::Outbound,
            _ => Direction::Inbound,
        };
        let from = ev.caller_number.clone().unwrap_or_default();
        // A leg to a registered phone can carry a registration contact as its destination
        // (`1000-0x56345d2322d0`); the dialled directory user names the party plainly.
        let to = ev
            .dialed_user
            .clone()
            .or_else(|| ev.destination.as_deref().map(dialled_number))
            .unwrap_or_default();
        Some(Owner {
            user: UserKey::of(user),
            direction,
            from,
            to,
            rank: index,
            by_number: !header.to_ascii_lowercase().starts_with("variable_"),
        })
    }
}

/// Whether a header, on this leg, names the party the leg reached rather than the leg's own
/// user: the switch sets `dialed_user` on the leg that runs a `user/…` bridge as well as on
/// the leg it dials (the `sip-hold` capture: 1001's inbound leg carries `dialed_user` 1000),
/// so on a leg that called the switch (`Call-Direction: inbound`: a phone, a trunk, a
/// loopback B leg) it is the called user's, not this leg's.
fn names_the_reached_party(header: &str, ev: &ChannelEvent) -> bool {
    header.eq_ignore_ascii_case("variable_dialed_user")
        && ev.call_direction.as_deref() == Some("inbound")
}

/// The number a leg's destination names: sofia gives the leg it dials out on the dialled
/// contact with a `-0x<session>` suffix (`1000-0x56345d2322d0` in the `sip-hold` capture).
fn dialled_number(destination: &str) -> String {
    match destination.rsplit_once("-0x") {
        Some((number, session))
            if !number.is_empty() && session.chars().all(|c| c.is_ascii_hexdigit()) =>
        {
            number.to_owned()
        }
        _ => destination.to_owned(),
    }
}
