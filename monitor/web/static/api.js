// The page's one door to the HTTP API (docs/api.md): JSON calls, the event stream and media,
// each carrying the token when the reviewer gave one.

const TOKEN_KEY = "hydromon.token";

export function getToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return ""; // storage disabled: the page still reads, reviews will say why they fail
  }
}

export function setToken(token) {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled: nothing to keep */
  }
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(describe(status, detail));
    this.status = status;
    this.detail = detail;
  }
}

function describe(status, detail) {
  const more = detail ? ` (${detail})` : "";
  if (status === 0) return "the hydromon API cannot be reached: is the daemon running?";
  if (status === 401) return `the access token is missing or wrong: enter it at the top${more}`;
  if (status === 403) return `refused by the server${more}`;
  if (status === 404) return `not found${more}`;
  if (status === 400) return `the server refused the request${more}`;
  return `the server answered ${status}${more}`;
}

function headers(extra = {}) {
  const all = { Accept: "application/json", ...extra };
  const token = getToken();
  if (token) all.Authorization = `Bearer ${token}`;
  return all;
}

export function apiUrl(path, params = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value !== "" && value !== null && value !== undefined) url.searchParams.set(key, value);
  }
  return url;
}

async function send(url, init) {
  let response;
  try {
    response = await fetch(url, { cache: "no-store", ...init });
  } catch {
    throw new ApiError(0, "");
  }
  if (response.ok) return response;
  let detail = "";
  try {
    const text = (await response.text()).trim();
    try {
      detail = JSON.parse(text).error || text;
    } catch {
      detail = text;
    }
  } catch {
    /* no body */
  }
  throw new ApiError(response.status, detail.slice(0, 200));
}

export async function getJSON(path, params) {
  const response = await send(apiUrl(path, params), { headers: headers() });
  return response.json();
}

export async function postJSON(path, body) {
  const response = await send(apiUrl(path), {
    method: "POST",
    headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify(body),
  });
  return response.json();
}

// A media URL as the API gives it ("media/<feed>/<day>/<id>.ogg", relative to the server root).
// <audio>, <img> and a download link cannot send a header, so the token rides along as
// ?access_token= (the server accepts it on GETs); JSON calls and the event stream use the header.
export function mediaUrl(relative) {
  const url = new URL(relative, `${window.location.origin}/`);
  const token = getToken();
  if (token) url.searchParams.set("access_token", token);
  return url.href;
}

// Server-Sent Events read over fetch(): EventSource cannot send an Authorization header.
// Reconnects with Last-Event-ID and a growing pause; onState reports "open", "retry" (with the
// error and the pause) and "closed".
export function openEvents(path, params, { onEvent, onState }) {
  let stopped = false;
  let controller = null;
  let lastId = null;
  let pause = 1000;
  let wake = null; // ends the pause between attempts early
  let now = false; // a new token: try again at once

  async function run() {
    while (!stopped) {
      controller = new AbortController();
      let failure = null;
      try {
        const extra = { Accept: "text/event-stream" };
        if (lastId) extra["Last-Event-ID"] = lastId;
        const response = await send(apiUrl(path, params), {
          headers: headers(extra),
          signal: controller.signal,
        });
        onState("open");
        pause = 1000;
        await readEvents(response.body, (event) => {
          if (event.id) lastId = event.id;
          onEvent(event);
        });
        failure = new ApiError(0, "the event stream ended");
      } catch (error) {
        if (stopped) return;
        failure = error instanceof ApiError ? error : new ApiError(0, "");
      }
      // a refusal will not change by itself soon: wait longer before asking again
      const wait = failure.status === 401 || failure.status === 403 ? 15000 : pause;
      if (!now) {
        onState("retry", failure, wait);
        await new Promise((resolve) => {
          wake = resolve;
          setTimeout(resolve, wait);
        });
        wake = null;
        pause = Math.min(pause * 2, 15000);
      }
      now = false;
    }
    onState("closed");
  }

  run();
  return {
    reconnect() {
      // a new token: drop the current stream; the loop opens the next one at once
      now = true;
      pause = 1000;
      controller?.abort();
      wake?.();
    },
    close() {
      stopped = true;
      controller?.abort();
    },
  };
}

async function readEvents(body, dispatch) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { type: "", id: "", data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).replace(/\r$/, "");
      buffer = buffer.slice(end + 1);
      if (line === "") {
        if (event.data.length) {
          dispatch({ type: event.type || "message", id: event.id, data: event.data.join("\n") });
        }
        event = { type: "", id: "", data: [] };
        continue;
      }
      if (line.startsWith(":")) continue; // heartbeat comment
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let text = colon < 0 ? "" : line.slice(colon + 1);
      if (text.startsWith(" ")) text = text.slice(1);
      if (field === "event") event.type = text;
      else if (field === "data") event.data.push(text);
      else if (field === "id") event.id = text;
    }
  }
}
