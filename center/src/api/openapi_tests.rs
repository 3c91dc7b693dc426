//! The limits the OpenAPI document states, held to what the center enforces. Read from the
//! document: every parameter, and every text, list and object of a request body, states a limit
//! (`maxLength`, `pattern`, `enum`, `maximum`, `maxItems`, `additionalProperties: false`) or is
//! one of the exceptions below, which the document marks (`x-unbounded`, `x-open`); every body
//! says whether it is required, its content types and its size limit (`x-body-limit`), and
//! every route the router gives a body limit has one. Then over real HTTP against a started
//! center, limits taken from the document: the value at the limit is taken and one past it
//! refused (400, 413, 415 or 422). That every route is documented with its methods is
//! `center/tests/openapi.rs`.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use xueliang_proto::Alarm;

use crate::access::{Role, add_user};
use crate::domain::AlarmRecord;
use crate::running::{BrokerChoice, CenterConfig, start};

const DOCUMENT: &str = include_str!("openapi.json");
const ROUTER: &str = include_str!("mod.rs");
const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];
const PASSWORD: &str = "a long enough password";

/// What the center takes without a bound of its own, each with the reason the document gives
/// (`x-unbounded`, `x-open`): lookup keys whose values have no fixed length, a header RFC 9110
/// defines, a signed request checked whole, and the contract's enrolment request, open to newer
/// boxes.
const EXCEPTIONS: [&str; 15] = [
    "GET /api/alarms ?cursor",
    "GET /api/alarms/{id} ?id",
    "GET /api/alarms/{id}/snapshot ?id",
    "GET /api/alarms/{id}/picture ?id",
    "GET /api/tier/pictures/{id} ?id",
    "GET /api/tier/pictures/{id} ?X-Xl-Tier-Fetch",
    "GET /api/alarms/{id}/audit ?id",
    "GET /api/alarms/{id}/proof ?id",
    "POST /api/alarms/{id}/{action} ?id",
    "GET /api/clips/{id} ?Range",
    "GET /api/alarms/{id}/clips/{clip_id} ?id",
    "GET /api/alarms/{id}/clips/{clip_id} ?Range",
    "GET /api/tier/clips/{clip_id} ?X-Xl-Tier-Fetch",
    "GET /api/audit ?target",
    "POST /api/enroll body (object)",
];

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
}

/// `v` with a `$ref` to a schema followed.
fn resolve<'d>(doc: &'d Value, v: &'d Value) -> &'d Value {
    match v["$ref"].as_str() {
        Some(r) => {
            let name = r.strip_prefix("#/components/schemas/").expect("a schema reference");
            resolve(doc, &doc["components"]["schemas"][name])
        }
        None => v,
    }
}

/// Every `(METHOD, path, operation)` of the document.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            if METHODS.contains(&method.as_str()) {
                out.push((method.to_uppercase(), path.clone(), op));
            }
        }
    }
    out
}

/// The limits a schema at `at` lacks (into `faults`), and where it says it has none (into
/// `open`).
fn check(doc: &Value, schema: &Value, at: &str, faults: &mut Vec<String>, open: &mut Vec<String>) {
    let s = resolve(doc, schema);
    let has = |k: &str| s.get(k).is_some();
    if has("x-unbounded") {
        open.push(at.to_owned());
        return;
    }
    if let Some(branches) = s["oneOf"].as_array() {
        for (i, b) in branches.iter().enumerate() {
            check(doc, b, &format!("{at} (oneOf {i})"), faults, open);
        }
        return;
    }
    let types: Vec<&str> = match &s["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let limited = |keys: &[&str]| has("enum") || has("const") || keys.iter().any(|k| has(k));
    if types.contains(&"string") && !limited(&["maxLength", "pattern"]) {
        faults.push(format!("{at}: a string with no maxLength, pattern or enum"));
    }
    if (types.contains(&"integer") || types.contains(&"number")) && !limited(&["maximum"]) {
        faults.push(format!("{at}: a number with no maximum"));
    }
    if types.contains(&"array") {
        if !has("maxItems") {
            faults.push(format!("{at}: an array with no maxItems"));
        }
        check(doc, &s["items"], &format!("{at}[]"), faults, open);
    }
    if types.contains(&"object") {
        match (s.get("additionalProperties"), has("x-open")) {
            (_, true) => open.push(format!("{at} (object)")),
            (Some(Value::Bool(false)), _) => {}
            _ => faults.push(format!("{at}: an object without additionalProperties: false")),
        }
        for (name, p) in s["properties"].as_object().into_iter().flatten() {
            check(doc, p, &format!("{at}.{name}"), faults, open);
        }
    }
    if types.is_empty() {
        faults.push(format!("{at}: a schema with no type"));
    }
}

#[test]
fn every_parameter_and_body_states_its_limits_or_is_a_listed_exception() {
    let doc = document();
    let (mut faults, mut open) = (Vec::new(), Vec::new());
    for (method, path, op) in operations(&doc) {
        let name = format!("{method} {path}");
        for p in op["parameters"].as_array().into_iter().flatten() {
            let at = format!("{name} ?{}", p["name"].as_str().unwrap_or("?"));
            if !p["required"].is_boolean() {
                faults.push(format!("{at}: does not say whether it is required"));
            }
            check(&doc, &p["schema"], &at, &mut faults, &mut open);
        }
        let Some(body) = op.get("requestBody") else { continue };
        if !body["required"].is_boolean() {
            faults.push(format!("{name}: its body does not say whether it is required"));
        }
        if op["x-body-limit"].as_u64().is_none_or(|n| n == 0) {
            faults.push(format!("{name}: its body has no size limit (x-body-limit)"));
        }
        if op["responses"].get("413").is_none() {
            faults.push(format!("{name}: takes a body but has no 413 answer"));
        }
        let content = body["content"].as_object().filter(|c| !c.is_empty());
        let Some(content) = content else {
            faults.push(format!("{name}: its body lists no content type"));
            continue;
        };
        for (media, m) in content {
            check(&doc, &m["schema"], &format!("{name} body"), &mut faults, &mut open);
            if !media.contains('/') {
                faults.push(format!("{name}: content type {media:?}"));
            }
        }
    }
    assert!(faults.is_empty(), "limits the document does not state:\n{}", faults.join("\n"));
    let open: BTreeSet<&str> = open.iter().map(String::as_str).collect();
    assert_eq!(
        open,
        BTreeSet::from(EXCEPTIONS),
        "the document's unbounded parameters and open bodies are not the listed exceptions"
    );
}

#[test]
fn every_route_the_router_limits_states_its_body_limit_and_no_other_does() {
    let doc = document();
    let mut limited = BTreeSet::new();
    for rest in ROUTER.split(".route(").skip(1) {
        // The route's call: its path, its methods and their layers, up to its closing parenthesis.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map_or(rest.len(), |(i, _)| i);
        let call = &rest[..end];
        let path = call.split('"').nth(1).expect("a route's path");
        if call.contains(".layer(body(") {
            limited.insert(path.to_owned());
        }
    }
    assert!(limited.contains("/api/login"), "no body limit found in mod.rs: {limited:?}");
    let stated: BTreeSet<String> = operations(&doc)
        .into_iter()
        .filter(|(_, _, op)| op.get("x-body-limit").is_some())
        .map(|(_, path, _)| path)
        .collect();
    assert_eq!(stated, limited, "routes with a body limit: the document's and the router's");
}

/// A started center with an administrator's bearer token, and three alarms (`e1`, `e2`, `e3`).
struct Center {
    base: String,
    token: String,
    http: reqwest::Client,
    _stop: tokio_util::sync::DropGuard,
    _dir: tempfile::TempDir,
}

impl Center {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        add_user(&data.join("users.toml"), "admin", None, Role::Admin, None, PASSWORD).unwrap();
        let any = "127.0.0.1:0".parse().unwrap();
        let broker = BrokerChoice::Embedded { listen: any, tls: None, passwords: false };
        let stop = CancellationToken::new();
        let mut config = CenterConfig::new(data, any, broker);
        config.store = crate::store::Backend::postgres_or_embedded(xueliang_pgtest::store_asked(
            &config.data_dir,
        ));
        let center = start(config, stop.clone()).await.unwrap();
        for id in ["e1", "e2", "e3"] {
            let alarm = Alarm {
                id: id.into(),
                agent_id: "a".into(),
                camera_id: "c".into(),
                kind: xueliang_proto::RuleKind::ZoneIntrusion.into(),
                event_time_ms: xueliang_proto::endpoint::now_ms(),
                ..Default::default()
            };
            center.store.insert(&AlarmRecord::from_alarm(&alarm, 1), b"").unwrap();
        }
        center.store.flush().await.unwrap();
        let base = format!("http://{}", center.http_addr);
        let http = reqwest::Client::new();
        let resp = http
            .post(format!("{base}/api/login"))
            .json(&json!({ "login": "admin", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        let token = resp.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
        Self { base, token, http, _stop: stop.drop_guard(), _dir: dir }
    }

    /// `GET path` as the administrator: the status and the body.
    async fn get(&self, path: &str) -> (StatusCode, String) {
        let resp = self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token);
        let resp = resp.send().await.unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    /// `METHOD path` with `body` of `content_type` (none: no header), as the administrator.
    async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .body(body);
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        let resp = req.send().await.unwrap();
        (resp.status(), resp.text().await.unwrap())
    }
}

/// A refusal for what a request sent.
fn refused(status: StatusCode) -> bool {
    [400, 413, 415, 422].contains(&status.as_u16())
}

/// Percent-encodes a query value.
fn encoded(value: &str) -> String {
    value.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// `path` with its parameters filled: ids that name nothing, the first action.
fn filled(path: &str) -> String {
    path.replace("{id}", "nope").replace("{action}", "acknowledge")
}

#[tokio::test]
async fn the_center_takes_each_limit_the_document_states_and_refuses_one_past_it() {
    let doc = document();
    let center = Center::start().await;
    let mut faults = Vec::new();
    let mut tried = 0;

    // The query parameters of the lists: numbers at their bounds and past them, every value of
    // an enum and one that is not, text at its maxLength and one character more.
    for (method, path, op) in operations(&doc) {
        if method != "GET" || path.contains('{') {
            continue;
        }
        for p in op["parameters"].as_array().into_iter().flatten() {
            let (name, s) = (p["name"].as_str().unwrap(), resolve(&doc, &p["schema"]));
            let mut cases: Vec<(String, bool)> = Vec::new();
            if s["type"] == "integer" {
                if let Some(max) = s["maximum"].as_u64() {
                    cases.push((max.to_string(), true));
                    cases.push(((u128::from(max) + 1).to_string(), false));
                }
                if let Some(min) = s["minimum"].as_i64() {
                    cases.push((min.to_string(), true));
                    cases.push(((i128::from(min) - 1).to_string(), false));
                }
            } else if let Some(values) = s["enum"].as_array() {
                cases.extend(values.iter().map(|v| (v.as_str().unwrap().to_owned(), true)));
                cases.push(("no-such-value".to_owned(), false));
            } else if let Some(max) = s["maxLength"].as_u64()
                && s.get("pattern").is_none()
                && s.get("format").is_none()
            {
                // Chinese: characters, not bytes, are counted.
                cases.push(("区".repeat(max as usize), true));
                cases.push(("区".repeat(max as usize + 1), false));
            }
            for (value, taken) in cases {
                let (status, body) =
                    center.get(&format!("{path}?{name}={}", encoded(&value))).await;
                tried += 1;
                if (status == 200) != taken || (!taken && !refused(status)) {
                    let short: String = value.chars().take(20).collect();
                    faults.push(format!("GET {path}?{name}={short}…: {status} {body}"));
                }
            }
        }
    }

    // Every body at its size limit gets past it (whatever else is then wrong with it), one
    // byte more is a 413; a content type the operation does not list is refused; a required
    // JSON body left out is refused.
    for (method, path, op) in operations(&doc) {
        let Some(body) = op.get("requestBody") else { continue };
        let limit = op["x-body-limit"].as_u64().unwrap() as usize;
        let content = body["content"].as_object().unwrap();
        let json = content.contains_key("application/json");
        let (media, fill) = match json {
            true => ("application/json", b' '),
            false => (content.keys().next().unwrap().as_str(), b'x'),
        };
        let sized = |n: usize| {
            let mut b = if json { b"{}".to_vec() } else { b"#".to_vec() };
            b.resize(n, fill);
            b
        };
        let at = filled(&path);
        for (n, too_big) in [(limit, false), (limit + 1, true)] {
            let (status, text) = center.send(&method, &at, Some(media), sized(n)).await;
            tried += 1;
            if (status == 413) != too_big {
                faults.push(format!(
                    "{method} {path} with {n} bytes (limit {limit}): {status} {text}"
                ));
            }
        }
        if !content.contains_key("text/plain") {
            let (status, text) = center.send(&method, &at, Some("text/plain"), sized(2)).await;
            tried += 1;
            if !refused(status) {
                faults.push(format!("{method} {path} as text/plain: {status} {text}"));
            }
        }
        if json && body["required"] == true {
            let (status, text) = center.send(&method, &at, Some(media), Vec::new()).await;
            tried += 1;
            if !refused(status) {
                faults.push(format!("{method} {path} without its required body: {status} {text}"));
            }
        }
    }
    assert!(faults.is_empty(), "the center and the document differ:\n{}", faults.join("\n"));
    assert!(tried > 40, "only {tried} requests: the document's limits were not found");
}

#[tokio::test]
async fn the_bodies_limits_hold_at_the_document_s_values() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let center = Center::start().await;
    let step = |id: &str, action: &str, body: Value| {
        let path = format!("/api/alarms/{id}/{action}");
        let bytes = serde_json::to_vec(&body).unwrap();
        let center = &center;
        async move { center.send("POST", &path, Some("application/json"), bytes).await.0 }
    };

    // A step's body is not required: none is taken.
    let action = &doc["paths"]["/api/alarms/{id}/{action}"]["post"];
    assert_eq!(action["requestBody"]["required"], false);
    let (status, text) = center.send("POST", "/api/alarms/e1/acknowledge", None, vec![]).await;
    assert_eq!(status, 200, "{text}");

    // The note: its maxLength in characters (Chinese, three bytes each, still within the body).
    let max = schemas["ActionRequest"]["properties"]["note"]["maxLength"].as_u64().unwrap();
    let note = |n: u64| json!({ "note": "看".repeat(n as usize) });
    assert_eq!(
        step("e3", "acknowledge", note(max + 1)).await,
        400,
        "a note of {} characters",
        max + 1
    );
    assert_eq!(step("e2", "acknowledge", note(max)).await, 200, "a note of {max} characters");

    // The units: at most maxItems, each at most its maxLength (another step ignores them; the
    // alarm named does not exist, so the step gets past the limits to a 404).
    let units = &schemas["ActionRequest"]["properties"]["units"];
    let (most, longest) =
        (units["maxItems"].as_u64().unwrap(), units["items"]["maxLength"].as_u64().unwrap());
    let named = |n: u64, len: u64| json!({ "units": vec!["u".repeat(len as usize); n as usize] });
    assert_eq!(step("nope", "resolve", named(most, longest)).await, 404, "{most} units");
    assert_eq!(step("nope", "resolve", named(most + 1, 1)).await, 400, "{} units", most + 1);
    assert_eq!(step("nope", "resolve", named(1, longest + 1)).await, 400, "a long unit id");
    // Only JSON, whatever else a bearer client could send.
    let (status, _) = center.send("POST", "/api/alarms/e3/acknowledge", None, b"{}".to_vec()).await;
    assert_eq!(status, 415, "a body without a content type");

    // The enrolment request: the host name's maxLength (an unknown token gets past it to 403).
    let enroll = &schemas["EnrollRequest"]["properties"];
    let longest = enroll["hostname"]["maxLength"].as_u64().unwrap() as usize;
    // 32 bytes of base64, as the pattern wants (the key is not checked beyond its form).
    let key = format!("{}=", "A".repeat(43));
    for (hostname, want) in [("h".repeat(longest), 403), ("h".repeat(longest + 1), 400)] {
        let body = json!({ "token": "AAAAA-BBBBB", "public_key": key, "hostname": hostname });
        let bytes = serde_json::to_vec(&body).unwrap();
        let (status, text) =
            center.send("POST", "/api/enroll", Some("application/json"), bytes).await;
        assert_eq!(status, want, "hostname of {} characters: {text}", hostname.len());
    }

    // The enrolment's own fields: other ones are refused, valid_hours up to its maximum.
    let enrolment = &schemas["EnrolmentRequest"];
    assert_eq!(enrolment["additionalProperties"], false);
    let hours = enrolment["properties"]["valid_hours"]["maximum"].as_f64().unwrap();
    for (body, want) in [
        (json!({ "agent_id": "v-1", "valid_hours": hours }), 201),
        (json!({ "agent_id": "v-2", "valid_hours": hours + 0.5 }), 400),
        (json!({ "agent_id": "v-3", "valid_hours": 0 }), 400),
        (json!({ "agent_id": "v-4", "colour": "red" }), 400),
        (json!({ "agent_id": "center" }), 400),
    ] {
        let bytes = serde_json::to_vec(&body).unwrap();
        let (status, text) =
            center.send("POST", "/api/enrolments", Some("application/json"), bytes).await;
        assert_eq!(status, want, "{body}: {text}");
    }

    // An agent id in a path: at its maxLength looked up, one more and a reserved one refused.
    let id = &doc["paths"]["/api/agents/{id}/config/history"]["get"]["parameters"][0]["schema"];
    let longest = id["maxLength"].as_u64().unwrap() as usize;
    for (agent, want) in [("a".repeat(longest), 200), ("a".repeat(longest + 1), 400)] {
        let (status, text) = center.get(&format!("/api/agents/{agent}/config/history")).await;
        assert_eq!(status, want, "{} characters: {text}", agent.len());
    }
    for reserved in id["not"]["enum"].as_array().unwrap() {
        let path = format!("/api/agents/{}/config", reserved.as_str().unwrap());
        assert_eq!(center.get(&path).await.0, 400, "{path}");
    }
    // A route that takes no body does not read one: none is too big for it.
    let ignored = vec![b' '; 4096];
    let (status, text) =
        center.send("DELETE", "/api/agents/nope", Some("application/json"), ignored).await;
    assert_eq!(status, 404, "{text}");
    // An unknown query parameter of the push.
    let toml = b"# nothing\n".to_vec();
    let (status, text) = center
        .send("PUT", "/api/agents/v-1/config?colour=red", Some("application/toml"), toml)
        .await;
    assert_eq!(status, 400, "{text}");
}

#[tokio::test]
async fn the_document_s_vocabularies_are_the_center_s() {
    let doc = document();
    let center = Center::start().await;
    let (status, text) = center.get("/api/vocabulary").await;
    assert_eq!(status, 200);
    let vocabulary: Value = serde_json::from_str(&text).unwrap();
    let alarms = &doc["paths"]["/api/alarms"]["get"]["parameters"];
    let filter = |name: &str| {
        let p = alarms.as_array().unwrap().iter().find(|p| p["name"] == name).unwrap();
        resolve(&doc, &p["schema"])["enum"].clone()
    };
    assert_eq!(filter("kind"), vocabulary["kinds"], "the kind filter's enum");
    assert_eq!(filter("severity"), vocabulary["severities"], "the severity filter's enum");
    assert_eq!(filter("status"), vocabulary["statuses"], "the status filter's enum");
    let kinds = doc["components"]["schemas"]["Kind"]["enum"].as_array().unwrap();
    for kind in vocabulary["kinds"].as_array().unwrap() {
        assert!(kinds.contains(kind), "an alarm's kind {kind} is not in the Kind schema");
    }
    let actions = doc["components"]["schemas"]["Action"]["enum"].as_array().unwrap();
    let path = &doc["paths"]["/api/alarms/{id}/{action}"]["post"]["parameters"];
    let in_path = path.as_array().unwrap().iter().find(|p| p["name"] == "action").unwrap();
    let mut steps = vocabulary["center_steps"].as_array().unwrap().clone();
    steps.extend(vocabulary["unit_steps"].as_array().unwrap().iter().cloned());
    assert_eq!(in_path["schema"]["enum"], Value::Array(steps.clone()), "the step in the path");
    for step in &steps {
        assert!(actions.contains(step), "step {step} is not in the Action schema");
    }
}
