// One detection as a card: spectrogram, audio player, times, score, box, files, review form.
// A card is keyed by the detection id (data-id); a newer message of the same detection
// updates every card showing it, in the live list and in the history alike.

import { apiUrl, getToken, mediaUrl } from "./api.js";

const UTC_FORMAT = new Intl.DateTimeFormat("en-CA", {
  timeZone: "UTC",
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hourCycle: "h23",
});
const LOCAL_FORMAT = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium",
  timeStyle: "long",
});

export function formatUtc(iso) {
  if (!iso) return "—";
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return iso;
  return `${UTC_FORMAT.format(moment).replace(",", "")} UTC`;
}

export function formatLocal(iso) {
  if (!iso) return "—";
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? iso : LOCAL_FORMAT.format(moment);
}

function formatHz(hz) {
  return hz >= 1000 ? `${(hz / 1000).toFixed(2)} kHz` : `${Math.round(hz)} Hz`;
}

const VERDICT_TEXT = { confirmed: "Confirmed", rejected: "Rejected", unsure: "Unsure" };

function field(card, name) {
  return card.querySelector(`[data-field="${name}"]`);
}

export function cardsOf(id) {
  return document.querySelectorAll(`.card[data-id="${CSS.escape(id)}"]`);
}

export function newCard(detection, onReview) {
  const template = document.getElementById("detection-card");
  const card = template.content.firstElementChild.cloneNode(true);
  card.dataset.id = detection.id;
  const form = field(card, "review");
  let pressed = null;
  form.querySelectorAll("button").forEach((button) => {
    button.addEventListener("click", () => {
      pressed = button.value;
    });
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const verdict = event.submitter?.value || pressed;
    if (verdict) onReview(card.dataset.id, verdict, form.elements.note.value.trim(), card);
  });
  fillCard(card, detection);
  return card;
}

export function fillCard(card, detection) {
  card.detection = detection;
  const feed = detection.feed || {};
  const feedName = feed.display_name || feed.node || "unknown feed";
  card.dataset.status = detection.status;
  field(card, "label").textContent = detection.label;
  field(card, "feed").textContent = `at ${feedName}`;
  const status = field(card, "status");
  status.textContent = detection.status === "closed" ? "closed" : "open";
  status.dataset.status = detection.status;

  const utc = field(card, "start-utc");
  utc.dateTime = detection.start_utc;
  utc.textContent = formatUtc(detection.start_utc);
  field(card, "start-local").textContent = formatLocal(detection.start_utc);
  const duration = Number(detection.duration_s);
  field(card, "duration").textContent = Number.isFinite(duration) ? `${duration.toFixed(1)} s` : "—";
  const score = detection.score || {};
  field(card, "score").textContent =
    score.max === undefined ? "—" : `max ${score.max.toFixed(3)} · mean ${score.mean.toFixed(3)}`;
  const low = detection.low_freq_hz;
  const high = detection.high_freq_hz;
  field(card, "box").textContent =
    low === undefined || low === null || high === undefined || high === null
      ? "whole band (no box)"
      : `${formatHz(low)} – ${formatHz(high)}`;

  fillMedia(card, detection, feedName);
  fillReview(card, detection.review);
}

function fillMedia(card, detection, feedName) {
  const media = detection.media;
  const image = field(card, "spectrogram");
  const audio = field(card, "audio");
  const links = field(card, "links");
  const noMedia = field(card, "no-media");
  const key = JSON.stringify([media || null, detection.status, getToken()]);
  if (key === card.dataset.media) return; // the same files: keep the player where it was
  card.dataset.media = key;
  links.replaceChildren();
  const json = link(apiUrl(`/api/v1/detections/${encodeURIComponent(detection.id)}`).href,
    "detection JSON");
  if (!media) {
    image.hidden = true;
    audio.hidden = true;
    noMedia.hidden = false;
    noMedia.textContent =
      detection.status === "closed"
        ? "No audio or spectrogram was stored for this detection."
        : "Spectrogram and audio follow when the detection closes.";
    links.append("Files: ", json);
    return;
  }
  noMedia.hidden = true;
  if (media.spectrogram) {
    image.alt = `Spectrogram of the ${detection.label} detection at ${feedName}, `
      + `${formatUtc(detection.start_utc)}`;
    image.onerror = () => {
      noMedia.hidden = false;
      noMedia.textContent = "The spectrogram could not be loaded.";
    };
    image.onload = () => {
      noMedia.hidden = true;
    };
    image.src = mediaUrl(media.spectrogram);
    field(card, "spectrogram-link").href = image.src;
    image.hidden = false;
  }
  if (media.audio) {
    audio.setAttribute("aria-label", `Audio clip of the ${detection.label} detection`);
    audio.src = mediaUrl(media.audio);
    audio.hidden = false;
  }
  const files = [];
  if (media.audio) files.push(link(mediaUrl(media.audio), "clip", true));
  if (media.audio_denoised) files.push(link(mediaUrl(media.audio_denoised), "denoised clip", true));
  if (media.audio_archive) {
    files.push(link(mediaUrl(media.audio_archive), "FLAC for Raven", true));
  }
  if (media.spectrogram) files.push(link(mediaUrl(media.spectrogram), "spectrogram PNG", true));
  files.push(json);
  links.append("Files: ");
  files.forEach((each, index) => {
    if (index) links.append(" · ");
    links.append(each);
  });
}

function link(href, text, download = false) {
  const anchor = document.createElement("a");
  anchor.href = href;
  anchor.textContent = text;
  if (download) anchor.download = "";
  return anchor;
}

function fillReview(card, review) {
  const badge = field(card, "verdict");
  const state = field(card, "review-state");
  const form = field(card, "review");
  form.querySelectorAll("button").forEach((button) => {
    button.setAttribute("aria-pressed", String(review?.verdict === button.value));
  });
  if (!review) {
    badge.hidden = true;
    card.dataset.verdict = "";
    return;
  }
  card.dataset.verdict = review.verdict;
  badge.hidden = false;
  badge.textContent = VERDICT_TEXT[review.verdict] || review.verdict;
  badge.dataset.verdict = review.verdict;
  const note = review.note ? `: “${review.note}”` : "";
  state.textContent = `${VERDICT_TEXT[review.verdict] || review.verdict}${note} (${formatUtc(review.reviewed_utc)})`;
  const input = form.elements.note;
  if (document.activeElement !== input) input.value = review.note || "";
}

// After a token change: media URLs carry the token, so every card points at them anew.
export function refillCards() {
  document.querySelectorAll(".card").forEach((card) => fillCard(card, card.detection));
}

export function reviewState(card, text) {
  field(card, "review-state").textContent = text;
}
