//! A real browser for the web portal's tests: Debian's headless Chromium driven over
//! WebDriver by `chromedriver`, both started by the test and killed by PID.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// The launch flags the environment notes give for headless Chromium in a container.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
];

/// `chromedriver` on a free loopback port.
pub struct Driver {
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    pub fn start(log: &Path) -> Driver {
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let child = Command::new("chromedriver")
            .arg(format!("--port={}", addr.port()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("chromedriver (Debian chromium-driver; scripts/setup.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, addr }
    }

    /// A new browser session (its own profile, so its own cookies).
    pub async fn session(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({ "binary": chromium_binary(), "args": CHROMIUM_ARGS }),
        );
        // Both rustls providers are linked into this test (aws-lc by us, ring by fantoccini's
        // dependencies): name the one the rest of Trellis uses.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        ClientBuilder::rustls()
            .expect("rustls WebDriver client")
            .capabilities(caps)
            .connect(&format!("http://{}", self.addr))
            .await
            .expect("WebDriver session with Chromium")
    }
}

fn chromium_binary() -> &'static str {
    if Path::new("/usr/bin/chromium").exists() { "/usr/bin/chromium" } else { "chromium" }
}

/// Saves one screenshot per step of a walk, numbered in order, under
/// `target/web-screenshots/<walk>/` (kept as the test's artifacts).
pub struct Screenshots {
    dir: PathBuf,
    step: usize,
}

impl Screenshots {
    pub fn new(walk: &str) -> Screenshots {
        let target = Path::new(env!("CARGO_BIN_EXE_trellisd")).parent().and_then(Path::parent).unwrap();
        let dir = target.join("web-screenshots").join(walk);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Screenshots { dir, step: 0 }
    }

    pub async fn take(&mut self, browser: &Client, name: &str) {
        self.step += 1;
        let png = browser.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(self.dir.join(format!("{:02}-{name}.png", self.step)), png).unwrap();
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Fills the inputs named by id, then clicks the button with id `submit`.
pub async fn fill_and_submit(browser: &Client, fields: &[(&str, &str)], submit: &str) {
    for (id, value) in fields {
        let input = browser.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("#{id}: {e}"));
        input.clear().await.unwrap_or_else(|e| panic!("clear #{id}: {e}"));
        input.send_keys(value).await.unwrap_or_else(|e| panic!("type into #{id}: {e}"));
    }
    click(browser, submit).await;
}

/// Chooses the option with `value` in the select with id `id`.
pub async fn select(browser: &Client, id: &str, value: &str) {
    let select = browser.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("#{id}: {e}"));
    select.select_by_value(value).await.unwrap_or_else(|e| panic!("select {value} in #{id}: {e}"));
}

/// Clicks the element with id `id` (a submit button or link) and waits until the browser has
/// left the page it was on, so what follows reads the next page.
pub async fn click(browser: &Client, id: &str) {
    let before = browser.find(Locator::Css("html")).await.unwrap();
    let button = browser.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("#{id}: {e}"));
    button.click().await.unwrap_or_else(|e| panic!("click #{id}: {e}"));
    wait_until_stale(&before).await;
}

/// Waits for `element`'s document to be replaced by the next one.
pub async fn wait_until_stale(element: &fantoccini::elements::Element) {
    for _ in 0..600 {
        if element.tag_name().await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the page did not change after 30 s");
}

/// The page's visible text.
pub async fn body_text(browser: &Client) -> String {
    browser.find(Locator::Css("body")).await.unwrap().text().await.unwrap()
}

/// Reloads `url` until its text contains one of `wanted` (the page refreshes itself too);
/// panics with the page text after `limit`. Returns the text.
pub async fn wait_for_text(browser: &Client, url: &str, wanted: &[&str], limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        browser.goto(url).await.unwrap();
        let text = body_text(browser).await;
        if wanted.iter().any(|w| text.contains(w)) {
            return text;
        }
        assert!(Instant::now() < deadline, "{url} never showed any of {wanted:?}; it shows:\n{text}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Reloads `url` until the element with id `id` shows `wanted` and none of `unwanted`;
/// panics with the element's text after `limit`. Returns the text.
pub async fn wait_for_element_text(
    browser: &Client,
    url: &str,
    id: &str,
    wanted: &str,
    unwanted: &[&str],
    limit: Duration,
) -> String {
    let deadline = Instant::now() + limit;
    loop {
        browser.goto(url).await.unwrap();
        let text = match browser.find(Locator::Id(id)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains(wanted) && !unwanted.iter().any(|u| text.contains(u)) {
            return text;
        }
        assert!(Instant::now() < deadline, "#{id} on {url} never showed {wanted:?} alone; it shows:\n{text}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Ticks the checkbox with id `id` (no navigation).
pub async fn tick(browser: &Client, id: &str) {
    let checkbox = browser.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("#{id}: {e}"));
    if !checkbox.is_selected().await.unwrap_or(false) {
        checkbox.click().await.unwrap_or_else(|e| panic!("tick #{id}: {e}"));
    }
}

/// Reloads `url` until an element with id `id` is on it; panics with the page text after `limit`.
pub async fn wait_for_element(browser: &Client, url: &str, id: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        browser.goto(url).await.unwrap();
        if browser.find(Locator::Id(id)).await.is_ok() {
            return;
        }
        let text = body_text(browser).await;
        assert!(Instant::now() < deadline, "#{id} never appeared on {url}; it shows:\n{text}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
