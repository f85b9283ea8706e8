//! The browser's side of [`super`]: the worker's message loop (the `pclab-worker` binary) and the
//! page's handle on it. Messages travel as `Uint8Array`s of postcard bytes.

use super::{decode, encode, FromWorker, ToWorker, WorkerHost, WorkerLink};
use crate::data::{Mnist, Split, FILES};
use js_sys::{Function, Promise, Reflect, Uint8Array};
use std::cell::RefCell;
use std::sync::Arc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// A JavaScript exception's message, or its text.
pub(crate) fn js_err(e: JsValue) -> String {
    e.as_string()
        .or_else(|| Reflect::get(&e, &"message".into()).ok().and_then(|m| m.as_string()))
        .unwrap_or_else(|| "an unknown JavaScript error".to_string())
}

/// Fetches one file's bytes with the global `fetch` (a window's or a worker's).
pub async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let resp = fetch(url).await?;
    let buf = JsFuture::from(resp.array_buffer().map_err(js_err)?).await.map_err(js_err)?;
    Ok(Uint8Array::new(&buf).to_vec())
}

/// The response to a GET of `url` with the global `fetch`; an error unless it is 2xx.
async fn fetch(url: &str) -> Result<web_sys::Response, String> {
    let fetch: Function = Reflect::get(&js_sys::global(), &"fetch".into())
        .ok()
        .and_then(|f| f.dyn_into().ok())
        .ok_or("this browser has no fetch()")?;
    let promise: Promise = fetch
        .call1(&JsValue::NULL, &url.into())
        .map_err(|e| format!("{url}: {}", js_err(e)))?
        .dyn_into()
        .map_err(|_| format!("{url}: fetch returned no promise"))?;
    let resp = JsFuture::from(promise).await.map_err(|e| format!("{url}: {}", js_err(e)))?;
    let resp: web_sys::Response = resp.dyn_into().map_err(|_| format!("{url}: not a response"))?;
    if !resp.ok() {
        return Err(format!("{url}: the server answered {} {}", resp.status(), resp.status_text()));
    }
    Ok(resp)
}

/// Fetches a gzip file and returns it decompressed, 1 MB per task (the browser's
/// `DecompressionStream` would inflate a whole network chunk in one task of the page's thread).
pub async fn fetch_gunzipped(url: &str) -> Result<Vec<u8>, String> {
    let bytes = fetch_bytes(url).await?;
    let name = url.rsplit('/').next().unwrap_or(url);
    let mut g = crate::data::Gunzip::new(name, &bytes).map_err(|e| e.to_string())?;
    while !g.step(1 << 20).map_err(|e| e.to_string())? {
        yield_now().await;
    }
    Ok(g.finish())
}

/// Lets the event loop run (a zero-delay timer), so that long work is cut into short tasks.
pub async fn yield_now() {
    let promise = Promise::new(&mut |resolve, _| {
        let set_timeout =
            Reflect::get(&js_sys::global(), &"setTimeout".into()).ok().and_then(|f| f.dyn_into::<Function>().ok());
        if let Some(t) = set_timeout {
            let _ = t.call2(&JsValue::NULL, &resolve, &JsValue::from(0));
        } else {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Fetches and parses MNIST from `data/mnist/`, calling `progress(files_done, bytes_so_far)`
/// after each file (decompressed bytes). Each file is its own task, so the page stays
/// responsive while MNIST loads.
pub async fn load_mnist(progress: impl Fn(usize, usize)) -> Result<Mnist, String> {
    let mut files = Vec::with_capacity(4);
    let mut bytes = 0;
    for (i, name) in FILES.iter().enumerate() {
        let data = fetch_gunzipped(&format!("data/mnist/{name}")).await?;
        bytes += data.len();
        files.push(data);
        progress(i + 1, bytes);
        yield_now().await;
    }
    let mut files = files.into_iter();
    let mut next = || files.next().unwrap_or_default();
    let (images, labels) = (next(), next());
    let train = Split::from_idx((FILES[0], FILES[1]), images, labels).map_err(|e| e.to_string())?;
    yield_now().await;
    let (images, labels) = (next(), next());
    let test = Split::from_idx((FILES[2], FILES[3]), images, labels).map_err(|e| e.to_string())?;
    Ok(Mnist { train, test })
}

// ---- inside the worker ----

thread_local! {
    static HOST: RefCell<WorkerHost> = RefCell::new(WorkerHost::default());
    /// This worker's ports to its ring neighbours in a pool: the next worker's, the previous one's.
    static RING: RefCell<[Option<web_sys::MessagePort>; 2]> = const { RefCell::new([None, None]) };
    /// This worker's end of the pool's shared exchange, when the page is cross-origin isolated:
    /// boundary values then go through it rather than through the ports.
    static SHARED: RefCell<Option<super::shared::Mailbox>> = const { RefCell::new(None) };
}

/// Handles one message (from the page, a ring neighbour or the shared exchange): the answers go
/// to the page, the boundary values to the neighbours. With a shared exchange the worker then
/// stays with its pooled models until their blocks have finished what they can (see
/// [`exchange`]); over ports it runs them on at once (a port's messages wait for the event loop).
fn dispatch(bytes: &[u8]) {
    handle(bytes);
    if SHARED.with(|s| s.borrow().is_some()) {
        exchange();
    } else {
        while HOST.with(|h| h.borrow().runnable()) {
            pump();
        }
    }
}

/// Handles one message: answers to the page, boundary values to the neighbours.
fn handle(bytes: &[u8]) {
    let (answers, boundary) = match decode::<ToWorker>(bytes) {
        Ok(msg) => HOST.with(|h| {
            let mut h = h.borrow_mut();
            let answers = h.handle(msg);
            (answers, h.take_boundary())
        }),
        Err(e) => (vec![FromWorker::Fatal { message: e.to_string() }], Vec::new()),
    };
    answers.iter().for_each(post_from_worker);
    send_boundary(boundary);
}

/// Runs the pooled blocks on until one has a value for a neighbour, and sends it.
fn pump() {
    let (answers, boundary) = HOST.with(|h| {
        let mut h = h.borrow_mut();
        let answers = h.pump();
        (answers, h.take_boundary())
    });
    answers.iter().for_each(post_from_worker);
    send_boundary(boundary);
}

/// Sends boundary values to the ring neighbours: written into the shared exchange at once (as
/// far as its outboxes have room), or posted on the ring's ports.
fn send_boundary(boundary: Vec<(super::pool::Dir, ToWorker)>) {
    if boundary.is_empty() {
        return;
    }
    for (dir, msg) in boundary {
        let next = matches!(dir, super::pool::Dir::Next);
        let sent = match encode(&msg) {
            Ok(bytes) => SHARED.with(|s| match s.borrow_mut().as_mut() {
                Some(mailbox) => {
                    mailbox.queue(next, bytes);
                    Ok(())
                }
                None => RING.with(|r| match &r.borrow()[usize::from(!next)] {
                    Some(port) => port.post_message(&Uint8Array::from(bytes.as_slice())).map_err(js_err),
                    None => Err("this worker is not connected to its neighbours in the pool".into()),
                }),
            }),
            Err(e) => Err(e.to_string()),
        };
        if let Err(message) = sent {
            post_from_worker(&FromWorker::Fatal { message: format!("the pool's ring: {message}") });
        }
    }
    SHARED.with(|s| {
        if let Some(m) = s.borrow_mut().as_mut() {
            m.send();
        }
    });
}

/// With a shared exchange: writes this worker's boundary values, reads its neighbours', runs the
/// blocks that can go on, and sleeps on its doorbell when none can, until no pooled block here is
/// in an iteration and all it wrote has been read; then the worker goes back to its event loop
/// (the page's next message). Every worker takes the page's messages in the order the page sent
/// them, and while here serves every pooled model, so no two workers wait on each other. A
/// poisoned exchange (the pool was replaced, or a worker lost) ends the wait at once.
fn exchange() {
    loop {
        let round = SHARED.with(|s| {
            let mut s = s.borrow_mut();
            let m = s.as_mut()?;
            let seen = m.doorbell();
            let wrote = m.send();
            let got = m.receive();
            Some((seen, wrote, got, m.poisoned()))
        });
        let Some((seen, wrote, got, poisoned)) = round else { return };
        if poisoned {
            return;
        }
        let received = !got.is_empty();
        for bytes in got {
            handle(&bytes);
        }
        let runnable = HOST.with(|h| h.borrow().runnable());
        if runnable {
            // One block's run up to its next boundary value; then the exchange is read again.
            pump();
            continue;
        }
        let busy = HOST.with(|h| h.borrow().pooled_busy());
        let pending = SHARED.with(|s| s.borrow().as_ref().is_some_and(super::shared::Mailbox::pending));
        if !busy && !pending {
            return;
        }
        if !wrote && !received {
            SHARED.with(|s| {
                if let Some(m) = s.borrow().as_ref() {
                    m.wait(seen, 50.0);
                }
            });
        }
    }
}

/// Takes the pool's shared exchange from the page: this worker is `me` of `n`. The pooled models
/// of an earlier pool are dropped (their neighbours are gone).
fn connect_shared(buffer: &js_sys::SharedArrayBuffer, me: usize, n: usize) {
    HOST.with(|h| h.borrow_mut().drop_pooled());
    match super::shared::Mailbox::new(buffer, me, n) {
        Ok(m) => SHARED.with(|s| *s.borrow_mut() = Some(m)),
        Err(message) => post_from_worker(&FromWorker::Fatal { message: format!("the pool's exchange: {message}") }),
    }
}

/// Keeps a ring port (`"next"` or `"prev"`) the page sent, and listens on it.
fn connect(dir: &str, port: web_sys::MessagePort) {
    let slot = if dir == "next" { 0 } else { 1 };
    let onmessage = Closure::<dyn Fn(web_sys::MessageEvent)>::new(|ev: web_sys::MessageEvent| {
        dispatch(&Uint8Array::new(&ev.data()).to_vec());
    });
    port.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    // The port lives as long as the worker.
    onmessage.forget();
    RING.with(|r| r.borrow_mut()[slot] = Some(port));
}

fn post_from_worker(msg: &FromWorker) {
    let scope: web_sys::DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    match encode(msg) {
        Ok(bytes) => {
            let _ = scope.post_message(&Uint8Array::from(bytes.as_slice()));
        }
        Err(e) => web_sys::console::error_1(&e.to_string().into()),
    }
}

/// The worker's entry point: answers the page's messages; MNIST is fetched first and `Ready`
/// (or `Fatal`) says when it is loaded. A panic becomes `Fatal` rather than silence.
pub fn worker_main() {
    std::panic::set_hook(Box::new(|info| {
        post_from_worker(&FromWorker::Fatal { message: format!("the CPU worker panicked: {info}") });
    }));
    let scope: web_sys::DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let onmessage = Closure::<dyn Fn(web_sys::MessageEvent)>::new(|ev: web_sys::MessageEvent| {
        // A ring port from the page (a pool), or a message as bytes.
        let ports = ev.ports();
        if ports.length() > 0 {
            if let (Some(dir), Ok(port)) = (ev.data().as_string(), ports.get(0).dyn_into::<web_sys::MessagePort>()) {
                connect(&dir, port);
            }
            return;
        }
        // The pool's shared exchange: [buffer, this worker's index, the pool's size].
        let data = ev.data();
        if js_sys::Array::is_array(&data) {
            let parts = js_sys::Array::from(&data);
            let index = |k: u32| parts.get(k).as_f64().map_or(0, |v| v as usize);
            match parts.get(0).dyn_into::<js_sys::SharedArrayBuffer>() {
                Ok(buffer) => connect_shared(&buffer, index(1), index(2)),
                Err(_) => {
                    post_from_worker(&FromWorker::Fatal { message: "the pool's exchange is not shared memory".into() })
                }
            }
            return;
        }
        dispatch(&Uint8Array::new(&data).to_vec());
    });
    scope.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    // The worker lives as long as the page: the handler is never removed.
    onmessage.forget();
    wasm_bindgen_futures::spawn_local(async {
        match load_mnist(|_, _| {}).await {
            Ok(m) => {
                let (train, test) = (m.train.len(), m.test.len());
                let mut host = WorkerHost::new(Arc::new(m));
                // Boundary values leave as soon as a block has them (see `exchange`).
                host.set_streaming(true);
                HOST.with(|h| *h.borrow_mut() = host);
                post_from_worker(&FromWorker::Ready { train, test });
            }
            Err(message) => post_from_worker(&FromWorker::Fatal { message: format!("MNIST: {message}") }),
        }
    });
}

// ---- in the page ----

thread_local! {
    /// The page's workers: slot 0 the CPU worker, slots 1 … the rest of a pool.
    static WORKERS: RefCell<Vec<Option<web_sys::Worker>>> = const { RefCell::new(Vec::new()) };
    /// The pool's shared exchange, when the page is cross-origin isolated.
    static EXCHANGE: RefCell<Option<js_sys::SharedArrayBuffer>> = const { RefCell::new(None) };
}

/// True when the page is cross-origin isolated (served with `Cross-Origin-Opener-Policy:
/// same-origin` and `Cross-Origin-Embedder-Policy: require-corp`), so that workers may share memory.
pub fn cross_origin_isolated() -> bool {
    Reflect::get(&js_sys::global(), &"crossOriginIsolated".into()).ok().and_then(|v| v.as_bool()).unwrap_or(false)
}

/// True when the pool's boundary values go through shared memory (else through message ports).
pub fn pool_shares_memory() -> bool {
    EXCHANGE.with(|e| e.borrow().is_some())
}

/// Ends the current pool's shared exchange: workers waiting on it stop waiting.
fn poison_exchange() {
    EXCHANGE.with(|e| {
        if let Some(buffer) = e.borrow_mut().take() {
            super::shared::poison(&buffer);
        }
    });
}

/// Starts the worker at `url` (Trunk's loader for the `pclab-worker` binary) and waits until it
/// has loaded MNIST. The error says why there is no worker.
pub async fn spawn(url: &str) -> Result<Arc<WorkerLink>, String> {
    spawn_slot(url, 0).await
}

/// Grows the pool to `n` workers (the CPU worker `first` is worker 0; the others start and load
/// MNIST), stops any beyond `n`, and connects all of them in a ring of `MessageChannel`s so that
/// boundary values go worker to worker.
pub async fn spawn_pool(url: &str, first: Arc<WorkerLink>, n: usize) -> Result<Vec<Arc<WorkerLink>>, String> {
    WORKERS.with(|w| {
        let mut w = w.borrow_mut();
        for old in w.iter_mut().skip(n.max(1)) {
            if let Some(old) = old.take() {
                old.terminate();
            }
        }
    });
    let mut links = vec![first];
    for slot in 1..n {
        links.push(spawn_slot(url, slot).await.map_err(|e| format!("worker {slot} of the pool: {e}"))?);
    }
    let worker = |slot: usize| WORKERS.with(|w| w.borrow().get(slot).cloned().flatten());
    for a in 0..n {
        let b = (a + 1) % n;
        let (Some(wa), Some(wb)) = (worker(a), worker(b)) else {
            return Err(format!("worker {a} or {b} of the pool is gone"));
        };
        let channel = web_sys::MessageChannel::new().map_err(js_err)?;
        // a's "next" is b; b's "prev" is a.
        wa.post_message_with_transfer(&"next".into(), &js_sys::Array::of1(&channel.port1()))
            .map_err(|e| format!("connecting worker {a}: {}", js_err(e)))?;
        wb.post_message_with_transfer(&"prev".into(), &js_sys::Array::of1(&channel.port2()))
            .map_err(|e| format!("connecting worker {b}: {}", js_err(e)))?;
    }
    // With cross-origin isolation the boundary values go through shared memory instead; the
    // ports stay (a worker that has no exchange uses them).
    poison_exchange();
    if cross_origin_isolated() && n > 1 {
        let buffer = super::shared::create(n)?;
        for a in 0..n {
            let Some(wa) = worker(a) else { return Err(format!("worker {a} of the pool is gone")) };
            let message = js_sys::Array::of3(&buffer, &JsValue::from(a as u32), &JsValue::from(n as u32));
            wa.post_message(&message).map_err(|e| format!("sharing memory with worker {a}: {}", js_err(e)))?;
        }
        EXCHANGE.with(|e| *e.borrow_mut() = Some(buffer));
    }
    Ok(links)
}

/// Stops worker `slot` as a crash would (for tests and demonstrations of recovery): its
/// neighbours stop waiting on it; `false` when there is no such worker.
pub fn terminate(slot: usize) -> bool {
    let Some(worker) = WORKERS.with(|w| w.borrow().get(slot).cloned().flatten()) else { return false };
    worker.terminate();
    poison_exchange();
    true
}

async fn spawn_slot(url: &str, slot: usize) -> Result<Arc<WorkerLink>, String> {
    let worker = web_sys::Worker::new(url).map_err(|e| format!("the CPU worker could not start: {}", js_err(e)))?;
    let link = Arc::new(WorkerLink::posting(move |bytes| {
        WORKERS.with(|w| match w.borrow().get(slot).and_then(Option::as_ref) {
            Some(w) => w.post_message(&Uint8Array::from(bytes.as_slice())).map_err(js_err),
            None => Err("the worker is gone".into()),
        })
    }));
    let sink = link.clone();
    let onmessage = Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
        sink.deliver(&Uint8Array::new(&ev.data()).to_vec());
    });
    let sink = link.clone();
    // An error inside the worker comes as an ErrorEvent; a script that cannot be loaded as a
    // plain Event (which has no message).
    let onerror = Closure::<dyn Fn(web_sys::Event)>::new(move |ev: web_sys::Event| {
        ev.prevent_default();
        let what = ev.dyn_ref::<web_sys::ErrorEvent>().map(|e| e.message()).unwrap_or_default();
        // The pool's other workers must not wait for this one.
        poison_exchange();
        sink.kill(if what.is_empty() { "its script could not be loaded".into() } else { what });
    });
    worker.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    worker.set_onerror(Some(onerror.as_ref().unchecked_ref()));
    // A worker lives as long as its slot: the handlers are never removed.
    onmessage.forget();
    onerror.forget();
    // A worker that failed is replaced: stop the old one for good.
    let old = WORKERS.with(|w| {
        let mut w = w.borrow_mut();
        if w.len() <= slot {
            w.resize(slot + 1, None);
        }
        w[slot].replace(worker)
    });
    if let Some(old) = old {
        old.terminate();
    }
    loop {
        if let Some(why) = link.dead() {
            return Err(why);
        }
        if link.ready().is_some() {
            return Ok(link);
        }
        super::pause().await;
    }
}
