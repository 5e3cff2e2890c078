//! `axon room ...`: room management for operators, on the data directory
//! directly (until the Matrix adapter provides createRoom and joins).
//!
//! Rooms are created through the real sequencer, so every event passes the
//! same authorization rules as a client's: the creator creates and joins,
//! invites each member, and each member joins.

use std::sync::Arc;

use anyhow::Context as _;
use axon_core::store::{AccountStore, TimelineStore};
use axon_core::{Membership, NewEvent, RoomCreation, RoomId, RoomRouter, Sequencer};

use super::user::resolve;
use crate::cli::RoomCommand;
use crate::config::Config;
use crate::data_dir::DataDir;
use crate::storage;

/// Runs one `axon room` command against the configured data directory.
pub async fn run(cmd: RoomCommand, config: &Config) -> anyhow::Result<()> {
    let RoomCommand::Create {
        creator,
        members,
        name,
        public,
    } = cmd;
    let server = &config.server_name;
    let creator = resolve(&creator, server)?;
    let members = members
        .iter()
        .map(|m| resolve(m, server))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let data_dir = DataDir::open(&config.data_dir)?;
    data_dir.check_shards(config.sequencer.shards)?;
    let (store, _) = storage::open(&config.storage, &data_dir).await?;
    let accounts: Arc<dyn AccountStore> = store.clone();
    for user in std::iter::once(&creator).chain(&members) {
        if accounts.user(user).await?.is_none_or(|u| u.deactivated) {
            anyhow::bail!("no such active user: {user} (create it with `axon user create`)");
        }
    }
    let timeline: Arc<dyn TimelineStore> = store.clone();
    let sequencer = Sequencer::start(
        timeline,
        Arc::new(RoomRouter::new()),
        config.sequencer_config(),
    )
    .await
    .context("starting the sequencers")?;

    let room = RoomId::random(server);
    let mut creation = RoomCreation::new(room.clone(), creator.clone());
    creation.name = name;
    creation.invites = members.clone();
    if public {
        creation.join_rule = axon_core::room::JoinRule::Public;
    }
    let result = async {
        sequencer
            .append_all(creation.events())
            .await
            .context("creating the room")?;
        for member in &members {
            sequencer
                .append(NewEvent::membership(
                    &room,
                    member,
                    member,
                    Membership::Join,
                ))
                .await
                .with_context(|| format!("joining {member}"))?;
        }
        anyhow::Ok(())
    }
    .await;
    sequencer.shutdown().await;
    let flushed = store.flush().await.context("flushing the store");
    drop(sequencer);
    drop(store);
    drop(data_dir);
    result.and(flushed)?;
    println!("{room}");
    eprintln!(
        "created {room}: {creator} (creator) and {} member(s) joined",
        members.len()
    );
    Ok(())
}
