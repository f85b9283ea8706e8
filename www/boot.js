// Starts the app: Trunk names its hashed files in the script tag's data attributes (see
// Trunk.toml's pattern_script), so the page needs no inline script under its CSP.
const me = document.querySelector("script[data-pclab-js]");
const { default: init } = await import(me.dataset.pclabJs);
await init({ module_or_path: me.dataset.pclabWasm });
