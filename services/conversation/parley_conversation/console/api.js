// Talking to Parley's APIs with the signed-in token. The token lives in sessionStorage: it
// goes with this tab and is never written to a cookie or to disk by us.
const KEY = "parley.token";
let config = null;

export function token() { return sessionStorage.getItem(KEY); }
export function signIn(value) { sessionStorage.setItem(KEY, value.trim()); }
export function signOut() { sessionStorage.removeItem(KEY); }

export async function loadConfig() {
  const response = await fetch("config.json");
  const raw = await response.json();
  // "{host}" stands for the host this page came from: every service on one machine.
  config = Object.fromEntries(
    Object.entries(raw).map(([name, url]) => [name, url.replace("{host}", location.hostname)]));
  return config;
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
  }
}

function url(service, path) { return (config[service] || "") + path; }

export async function call(service, path, { method = "GET", body, raw = false } = {}) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url(service, path), {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch { /* not JSON */ }
    throw new ApiError(response.status, detail);
  }
  return raw ? response : response.json();
}

// Server-sent events over fetch (EventSource cannot send the Authorization header): calls
// onActivity for each event until stopped, and once each time the stream (re)connects: the
// server is listening by its first bytes, so a refresh then misses nothing.
export function stream(onActivity) {
  const controller = new AbortController();
  async function run() {
    while (!controller.signal.aborted) {
      try {
        const response = await fetch(url("conversation", "/v1/stream"), {
          headers: { Authorization: `Bearer ${token()}` }, signal: controller.signal,
        });
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        let connected = false;
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          if (!connected) {
            connected = true;
            onActivity({ numbers: [] });
          }
          buffer += value;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = block.split("\n").find((l) => l.startsWith("data:"));
            if (block.includes("event: activity") && data) onActivity(JSON.parse(data.slice(5)));
          }
        }
      } catch (error) {
        if (controller.signal.aborted) return;
      }
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
  run();
  return () => controller.abort();
}

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

export function when(at) { return at ? new Date(at).toLocaleString() : ""; }
