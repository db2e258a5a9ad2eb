// kast ui: starts jobs (restore, check) and follows their progress. Every
// page reads without it; only these actions need it. Untrusted text is only
// ever set as textContent, never as markup.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const base = document.querySelector('meta[name="base-path"]').content;

function formBody(form) {
  const body = {};
  for (const [name, value] of new FormData(form)) {
    body[name] = value === "true" ? true : value === "false" ? false : value;
  }
  for (const box of form.querySelectorAll("input[type=checkbox]")) body[box.name] = box.checked;
  return body;
}

for (const form of document.querySelectorAll("form[data-job]")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    // Shown only when there is something to say.
    const said = form.querySelector(".error");
    said.textContent = "";
    said.hidden = true;
    const response = await fetch(base + form.dataset.job, {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify(formBody(form)),
    });
    const answer = await response.json();
    if (!response.ok) {
      said.textContent = answer.error;
      said.hidden = false;
      return;
    }
    location.href = `${base}/jobs/${answer.job}`;
  });
}

function size(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
  return `${i ? bytes.toFixed(1) : bytes} ${units[i]}`;
}

function line(parent, text, className) {
  const p = document.createElement("p");
  p.textContent = text;
  if (className) p.className = className;
  parent.append(p);
}

function show(element, job) {
  element.querySelector(".state").textContent = job.state;
  element.querySelector(".amount").textContent =
    `${size(job.bytes)}${job.total_bytes ? ` of ${size(job.total_bytes)}` : ""}, ${job.items} items`;
  const bar = element.querySelector(".bar");
  if (job.total_bytes) bar.value = Math.min(1, job.bytes / job.total_bytes);
  if (job.state !== "running") bar.value = 1;
  const outcome = element.querySelector(".outcome");
  outcome.replaceChildren();
  for (const warning of job.warnings) line(outcome, `warning: ${warning}`, "bad");
  if (job.state === "failed") line(outcome, job.error, "bad");
  const r = job.result;
  if (!r) return;
  if (job.kind === "restore") {
    line(outcome, `Restored ${r.files} files, ${r.dirs} folders, ${r.symlinks} symlinks (${size(r.bytes)}).`, "good");
    for (const e of r.errors) line(outcome, `${e.path}: ${e.error}`, "bad");
  } else if (job.kind === "check") {
    line(outcome, `Checked ${r.snapshots} snapshots, ${r.trees} trees, ${r.packs} packs (${size(r.bytes)}).`);
    if (r.clean) line(outcome, "No damage found.", "good");
    for (const d of r.damage) {
      line(outcome, `Damaged: ${d.object}: ${d.problem}`, "bad");
      for (const a of d.affects) line(outcome, `affects ${a}`);
    }
  }
}

async function follow(element) {
  for (;;) {
    const response = await fetch(`${base}/api/jobs/${element.dataset.jobId}`);
    const job = await response.json();
    show(element, job);
    if (job.state !== "running") return;
    await new Promise((resolve) => setTimeout(resolve, 400));
  }
}

const job = document.querySelector("[data-job-id]");
if (job) follow(job);
