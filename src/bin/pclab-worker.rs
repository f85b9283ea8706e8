//! The page's CPU backend: a Web Worker that trains the reference implementation on messages
//! from the page (see `pclab::remote`). Trunk builds it for wasm32 with `data-type="worker"`.

#[cfg(target_arch = "wasm32")]
fn main() {
    pclab::remote::web::worker_main();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("pclab-worker runs only as a browser's Web Worker (wasm32); natively use the `pclab` CLI");
    std::process::exit(2);
}
