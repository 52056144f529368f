// Upload page: POST the chosen image to the JSON API, then draw one box per face over
// the image (SVG in the image's own pixel coordinates), a name label per box sized for
// the screen, and list identity/confidence.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const form = document.getElementById("upload-form");
const input = document.getElementById("image-input");
const button = document.getElementById("submit-button");
const statusLine = document.getElementById("status");
const result = document.getElementById("result");
const preview = document.getElementById("preview");
const overlay = document.getElementById("overlay");
const maxBytes = Number(form.dataset.maxBytes);

function setStatus(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

function loadImage(file) {
  return new Promise((resolve, reject) => {
    preview.onload = () => resolve();
    preview.onerror = () => reject(new Error("the browser cannot display this file"));
    preview.src = URL.createObjectURL(file);
  });
}

// Face labels are sized in CSS pixels on screen, whatever the image's own pixel size: the
// overlay's viewBox is in image pixels, so a size in CSS pixels is multiplied by
// naturalWidth / displayed width. Each label gets the largest font (within the bounds)
// that fits its face box's width, stays inside the picture (above the box, else below,
// else inside its top), and is shortened with an ellipsis where it would run into a label
// already placed; the full name is always in the table.
const LABEL_MAX_PX = 16;
const LABEL_MIN_PX = 10;
const LABEL_MAX_EM = 8; // a label is never wider than its box or 8 em, whichever is wider
const LABEL_GAP_PX = 2; // free space kept between labels and from the picture's edges
let shownFaces = null;

function boxArea([x1, y1, x2, y2]) {
  return Math.max(0, x2 - x1) * Math.max(0, y2 - y1);
}

function overlaps(a, b, gap) {
  return a.x < b.x + b.width + gap && b.x < a.x + a.width + gap
    && a.y < b.y + b.height + gap && b.y < a.y + a.height + gap;
}

// "3. Name", then "3. Na…" shorter and shorter, then "3." alone.
function labelTexts(index, name) {
  const prefix = `${index + 1}.`;
  const chars = Array.from(name); // whole code points, never half a surrogate pair
  const texts = [`${prefix} ${name}`];
  for (let n = chars.length - 1; n >= 1; n -= 1) {
    texts.push(`${prefix} ${chars.slice(0, n).join("").trimEnd()}…`);
  }
  texts.push(prefix);
  return texts;
}

function placeLabel(text, face, index, scale, size, placed) {
  const [w, h] = size;
  const [x1, y1, x2, y2] = face.box;
  const boxWidth = Math.max(1, x2 - x1);
  const gap = LABEL_GAP_PX * scale;
  const texts = labelTexts(index, face.identity);
  let font = LABEL_MAX_PX * scale;
  text.setAttribute("font-size", font);
  text.textContent = texts[0];
  const full = text.getComputedTextLength();
  if (full > boxWidth) font = Math.max(LABEL_MIN_PX * scale, (font * boxWidth) / full);
  text.setAttribute("font-size", font);
  text.setAttribute("stroke-width", String(font / 8));
  const maxWidth = Math.min(w - 2 * gap, Math.max(boxWidth, LABEL_MAX_EM * font));
  let first = null;
  for (const [k, content] of texts.entries()) {
    text.textContent = content;
    const width = text.getComputedTextLength();
    if (width > maxWidth && k < texts.length - 1) continue;
    const x = Math.max(gap, Math.min(x1, w - gap - width));
    // Baselines: just above the box, just below it, inside its top edge.
    for (const y of [y1 - 0.25 * font, y2 + 0.95 * font, y1 + 1.05 * font]) {
      text.setAttribute("x", x);
      text.setAttribute("y", y);
      let bbox = text.getBBox();
      const shift = Math.max(gap - bbox.y, 0) - Math.max(bbox.y + bbox.height - (h - gap), 0);
      if (shift !== 0) {
        text.setAttribute("y", y + shift);
        bbox = text.getBBox();
      }
      first = first || { x, y: y + shift };
      if (!placed.some((other) => overlaps(bbox, other, gap))) {
        placed.push(bbox);
        return;
      }
    }
  }
  // Nowhere free: the shortest label at its first position (the table has the name).
  text.textContent = texts[texts.length - 1];
  text.setAttribute("x", first.x);
  text.setAttribute("y", first.y);
  placed.push(text.getBBox());
}

function drawFaces(faces) {
  shownFaces = faces;
  const w = preview.naturalWidth;
  const h = preview.naturalHeight;
  overlay.setAttribute("viewBox", `0 0 ${w} ${h}`);
  overlay.replaceChildren();
  const displayed = preview.getBoundingClientRect().width;
  const scale = displayed > 0 ? w / displayed : 1; // image pixels per CSS pixel
  const labels = faces.map((face) => {
    const [x1, y1, x2, y2] = face.box;
    const rect = document.createElementNS(SVG_NS, "rect");
    rect.setAttribute("x", x1);
    rect.setAttribute("y", y1);
    rect.setAttribute("width", Math.max(1, x2 - x1));
    rect.setAttribute("height", Math.max(1, y2 - y1));
    rect.setAttribute("stroke-width", "2");
    rect.setAttribute("vector-effect", "non-scaling-stroke");
    rect.setAttribute("data-testid", "face-box");
    rect.setAttribute("data-identity", face.identity);
    if (face.identity === "Unknown") rect.classList.add("unknown");
    overlay.appendChild(rect);
    const text = document.createElementNS(SVG_NS, "text");
    text.setAttribute("data-testid", "face-name");
    overlay.appendChild(text);
    return text;
  });
  // Bigger faces choose their label's place first; the DOM keeps the table's order.
  const placed = [];
  faces.map((face, i) => i)
    .sort((a, b) => boxArea(faces[b].box) - boxArea(faces[a].box))
    .forEach((i) => placeLabel(labels[i], faces[i], i, scale, [w, h], placed));
}

function fillTable(data) {
  document.getElementById("label").textContent = data.label;
  const body = document.querySelector("#faces tbody");
  body.replaceChildren();
  data.faces.forEach((face, i) => {
    const row = body.insertRow();
    const distance = face.distance === null || face.distance === undefined
      ? "—" : face.distance.toFixed(3);
    [String(i + 1), face.identity, `${(100 * face.probability).toFixed(1)} %`, distance]
      .forEach((value) => { row.insertCell().textContent = value; });
  });
  const t = data.timings || {};
  const ms = (s) => (s === undefined ? "?" : `${Math.round(1000 * s)} ms`);
  document.getElementById("timings").textContent =
    `request ${data.request_id}: total ${ms(t.web_total)}, detect ${ms(t.detect)}, ` +
    `embed ${ms(t.embed)}`;
}

async function recognise(file) {
  const body = new FormData();
  body.append("image", file, file.name);
  const response = await fetch("/api/v1/recognitions", { method: "POST", body });
  let data;
  try {
    data = await response.json();
  } catch (err) {
    throw new Error(`the server answered ${response.status} without JSON`);
  }
  if (!response.ok) throw new Error(data.message || `HTTP ${response.status}`);
  return data;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = input.files[0];
  if (!file) { setStatus("Choose an image first.", true); return; }
  if (file.size > maxBytes) {
    setStatus(`${file.name} is ${file.size} bytes; the limit is ${maxBytes}.`, true);
    return;
  }
  button.disabled = true;
  shownFaces = null;
  setStatus(`Recognising ${file.name}…`);
  try {
    // Both start at once; the server's verdict is awaited first because its error
    // message (not an image, too large, ...) is the one a person can act on.
    const shown = loadImage(file);
    shown.catch(() => {});
    const data = await recognise(file);
    await shown;
    result.hidden = false;
    drawFaces(data.faces);
    fillTable(data);
    const n = data.faces.length;
    setStatus(`${n} face${n === 1 ? "" : "s"} found; label ${data.label}.`);
    result.dataset.state = "done";
  } catch (err) {
    result.hidden = true;
    setStatus(`Could not recognise ${file.name}: ${err.message}`, true);
  } finally {
    button.disabled = false;
  }
});

// The picture's on-screen size can change (window width, zoom): lay the labels out again.
new ResizeObserver(() => {
  if (shownFaces && !result.hidden) drawFaces(shownFaces);
}).observe(preview);
