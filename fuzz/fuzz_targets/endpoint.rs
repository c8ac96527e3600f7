//! A whole MIMI request as the HTTP adapter hands it over: path (parsed by
//! `Endpoint::parse`), `From` header (`Domain::parse_from_header`) and body, into a
//! provider's `ServerCore` (hub and follower roles, with a subscribed local client).
//! The same path and body also go in as a local client's relayed request.
//!
//! Input: `path \n from \n body`. Checked: no panic; every request that gets past the
//! adapter's checks is answered exactly once, with a status the core uses; a relayed
//! client request is answered or sent on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodes::endpoint::Endpoint;
use nodes::hub::{Enforcement, EnforcementConfig};
use nodes::ids::{ClientUri, Domain, RoomUri, UserUri};
use nodes::io::{ClientToProvider, ProviderToClient, Request, ServerCore, ServerOutput};
use nodes::server::Server;

const NOW: u64 = 1_767_225_600_000;

fn split(data: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let i = data.iter().position(|&b| b == b'\n')?;
    let (path, rest) = (&data[..i], &data[i + 1..]);
    let j = rest.iter().position(|&b| b == b'\n')?;
    Some((path, &rest[..j], &rest[j + 1..]))
}

fn known_status(s: u16) -> bool {
    matches!(s, 200 | 201 | 400 | 403 | 404 | 409 | 413 | 421 | 500 | 503)
}

fuzz_target!(|data: &[u8]| {
    let Some((path, from, body)) = split(data) else {
        return;
    };
    let path = String::from_utf8_lossy(path);
    let from = String::from_utf8_lossy(from);
    let Ok(endpoint) = Endpoint::parse(&path) else {
        return;
    };
    // What the adapter sends must parse back to the same endpoint.
    assert_eq!(Endpoint::parse(&endpoint.path()).as_ref(), Ok(&endpoint));
    let own = Domain::new("a.example").unwrap();
    let mut server = Server::new(own.clone(), 1, EnforcementConfig::new(Enforcement::Full));
    let alice: ClientUri = UserUri::new(&own, "alice").unwrap().client("1").unwrap();
    for room in ["mimi://a.example/r/r", "mimi://b.example/r/r"] {
        server
            .follower_mut()
            .subscribe(&room.parse::<RoomUri>().unwrap(), &alice);
    }
    if let Ok(from) = Domain::parse_from_header(&from) {
        let out = server.on_request(
            NOW,
            7,
            Request {
                from,
                to: own.clone(),
                endpoint: endpoint.clone(),
                body: body.to_vec(),
            },
        );
        let answers: Vec<u16> = out
            .iter()
            .filter_map(|o| match o {
                ServerOutput::Respond { id: 7, response } => Some(response.status),
                _ => None,
            })
            .collect();
        assert_eq!(answers.len(), 1, "{endpoint:?}: answers {answers:?}");
        assert!(known_status(answers[0]), "status {}", answers[0]);
    }
    let out = server.on_client(
        NOW + 1,
        &alice,
        ClientToProvider::Relay {
            corr: 9,
            endpoint: endpoint.clone(),
            body: body.to_vec(),
        },
    );
    let handled = out.iter().any(|o| match o {
        ServerOutput::ToClient {
            message: ProviderToClient::Reply { corr: 9, response },
            ..
        } => known_status(response.status),
        ServerOutput::Send { .. } => true,
        _ => false,
    });
    assert!(
        handled,
        "{endpoint:?}: relay neither answered nor sent: {out:?}"
    );
});
