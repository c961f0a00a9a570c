// The cnnkit faces page: plain JavaScript, no build step, talks to the API of the service that served it.
"use strict";

const KEY_STORAGE = "cnnkit-api-key";
const $ = (id) => document.getElementById(id);
const state = { key: sessionStorage.getItem(KEY_STORAGE) || "", role: null, pending: null };

// -- messages ------------------------------------------------------------------------------

function say(text) { $("problem").textContent = ""; $("message").textContent = text; }
function complain(text) { $("message").textContent = ""; $("problem").textContent = text; }

// -- the API -------------------------------------------------------------------------------

async function api(method, path, body) {
  const headers = {};
  if (state.key) headers["Authorization"] = "Bearer " + state.key;
  if (body && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body });
  } catch (err) {
    return { ok: false, status: 0, error: { code: "network", message: "The service cannot be reached: " + err.message } };
  }
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (!response.ok) {
    const error = (data && data.error) || { code: "http_" + response.status, message: response.statusText };
    return { ok: false, status: response.status, error };
  }
  return { ok: true, status: response.status, data };
}

function explain(result) {
  const e = result.error || {};
  if (e.code === "missing_key") return "Enter an API key at the top of the page first.";
  if (e.code === "invalid_key") return "This API key is not valid (unknown or revoked).";
  if (e.code === "forbidden") return "This key may only look (read); enrolling, renaming and deleting need a write key.";
  return e.message || "Something went wrong.";
}

// -- the key -------------------------------------------------------------------------------

async function checkKey() {
  const label = $("key-state");
  label.classList.remove("good");
  if (!state.key) { label.textContent = "No key entered."; state.role = null; updateRole(); return false; }
  const result = await api("GET", "/version");
  if (!result.ok) { label.textContent = explain(result); state.role = null; updateRole(); return false; }
  state.role = result.data.key.role;
  label.textContent = state.role === "write" ? "Write key accepted: you may enroll and delete."
    : "Read key accepted: you may identify and look; enrolling and deleting need a write key.";
  label.classList.add("good");
  updateRole();
  return true;
}

function updateRole() {
  const canWrite = state.role === "write";
  document.querySelectorAll("[data-needs-write]").forEach((el) => { el.disabled = !canWrite; });
  $("enroll-form").querySelector("button[type=submit]").disabled = state.role !== null && !canWrite;
}

$("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  state.key = $("key").value.trim();
  $("key").value = "";
  if (state.key) sessionStorage.setItem(KEY_STORAGE, state.key); else sessionStorage.removeItem(KEY_STORAGE);
  if (await checkKey()) { say("Key accepted."); await loadPeople(); }
});

$("key-forget").addEventListener("click", () => {
  state.key = ""; sessionStorage.removeItem(KEY_STORAGE); checkKey(); renderPeople([]); say("Key forgotten.");
});

// -- the camera ----------------------------------------------------------------------------

const cameras = {};

async function startCamera(which) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    complain("This browser gives no camera to this page (a camera needs HTTPS, or localhost).");
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "user" }, audio: false });
    cameras[which] = stream;
    const video = $(which + "-video");
    video.srcObject = stream;
    $(which + "-camera").hidden = false;
    await video.play().catch(() => {});
    $(which + "-snap").focus();
  } catch (err) {
    complain("The camera could not be started: " + err.message);
  }
}

function stopCamera(which) {
  const stream = cameras[which];
  if (stream) stream.getTracks().forEach((t) => t.stop());
  delete cameras[which];
  $(which + "-video").srcObject = null;
  $(which + "-camera").hidden = true;
}

function snapshot(which) {
  const video = $(which + "-video");
  return new Promise((resolve, reject) => {
    if (!video.videoWidth) { reject(new Error("the camera has no picture yet")); return; }
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("no picture"))), "image/jpeg", 0.92);
  });
}

document.querySelectorAll("[data-camera-for]").forEach((button) =>
  button.addEventListener("click", () => startCamera(button.dataset.cameraFor)));
document.querySelectorAll("[data-camera-stop]").forEach((button) =>
  button.addEventListener("click", () => stopCamera(button.dataset.cameraStop)));

// -- identify ------------------------------------------------------------------------------

async function identify(blob, filename) {
  const form = new FormData();
  form.append("photo", blob, filename);
  say("Looking for faces…");
  const result = await api("POST", "/identify", form);
  if (!result.ok) { complain(explain(result)); return; }
  await drawFaces(blob, result.data);
  const n = result.data.faces.length;
  const known = result.data.faces.filter((f) => f.name).length;
  say(n === 0 ? "No face found in this photo." : `${n} face${n === 1 ? "" : "s"} found, ${known} recognised.`);
}

async function drawFaces(blob, answer) {
  const bitmap = await createImageBitmap(blob, { imageOrientation: "from-image" });
  const canvas = $("identify-canvas");
  // The service sees the photo with its EXIF orientation applied; so does createImageBitmap.
  canvas.width = answer.width || bitmap.width;
  canvas.height = answer.height || bitmap.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const line = Math.max(2, Math.round(canvas.width / 200));
  const fontSize = Math.max(12, Math.round(canvas.width / 28));
  ctx.font = `bold ${fontSize}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  const labels = [];
  const list = $("identify-results");
  list.replaceChildren();
  const faces = answer.faces.slice().sort((a, b) => a.box[0] - b.box[0]);
  faces.forEach((face, i) => {
    const [x1, y1, x2, y2] = face.box;
    const known = face.name !== null;
    const color = known ? "#0b6b2e" : "#a61b1b";
    const label = known ? face.name : "unknown";
    ctx.lineWidth = line;
    ctx.strokeStyle = color;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const text = label;
    const width = ctx.measureText(text).width + 8;
    const height = fontSize + 6;
    const ty = y1 - height >= 0 ? y1 - height : y2;
    ctx.fillStyle = color;
    ctx.fillRect(x1 - line / 2, ty, width, height);
    ctx.fillStyle = "#ffffff";
    ctx.fillText(text, x1 + 4 - line / 2, ty + 3);
    labels.push({ name: face.name, id: face.id, box: face.box, color });

    const item = document.createElement("li");
    const who = document.createElement("span");
    who.className = known ? "known" : "unknown";
    who.textContent = known ? `${face.name} (#${face.id})` : "unknown";
    item.append(`Face ${i + 1}: `, who,
      face.distance === null ? " — nobody enrolled yet" : ` — distance ${face.distance.toFixed(3)} (threshold ${answer.threshold.toFixed(3)})`);
    list.append(item);
  });
  canvas.dataset.labels = JSON.stringify(labels);
  canvas.setAttribute("aria-label", labels.length
    ? "Photo with faces marked: " + labels.map((l) => l.name || "unknown").join(", ")
    : "Photo with no face found");
  $("identify-summary").textContent = labels.length ? "Faces, from left to right:" : "No face found.";
  $("identify-figure").hidden = false;
}

$("identify-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("identify-file").files[0];
  if (!file) { complain("Choose a photo first, or use the camera."); return; }
  await identify(file, file.name);
});

$("identify-snap").addEventListener("click", async () => {
  try { await identify(await snapshot("identify"), "camera.jpg"); } catch (err) { complain(err.message); }
});

// -- enroll --------------------------------------------------------------------------------

const captures = [];

function renderCaptures() {
  const list = $("enroll-captures");
  list.replaceChildren();
  captures.forEach((blob, i) => {
    const item = document.createElement("li");
    const img = document.createElement("img");
    img.src = URL.createObjectURL(blob);
    img.alt = `Camera photo ${i + 1}`;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "secondary";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", `Remove camera photo ${i + 1}`);
    remove.addEventListener("click", () => { captures.splice(i, 1); renderCaptures(); });
    item.append(img, remove);
    list.append(item);
  });
}

$("enroll-snap").addEventListener("click", async () => {
  try {
    captures.push(await snapshot("enroll"));
    renderCaptures();
    say(`${captures.length} camera photo${captures.length === 1 ? "" : "s"} ready to enroll.`);
  } catch (err) { complain(err.message); }
});

function enrollPhotos() {
  const form = new FormData();
  for (const file of $("enroll-files").files) form.append("photos", file, file.name);
  captures.forEach((blob, i) => form.append("photos", blob, `camera-${i + 1}.jpg`));
  return form;
}

async function enroll(sameName) {
  const name = $("enroll-name").value.trim();
  const photos = enrollPhotos();
  if (!name) { complain("Enter the person's name."); $("enroll-name").focus(); return; }
  if (!photos.has("photos")) { complain("Choose at least one photo, or take one with the camera."); return; }
  photos.append("name", name);
  if (sameName) photos.append("allow_same_name", "true");
  say("Enrolling…");
  $("enroll-conflict").hidden = true;
  const result = await api("POST", "/people", photos);
  if (result.ok) { enrolled(`Enrolled ${result.data.name} (#${result.data.id}) from ${result.data.embeddings} photo(s).`); return; }
  if (result.error.code === "name_taken") {
    state.pending = result.error.details.ids[0];
    $("enroll-conflict-text").textContent = `${name} is enrolled already (#${state.pending}).`;
    $("enroll-conflict").hidden = false;
    $("enroll-add").focus();
  }
  complain(explain(result));
}

function enrolled(text) {
  say(text);
  $("enroll-form").reset();
  captures.length = 0;
  renderCaptures();
  $("enroll-conflict").hidden = true;
  loadPeople();
}

$("enroll-form").addEventListener("submit", (event) => { event.preventDefault(); enroll(false); });
$("enroll-namesake").addEventListener("click", () => enroll(true));
$("enroll-add").addEventListener("click", async () => {
  const form = enrollPhotos();
  const result = await api("POST", `/people/${state.pending}/photos`, form);
  if (result.ok) enrolled(`Added the photos to ${result.data.name} (#${result.data.id}), who now has ${result.data.embeddings}.`);
  else complain(explain(result));
});

// -- people --------------------------------------------------------------------------------

function renderPeople(people) {
  const body = $("people-body");
  body.replaceChildren();
  for (const p of people) {
    const row = document.createElement("tr");
    const cells = [p.name, "#" + p.id, String(p.embeddings), p.created_at.replace("T", " ").replace("Z", " UTC")];
    cells.forEach((text, i) => {
      const cell = document.createElement(i === 0 ? "th" : "td");
      if (i === 0) cell.scope = "row";
      cell.textContent = text;
      row.append(cell);
    });
    const actions = document.createElement("td");
    const box = document.createElement("div");
    box.className = "row";
    const rename = document.createElement("button");
    rename.type = "button"; rename.className = "secondary"; rename.textContent = "Rename";
    rename.setAttribute("aria-label", `Rename ${p.name} (#${p.id})`);
    rename.dataset.needsWrite = "";
    rename.addEventListener("click", () => renamePerson(p));
    const remove = document.createElement("button");
    remove.type = "button"; remove.className = "danger"; remove.textContent = "Delete";
    remove.setAttribute("aria-label", `Delete ${p.name} (#${p.id})`);
    remove.dataset.needsWrite = "";
    remove.addEventListener("click", () => deletePerson(p));
    box.append(rename, remove);
    actions.append(box);
    row.append(actions);
    body.append(row);
  }
  $("people-count").textContent = people.length ? `${people.length} enrolled` : "Nobody listed.";
  updateRole();
}

async function loadPeople() {
  if (!state.key) { renderPeople([]); return; }
  const result = await api("GET", "/people?limit=10000");
  if (!result.ok) { complain(explain(result)); return; }
  renderPeople(result.data.people);
}

async function renamePerson(p) {
  const name = window.prompt(`New name for ${p.name} (#${p.id}):`, p.name);
  if (name === null || !name.trim()) return;
  const result = await api("PATCH", `/people/${p.id}`, { name: name.trim() });
  if (result.ok) { say(`#${p.id} is now ${result.data.name}.`); loadPeople(); } else complain(explain(result));
}

async function deletePerson(p) {
  if (!window.confirm(`Delete ${p.name} (#${p.id}) and all their face data? This cannot be undone.`)) return;
  const result = await api("DELETE", `/people/${p.id}`);
  if (result.ok) { say(`Deleted ${p.name} (#${p.id}) and ${p.embeddings} photo embedding(s).`); loadPeople(); }
  else complain(explain(result));
}

$("people-refresh").addEventListener("click", loadPeople);

// -- start ---------------------------------------------------------------------------------

(async () => {
  if (state.key && (await checkKey())) await loadPeople();
  document.body.dataset.ready = "true";
})();
