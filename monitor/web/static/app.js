// The page: feeds (polled and pushed), live detections (the event stream), history (filters and
// cursor paging) and reviews. Plain modules, no build step, nothing from outside this server.

import { getJSON, getToken, openEvents, postJSON, setToken } from "./api.js";
import { cardsOf, fillCard, formatUtc, newCard, refillCards, reviewState } from "./cards.js";

const FEEDS_EVERY_MS = 5000;
const LIVE_KEEP = 50; // cards in the live list; older ones are in the history
const PAGE_SIZE = 10;

const $ = (id) => document.getElementById(id);

// ---- errors: one line per part of the page, shown until that part works again

const errors = new Map();

function reportError(part, error) {
  if (error) errors.set(part, `${part}: ${error.message || error}`);
  else errors.delete(part);
  const box = $("errors");
  box.replaceChildren(...[...errors.values()].map((text) => {
    const line = document.createElement("p");
    line.textContent = text;
    return line;
  }));
  box.hidden = errors.size === 0;
}

// ---- feeds

const feedRows = new Map();

function feedRow(node) {
  let row = feedRows.get(node);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.node = node;
    for (const name of ["name", "state", "since", "last", "lag", "error"]) {
      const cell = document.createElement(name === "name" ? "th" : "td");
      if (name === "name") cell.scope = "row";
      cell.dataset.field = name;
      row.append(cell);
    }
    $("feeds").tBodies[0].append(row);
    feedRows.set(node, row);
    feedOption(node);
  }
  return row;
}

function feedOption(node) {
  const select = $("filters").elements.feed;
  let option = select.querySelector(`option[data-node="${CSS.escape(node)}"]`);
  if (!option) {
    option = new Option(node, node);
    option.dataset.node = node;
    select.append(option);
  }
  return option;
}

function setCell(row, name, text) {
  row.querySelector(`[data-field="${name}"]`).textContent = text;
}

function showFeedState(row, state, since) {
  const cell = row.querySelector('[data-field="state"]');
  cell.replaceChildren();
  const badge = document.createElement("span");
  badge.className = "state";
  badge.dataset.state = state || "Unknown";
  badge.textContent = state || "Unknown";
  cell.append(badge);
  setCell(row, "since", formatUtc(since));
}

function showFeed(feed) {
  const row = feedRow(feed.node);
  const name = feed.display_name || feed.node;
  setCell(row, "name", name);
  feedOption(feed.node).textContent = name;
  showFeedState(row, feed.state, feed.since_utc);
  setCell(row, "last", formatUtc(feed.last_segment_utc));
  const lag = Number(feed.lag_s);
  setCell(row, "lag", feed.lag_s === null || !Number.isFinite(lag) ? "—" : `${lag.toFixed(1)} s`);
  setCell(row, "error", feed.last_error || "");
}

async function refreshFeeds() {
  try {
    const body = await getJSON("/api/v1/feeds");
    body.feeds.forEach(showFeed);
    $("feeds-empty").hidden = feedRows.size > 0;
    reportError("Feeds", null);
  } catch (error) {
    reportError("Feeds", error);
  }
}

// ---- reviews

async function review(id, verdict, note, card) {
  reviewState(card, "Saving…");
  try {
    const updated = await postJSON(`/api/v1/detections/${encodeURIComponent(id)}/review`, {
      verdict,
      note,
    });
    cardsOf(id).forEach((each) => fillCard(each, updated));
    reportError("Review", null);
  } catch (error) {
    reviewState(card, `Not saved: ${error.message}`);
    reportError("Review", error);
  }
}

// ---- live detections

function showLive(detection) {
  const existing = [...cardsOf(detection.id)];
  existing.forEach((card) => {
    // the event stream does not repeat reviews: keep one made on this page
    const kept = detection.review || card.detection?.review || null;
    fillCard(card, { ...detection, review: kept });
  });
  if (existing.some((card) => card.closest("#live-list"))) return;
  noteUnseen(detection.id);
  const card = newCard(detection, review);
  card.dataset.arrived = "live";
  const list = $("live-list");
  list.prepend(card);
  while (list.children.length > LIVE_KEEP) list.lastElementChild.remove();
  $("live-empty").hidden = true;
  const feed = detection.feed?.display_name || detection.feed?.node || "";
  $("announce").textContent =
    `New ${detection.label} detection at ${feed}, ${formatUtc(detection.start_utc)}`;
}

function showConnection(state, text) {
  const line = $("connection");
  line.dataset.state = state;
  line.textContent = text;
}

function onEvent(event) {
  let message;
  try {
    message = JSON.parse(event.data);
  } catch {
    return; // not ours to show
  }
  if (event.type === "detection") showLive(message);
  else if (event.type === "feed_status" && message.feed) {
    showFeedState(feedRow(message.feed.node), message.state, message.since_utc);
  }
}

function onStreamState(state, error, waitMs) {
  if (state === "open") {
    showConnection("open", "Live: connected");
    reportError("Live updates", null);
  } else if (state === "retry") {
    showConnection("retry", `Live: reconnecting in ${Math.round(waitMs / 1000)} s`);
    reportError("Live updates", error);
  }
}

// ---- history

const past = { cursors: [null], filters: {}, pageSize: PAGE_SIZE, unseen: new Set() };

// New detections are not pushed into the history (it would move under the reviewer's hands):
// a button says how many arrived and shows the first page again.
function noteUnseen(id) {
  past.unseen.add(id);
  const button = $("history-refresh");
  const count = past.unseen.size;
  button.textContent = `Show ${count} new detection${count === 1 ? "" : "s"}`;
  button.hidden = false;
}

const FILTERS = ["feed", "label", "since", "until", "min_score", "status", "verdict"];

// The filters live in the page's address too (bookmarkable; ?limit= sets the page size).
function filtersFromAddress() {
  const query = new URLSearchParams(window.location.search);
  const form = $("filters");
  for (const name of FILTERS) {
    let value = query.get(name) || "";
    if ((name === "since" || name === "until") && value) value = value.replace(/Z$/, "");
    if (name === "feed" && value) feedOption(value);
    form.elements[name].value = value;
  }
  const limit = Number.parseInt(query.get("limit") || "", 10);
  if (limit >= 1 && limit <= 100) past.pageSize = limit;
  past.filters = filterValues();
}

function filtersToAddress() {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(past.filters)) if (value) query.set(name, value);
  if (past.pageSize !== PAGE_SIZE) query.set("limit", past.pageSize);
  const search = query.toString();
  window.history.replaceState(null, "", search ? `?${search}` : window.location.pathname);
}

function filterValues() {
  const form = $("filters");
  const value = (name) => form.elements[name].value.trim();
  const moment = (name) => {
    const text = value(name); // datetime-local, read as UTC
    if (!text) return "";
    return `${text.length === 16 ? `${text}:00` : text}Z`;
  };
  return {
    feed: value("feed"),
    label: value("label"),
    since: moment("since"),
    until: moment("until"),
    min_score: value("min_score"),
    status: value("status"),
    verdict: value("verdict"),
  };
}

async function loadHistory() {
  const list = $("history-list");
  const page = past.cursors.length;
  const cursor = past.cursors[page - 1];
  list.setAttribute("aria-busy", "true");
  if (page === 1) {
    past.unseen.clear();
    $("history-refresh").hidden = true;
  }
  try {
    const body = await getJSON("/api/v1/detections", {
      ...past.filters,
      limit: past.pageSize,
      cursor,
    });
    list.replaceChildren(...body.detections.map((detection) => newCard(detection, review)));
    $("history-empty").hidden = body.detections.length > 0;
    past.next = body.next_cursor;
    $("older").disabled = !body.next_cursor;
    $("newer").disabled = page <= 1;
    $("page-info").textContent = `Page ${page}`;
    reportError("History", null);
  } catch (error) {
    reportError("History", error);
  } finally {
    list.removeAttribute("aria-busy");
  }
}

function wireHistory() {
  const form = $("filters");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    past.filters = filterValues();
    past.cursors = [null];
    filtersToAddress();
    loadHistory();
  });
  form.addEventListener("reset", () => {
    past.filters = {};
    past.cursors = [null];
    filtersToAddress();
    setTimeout(loadHistory); // after the form has cleared its fields
  });
  $("history-refresh").addEventListener("click", () => {
    past.cursors = [null];
    loadHistory();
  });
  $("older").addEventListener("click", () => {
    if (!past.next) return;
    past.cursors.push(past.next);
    loadHistory();
  });
  $("newer").addEventListener("click", () => {
    if (past.cursors.length > 1) past.cursors.pop();
    loadHistory();
  });
}

// ---- token

function wireToken(stream) {
  const form = $("token-form");
  const input = $("token");
  input.value = getToken();
  const apply = (token) => {
    setToken(token);
    input.value = token;
    refillCards();
    stream.reconnect();
    refreshFeeds();
    loadHistory();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    apply(input.value.trim());
  });
  $("token-forget").addEventListener("click", () => apply(""));
}

function start() {
  const stream = openEvents("/api/v1/events", {}, { onEvent, onState: onStreamState });
  wireToken(stream);
  wireHistory();
  filtersFromAddress();
  refreshFeeds();
  setInterval(refreshFeeds, FEEDS_EVERY_MS);
  loadHistory();
}

start();
