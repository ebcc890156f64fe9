//! A deploy started by a GitHub push, with `slipway serve` SIGKILLed at each step and
//! started again on the same data directory. Every time: no operation stays running,
//! the interrupted deploy ends `succeeded` if its switch was recorded and `rolled_back`
//! otherwise, one release answers and only its processes run, a hook that had started
//! is not run again while what had not started runs, the log and the deliveries are
//! intact, and GitHub gets the final status. (`crash/mod.rs` does the work; each row
//! below is one crash.)

mod common;
mod crash;
mod fake_github;

use crash::{Arm, Case, Twist};

const NONE: Twist = Twist {
    unhealthy: None,
    watch: None,
    slow_request_to_v1: false,
};

macro_rules! crashes {
    ($($name:ident: $case:expr,)*) => {$(
        #[test]
        fn $name() {
            crash::run($case);
        }
    )*};
}

crashes! {
    killed_during_the_build: Case {
        arm: Arm::Hook("build"),
        twist: NONE,
        stopped: Some("while step `build` was running"),
        at_kill: Some("v1"),
        ends: "rolled_back",
        trace: &["build started", "after_deploy_failure"],
    },
    killed_during_before_release: Case {
        arm: Arm::Hook("before_release"),
        twist: NONE,
        stopped: Some("while step `before_release` was running"),
        at_kill: Some("v1"),
        ends: "rolled_back",
        trace: &["before_release started", "after_deploy_failure"],
    },
    killed_while_waiting_for_health: Case {
        arm: Arm::Step("start_instances", "started web.1 (pid"),
        twist: Twist { unhealthy: Some("30s"), ..NONE },
        stopped: Some("while step `start_instances` was running"),
        at_kill: Some("v1"),
        ends: "rolled_back",
        trace: &["after_deploy_failure"],
    },
    killed_during_the_deploy_hook: Case {
        arm: Arm::Hook("deploy"),
        twist: NONE,
        stopped: Some("while step `deploy_hook` was running"),
        at_kill: None,
        ends: "rolled_back",
        trace: &["deploy started", "after_deploy_failure"],
    },
    killed_after_the_router_switched_but_before_the_switch_was_committed: Case {
        arm: Arm::Pause("switch-uncommitted", None),
        twist: NONE,
        stopped: Some("while step `switch` was running"),
        at_kill: Some("v2"),
        ends: "rolled_back",
        trace: &["after_deploy_failure"],
    },
    killed_just_after_the_switch_was_committed: Case {
        arm: Arm::Pause("switch-committed", None),
        twist: NONE,
        stopped: Some("after step `switch` had ended"),
        at_kill: Some("v2"),
        ends: "succeeded",
        trace: &["post_deploy", "after_deploy_success"],
    },
    killed_while_draining_a_request_to_the_old_release: Case {
        arm: Arm::Step("drain", "==> drain the old instances"),
        twist: Twist { slow_request_to_v1: true, ..NONE },
        stopped: Some("while step `drain` was running"),
        at_kill: Some("v2"),
        ends: "succeeded",
        trace: &["post_deploy", "after_deploy_success"],
    },
    killed_during_post_deploy: Case {
        arm: Arm::Hook("post_deploy"),
        twist: NONE,
        stopped: Some("while step `post_deploy` was running"),
        at_kill: Some("v2"),
        ends: "succeeded",
        trace: &["post_deploy started", "after_deploy_success"],
    },
    killed_during_the_watch: Case {
        arm: Arm::Step("watch", "==> watch the new release"),
        twist: Twist { watch: Some("6s"), ..NONE },
        stopped: Some("while step `watch` was running"),
        at_kill: Some("v2"),
        ends: "succeeded",
        trace: &["post_deploy", "after_deploy_success"],
    },
    killed_during_after_deploy_success: Case {
        arm: Arm::Hook("after_deploy_success"),
        twist: NONE,
        stopped: Some("while step `after_hooks` was running"),
        at_kill: Some("v2"),
        ends: "succeeded",
        trace: &["post_deploy", "after_deploy_success started"],
    },
    killed_during_after_deploy_failure: Case {
        arm: Arm::Hook("after_deploy_failure"),
        twist: Twist { unhealthy: Some("1s"), ..NONE },
        stopped: Some("while step `after_hooks` was running"),
        at_kill: Some("v1"),
        ends: "rolled_back",
        trace: &["after_deploy_failure started"],
    },
    killed_between_accepting_a_webhook_and_working_on_it: Case {
        arm: Arm::Pause("delivery-accepted", None),
        twist: NONE,
        stopped: None,
        at_kill: Some("v1"),
        ends: "succeeded",
        trace: &["post_deploy", "after_deploy_success"],
    },
    killed_between_queueing_a_webhooks_deploy_and_linking_it_to_github: Case {
        arm: Arm::Pause("delivery-operation-created", Some("before_release")),
        twist: NONE,
        stopped: Some("while step `before_release` was running"),
        at_kill: Some("v1"),
        ends: "rolled_back",
        trace: &["before_release started", "after_deploy_failure"],
    },
}
