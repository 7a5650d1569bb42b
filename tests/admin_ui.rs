//! The admin UI in a real browser: headless Chromium driven over WebDriver (Debian's
//! `chromium` and `chromedriver`, which `.ci/run` installs) against `Server` with its HTTP
//! face, on an SQLite store. It opens the dashboard, finds a stream, opens an event, edits a
//! stream's metadata, sees a live event arrive, and replays a parked event and sees the
//! subscriber get it again. Each page is saved as a screenshot: under
//! `$CHRONIK_UI_SCREENSHOTS` (the README's come from `CHRONIK_UI_SCREENSHOTS=docs`), else in
//! the system's temporary directory.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chronik::server::http::HttpOptions;
use chronik::server::{Server, ServerOptions};
use chronik::{EventData, ExpectedVersion, NackAction, SubscriptionMessage, SubscriptionOptions};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use common::*;

/// The backend of every store in this binary.
const BACKEND: common::Backend = common::Backend::Sqlite;

/// How long the browser has for what the page should show.
const PATIENCE: Duration = Duration::from_secs(20);

/// A chromedriver process on a free port, killed on drop.
struct Driver {
    process: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let process = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start chromedriver ({e}): this test drives a real browser; install Debian's \
                     chromium and chromium-driver (`apt-get install chromium chromium-driver`, as .ci/run does)"
                )
            });
        Driver { process, port }
    }

    /// A headless Chromium session, once the driver answers.
    async fn browser(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800"] }),
        );
        let deadline = Instant::now() + PATIENCE;
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{}", self.port))
                .await
            {
                Ok(client) => return client,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "chromedriver not ready yet");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no browser session: {e}"),
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Waits until the element `css` shows text for which `wanted` holds; returns the text.
async fn text_of(browser: &Client, css: &str, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    let mut last = String::new();
    loop {
        if let Ok(element) = browser.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
        {
            if wanted(&text) {
                return text;
            }
            last = text;
        }
        assert!(Instant::now() < deadline, "`{css}` never showed what was expected; last: {last:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the element `css` has the title `wanted`.
async fn title_of(browser: &Client, css: &str, wanted: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let title = match browser.find(Locator::Css(css)).await {
            Ok(element) => element.attr("title").await.ok().flatten(),
            Err(_) => None,
        };
        if title.as_deref() == Some(wanted) {
            return;
        }
        assert!(Instant::now() < deadline, "`{css}` never had the title {wanted:?}; last: {title:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `css` matches `count` elements.
async fn count_of(browser: &Client, css: &str, count: usize) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let found = browser.find_all(Locator::Css(css)).await.map(|all| all.len()).unwrap_or(0);
        if found == count {
            return;
        }
        assert!(Instant::now() < deadline, "`{css}` matched {found} elements, not {count}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Saves the page as `name`.png.
async fn screenshot(browser: &Client, name: &str) {
    let dir = std::env::var_os("CHRONIK_UI_SCREENSHOTS")
        .map_or_else(|| std::env::temp_dir().join("chronik-ui"), std::path::PathBuf::from);
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    let png = browser.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(dir.join(format!("ui-{name}.png")), png).expect("saved");
}

fn deposit(amount: u64) -> EventData {
    EventData::json("MoneyDeposited", &json!({ "amount": amount, "currency": "EUR", "note": "salary" }))
        .unwrap()
        .with_metadata_json(&json!({ "user": "alice", "ip": "10.0.0.7" }))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_ui_shows_the_store_in_a_real_browser() {
    let store = TestStore::start().await;
    for (n, stream) in ["account-1", "account-2", "account-3", "invoice-1"].iter().enumerate() {
        let batch: Vec<_> = (0..4 + n as u64).map(|i| deposit(10 * (i + 1))).collect();
        store.append_to_stream(stream, ExpectedVersion::NoStream, batch).await.unwrap();
    }
    store.append_to_stream("orders", ExpectedVersion::NoStream, events("OrderPlaced", 1, 3)).await.unwrap();
    let mut billing = store.subscribe_to_stream("orders", "billing", SubscriptionOptions::default()).await.unwrap();
    assert_eq!(next(&mut billing).await, SubscriptionMessage::Subscribed);
    let batch = receive(&mut billing, 3).await;
    billing.ack(&[batch[0].clone(), batch[2].clone()]).await.unwrap();
    billing.nack(&batch[1], NackAction::Park, "invoice template missing").await.unwrap();

    let options = ServerOptions::insecure(([127, 0, 0, 1], 0).into()).http(HttpOptions::new());
    let server = Server::start(store.store.clone(), options).await.expect("the server starts");
    let base = format!("http://{}", server.local_addr());
    let driver = Driver::start();
    let browser = driver.browser().await;
    let docs = std::env::var_os("CHRONIK_UI_SCREENSHOTS").is_some();

    // Dashboard: the head position and the writer.
    browser.goto(&format!("{base}/#/")).await.expect("the dashboard opens");
    text_of(&browser, "#head-position", |t| t.replace(',', "") == "25").await;
    text_of(&browser, "#writer-state", |t| t.contains("running")).await;
    if docs {
        // Some traffic for the charts of the README's screenshot.
        // Several writers at once, so that group commit shows in the batch sizes.
        for round in 0..60u64 {
            let writers = (0..1 + round % 8).map(|w| {
                let stream = format!("account-{}", 1 + (round + w) % 3);
                let batch: Vec<_> = (0..1 + w % 3).map(|i| deposit(i + round)).collect();
                let store = store.store.clone();
                async move { store.append_to_stream(&stream, ExpectedVersion::Any, batch).await }
            });
            for written in futures::future::join_all(writers).await {
                written.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    screenshot(&browser, "dashboard").await;

    // Streams: search, then open one.
    browser.goto(&format!("{base}/#/streams")).await.unwrap();
    count_of(&browser, "tr.stream-row", 5).await;
    browser.find(Locator::Css("#stream-search")).await.unwrap().send_keys("account").await.unwrap();
    count_of(&browser, "tr.stream-row", 3).await;
    screenshot(&browser, "streams").await;
    let link = browser.find(Locator::XPath("//a[contains(@class,'stream-link') and text()='account-2']")).await;
    link.expect("account-2 is listed").click().await.unwrap();
    text_of(&browser, "tr.event-row", |t| t.contains("MoneyDeposited")).await;
    screenshot(&browser, "stream").await;

    // The stream's metadata, edited in the page.
    let max_count = browser.find(Locator::Css("#metadata-max-count")).await.unwrap();
    max_count.clear().await.unwrap();
    max_count.send_keys("100").await.unwrap();
    browser.find(Locator::Css("#metadata-save")).await.unwrap().click().await.unwrap();
    text_of(&browser, "#metadata-message", |t| t.contains("saved")).await;
    let (_, metadata) = store.stream_metadata("account-2").await.unwrap().expect("metadata was set");
    assert_eq!(metadata.max_count, Some(100));

    // An event, pretty-printed.
    browser.goto(&format!("{base}/#/event/account-2/3")).await.unwrap();
    text_of(&browser, "#event-type", |t| t == "MoneyDeposited").await;
    let data = text_of(&browser, "#event-data", |t| t.contains("\"amount\"")).await;
    assert!(data.contains("\"amount\": 30") && data.contains('\n'), "pretty-printed: {data}");
    text_of(&browser, "#event-metadata", |t| t.contains("alice")).await;
    // The previous and next buttons are aimed at the neighbours the stream really has.
    title_of(&browser, "#prev-event", "Event 2").await;
    title_of(&browser, "#next-event", "Event 4").await;
    screenshot(&browser, "event").await;
    browser.goto(&format!("{base}/#/event/account-2/5")).await.unwrap();
    title_of(&browser, "#next-event", "This is the last event").await;
    let next = browser.find(Locator::Css("#next-event")).await.unwrap();
    assert_eq!(next.attr("disabled").await.unwrap().as_deref(), Some("true"), "nothing after the last event");

    // $all followed live: an event appended now shows up.
    browser.goto(&format!("{base}/#/live/%24all")).await.unwrap();
    text_of(&browser, "#live-status", |t| t.contains("connected")).await;
    store.append_to_stream("account-3", ExpectedVersion::Any, vec![deposit(999)]).await.unwrap();
    let arrived = EventData::json("LiveArrived", &json!({ "seen": true })).unwrap();
    store.append_to_stream("invoice-1", ExpectedVersion::Any, vec![arrived]).await.unwrap();
    text_of(&browser, "#live-events li.live-event span.live-type", |t| t == "LiveArrived").await;
    screenshot(&browser, "live").await;

    // The subscription: its parked event, replayed from the page and redelivered.
    browser.goto(&format!("{base}/#/subscription/orders/billing")).await.unwrap();
    count_of(&browser, "#parked tr.parked-row", 1).await;
    text_of(&browser, "#parked", |t| t.contains("invoice template missing")).await;
    text_of(&browser, "#sub-parked", |t| t.trim() == "1").await;
    screenshot(&browser, "subscription").await;
    browser.find(Locator::Css("#replay-parked")).await.unwrap().click().await.unwrap();
    text_of(&browser, "#replay-message", |t| t.contains('1')).await;
    let again = receive(&mut billing, 1).await;
    assert_eq!(again[0].event_number, 2, "the parked event is delivered again");
    billing.ack(&again).await.unwrap();

    browser.close().await.expect("the browser closes");
    server.shutdown().await.expect("the server stops");
}
