//! An environment's own port and domain: opened before the new release takes traffic, put
//! back as they were when the release is rolled back.

use super::*;
use crate::config::model::EnvironmentRule;
use crate::ids::ReleaseNumber;
use crate::pipeline::model::OperationState;
use crate::pipeline::traits::Exposure;

fn on_port(port: u16) -> AppConfig {
    let mut config = config();
    config.environments.insert(
        "staging".to_owned(),
        EnvironmentRule {
            port: Some(port),
            domain: Some("shop.example.com".to_owned()),
            ..EnvironmentRule::default()
        },
    );
    config
}

fn exposure(world: &World) -> Option<Exposure> {
    world
        .traffic
        .exposed
        .lock()
        .unwrap()
        .get(&world.env)
        .cloned()
}

#[tokio::test(start_paused = true)]
async fn the_port_opens_before_the_switch_and_a_taken_one_rolls_the_deploy_back() {
    let world = World::new();
    world.commit("c1", on_port(9001));
    world.commit("c2", on_port(9002));
    world.commit("c3", on_port(9003));
    let first = world.deploy("c1").await;
    assert_eq!(
        first.state,
        OperationState::Succeeded,
        "{}",
        world.log(first.id)
    );
    let exposed = |port| Exposure {
        domain: Some("shop.example.com".to_owned()),
        port: Some(port),
    };
    assert_eq!(exposure(&world), Some(exposed(9001)));

    world.traffic.taken_ports.lock().unwrap().insert(9002);
    world.events.clear();
    let refused = world.deploy("c2").await;
    assert_eq!(
        refused.state,
        OperationState::RolledBack,
        "{}",
        world.log(refused.id)
    );
    assert!(
        world.log(refused.id).contains("port 9002 is taken"),
        "{}",
        world.log(refused.id)
    );
    assert!(!world.events.all().iter().any(|e| e == "switch [v2]"));
    assert_eq!(
        world.traffic.routed_releases(&world.env),
        [ReleaseNumber(1)]
    );
    assert_eq!(exposure(&world), Some(exposed(9001)));

    world.events.clear();
    let moved = world.deploy("c3").await;
    assert_eq!(
        moved.state,
        OperationState::Succeeded,
        "{}",
        world.log(moved.id)
    );
    let events = world.events.all();
    let opened = events
        .iter()
        .position(|e| e == "expose shop/staging on port 9003");
    let switched = events.iter().position(|e| e == "switch [v3]");
    assert!(opened.is_some() && opened < switched, "{events:?}");
    assert_eq!(exposure(&world), Some(exposed(9003)));
}
