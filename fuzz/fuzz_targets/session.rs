//! Drives the native session state machine with arbitrary bytes: first a
//! valid Hello (half the inputs, so the open phase is reached), then the
//! input cut into frames by one length byte each. Whatever the bytes, the
//! session must answer with valid server frames and never panic; a close must
//! be announced by an Error frame with `close = true`.
#![no_main]

use std::sync::{Arc, OnceLock};

use axon_core::store::{AccountStore, TimelineStore};
use axon_core::{
    Accounts, Ephemeral, RoomCreation, RoomId, RoomRouter, Sequencer, SequencerConfig, ServerName, Services,
    Session, SessionConfig,
};
use axon_schemas::{ClientFrame, DecodeLimits, Frame, Hello, ServerFrame};
use axon_storage::{EmbeddedOptions, EmbeddedStore};
use libfuzzer_sys::fuzz_target;

struct World {
    runtime: tokio::runtime::Runtime,
    services: Services,
    config: Arc<SessionConfig>,
    hello: bytes::Bytes,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let options = EmbeddedOptions {
            durability: axon_storage::Durability::Buffered { flush_interval: std::time::Duration::from_secs(3600) },
            ..EmbeddedOptions::default()
        };
        let store = Arc::new(EmbeddedStore::open(dir.path(), options).expect("store"));
        let (services, token) = runtime.block_on(async {
            let router = Arc::new(RoomRouter::new());
            let timeline: Arc<dyn TimelineStore> = store.clone();
            let config = SequencerConfig { shards: 1, ..SequencerConfig::default() };
            let sequencer = Sequencer::start(timeline, router.clone(), config).await.expect("sequencer");
            let account_store: Arc<dyn AccountStore> = store.clone();
            let server = ServerName::parse("fuzz.test").expect("server name");
            let accounts = Accounts::new(account_store, server.clone(), None);
            let user = accounts.create_user("fuzzer", None, false).await.expect("user");
            let token = accounts.open_session(&user.user_id, None, None).await.expect("token");
            // A room the fuzzer is in, with a well-known id it may stumble on.
            let room = RoomId::parse("!fuzz:fuzz.test").expect("room id");
            sequencer.append_all(RoomCreation::new(room, user.user_id).events()).await.expect("room");
            let ephemeral = Ephemeral::start(router.clone(), store.clone());
            let services = Services { sequencer, store: store.clone(), accounts, router, ephemeral };
            (services, token.access_token.expose().to_owned())
        });
        let hello = axon_schemas::encode_client(&ClientFrame::Hello(Hello {
            access_token: &token,
            device_id: None,
            client_name: None,
            client_version: None,
            resume: Vec::new(),
        }));
        let config = SessionConfig { max_frame_bytes: 4096, ..SessionConfig::default() };
        World { runtime, services, config: Arc::new(config), hello, _dir: dir }
    })
}

fn check(out: &[bytes::Bytes], closed: bool) {
    let mut announced = false;
    for frame in out {
        let decoded = axon_schemas::decode(frame, &DecodeLimits::with_max_frame_bytes(1 << 20))
            .expect("the session only sends valid frames");
        let Frame::Server(server) = decoded else { panic!("the session sent a client frame") };
        if let ServerFrame::Error(e) = server {
            announced |= e.close;
        }
    }
    assert!(!closed || announced, "a close without an Error frame saying so");
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    w.runtime.block_on(async {
        let mut session = Session::new(w.services.clone(), Arc::clone(&w.config));
        let mut out = Vec::new();
        let (open_first, mut rest) = match data.split_first() {
            Some((b, rest)) => (b & 1 == 1, rest),
            None => return,
        };
        if open_first {
            let r = session.on_frame(&w.hello, &mut out).await;
            assert!(r.is_ok() && session.is_open());
        }
        while let Some((&len, tail)) = rest.split_first() {
            let len = usize::from(len).min(tail.len());
            let (frame, tail) = tail.split_at(len);
            rest = tail;
            out.clear();
            let mut result = session.on_frame(frame, &mut out).await;
            while result.is_ok() && session.has_pending_sends() {
                let settled = session.sends_settled().await;
                result = session.answer_sends(settled, &mut out);
            }
            check(&out, result.is_err());
            if result.is_err() {
                return;
            }
        }
    });
});
