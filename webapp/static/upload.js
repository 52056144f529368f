// Upload page: POST the chosen image to the JSON API, then draw one box per face over
// the image (SVG in the image's own pixel coordinates) and list identity/confidence.
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

function drawFaces(faces) {
  const w = preview.naturalWidth;
  const h = preview.naturalHeight;
  overlay.setAttribute("viewBox", `0 0 ${w} ${h}`);
  overlay.replaceChildren();
  const fontSize = Math.max(6, Math.round(Math.min(w, h) / 12));
  faces.forEach((face, i) => {
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
    text.setAttribute("x", Math.max(0, x1));
    text.setAttribute("y", y1 > fontSize ? y1 - 2 : Math.min(h, y2 + fontSize));
    text.setAttribute("font-size", fontSize);
    text.setAttribute("stroke-width", String(fontSize / 8));
    text.setAttribute("data-testid", "face-name");
    text.textContent = `${i + 1}. ${face.identity}`;
    overlay.appendChild(text);
  });
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
