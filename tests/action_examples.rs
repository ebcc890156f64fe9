//! action.yml and the example workflows, read as GitHub reads them: the action is a
//! docker action built from the Dockerfile, declares exactly the inputs and outputs the
//! binary reads and writes, and every example is a complete workflow whose steps give the
//! action only inputs it has, with a command it knows.

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml::Value;
use slipway::action::inputs::{ActionCommand, INPUT_NAMES, OUTPUT_NAMES};

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn keys(map: &Value) -> BTreeSet<String> {
    map.as_mapping()
        .expect("a mapping")
        .keys()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect()
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn action_yml_is_a_docker_action_with_the_inputs_the_binary_reads() {
    let action = read(&root().join("action.yml"));
    assert_eq!(action["runs"]["using"], "docker");
    assert_eq!(action["runs"]["image"], "Dockerfile");
    assert!(root()
        .join(action["runs"]["image"].as_str().expect("image"))
        .is_file());
    assert!(action["branding"]["icon"].is_string() && action["branding"]["color"].is_string());
    let inputs = keys(&action["inputs"]);
    let expected: BTreeSet<String> = INPUT_NAMES.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(inputs, expected);
    assert_eq!(
        action["inputs"]["github-token"]["default"],
        "${{ github.token }}"
    );
    assert_eq!(action["inputs"]["command"]["default"], "deploy");
    assert_eq!(action["inputs"]["wait"]["default"], "true");
    let outputs = keys(&action["outputs"]);
    let expected: BTreeSet<String> = OUTPUT_NAMES.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(outputs, expected);
}

#[test]
fn every_example_workflow_uses_the_action_as_it_is() {
    let dir = root().join("examples/workflows");
    let mut seen = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("examples/workflows") {
        let path = entry.expect("entry").path();
        let workflow = read(&path);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        assert!(workflow["name"].is_string(), "{name}: a name");
        // YAML 1.1 would read a bare `on` as true; serde_yaml reads it as the string.
        assert!(!workflow["on"].is_null(), "{name}: a trigger");
        let mut uses = 0;
        for (_, job) in workflow["jobs"].as_mapping().expect("jobs") {
            assert!(job["runs-on"].is_string(), "{name}: runs-on");
            for step in job["steps"].as_sequence().expect("steps") {
                let Some(action) = step["uses"].as_str() else {
                    continue;
                };
                if !action.contains("/slipway@") {
                    continue;
                }
                uses += 1;
                let with = keys(&step["with"]);
                for input in &with {
                    assert!(
                        INPUT_NAMES.contains(&input.as_str()),
                        "{name}: unknown input `{input}`"
                    );
                }
                let command = step["with"]["command"].as_str().unwrap_or("deploy");
                assert!(
                    ActionCommand::parse(command).is_some(),
                    "{name}: command `{command}`"
                );
                seen.insert(command.to_owned());
            }
        }
        assert!(uses > 0, "{name} does not use the action");
    }
    for command in ["deploy", "validate", "rollback"] {
        assert!(seen.contains(command), "no example {command}s: {seen:?}");
    }
}
