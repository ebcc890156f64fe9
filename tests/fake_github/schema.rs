//! GitHub's schema of the operations the fake serves, read from
//! `shared/fixtures/github-api/rest-subset.json`, and a small validator for the parts
//! of JSON Schema it uses (type, required, enum, maxLength, maxItems, properties,
//! items, oneOf, anyOf).

use serde_json::{json, Value};

pub fn load() -> Value {
    let path = format!(
        "{}/../shared/fixtures/github-api/rest-subset.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("rest-subset.json is JSON")
}

/// The spec key (`POST /repos/{owner}/{repo}/statuses/{sha}`) and the path parameters
/// of a request, when it is one of the operations.
pub fn operation_of(method: &str, path: &str) -> Option<(String, Vec<(String, String)>)> {
    const TEMPLATES: [&str; 6] = [
        "POST /repos/{owner}/{repo}/statuses/{sha}",
        "POST /repos/{owner}/{repo}/check-runs",
        "PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}",
        "POST /repos/{owner}/{repo}/deployments",
        "POST /repos/{owner}/{repo}/deployments/{deployment_id}/statuses",
        "POST /app/installations/{installation_id}/access_tokens",
    ];
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for template in TEMPLATES {
        let (template_method, template_path) = template.split_once(' ')?;
        if template_method != method {
            continue;
        }
        let parts: Vec<&str> = template_path.trim_start_matches('/').split('/').collect();
        if parts.len() != segments.len() {
            continue;
        }
        let mut params = Vec::new();
        let fits = parts.iter().zip(&segments).all(|(part, segment)| {
            if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                params.push((name.to_owned(), (*segment).to_owned()));
                !segment.is_empty()
            } else {
                part == segment
            }
        });
        if fits {
            return Some((template.to_owned(), params));
        }
    }
    None
}

/// Everything wrong with a request, by GitHub's schema and limits.
pub fn check_request(
    spec: &Value,
    key: &str,
    params: &[(String, String)],
    _path: &str,
    body: &Value,
) -> Vec<String> {
    let mut problems = Vec::new();
    let operation = &spec["operations"][key];
    for (name, value) in params {
        let integer = operation["path_parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == name.as_str() && p["schema"]["type"] == "integer");
        if integer && value.parse::<i64>().is_err() {
            problems.push(format!(
                "path parameter {name} = `{value}` is not an integer"
            ));
        }
        if name == "sha" && !(value.len() == 40 && value.bytes().all(|b| b.is_ascii_hexdigit())) {
            problems.push(format!("`{value}` is not a commit sha"));
        }
    }
    if operation["request_body_required"] == true && body.is_null() {
        problems.push("the body is required".into());
    }
    if !body.is_null() {
        validate(
            &operation["request_body_constraints"],
            body,
            "body",
            &mut problems,
        );
    }
    // Limits GitHub enforces that the schema states only in prose.
    let description = body
        .get("description")
        .and_then(Value::as_str)
        .map_or(0, |d| d.chars().count());
    if (key.ends_with("/statuses/{sha}") || key.ends_with("/{deployment_id}/statuses"))
        && description > 140
    {
        problems.push(format!(
            "description is too long ({description} characters; maximum is 140)"
        ));
    }
    for annotation in body
        .pointer("/output/annotations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if annotation
            .get("title")
            .and_then(Value::as_str)
            .is_some_and(|t| t.chars().count() > 255)
        {
            problems.push("an annotation title is over 255 characters".into());
        }
    }
    problems
}

/// Validates `value` against the subset of JSON Schema GitHub's description uses.
pub fn validate(schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    if schema.get("$ref").is_some() {
        return;
    }
    if value.is_null() {
        if schema["nullable"] != true && schema.get("type").is_some() {
            problems.push(format!("{at} is null"));
        }
        return;
    }
    if let Some(kind) = schema.get("type").and_then(Value::as_str) {
        let fits = match kind {
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => true,
        };
        if !fits {
            problems.push(format!("{at} should be a {kind}, is {value}"));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            problems.push(format!(
                "{at} = {value} is not one of {}",
                Value::Array(allowed.clone())
            ));
        }
    }
    if let (Some(max), Some(text)) = (
        schema.get("maxLength").and_then(Value::as_u64),
        value.as_str(),
    ) {
        if text.chars().count() as u64 > max {
            problems.push(format!(
                "{at} is {} characters long; maximum {max}",
                text.chars().count()
            ));
        }
    }
    if let (Some(max), Some(items)) = (
        schema.get("maxItems").and_then(Value::as_u64),
        value.as_array(),
    ) {
        if items.len() as u64 > max {
            problems.push(format!("{at} has {} items; maximum {max}", items.len()));
        }
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for field in required.iter().filter_map(Value::as_str) {
            if value.get(field).is_none() {
                problems.push(format!("{at}.{field} is required"));
            }
        }
    }
    if let (Some(properties), Some(object)) = (
        schema.get("properties").and_then(Value::as_object),
        value.as_object(),
    ) {
        for (name, property) in properties {
            if let Some(field) = object.get(name) {
                validate(property, field, &format!("{at}.{name}"), problems);
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            validate(items, item, &format!("{at}[{i}]"), problems);
        }
    }
    let fitting = |branches: &Vec<Value>| {
        branches
            .iter()
            .filter(|branch| {
                let mut found = Vec::new();
                validate(branch, value, at, &mut found);
                found.is_empty()
            })
            .count()
    };
    if let Some(branches) = schema.get("oneOf").and_then(Value::as_array) {
        if fitting(branches) != 1 {
            problems.push(format!(
                "{at} fits {} of the oneOf alternatives (exactly one is required)",
                fitting(branches)
            ));
        }
    }
    if let Some(branches) = schema.get("anyOf").and_then(Value::as_array) {
        if fitting(branches) == 0 {
            problems.push(format!("{at} fits none of the anyOf alternatives (a completed check run needs a conclusion)"));
        }
    }
}

/// The spec's example answer of an operation, with a fresh `id`. An installation token
/// is one per installation (`ghs_fake_installation_<id>`) that expires in an hour (the
/// spec's example expired in 2016, which no cache would keep).
pub fn example_response(
    spec: &Value,
    key: &str,
    id: i64,
    params: &[(String, String)],
) -> (u16, Value) {
    let examples = &spec["components"]["examples"];
    let (status, example) = match key {
        k if k.ends_with("/statuses/{sha}") => (201, "status"),
        k if k.starts_with("POST") && k.ends_with("/check-runs") => {
            (201, "check-run-example-of-in-progress-conclusion")
        }
        k if k.starts_with("PATCH") => (200, "check-run-example-of-completed-conclusion"),
        k if k.ends_with("/deployments") => (201, "deployment-simple-example"),
        k if k.ends_with("/statuses") => (201, "deployment-status"),
        _ => (201, "installation-token"),
    };
    let mut value = examples[example]["value"].clone();
    if value.is_null() {
        value = json!({});
    }
    if value.get("id").is_some() {
        value["id"] = json!(id);
    }
    if key.ends_with("/access_tokens") {
        let installation = params
            .iter()
            .find(|(name, _)| name == "installation_id")
            .map_or("", |(_, v)| v.as_str());
        value["token"] = json!(format!("ghs_fake_installation_{installation}"));
        let in_an_hour = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        value["expires_at"] = json!(in_an_hour
            .replace_nanosecond(0)
            .ok()
            .and_then(|t| t
                .format(&time::format_description::well_known::Rfc3339)
                .ok())
            .unwrap_or_default());
    }
    (status, value)
}
