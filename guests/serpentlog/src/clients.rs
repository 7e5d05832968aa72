//! The broker's clients, found by channel name: every client has its own pair, so one
//! misbehaving client can fill or corrupt only its own channels.
//!
//! A pair is a queuing channel `<client>_req` that the broker reads and a queuing channel
//! `<client>_resp` that the broker writes. Channels that do not form a pair are reported,
//! not guessed at.

use alloc::string::String;
use alloc::vec::Vec;

/// Suffix of the channel a client sends requests on.
pub const REQUEST_SUFFIX: &str = "_req";
/// Suffix of the channel the broker answers a client on.
pub const RESPONSE_SUFFIX: &str = "_resp";

/// A channel as the broker's boot info describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint<'a> {
    pub name: &'a str,
    pub queuing: bool,
    /// The broker writes it.
    pub writer: bool,
}

/// One client: the names of its request and response channels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    pub client: String,
    pub request: String,
    pub response: String,
}

/// Pairs every `<client>_req` the broker reads with the `<client>_resp` it writes; the
/// second list names the channels left over (wrong kind or direction, or no partner).
pub fn pairs(endpoints: &[Endpoint<'_>]) -> (Vec<Pair>, Vec<String>) {
    let mut found = Vec::new();
    let mut unused = Vec::new();
    for e in endpoints {
        let client = e.name.strip_suffix(REQUEST_SUFFIX).filter(|_| e.queuing && !e.writer);
        let partner = client.and_then(|c| {
            endpoints
                .iter()
                .find(|r| r.queuing && r.writer && r.name.strip_suffix(RESPONSE_SUFFIX) == Some(c))
        });
        match (client, partner) {
            (Some(c), Some(r)) => found.push(Pair {
                client: String::from(c),
                request: String::from(e.name),
                response: String::from(r.name),
            }),
            _ => {
                let answers_a_client = e.queuing
                    && e.writer
                    && e.name.strip_suffix(RESPONSE_SUFFIX).is_some_and(|c| {
                        endpoints
                            .iter()
                            .any(|q| q.queuing && !q.writer && q.name.strip_suffix(REQUEST_SUFFIX) == Some(c))
                    });
                if !answers_a_client {
                    unused.push(String::from(e.name));
                }
            }
        }
    }
    (found, unused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(name: &str, queuing: bool, writer: bool) -> Endpoint<'_> {
        Endpoint { name, queuing, writer }
    }

    #[test]
    fn pairs_request_and_response_channels_by_client_name() {
        let eps = [
            ep("linux_req", true, false),
            ep("tail_resp", true, true),
            ep("linux_resp", true, true),
            ep("tail_req", true, false),
        ];
        let (pairs, unused) = pairs(&eps);
        let names: Vec<_> = pairs.iter().map(|p| p.client.as_str()).collect();
        assert_eq!(names, ["linux", "tail"]);
        assert_eq!(pairs[0].request, "linux_req");
        assert_eq!(pairs[0].response, "linux_resp");
        assert!(unused.is_empty(), "{unused:?}");
    }

    #[test]
    fn channels_without_partner_or_of_the_wrong_kind_are_reported() {
        let eps = [
            ep("a_req", true, false),  // no a_resp
            ep("b_req", false, false), // sampling
            ep("b_resp", true, true),  // its request is not usable
            ep("c_req", true, true),   // the broker writes it: wrong direction
            ep("c_resp", true, true),
            ep("readings", true, false), // not a client channel
        ];
        let (pairs, unused) = pairs(&eps);
        assert!(pairs.is_empty(), "{pairs:?}");
        assert_eq!(unused, ["a_req", "b_req", "b_resp", "c_req", "c_resp", "readings"]);
    }
}
