// The drawing page: a canvas at the network's size, sent to POST /translate at the end of each stroke.
"use strict";

const canvas = document.getElementById("drawing");
const context = canvas.getContext("2d");
const output = document.getElementById("output");
const statusLine = document.getElementById("status");
const brushSize = document.getElementById("brush-size");

const state = { info: null, colour: "#000000", tool: "brush", drawing: false, last: null, snapshot: null, start: null };
let requestCount = 0; // answers to older requests are dropped when a newer one was sent
let outputUrl = null;

async function start() {
  const response = await fetch("/info");
  state.info = await response.json();
  const info = state.info;
  const direction = info.direction === "AtoB" ? "A → B" : "B → A";
  const task = { labels: "facade label map → photo", sketch: "sketch → image", photo: "colorization (Lab)" };
  document.getElementById("summary").textContent =
    `${info.model.generator} generator (${info.model.backend}), ${direction}, ` +
    `${info.crop_size} px, ${task[info.drawing]}`;
  const side = info.crop_size;
  brushSize.max = Math.max(4, Math.round(side / 8));
  brushSize.value = Math.max(1, Math.round(side / 48));
  if (info.drawing === "photo") {
    // a colorization model sees only lightness: there is nothing to draw, a photo is uploaded
    document.getElementById("draw-hint").textContent = "upload a photo: the model colours its lightness";
    for (const tool of document.querySelectorAll(".drawing-tool")) tool.hidden = true;
    canvas.style.cursor = "default";
  } else {
    buildPalette(info);
  }
  resetCanvas();
  translate();
}

function buildPalette(info) {
  const palette = document.getElementById("palette");
  const colours = info.palette || [{ name: "pen", color: "#000000" }, { name: "eraser", color: "#ffffff" }];
  document.getElementById("draw-hint").textContent =
    info.palette ? "pick a class, then paint or drag rectangles" : "draw edges in black on white";
  for (const entry of colours) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.color = entry.color;
    button.title = entry.color;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = entry.color;
    button.append(swatch, entry.name);
    button.addEventListener("click", () => selectColour(entry.color));
    palette.append(button);
  }
  // labels: windows on a facade is what people draw first; sketches: the black pen
  selectColour(info.palette ? colourOf("window") : "#000000");
}

function colourOf(name) {
  return state.info.palette.find((entry) => entry.name === name).color;
}

function selectColour(colour) {
  state.colour = colour;
  for (const button of document.querySelectorAll("#palette button")) {
    button.classList.toggle("selected", button.dataset.color === colour);
  }
}

function selectTool(tool) {
  state.tool = tool;
  document.getElementById("tool-brush").classList.toggle("selected", tool === "brush");
  document.getElementById("tool-rect").classList.toggle("selected", tool === "rect");
}

function resetCanvas() {
  const side = state.info.crop_size;
  canvas.width = side;
  canvas.height = side;
  if (state.info.drawing === "photo") {
    // a left-to-right gray ramp until a photo is uploaded
    const ramp = context.createLinearGradient(0, 0, side, 0);
    ramp.addColorStop(0, "#000000");
    ramp.addColorStop(1, "#ffffff");
    context.fillStyle = ramp;
    context.fillRect(0, 0, side, side);
  } else if (state.info.palette) {
    // a starting layout: background around a plain facade
    const margin = Math.round(side / 10);
    context.fillStyle = colourOf("background");
    context.fillRect(0, 0, side, side);
    context.fillStyle = colourOf("facade");
    context.fillRect(margin, margin, side - 2 * margin, side - margin);
  } else {
    context.fillStyle = "#ffffff";
    context.fillRect(0, 0, side, side);
  }
}

function canvasPoint(event) {
  const box = canvas.getBoundingClientRect();
  return {
    x: ((event.clientX - box.left) * canvas.width) / box.width,
    y: ((event.clientY - box.top) * canvas.height) / box.height,
  };
}

function beginStroke(event) {
  if (state.info.drawing === "photo") return;
  event.preventDefault();
  canvas.setPointerCapture(event.pointerId);
  state.drawing = true;
  state.start = state.last = canvasPoint(event);
  if (state.tool === "rect") {
    state.snapshot = context.getImageData(0, 0, canvas.width, canvas.height);
  } else {
    drawLine(state.last, state.last);
  }
}

function continueStroke(event) {
  if (!state.drawing) return;
  const point = canvasPoint(event);
  if (state.tool === "rect") {
    context.putImageData(state.snapshot, 0, 0);
    drawRectangle(state.start, point);
  } else {
    drawLine(state.last, point);
  }
  state.last = point;
}

function endStroke() {
  if (!state.drawing) return;
  state.drawing = false;
  state.snapshot = null;
  translate();
}

function drawLine(from, to) {
  context.strokeStyle = state.colour;
  context.lineWidth = Number(brushSize.value);
  context.lineCap = "round";
  context.lineJoin = "round";
  context.beginPath();
  context.moveTo(from.x, from.y);
  context.lineTo(to.x, to.y);
  context.stroke();
}

function drawRectangle(from, to) {
  // whole pixels, so label regions keep exact palette colours (no antialiased edges)
  const x = Math.round(Math.min(from.x, to.x));
  const y = Math.round(Math.min(from.y, to.y));
  context.fillStyle = state.colour;
  context.fillRect(x, y, Math.round(Math.max(from.x, to.x)) - x, Math.round(Math.max(from.y, to.y)) - y);
}

async function translate() {
  const request = ++requestCount;
  statusLine.textContent = "translating…";
  statusLine.classList.remove("error");
  const began = performance.now();
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  try {
    const response = await fetch(`/translate?direction=${state.info.direction}`, {
      method: "POST",
      headers: { "Content-Type": "image/png" },
      body: blob,
    });
    if (!response.ok) {
      const problem = await response.json().catch(() => ({ detail: response.statusText }));
      throw new Error(problem.detail);
    }
    const result = await response.blob();
    if (request !== requestCount) return;
    showOutput(result, Math.round(performance.now() - began));
  } catch (error) {
    if (request !== requestCount) return;
    statusLine.textContent = `error: ${error.message}`;
    statusLine.classList.add("error");
  }
}

function showOutput(blob, milliseconds) {
  const previous = outputUrl;
  outputUrl = URL.createObjectURL(blob);
  output.onload = () => {
    output.dataset.count = String(Number(output.dataset.count || 0) + 1); // lets tests wait for a result
    if (previous) URL.revokeObjectURL(previous);
  };
  output.src = outputUrl;
  document.getElementById("download").href = outputUrl;
  statusLine.textContent = `${milliseconds} ms`;
}

async function loadUpload() {
  const file = document.getElementById("upload").files[0];
  if (!file) return;
  try {
    const bitmap = await createImageBitmap(file);
    // keep the aspect ratio: the longer side gets the network's size
    const scale = state.info.crop_size / Math.max(bitmap.width, bitmap.height);
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    translate();
  } catch (error) {
    statusLine.textContent = `error: cannot read ${file.name} as an image`;
    statusLine.classList.add("error");
  }
}

canvas.addEventListener("pointerdown", beginStroke);
canvas.addEventListener("pointermove", continueStroke);
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);
document.getElementById("tool-brush").addEventListener("click", () => selectTool("brush"));
document.getElementById("tool-rect").addEventListener("click", () => selectTool("rect"));
document.getElementById("clear").addEventListener("click", () => {
  resetCanvas();
  translate();
});
document.getElementById("upload").addEventListener("change", loadUpload);
start().catch((error) => {
  document.getElementById("summary").textContent = `cannot reach the model: ${error.message}`;
});
