//! The HTTP face beside the protocol: its JSON API against hand-made stores (overview figures,
//! stream pages both ways, one event, metadata with its version, parked events with replay
//! and deletion, live follows as server-sent events), `/metrics` read by a Prometheus text
//! parser, `/health` naming a stalled subscription, and the UI left out on request.

use std::time::{Duration, Instant};

use chronik::server::http::{HttpOptions, HttpServer};
use chronik::server::{Server, ServerOptions};
use chronik::{ExpectedVersion, NackAction, SubscriptionMessage, SubscriptionOptions};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestStore, WAIT, events, next, next_events, receive};

/// The `Subscribed` that starts a named subscription's delivery.
async fn subscribed(sub: &mut chronik::Subscription) {
    assert_eq!(next(sub).await, SubscriptionMessage::Subscribed);
}

/// A store served with the HTTP face on the protocol's port, and a client of it.
struct Face {
    store: TestStore,
    server: Server,
    base: String,
    client: reqwest::Client,
}

impl Face {
    async fn start(http: HttpOptions) -> Face {
        let store = TestStore::start().await;
        let options = ServerOptions::insecure(([127, 0, 0, 1], 0).into()).http(http);
        let server = Server::start(store.store.clone(), options).await.expect("the server starts");
        let base = format!("http://{}", server.local_addr());
        Face { store, server, base, client: reqwest::Client::new() }
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        answer(self.client.get(format!("{}{path}", self.base)).send().await).await
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        answer(request.send().await).await
    }
}

async fn answer(response: reqwest::Result<reqwest::Response>) -> (StatusCode, Value) {
    let response = response.expect("an answer");
    let status = response.status();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, body)
}

/// The `n` field of each event's data.
fn ns(events: &Value) -> Vec<u64> {
    events.as_array().expect("events").iter().map(|e| e["data"]["n"].as_u64().expect("n")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_counts_what_was_written() {
    let face = Face::start(HttpOptions::new()).await;
    for i in 0..3 {
        face.store.append_to_stream(&format!("o-{i}"), ExpectedVersion::NoStream, events("E", 0, 2)).await.unwrap();
    }
    let refused = face.store.append_to_stream("o-0", ExpectedVersion::NoStream, events("E", 0, 1)).await;
    assert!(refused.is_err());
    let deadline = Instant::now() + WAIT;
    let overview = loop {
        let (status, overview) = face.get("/api/overview").await;
        assert_eq!(status, StatusCode::OK, "{overview}");
        if overview["head_position"] == 6 {
            break overview;
        }
        assert!(Instant::now() < deadline, "the head never reached 6: {overview}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(overview["appends"], json!({ "ok": 3, "rejected": 1, "failed": 0 }), "{overview}");
    assert_eq!(overview["events_appended"], 6);
    assert_eq!(overview["streams"], 3);
    assert_eq!(overview["writer"]["state"], "running");
    assert!(overview["batches"].as_u64().unwrap() >= 1 && overview["batch_events"].as_u64().unwrap() >= 6);
    assert!(overview["connections"]["clients"].as_u64().unwrap() >= 1, "this client's connection: {overview}");
    let nodes = overview["connections"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["port"], face.server.local_addr().port());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_searched_paged_and_read_both_ways() {
    let face = Face::start(HttpOptions::new()).await;
    for stream in ["acc-1", "acc-2", "acc-3", "other-1"] {
        face.store.append_to_stream(stream, ExpectedVersion::NoStream, events("E", 1, 5)).await.unwrap();
    }
    let links: Vec<_> = face.store.read_stream_forward("acc-2", 2, 2).await.unwrap();
    face.store.link_to_stream("picked", ExpectedVersion::NoStream, &links).await.unwrap();

    let (_, page) = face.get("/api/streams?search=acc&page_size=2").await;
    assert_eq!((page["total_entries"].as_u64(), page["total_pages"].as_u64()), (Some(3), Some(2)), "{page}");
    let names: Vec<&str> = page["entries"].as_array().unwrap().iter().map(|s| s["stream"].as_str().unwrap()).collect();
    assert_eq!(names, ["acc-1", "acc-2"]);
    let (_, page) = face.get("/api/streams?search=acc&page_size=2&page=2").await;
    assert_eq!(page["entries"][0]["stream"], "acc-3");
    assert_eq!(page["entries"][0]["version"], 5);

    let (_, read) = face.get("/api/stream?stream=acc-1&direction=forward&count=2").await;
    assert_eq!((ns(&read["events"]), read["next"].as_u64()), (vec![1, 2], Some(3)), "{read}");
    assert_eq!(read["info"]["version"], 5);
    let (_, read) = face.get("/api/stream?stream=acc-1&direction=forward&from=5&count=2").await;
    assert_eq!((ns(&read["events"]), read["next"].as_u64()), (vec![5], None));
    let (_, read) = face.get("/api/stream?stream=acc-1&count=2").await;
    assert_eq!((ns(&read["events"]), read["next"].as_u64()), (vec![5, 4], Some(3)), "backward by default");
    let (_, read) = face.get("/api/stream?stream=acc-1&count=2&from=2").await;
    assert_eq!((ns(&read["events"]), read["next"].as_u64()), (vec![2, 1], None));
    let (_, read) = face.get("/api/stream?stream=%24all&count=3").await;
    assert_eq!(read["info"], Value::Null);
    assert_eq!(read["events"][0]["global_position"], 20, "the newest of $all first");

    let (_, linked) = face.get("/api/stream?stream=picked&direction=forward").await;
    let first = &linked["events"][0];
    assert_eq!((first["event_number"].as_u64(), first["stream_uuid"].as_str()), (Some(1), Some("acc-2")));
    assert_eq!(first["stream_version"], 2, "a link names the event it points at");

    let (status, event) = face.get("/api/event?stream=acc-3&number=4").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((event["event_type"].as_str(), event["data"]["n"].as_u64()), (Some("E"), Some(4)));
    assert_eq!(event["data_encoding"], "json");
    let (status, missing) = face.get("/api/event?stream=acc-3&number=9").await;
    assert_eq!((status, missing["error"]["kind"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (status, missing) = face.get("/api/stream?stream=nope").await;
    assert_eq!((status, missing["error"]["kind"].as_str()), (StatusCode::NOT_FOUND, Some("stream_not_found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_is_read_and_changed_at_its_version() {
    let face = Face::start(HttpOptions::new()).await;
    face.store.append_to_stream("m-1", ExpectedVersion::NoStream, events("E", 1, 3)).await.unwrap();
    let (_, none) = face.get("/api/metadata?stream=m-1").await;
    assert_eq!(none, json!({ "version": null, "metadata": null }));

    let change =
        r#"{"expected_version": null, "metadata": {"max_count": 2, "max_age": "1h 30m", "custom": {"owner": "ops"}}}"#;
    let (status, set) = face.send(reqwest::Method::PUT, "/api/metadata?stream=m-1", Some(change)).await;
    assert_eq!(status, StatusCode::OK, "{set}");
    let version = set["version"].as_u64().expect("a version");
    let (_, read) = face.get("/api/metadata?stream=m-1").await;
    assert_eq!(read["version"], version);
    assert_eq!(read["metadata"]["max_count"], 2);
    assert_eq!(read["metadata"]["max_age"], "1h 30m");
    assert_eq!(read["metadata"]["custom"]["owner"], "ops");
    let (_, stream) = face.get("/api/stream?stream=m-1&direction=forward").await;
    assert_eq!(ns(&stream["events"]), vec![2, 3], "max_count 2 hides the first event");

    let (status, stale) = face.send(reqwest::Method::PUT, "/api/metadata?stream=m-1", Some(change)).await;
    assert_eq!((status, stale["error"]["kind"].as_str()), (StatusCode::CONFLICT, Some("stream_exists")), "it has some");
    let stale_change = change.replace("null", &(version + 1).to_string());
    let (status, stale) = face.send(reqwest::Method::PUT, "/api/metadata?stream=m-1", Some(&stale_change)).await;
    assert_eq!((status, stale["error"]["kind"].as_str()), (StatusCode::CONFLICT, Some("wrong_expected_version")));
    let (status, bad) = face
        .send(
            reqwest::Method::PUT,
            "/api/metadata?stream=m-1",
            Some(r#"{"expected_version": 1, "metadata": {"max_cont": 2}}"#),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(bad["error"]["message"].as_str().unwrap().contains("max_cont"), "names the unknown field: {bad}");
    let (status, bad) = face.get("/api/stream?count=2").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(bad["error"]["message"].as_str().unwrap().contains("stream"), "names the missing field: {bad}");
    let (status, unknown) = face.get("/api/nothing-here").await;
    assert_eq!((status, unknown["error"]["kind"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
}

/// Reads server-sent events until one named `name` whose data satisfies `wanted`.
async fn sse_until(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buffer: &mut String,
    name: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let event = block.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or("message");
            let data: String = block.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            if event == name && !data.is_empty() {
                let value: Value = serde_json::from_str(&data).expect("JSON data");
                if wanted(&value) {
                    return value;
                }
            }
        }
        let chunk = tokio::time::timeout_at(deadline, stream.next()).await.expect("an event in time");
        let chunk = chunk.expect("the follow goes on").expect("a chunk");
        buffer.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_all_are_followed_live() {
    let face = Face::start(HttpOptions::new()).await;
    let follow = |stream: &str| face.client.get(format!("{}/api/live?stream={stream}", face.base)).send();
    let one = follow("live-1").await.expect("the follow starts");
    assert_eq!(one.headers()["content-type"], "text/event-stream");
    let all = follow("%24all").await.expect("the follow starts");
    let (mut one, mut all) = (one.bytes_stream(), all.bytes_stream());
    face.store.append_to_stream("live-2", ExpectedVersion::NoStream, events("Other", 1, 1)).await.unwrap();
    face.store.append_to_stream("live-1", ExpectedVersion::NoStream, events("Wanted", 7, 2)).await.unwrap();
    let (mut b1, mut b2) = (String::new(), String::new());
    let got = sse_until(&mut one, &mut b1, "events", |_| true).await;
    assert_eq!(got.as_array().unwrap().len(), 2, "only live-1's events, together: {got}");
    assert_eq!((got[0]["event_type"].as_str(), got[0]["data"]["n"].as_u64()), (Some("Wanted"), Some(7)));
    let seen = sse_until(&mut all, &mut b2, "events", |batch| batch[0]["stream_uuid"] == "live-1").await;
    assert_eq!(seen[1]["global_position"], 3, "$all sees every stream in order");

    let (status, bad) = face.get("/api/live?stream=").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_events_are_listed_replayed_and_the_subscription_deleted() {
    let face = Face::start(HttpOptions::new()).await;
    face.store.append_to_stream("orders", ExpectedVersion::NoStream, events("Order", 1, 3)).await.unwrap();
    let mut sub = face.store.subscribe_to_stream("orders", "billing", SubscriptionOptions::default()).await.unwrap();
    subscribed(&mut sub).await;
    let batch = next_events(&mut sub).await;
    let second = batch.iter().find(|e| e.event_number == 2).expect("event 2").clone();
    sub.ack(&[batch[0].clone(), batch[2].clone()]).await.unwrap();
    sub.nack(&second, NackAction::Park, "invoice template missing").await.unwrap();

    let (_, list) = face.get("/api/subscriptions").await;
    let billing = list.as_array().unwrap().iter().find(|s| s["name"] == "billing").expect("listed").clone();
    assert_eq!((billing["stream"].as_str(), billing["parked"].as_u64()), (Some("orders"), Some(1)), "{billing}");
    let (_, one) = face.get("/api/subscription?stream=orders&name=billing").await;
    assert_eq!(one["live"]["subscribers"], 1, "it runs in this process: {one}");
    assert!(one["settings"].is_object());
    let (_, parked) = face.get("/api/parked?stream=orders&name=billing").await;
    assert_eq!(parked.as_array().unwrap().len(), 1, "{parked}");
    assert_eq!(parked[0]["event_number"], 2);
    assert!(parked[0]["reason"].as_str().unwrap().contains("invoice template missing"));
    assert_eq!(parked[0]["event"]["event_type"], "Order");

    let (status, replayed) = face.send(reqwest::Method::POST, "/api/replay?stream=orders&name=billing", None).await;
    assert_eq!((status, replayed["replayed"].as_u64()), (StatusCode::OK, Some(1)), "{replayed}");
    let again = receive(&mut sub, 1).await;
    assert_eq!(again.iter().map(|e| e.event_number).collect::<Vec<_>>(), vec![2], "redelivered");
    sub.ack(&again).await.unwrap();

    let (status, deleted) =
        face.send(reqwest::Method::DELETE, "/api/subscription?stream=orders&name=billing", None).await;
    assert_eq!((status, deleted["deleted"].as_bool()), (StatusCode::OK, Some(true)));
    loop {
        match tokio::time::timeout(WAIT, sub.recv()).await.expect("told in time") {
            Some(SubscriptionMessage::Dropped(_)) | None => break,
            Some(_) => {}
        }
    }
    let (status, gone) = face.get("/api/subscription?stream=orders&name=billing").await;
    assert_eq!((status, gone["error"]["kind"].as_str()), (StatusCode::NOT_FOUND, Some("subscription_not_found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_names_a_stalled_subscription_until_it_acks() {
    let face = Face::start(HttpOptions::new().stall_after(Duration::from_millis(300))).await;
    let (status, health) = face.get("/health").await;
    assert_eq!((status, health["status"].as_str()), (StatusCode::OK, Some("ready")), "{health}");
    face.store.append_to_stream("slow", ExpectedVersion::NoStream, events("E", 1, 2)).await.unwrap();
    let mut sub = face.store.subscribe_to_stream("slow", "sluggish", SubscriptionOptions::default()).await.unwrap();
    subscribed(&mut sub).await;
    let batch = next_events(&mut sub).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, health) = face.get("/health").await;
    assert_eq!((status, health["status"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("unready")), "{health}");
    let stalled = &health["checks"]["subscriptions"]["stalled"][0];
    assert_eq!((stalled["stream"].as_str(), stalled["name"].as_str()), (Some("slow"), Some("sluggish")), "{health}");
    assert_eq!(stalled["waiting"], 2);
    assert_eq!(health["checks"]["database"]["ok"], true);
    sub.ack(&batch).await.unwrap();
    let (status, health) = face.get("/health").await;
    assert_eq!(status, StatusCode::OK, "acked: ready again: {health}");
    let (status, live) = face.get("/health/live").await;
    assert_eq!((status, live["status"].as_str()), (StatusCode::OK, Some("alive")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ui_only_metrics_and_health_are_served() {
    let face = Face::start(HttpOptions::new().without_ui()).await;
    let page = face.client.get(format!("{}/", face.base)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    let (status, _) = face.get("/api/overview").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = face.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    let metrics = face.client.get(format!("{}/metrics", face.base)).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::NOT_FOUND, "no recorder was given");
    assert!(metrics.text().await.unwrap().contains("install_prometheus"), "says how to get one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_is_served_from_the_binary_on_a_port_of_its_own() {
    let store = TestStore::start().await;
    let http =
        HttpServer::start(store.store.clone(), ServerOptions::insecure(([127, 0, 0, 1], 0).into()), HttpOptions::new())
            .await
            .expect("the HTTP face starts");
    let client = reqwest::Client::new();
    for (path, kind) in [("/", "text/html"), ("/app.js", "text/javascript"), ("/style.css", "text/css")] {
        let response = client.get(format!("http://{}{path}", http.local_addr())).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with(kind), "{path}");
        let body = response.text().await.unwrap();
        assert!(!body.is_empty(), "{path}");
        for fetch in ["src=\"http", "href=\"http", "url(http", "@import", "fetch(\"http", "fetch('http"] {
            assert!(!body.contains(fetch), "{path}: nothing is fetched from elsewhere ({fetch})");
        }
    }
    let page = client.get(format!("http://{}/", http.local_addr())).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("app.js") && page.contains("style.css"));
    http.shutdown().await.expect("stops");
}

/// `/metrics` with a Prometheus recorder: the process' one recorder, installed once before the
/// store starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_in_prometheus_text_format() {
    static PROMETHEUS: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> = std::sync::OnceLock::new();
    let handle = PROMETHEUS.get_or_init(|| chronik::server::http::install_prometheus().expect("installed")).clone();
    let face = Face::start(HttpOptions::new().prometheus(handle)).await;
    let store_label = chronik::metrics::store_label(&face.store.config);
    for i in 0..4 {
        face.store.append_to_stream("p-1", ExpectedVersion::Any, events("E", i, 3)).await.unwrap();
    }
    let mut sub = face.store.subscribe_to_stream("p-1", "metered", SubscriptionOptions::default()).await.unwrap();
    subscribed(&mut sub).await;
    let batch = next_events(&mut sub).await;
    let wanted = |sample: &prometheus_parse::Sample, name: &str| {
        sample.metric == name && sample.labels.get("store") == Some(store_label.as_str())
    };
    let deadline = Instant::now() + WAIT;
    let scrape = loop {
        let text = face.client.get(format!("{}/metrics", face.base)).send().await.unwrap().text().await.unwrap();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
        let in_flight = scrape.samples.iter().find(|s| wanted(s, "chronik_subscription_in_flight_events"));
        if in_flight.is_some_and(|s| matches!(s.value, prometheus_parse::Value::Gauge(v) if v as usize == batch.len()))
        {
            break scrape;
        }
        assert!(Instant::now() < deadline, "the subscription's gauges never showed its batch:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let value = |name: &str| {
        let sample = scrape.samples.iter().find(|s| wanted(s, name)).unwrap_or_else(|| panic!("{name} is missing"));
        match &sample.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            other => panic!("{name}: {other:?}"),
        }
    };
    assert_eq!(value("chronik_events_appended_total"), 12.0);
    assert_eq!(value("chronik_append_duration_seconds"), 4.0, "four calls in the +Inf bucket");
    assert_eq!(value("chronik_head_position"), 12.0);
    assert_eq!(value("chronik_subscription_consumers"), 1.0);
    assert_eq!(value("chronik_subscription_lag_events"), 12.0, "nothing acked yet");
    let described = scrape.docs.get("chronik_subscription_lag_events").expect("a HELP line");
    assert!(described.contains("checkpoint"), "{described}");
    sub.ack(&batch).await.unwrap();
}
