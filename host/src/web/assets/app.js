// The kanban web board (docs/web.md). Plain JavaScript, no framework, no build step, no other origin: it
// speaks only to this server's JSON API (docs/api.md) and its event stream.
//
// Safety rule: card text (titles, bodies, comments, logs, event payloads) is only ever put in the page with
// textContent or createTextNode, never parsed as HTML. The server's Content-Security-Policy forbids inline
// script besides.

const STATUSES = ["triage", "todo", "scheduled", "ready", "running", "blocked", "review", "done"];
const PAGE = 100; // cards per column page
const SEVERITY = { info: 1, warning: 2, error: 3, critical: 4 };

const state = {
  csrf: "",
  readOnly: false,
  board: null,
  boards: [],
  showArchived: false,
  filter: "", // text the cards contain
  assignee: "", // a profile, or "none"
  columns: new Map(), // status -> {status, el, list, count, more, nextOffset, total}
  tiles: new Map(), // card id -> {task, findings, el}
  children: new Map(), // card id -> {done, total} of its children
  healthTimer: null,
  drawerId: null,
  drawerDoc: null,
  logTimer: null,
  source: null,
  pending: new Set(), // card ids to re-read
  flushTimer: null,
  statsTimer: null,
  dragId: null,
  selected: new Set(), // card ids chosen for a bulk action
  generation: 0, // bumped when the board or the filter changes: late answers for the old one are dropped
};

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- DOM helpers

/** An element with attributes and children (strings become text nodes, never HTML). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
  }
  return el;
}

function nowSecs() {
  return Math.floor(Date.now() / 1000);
}

/** "3m", "2h 5m", "4d": a duration in seconds, short. */
function span(secs) {
  secs = Math.max(0, Math.floor(secs));
  if (secs < 60) return `${secs}s`;
  const m = Math.floor(secs / 60);
  if (m < 60) return `${m}m`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return m % 60 ? `${hrs}h ${m % 60}m` : `${hrs}h`;
  return `${Math.floor(hrs / 24)}d`;
}

function when(secs) {
  if (!secs) return "";
  return new Date(secs * 1000).toLocaleString();
}

// ---------------------------------------------------------------- messages

/** Show a message in the visible message area (errors stay until dismissed; notes fade). */
function say(text, kind = "error") {
  const box = $("messages");
  const close = h("button", { type: "button", "aria-label": "Dismiss", text: "×" });
  const msg = h("div", { class: `message ${kind}` }, h("span", { class: "text", text }), close);
  close.addEventListener("click", () => msg.remove());
  box.prepend(msg);
  while (box.children.length > 4) box.lastChild.remove();
  if (kind !== "error") setTimeout(() => msg.remove(), 4000);
}

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** A request to /api/v1/PATH; state-changing ones carry the CSRF token. JSON in and out unless raw. */
async function api(method, path, body, options = {}) {
  try {
    return await request(method, path, body, options);
  } catch (e) {
    // A restarted server has a new CSRF token: read it again, and retry once.
    if (e.status !== 403 || method === "GET" || !e.message.includes("X-Kanban-CSRF")) throw e;
    state.csrf = (await request("GET", "session")).csrf;
    return request(method, path, body, options);
  }
}

async function request(method, path, body, { raw = false, text = false } = {}) {
  const init = { method, headers: {}, credentials: "same-origin" };
  if (method !== "GET") init.headers["X-Kanban-CSRF"] = state.csrf;
  if (body !== undefined) {
    if (raw) init.body = body;
    else {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
  }
  const res = await fetch(`/api/v1/${path}`, init);
  const answer = await res.text();
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try {
      message = JSON.parse(answer).error || message;
    } catch (_) {
      /* not JSON */
    }
    throw new ApiError(res.status, message);
  }
  if (text) return answer;
  return answer ? JSON.parse(answer) : null;
}

const enc = encodeURIComponent;
const boardPath = (rest = "") => `boards/${enc(state.board)}${rest}`;
const cardPath = (id, rest = "") => boardPath(`/cards/${enc(id)}${rest}`);

// ---------------------------------------------------------------- Markdown, safely

/** Render Markdown into `into` as DOM nodes: paragraphs, headings, lists, code blocks, quotes, inline code,
 *  emphasis and links (http and https only, rel=noopener). Anything else is text. */
function markdown(source, into) {
  const lines = String(source || "").replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  let para = [];
  const flush = () => {
    if (para.length) into.append(h("p", {}, inline(para.join("\n"))));
    para = [];
  };
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^\s*(```|~~~)/);
    if (fence) {
      flush();
      const code = [];
      i++;
      while (i < lines.length && !lines[i].trimStart().startsWith(fence[1])) code.push(lines[i++]);
      i++;
      into.append(h("pre", {}, h("code", { text: code.join("\n") })));
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    if (heading) {
      flush();
      const level = Math.min(6, heading[1].length + 2);
      into.append(h(`h${level}`, {}, inline(heading[2])));
      i++;
      continue;
    }
    if (/^\s*([-*+]|\d+[.)])\s+/.test(line)) {
      flush();
      const ordered = /^\s*\d+[.)]\s+/.test(line);
      const list = h(ordered ? "ol" : "ul");
      while (i < lines.length && /^\s*([-*+]|\d+[.)])\s+/.test(lines[i])) {
        list.append(h("li", {}, inline(lines[i].replace(/^\s*([-*+]|\d+[.)])\s+/, ""))));
        i++;
      }
      into.append(list);
      continue;
    }
    if (/^\s*>/.test(line)) {
      flush();
      const quote = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) quote.push(lines[i++].replace(/^\s*>\s?/, ""));
      into.append(h("blockquote", {}, inline(quote.join("\n"))));
      continue;
    }
    if (!line.trim()) flush();
    else para.push(line);
    i++;
  }
  flush();
  return into;
}

const INLINE = /`([^`]+)`|\*\*([^*]+)\*\*|__([^_]+)__|\*([^*\s][^*]*)\*|_([^_\s][^_]*)_|\[([^\]]+)\]\(([^)\s]+)\)/;

/** Inline Markdown as a fragment of text nodes and elements. */
function inline(text) {
  const out = document.createDocumentFragment();
  let rest = text;
  while (rest) {
    const m = rest.match(INLINE);
    if (!m) {
      out.append(document.createTextNode(rest));
      break;
    }
    if (m.index) out.append(document.createTextNode(rest.slice(0, m.index)));
    if (m[1] !== undefined) out.append(h("code", { text: m[1] }));
    else if (m[2] !== undefined || m[3] !== undefined) out.append(h("strong", {}, inline(m[2] ?? m[3])));
    else if (m[4] !== undefined || m[5] !== undefined) out.append(h("em", {}, inline(m[4] ?? m[5])));
    else if (/^https?:\/\//i.test(m[7])) {
      out.append(h("a", { href: m[7], rel: "noopener noreferrer", target: "_blank" }, inline(m[6])));
    } else out.append(document.createTextNode(m[0])); // another scheme (javascript:, data:, ...): text
    rest = rest.slice(m.index + m[0].length);
  }
  return out;
}

// ---------------------------------------------------------------- columns and tiles

function columnsShown() {
  return state.showArchived ? [...STATUSES, "archived"] : STATUSES;
}

/** Build the empty columns of the board. */
function buildColumns() {
  const board = $("board");
  board.replaceChildren();
  state.selected.clear();
  showBulk();
  state.columns.clear();
  state.tiles.clear();
  for (const status of columnsShown()) {
    const count = h("span", { class: "count", text: "…" });
    const list = h("ul", { class: "cards", "aria-label": `${status} cards` });
    const more = h("button", { type: "button", class: "more", hidden: true, text: "more" });
    const el = h("section", { class: "column", "data-status": status }, h("h2", {}, status, count), list, more);
    const column = { status, el, list, count, more, nextOffset: 0, total: 0 };
    more.addEventListener("click", () => loadPage(column));
    el.addEventListener("dragover", (e) => {
      if (!state.dragId && !e.dataTransfer?.types?.includes("text/plain")) return;
      e.preventDefault();
      el.classList.add("drop-target");
    });
    el.addEventListener("dragleave", (e) => {
      if (!el.contains(e.relatedTarget)) el.classList.remove("drop-target");
    });
    el.addEventListener("drop", (e) => {
      e.preventDefault();
      el.classList.remove("drop-target");
      const id = e.dataTransfer?.getData("text/plain") || state.dragId;
      state.dragId = null;
      if (id) dropped(id, status);
    });
    state.columns.set(status, column);
    board.append(el);
  }
}

/** Load the next page (PAGE cards) of a column. */
async function loadPage(column) {
  const gen = state.generation;
  const offset = column.nextOffset ?? 0;
  const q = new URLSearchParams({ status: column.status, sort: sortOf(column.status), limit: PAGE, offset });
  if (column.status === "archived") q.set("archived", "true");
  if (state.filter) q.set("q", state.filter);
  if (state.assignee) q.set("assignee", state.assignee);
  column.more.disabled = true;
  try {
    const page = await api("GET", boardPath(`/cards?${q}`));
    if (gen !== state.generation) return;
    for (const [id, counts] of Object.entries(page.children || {})) state.children.set(id, counts);
    for (const task of page.cards) {
      if (state.tiles.has(task.id)) continue; // already here (moved in live)
      const tile = makeTile(task, null);
      state.tiles.set(task.id, tile);
      column.list.append(tile.el);
    }
    column.nextOffset = page.next_offset;
    column.total = page.total;
    lanes();
    showCount(column);
  } catch (e) {
    say(`Cannot load ${column.status}: ${e.message}`);
  } finally {
    column.more.disabled = false;
  }
}

function showCount(column) {
  column.count.textContent = String(column.total);
  column.more.hidden = column.nextOffset === null || column.nextOffset === undefined;
  if (!column.more.hidden) {
    const left = Math.max(0, column.total - column.list.children.length);
    column.more.textContent = `more (${left} left)`;
  }
}

function worstFinding(findings) {
  let worst = null;
  for (const f of findings || []) if (!worst || (SEVERITY[f.severity] || 0) > (SEVERITY[worst.severity] || 0)) worst = f;
  return worst;
}

/** A card's tile: {task, findings, el}. */
function makeTile(task, findings) {
  const el = h("li", { class: "tile", tabindex: 0, draggable: state.readOnly ? "false" : "true", "data-id": task.id });
  const tile = { task, findings, el };
  fillTile(tile);
  // A click opens the drawer; with Ctrl, Cmd or Shift (or the x key) it selects the card for a bulk action.
  el.addEventListener("click", (e) => {
    if (e.ctrlKey || e.metaKey || e.shiftKey) select(tile.task.id);
    else openDrawer(tile.task.id);
  });
  el.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      openDrawer(tile.task.id);
    } else if (e.key === "x") {
      e.preventDefault();
      select(tile.task.id);
    }
  });
  el.addEventListener("dragstart", (e) => {
    state.dragId = tile.task.id;
    el.classList.add("dragging");
    if (e.dataTransfer) {
      e.dataTransfer.setData("text/plain", tile.task.id);
      e.dataTransfer.effectAllowed = "move";
    }
  });
  el.addEventListener("dragend", () => {
    el.classList.remove("dragging");
    for (const c of state.columns.values()) c.el.classList.remove("drop-target");
  });
  return tile;
}

function fillTile(tile) {
  const t = tile.task;
  const worst = worstFinding(tile.findings);
  const kids = state.children.get(t.id);
  const now = nowSecs();
  const meta = h(
    "div",
    { class: "meta" },
    h("span", { class: "assignee", text: t.assignee ? `@${t.assignee}` : "unassigned" }),
    h("span", { class: "age", "data-since": t.created_at, "data-prefix": "age " }, `age ${span(now - t.created_at)}`),
    t.consecutive_failures ? h("span", { class: "fails", text: `${t.consecutive_failures} failures` }) : null,
    kids ? h("span", { class: "kids", text: `${kids.done}/${kids.total} children done` }) : null,
  );
  const running = t.status === "running" ? h("div", { class: "running" }, runningText(t)) : null;
  tile.el.setAttribute("aria-label", `${t.title} (${t.id}, ${t.status})`);
  tile.el.classList.toggle("selected", state.selected.has(t.id));
  tile.el.setAttribute("aria-selected", String(state.selected.has(t.id)));
  tile.el.replaceChildren(
    h(
      "div",
      { class: "head" },
      h("span", { class: "prio", title: "priority", text: `P${t.priority}` }),
      h("span", { class: "mono id", text: t.id }),
      worst ? h("span", { class: `badge ${worst.severity}`, title: worst.detail || "", text: `${worst.severity}: ${worst.title}` }) : null,
      t.status === "blocked" && t.block_reason ? h("span", { class: "badge error", title: t.block_reason, text: "blocked" }) : null,
    ),
    h("div", { class: "title", text: t.title }),
    meta,
    ...(running ? [running] : []),
  );
}

/** "running for 3m, heartbeat 20s ago", from the card's own fields. */
function runningText(t) {
  const now = nowSecs();
  const since = t.started_at ? `running for ${span(now - t.started_at)}` : "running";
  const beat = t.last_heartbeat_at ? `heartbeat ${span(now - t.last_heartbeat_at)} ago` : "no heartbeat yet";
  return `${since}, ${beat}`;
}

/** Re-render the times of every tile (ages, running lines): every few seconds. */
function tick() {
  const now = nowSecs();
  for (const tile of state.tiles.values()) {
    const age = tile.el.querySelector(".age");
    if (age) age.textContent = `age ${span(now - tile.task.created_at)}`;
    const run = tile.el.querySelector(".running");
    if (run) run.textContent = runningText(tile.task);
  }
}

/** How a column is sorted (the API's `sort`): `running` in lanes by profile, the others by priority. */
const sortOf = (status) => (status === "running" ? "assignee" : "priority");

/** Does card a come before card b in a column of `status`? The API's order: by assignee (unassigned last),
 *  or by priority (highest first); then oldest first. */
function before(a, b, status) {
  if (sortOf(status) === "assignee") {
    if (a.assignee !== b.assignee) {
      if (a.assignee === null) return false;
      if (b.assignee === null) return true;
      return a.assignee < b.assignee;
    }
  } else if (a.priority !== b.priority) return a.priority > b.priority;
  if (a.created_at !== b.created_at) return a.created_at < b.created_at;
  return a.id < b.id;
}

/** The lanes of the running column: the first tile of each profile carries its name (shown above it). */
function lanes() {
  const column = state.columns.get("running");
  if (!column) return;
  let previous;
  for (const el of column.list.children) {
    const lane = state.tiles.get(el.dataset.id)?.task.assignee || "unassigned";
    if (lane !== previous) el.dataset.lane = lane;
    else delete el.dataset.lane;
    previous = lane;
  }
}

/** Does the card pass the filters of the bar (as the API's `q` and `assignee` select)? */
function selected(task) {
  const text = state.filter.toLowerCase();
  const hit = !text || [task.id, task.title, task.body].some((s) => (s || "").toLowerCase().includes(text));
  const who = state.assignee;
  return hit && (!who || (who === "none" ? !task.assignee : task.assignee === who));
}

/** Put a card as it now is on the board: update its tile, move it to its column, or drop it. */
function place(task, findings) {
  let tile = state.tiles.get(task.id);
  const old = tile?.task;
  const oldStatus = old?.status;
  const column = state.columns.get(task.status);
  const matches = selected(task);
  // The counts follow at once, then a `GET stats` sets them exactly: asked again from here, since a stats
  // answer that raced ahead of this card already counted it where it now is.
  if (oldStatus !== task.status && !state.filter && !state.assignee) {
    for (const [status, by] of [[oldStatus, -1], [task.status, +1]]) {
      const c = status && state.columns.get(status);
      if (c) {
        c.total = Math.max(0, c.total + by);
        showCount(c);
      }
    }
    statsSoon();
  }
  if (tile) {
    tile.task = task;
    if (findings !== undefined) tile.findings = findings;
    fillTile(tile);
  }
  if (!column || !matches) {
    if (tile) unplace(tile, oldStatus);
    return;
  }
  const unmoved = old && old.status === task.status && old.priority === task.priority && old.assignee === task.assignee;
  if (unmoved && tile.el.parentNode === column.list) return;
  // Where in the loaded part of the column does it go? Past the last loaded card of a column with more
  // pages, it is left for "more" to load.
  const siblings = [...column.list.children].filter((el) => el !== tile?.el);
  const next = siblings.find((el) => before(task, state.tiles.get(el.dataset.id).task, task.status));
  if (!next && column.nextOffset !== null && column.nextOffset !== undefined) {
    if (tile) unplace(tile, oldStatus);
    return;
  }
  if (!tile) {
    tile = makeTile(task, findings ?? null);
    state.tiles.set(task.id, tile);
  } else if (oldStatus !== task.status) shifted(oldStatus, -1);
  column.list.insertBefore(tile.el, next || null);
  if (oldStatus !== task.status) shifted(task.status, +1);
  lanes();
}

/** Take a tile off the page (it no longer matches, or falls past the loaded part of its column). */
function unplace(tile, status) {
  tile.el.remove();
  state.tiles.delete(tile.task.id);
  shifted(status, -1);
  lanes();
}

/** A loaded card left (-1) or joined (+1) a column's loaded range: keep its next page's offset right. */
function shifted(status, by) {
  const column = state.columns.get(status);
  if (column && column.nextOffset !== null && column.nextOffset !== undefined) column.nextOffset += by;
}

function forget(id) {
  const tile = state.tiles.get(id);
  if (!tile) return;
  shifted(tile.task.status, -1);
  tile.el.remove();
  state.tiles.delete(id);
  lanes();
}

/** The column counts and known assignees, from `GET stats` (one grouped query, not the cards). */
async function refreshStats() {
  const gen = state.generation;
  try {
    const stats = await api("GET", boardPath("/stats"));
    if (gen !== state.generation) return;
    if (!state.filter && !state.assignee) {
      for (const column of state.columns.values()) {
        column.total = stats.by_status[column.status] || 0;
        showCount(column);
      }
    }
    const profiles = $("profiles");
    profiles.replaceChildren(...Object.keys(stats.by_assignee || {}).filter((a) => a !== "none").sort().map((a) => h("option", { value: a })));
  } catch (_) {
    /* counts stay as they were */
  }
}

function statsSoon() {
  clearTimeout(state.statsTimer);
  state.statsTimer = setTimeout(() => {
    refreshStats();
    refreshHealth();
  }, 300);
}

// ---------------------------------------------------------------- dispatcher health, diagnostics, plugins

const WHY = {
  next_tick: "for the next tick",
  board_capped: "capped by the board",
  profile_capped: "capped by their profile",
  guarded: "held by a guard",
  unassigned: "unassigned",
  unknown_profile: "assigned to no profile of the board",
  no_host: "needing labels no live host has",
  paused: "paused",
};

/** The strip under the bar: who ticked the board last, running against the caps, what waits and why. */
async function refreshHealth() {
  const gen = state.generation;
  let health;
  try {
    health = await api("GET", boardPath("/health"));
  } catch (_) {
    return;
  }
  if (gen !== state.generation) return;
  const now = nowSecs();
  const last = health.hosts[0];
  const parts = [];
  if (!last) parts.push(h("span", { class: "part warn", text: "no dispatcher has ticked this board (start kanban daemon)" }));
  else {
    const age = now - last.last_seen;
    parts.push(h("span", { class: `part${age > 60 ? " warn" : ""}`, title: `host ${last.id}, pid ${last.pid ?? "?"}`, text: `last tick ${span(age)} ago by ${last.hostname}` }));
  }
  parts.push(h("span", { class: "part", text: `running ${health.running}/${health.max_in_progress}` }));
  for (const p of health.profiles) {
    if (!p.running && !p.ready) continue;
    parts.push(h("span", { class: "part", text: `${p.profile} ${p.running}${p.cap ? `/${p.cap}` : ""} running, ${p.ready} ready` }));
  }
  for (const pause of health.pauses) parts.push(h("span", { class: "part warn", text: `${pause.profile ? `profile ${pause.profile}` : "board"} paused${pause.reason ? `: ${pause.reason}` : ""}` }));
  if (!health.ready) parts.push(h("span", { class: "part", text: "nothing waiting" }));
  for (const w of health.waiting) {
    parts.push(h("span", { class: `part${w.why === "next_tick" ? "" : " warn"}`, "data-why": w.why, title: w.cards.join(" "), text: `${w.count} waiting ${WHY[w.why] || w.why}` }));
  }
  if (!state.readOnly) parts.push(h("button", { type: "button", id: "tick-now", class: "part", title: "Run one tick of the dispatcher now", text: "Tick now", onclick: nudge }));
  $("health").replaceChildren(...parts);
}

/** One real tick of the board, as `kanban dispatch` (the API's "nudge"); the live stream shows what it moved. */
async function nudge() {
  try {
    const report = await api("POST", boardPath("/dispatch"), {});
    if (report.skipped_locked) say("Another dispatcher is ticking this board right now.", "info");
    else say(`Ticked: ${report.spawned.length} started, ${report.running} running.`, "info");
  } catch (e) {
    say(`Cannot tick: ${e.message}`);
  }
  refreshHealth();
}

function severityRank(f) {
  return -(SEVERITY[f.severity] || 0);
}

async function showDiagnostics(run = false) {
  const list = $("diagnostics-list");
  const dialog = $("diagnostics-dialog");
  if (!dialog.open) dialog.showModal();
  $("diagnostics-run").disabled = state.readOnly;
  try {
    const doc = await api(run ? "POST" : "GET", boardPath("/diagnostics"), run ? {} : undefined);
    const findings = [...doc.findings].sort((a, b) => severityRank(a) - severityRank(b));
    if (!findings.length) {
      list.replaceChildren(h("p", { class: "muted", text: run ? "No findings." : "No findings stored: run diagnostics." }));
      return;
    }
    list.replaceChildren(
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, h("th", { text: "Severity" }), h("th", { text: "Card" }), h("th", { text: "Finding" }), h("th", { text: "Suggested" }))),
        h(
          "tbody",
          {},
          findings.map((f) =>
            h(
              "tr",
              { class: "finding" },
              h("td", {}, h("span", { class: `badge ${f.severity}`, text: f.severity })),
              h("td", {}, f.task_id ? h("a", { href: "#", class: "mono", text: f.task_id, onclick: (e) => { e.preventDefault(); dialog.close(); openDrawer(f.task_id); } }) : "board"),
              h("td", {}, h("strong", { text: f.title }), h("div", { class: "muted", text: `${f.detail || ""} [${f.policy}: ${f.rule}]` })),
              h("td", {}, (f.actions || []).map((a) => h("div", { class: "mono", text: typeof a === "string" ? a : a.command || a.label || JSON.stringify(a) }))),
            ),
          ),
        ),
      ),
    );
  } catch (e) {
    list.replaceChildren(h("p", { class: "error", text: `Cannot read the diagnostics: ${e.message}` }));
  }
}

async function showPlugins() {
  const list = $("plugins-list");
  const dialog = $("plugins-dialog");
  if (!dialog.open) dialog.showModal();
  try {
    const plugins = await api("GET", "plugins");
    list.replaceChildren(
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, h("th", { text: "Plugin" }), h("th", { text: "Kind" }), h("th", { text: "Boards" }), h("th", { text: "Quarantined" }), h("th", { text: "sha256" }))),
        h(
          "tbody",
          {},
          plugins.map((p) =>
            h(
              "tr",
              { class: "plugin", "data-name": p.name },
              h("td", {}, h("strong", { text: p.name }), h("div", { class: "muted", text: `${p.source} ${p.version}` })),
              h("td", { text: p.kind }),
              h("td", { text: p.boards.length ? p.boards.join(", ") : "none" }),
              h("td", { class: p.quarantined.length ? "warn" : "" }, p.quarantined.length ? p.quarantined.map((q) => h("div", { text: `${q.board}: since ${when(q.since)}, ${q.failures} failures${q.last_error ? `: ${q.last_error}` : ""}` })) : "no"),
              h("td", { class: "mono", title: p.sha256, text: p.sha256.slice(0, 12) }),
            ),
          ),
        ),
      ),
    );
  } catch (e) {
    list.replaceChildren(h("p", { class: "error", text: `Cannot read the plugins: ${e.message}` }));
  }
}

// ---------------------------------------------------------------- live events

function connect() {
  if (state.source) state.source.close();
  // EventSource resumes by itself after a drop, sending Last-Event-ID.
  const source = new EventSource(`/api/v1/${boardPath("/events/stream")}`);
  state.source = source;
  const live = $("live");
  source.onopen = () => {
    live.textContent = "live";
    live.className = "live on";
  };
  source.onerror = () => {
    live.textContent = "reconnecting";
    live.className = "live off";
  };
  source.onmessage = (msg) => {
    let event;
    try {
      event = JSON.parse(msg.data);
    } catch (_) {
      return;
    }
    if (event.task_id) {
      state.pending.add(event.task_id);
      clearTimeout(state.flushTimer);
      state.flushTimer = setTimeout(flush, 100);
    }
    statsSoon();
  };
}

/** Re-read the cards that had events, one request each, and move their tiles. */
async function flush() {
  const ids = [...state.pending];
  state.pending.clear();
  await Promise.all(ids.map(refreshCard));
}

async function refreshCard(id, withParents = true) {
  const gen = state.generation;
  try {
    const doc = await api("GET", cardPath(id));
    if (gen !== state.generation) return;
    const kids = doc.children || [];
    if (kids.length) state.children.set(id, { done: kids.filter((c) => c.status === "done").length, total: kids.length });
    else state.children.delete(id);
    place(doc.task, doc.findings);
    // Its parents on the page count their children done: read them again (one level up).
    if (withParents) for (const p of doc.parents || []) if (state.tiles.has(p.id)) refreshCard(p.id, false);
    if (state.drawerId === id) renderDrawer(doc);
  } catch (e) {
    if (e.status === 404) {
      forget(id);
      if (state.drawerId === id) closeDrawer();
    }
  }
}

// ---------------------------------------------------------------- actions

/** A modal question: resolves to the text typed (or "" without a field), or null when cancelled. */
function ask(title, text, { field = false, required = false, value = "", label = "Reason" } = {}) {
  const dialog = $("ask-dialog");
  $("ask-title").textContent = title;
  $("ask-text").textContent = text;
  $("ask-field").hidden = !field;
  $("ask-field").firstChild.textContent = `${label} `;
  const input = $("ask-input");
  input.value = value;
  input.required = field && required;
  return new Promise((resolve) => {
    const done = (answer) => {
      $("ask-form").onsubmit = null;
      $("ask-cancel").onclick = null;
      dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    $("ask-form").onsubmit = (e) => {
      e.preventDefault();
      done(field ? input.value.trim() : "");
    };
    $("ask-cancel").onclick = () => done(null);
    dialog.onclose = () => done(null);
    dialog.showModal();
    (field ? input : $("ask-ok")).focus();
  });
}

/** POST an action; the card's tile follows the answer. Returns true when it was done. */
async function act(id, action, body = {}) {
  try {
    const acted = await api("POST", cardPath(id, `/${action}`), body);
    place(acted.task);
    for (const w of acted.warnings || []) say(w, "info");
    if (acted.pending) say(acted.pending, "info");
    state.pending.add(id); // the findings and the drawer
    clearTimeout(state.flushTimer);
    state.flushTimer = setTimeout(flush, 100);
    statsSoon();
    return true;
  } catch (e) {
    say(e.message);
    return false;
  }
}

/** The actions of the drawer, with what each asks first. */
const ACTIONS = {
  promote: { label: "Promote to ready", from: ["triage", "todo", "scheduled"] },
  unblock: { label: "Unblock", from: ["blocked"] },
  block: { label: "Block", from: ["triage", "todo", "scheduled", "ready", "running", "review"], reason: true, confirm: true },
  schedule: { label: "Schedule", from: ["triage", "todo", "ready", "blocked", "review"] },
  review: { label: "Send to review", from: ["ready", "running", "blocked"] },
  complete: { label: "Complete", from: ["triage", "todo", "scheduled", "ready", "running", "blocked", "review"], confirm: true },
  "request-changes": { label: "Request changes", from: ["review", "running"], reason: true, required: true },
  reclaim: { label: "Reclaim", from: ["running"], reason: true, confirm: true },
  reassign: { label: "Reassign", from: ["triage", "todo", "scheduled", "ready", "running", "blocked", "review", "done"], profile: true },
  archive: { label: "Archive", from: ["triage", "todo", "scheduled", "ready", "running", "blocked", "review", "done"], confirm: true, danger: true },
};

/** Run an action as its button or a drop asks for it: confirmation, reason or profile first. */
async function runAction(task, action) {
  const spec = ACTIONS[action];
  let body = {};
  if (spec.profile) {
    const profile = await ask(`Reassign ${task.id}`, `Reassign "${task.title}" to another profile.`, { field: true, required: true, label: "Profile", value: task.assignee || "" });
    if (profile === null) return false;
    body = { profile, reclaim: task.status === "running" };
  } else if (spec.reason || spec.confirm) {
    const answer = await ask(`${spec.label}: ${task.id}`, `${spec.label} "${task.title}"?`, { field: !!spec.reason, required: !!spec.required });
    if (answer === null) return false;
    if (spec.reason && answer) body = { reason: answer };
  }
  return act(task.id, action, body);
}

// ---------------------------------------------------------------- bulk actions

const BULK = ["promote", "unblock", "block", "schedule", "complete", "archive"];

/** Add the card to the selection, or take it out. */
function select(id) {
  if (state.readOnly) return;
  if (state.selected.has(id)) state.selected.delete(id);
  else state.selected.add(id);
  const tile = state.tiles.get(id);
  if (tile) fillTile(tile);
  showBulk();
}

function clearSelection() {
  const ids = [...state.selected];
  state.selected.clear();
  for (const id of ids) {
    const tile = state.tiles.get(id);
    if (tile) fillTile(tile);
  }
  showBulk();
}

function showBulk() {
  const n = state.selected.size;
  $("bulk").hidden = n === 0;
  $("bulk-count").textContent = `${n} selected`;
  $("bulk-actions").replaceChildren(
    ...BULK.map((name) => h("button", { type: "button", "data-action": name, class: ACTIONS[name].danger ? "danger" : "", text: ACTIONS[name].label, onclick: () => bulk(name) })),
  );
}

/** One action on every selected card: asked once, done card by card; each refusal is shown with its card. */
async function bulk(action) {
  const spec = ACTIONS[action];
  const ids = [...state.selected];
  let body = {};
  if (spec.reason || spec.confirm) {
    const answer = await ask(`${spec.label}: ${ids.length} cards`, `${spec.label} the ${ids.length} selected cards?`, { field: !!spec.reason, required: !!spec.required });
    if (answer === null) return;
    if (spec.reason && answer) body = { reason: answer };
  }
  let done = 0;
  for (const id of ids) if (await act(id, action, body)) done++;
  say(`${spec.label}: ${done} of ${ids.length} cards`, done === ids.length ? "info" : "error");
  clearSelection();
}

/** A tile dropped on a column: the action that moves a card there, for its status. */
function dropAction(task, to) {
  if (to === task.status) return null;
  switch (to) {
    case "ready":
      if (task.status === "blocked") return "unblock";
      if (task.status === "running") return "reclaim";
      if (task.status === "review") return "request-changes";
      return "promote";
    case "done":
      return "complete";
    case "blocked":
      return "block";
    case "archived":
      return "archive";
    case "review":
      return "review";
    case "scheduled":
      return "schedule";
    default:
      return undefined;
  }
}

async function dropped(id, to) {
  const tile = state.tiles.get(id);
  if (!tile || state.readOnly) return;
  const action = dropAction(tile.task, to);
  if (action === null) return;
  if (action === undefined) {
    say(`A card cannot be moved to ${to} by hand (${to === "running" ? "the dispatcher starts cards" : "it gets there by itself"}).`);
    snapBack(tile);
    return;
  }
  const done = await runAction(tile.task, action);
  if (!done) snapBack(tile);
}

/** The tile stays (or goes back) where its card is, with a shake to show the move was refused. */
function snapBack(tile) {
  const current = state.tiles.get(tile.task.id);
  if (!current) return;
  current.el.classList.remove("snapback");
  void current.el.offsetWidth; // restart the animation
  current.el.classList.add("snapback");
}

// ---------------------------------------------------------------- the drawer

async function openDrawer(id) {
  state.drawerId = id;
  const drawer = $("drawer");
  drawer.hidden = false;
  $("drawer-id").textContent = id;
  $("drawer-body").replaceChildren(h("p", { class: "muted", text: "loading…" }));
  try {
    const doc = await api("GET", cardPath(id));
    if (state.drawerId !== id) return;
    renderDrawer(doc, true);
    startLog(id);
  } catch (e) {
    say(e.message);
    closeDrawer();
  }
}

function closeDrawer() {
  const id = state.drawerId;
  state.drawerId = null;
  state.drawerDoc = null;
  clearInterval(state.logTimer);
  state.logTimer = null;
  $("drawer").hidden = true;
  const tile = id && state.tiles.get(id);
  if (tile) tile.el.focus();
}

/** Fill the drawer with a `show` document. The edit fields are filled only on open (not on live updates,
 *  so typing is never lost); everything else follows the card live. */
function renderDrawer(doc, fresh = false) {
  const t = doc.task;
  state.drawerDoc = doc;
  $("drawer-id").textContent = t.id;
  $("drawer-status").textContent = t.status;
  const body = $("drawer-body");
  if (fresh || !body.querySelector("#edit-form")) {
    body.replaceChildren(
      h("section", { id: "d-summary" }),
      editSection(t),
      h("section", { id: "d-actions" }),
      h("section", { id: "d-findings" }),
      h("section", { id: "d-links" }),
      commentsSection(t),
      h("section", { id: "d-runs" }),
      logSection(),
      attachmentsSection(t),
      h("section", { id: "d-events" }),
    );
  }
  fillSummary(t);
  fillActions(t);
  fillFindings(doc.findings || []);
  fillLinks(doc.parents || [], doc.children || []);
  fillComments(doc.comments || []);
  fillRuns(doc.runs || []);
  fillAttachments(t, doc.attachments || []);
  fillEvents(doc.events || []);
}

function fillSummary(t) {
  const facts = [
    `priority ${t.priority}`,
    t.assignee ? `assignee ${t.assignee}` : "unassigned",
    `created ${when(t.created_at)}${t.created_by ? ` by ${t.created_by}` : ""}`,
    t.consecutive_failures ? `${t.consecutive_failures} failures` : null,
    t.goal_mode ? `goal mode, turn ${t.goal_turn}${t.goal_max_turns ? ` of ${t.goal_max_turns}` : ""}` : null,
    t.status === "running" ? runningText(t) : null,
    t.status === "blocked" && t.block_reason ? `blocked: ${t.block_reason}${t.block_kind ? ` (${t.block_kind})` : ""}` : null,
    t.result ? `result: ${t.result}` : null,
    t.last_failure_error ? `last failure: ${t.last_failure_error}` : null,
  ].filter(Boolean);
  $("d-summary").replaceChildren(
    h("h2", { id: "d-title", text: t.title }),
    h("p", { class: "muted", text: facts.join(" · ") }),
    markdown(t.body, h("div", { class: "markdown", id: "d-body" })),
  );
}

function editSection(t) {
  const form = h(
    "form",
    { id: "edit-form" },
    h("label", {}, "Title ", h("input", { name: "title", value: t.title, required: true })),
    h("label", {}, "Priority ", h("input", { name: "priority", type: "number", step: 1, value: t.priority })),
    h("label", {}, "Body (Markdown) ", h("textarea", { name: "body", rows: 5 }, t.body)),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", disabled: state.readOnly, text: "Save" })),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(form);
    try {
      const task = await api("PATCH", cardPath(t.id), { title: f.get("title"), body: f.get("body"), priority: Number(f.get("priority") || 0) });
      place(task);
      say("Saved", "info");
      refreshCard(t.id);
    } catch (err) {
      say(err.message);
    }
  });
  const assign = h(
    "form",
    { id: "assign-form", class: "actions" },
    h("label", {}, "Assignee ", h("input", { name: "profile", list: "profiles", value: t.assignee || "", placeholder: "none" })),
    h("button", { type: "submit", disabled: state.readOnly, text: "Assign" }),
  );
  assign.addEventListener("submit", async (e) => {
    e.preventDefault();
    const profile = new FormData(assign).get("profile").trim() || "none";
    await act(t.id, "assign", { profile });
  });
  return h("section", { id: "d-edit" }, h("h3", { text: "Edit" }), form, assign);
}

function fillActions(t) {
  const buttons = Object.entries(ACTIONS)
    .filter(([, spec]) => spec.from.includes(t.status))
    .map(([name, spec]) =>
      h("button", {
        type: "button",
        class: spec.danger ? "danger" : "",
        "data-action": name,
        disabled: state.readOnly,
        text: spec.label,
        onclick: () => runAction(state.drawerDoc?.task || t, name),
      }),
    );
  $("d-actions").replaceChildren(h("h3", { text: "Actions" }), buttons.length ? h("div", { class: "actions" }, buttons) : h("p", { class: "muted", text: "No action for a card in this status." }));
}

function fillFindings(findings) {
  const el = $("d-findings");
  el.hidden = !findings.length;
  el.replaceChildren(
    h("h3", { text: "Diagnostics" }),
    h(
      "ul",
      { class: "list" },
      findings.map((f) =>
        h("li", {}, h("span", { class: `badge ${f.severity}`, text: f.severity }), " ", h("strong", { text: f.title }), f.detail ? ` ${f.detail}` : "", f.actions?.length ? h("div", { class: "muted", text: `suggested: ${f.actions.join(", ")}` }) : null),
      ),
    ),
  );
}

function cardLink(task) {
  return h("button", { type: "button", class: "linkbtn", onclick: () => openDrawer(task.id), text: `${task.id} ${task.title}` }, h("span", { class: "muted", text: ` (${task.status})` }));
}

function fillLinks(parents, children) {
  const el = $("d-links");
  const done = children.filter((c) => c.status === "done").length;
  el.replaceChildren(
    h("h3", { text: "Parents and children" }),
    h("div", {}, "Parents: ", parents.length ? h("ul", { class: "list" }, parents.map((p) => h("li", {}, cardLink(p)))) : h("span", { class: "muted", text: "none" })),
    h("div", {}, `Children${children.length ? ` (${done}/${children.length} done)` : ""}: `, children.length ? h("ul", { class: "list" }, children.map((c) => h("li", {}, cardLink(c)))) : h("span", { class: "muted", text: "none" })),
  );
}

/** The comments section: its form is built once per opened card, so a live update never takes the focus or
 *  the text being typed. */
function commentsSection(t) {
  const form = h("form", { id: "comment-form" }, h("textarea", { name: "text", rows: 2, "aria-label": "New comment", required: true }), h("div", { class: "actions" }, h("button", { type: "submit", disabled: state.readOnly, text: "Comment" })));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = new FormData(form).get("text").trim();
    if (!text) return;
    try {
      await api("POST", cardPath(t.id, "/comments"), { text });
      form.querySelector("textarea").value = "";
      refreshCard(t.id);
    } catch (err) {
      say(err.message);
    }
  });
  return h("section", { id: "d-comments" }, h("h3", { id: "comments-title" }), h("ul", { class: "list", id: "comment-list" }), form);
}

function fillComments(comments) {
  $("comments-title").textContent = `Comments (${comments.length})`;
  $("comment-list").replaceChildren(...comments.map((c) => h("li", {}, h("span", { class: "when", text: `${when(c.created_at)} ${c.author || ""}` }), markdown(c.body, h("div", { class: "comment" })))));
}

function fillRuns(runs) {
  const rows = runs.map((r) =>
    h(
      "tr",
      {},
      h("td", { text: `#${r.id}` }),
      h("td", { text: r.profile || "" }),
      h("td", { text: r.outcome || r.status }),
      h("td", { text: r.exit_code ?? "" }),
      h("td", { text: (r.metadata && r.metadata.last_output) || r.error || r.summary || "" }),
    ),
  );
  $("d-runs").replaceChildren(
    h("h3", { text: `Runs (${runs.length})` }),
    runs.length ? h("table", { class: "runs" }, h("thead", {}, h("tr", {}, ["run", "profile", "outcome", "exit", "last line"].map((c) => h("th", { text: c })))), h("tbody", {}, rows)) : h("p", { class: "muted", text: "Not run yet." }),
  );
}

function logSection() {
  return h("section", { id: "d-log" }, h("h3", { text: "Worker log (live tail)" }), h("pre", { id: "log-tail", class: "log", text: "" }));
}

/** Poll the log's last 16 KiB every 2 s while the drawer is open. */
function startLog(id) {
  clearInterval(state.logTimer);
  const read = async () => {
    if (state.drawerId !== id) return;
    try {
      const text = await api("GET", cardPath(id, "/log?tail=16384"), undefined, { text: true });
      const pre = $("log-tail");
      if (!pre || state.drawerId !== id) return;
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      const shown = text || "(no log yet)";
      if (pre.textContent !== shown) {
        pre.textContent = shown;
        if (atEnd) pre.scrollTop = pre.scrollHeight;
      }
    } catch (_) {
      /* the next poll retries */
    }
  };
  read();
  state.logTimer = setInterval(read, 2000);
}

/** The attachments section: the file picker is built once per opened card (a live update keeps the choice). */
function attachmentsSection(t) {
  const input = h("input", { type: "file", "aria-label": "File to attach" });
  const upload = h("button", {
    type: "button",
    text: "Upload",
    disabled: state.readOnly,
    onclick: async () => {
      const file = input.files[0];
      if (!file) return;
      try {
        await api("POST", cardPath(t.id, `/attachments?name=${enc(file.name)}`), file, { raw: true });
        input.value = "";
        refreshCard(t.id);
      } catch (err) {
        say(err.message);
      }
    },
  });
  return h("section", { id: "d-attachments" }, h("h3", { id: "attachments-title" }), h("ul", { class: "list", id: "attachment-list" }), h("div", { class: "actions" }, input, upload));
}

function fillAttachments(t, attachments) {
  $("attachments-title").textContent = `Attachments (${attachments.length})`;
  $("attachment-list").replaceChildren(...attachments.map((a) => h("li", {}, h("a", { href: `/api/v1/${cardPath(t.id, `/attachments/${a.id}`)}`, download: a.stored_name, text: a.name }), h("span", { class: "muted", text: ` ${a.size} bytes` }))));
}

function fillEvents(events) {
  const items = events
    .slice(-200)
    .reverse()
    .map((e) => h("li", {}, h("span", { class: "when", text: when(e.created_at) }), h("strong", { text: e.kind }), " ", h("span", { class: "mono muted", text: typeof e.payload === "string" ? e.payload : JSON.stringify(e.payload) })));
  $("d-events").replaceChildren(h("h3", { text: `Timeline (${events.length} events)` }), h("ul", { class: "list", id: "timeline" }, items));
}

// ---------------------------------------------------------------- the create dialog

function setupCreate() {
  const dialog = $("create-dialog");
  const form = $("create-form");
  $("new-card").addEventListener("click", () => {
    $("create-error").textContent = "";
    dialog.showModal();
    form.elements.title.focus();
  });
  $("create-cancel").addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = form.elements;
    const card = { title: f.title.value.trim() };
    if (f.body.value.trim()) card.body = f.body.value;
    if (f.assignee.value.trim()) card.assignee = f.assignee.value.trim();
    if (f.priority.value) card.priority = Number(f.priority.value);
    const parents = f.parents.value.split(/[\s,]+/).filter(Boolean);
    if (parents.length) card.parents = parents;
    if (f.workspace.value.trim()) card.workspace = f.workspace.value.trim();
    if (f.max_retries.value) card.max_retries = Number(f.max_retries.value);
    if (f.triage.checked) card.triage = true;
    if (f.goal.checked) card.goal = true;
    if (f.goal_max_turns.value) card.goal_max_turns = Number(f.goal_max_turns.value);
    try {
      const task = await api("POST", boardPath("/cards"), card);
      place(task, null);
      statsSoon();
      form.reset();
      dialog.close();
      say(`Created ${task.id}`, "info");
    } catch (err) {
      $("create-error").textContent = err.message;
    }
  });
}

// ---------------------------------------------------------------- boards

async function showBoard(slug) {
  state.board = slug;
  state.generation++;
  closeDrawer();
  if (location.hash !== `#${slug}`) history.replaceState(null, "", `#${enc(slug)}`);
  const row = state.boards.find((b) => b.slug === slug);
  $("board-name").textContent = row && row.name !== slug ? row.name : "";
  document.title = `kanban: ${row ? row.name : slug}`;
  buildColumns();
  connect(); // first, so nothing that happens while the columns load is missed
  // The health strip is filled before the board counts as shown: its first fill would otherwise move the
  // columns down under a pointer already aiming at them.
  await Promise.all([...[...state.columns.values()].map(loadPage), refreshHealth()]);
  refreshStats();
}

function reload() {
  state.generation++;
  buildColumns();
  Promise.all([...state.columns.values()].map(loadPage)).then(refreshStats);
}

/** Ask for the server's token until it is accepted (`POST login` sets the session cookie). */
async function login() {
  let text = "This server requires its token (the file given to --token-file, or <home>/serve.token).";
  for (;;) {
    const token = await ask("Sign in", text, { field: true, required: true, label: "Token" });
    if (token === null) throw new ApiError(401, "no token given: reload the page to sign in");
    try {
      await request("POST", "login", { token });
      return;
    } catch (e) {
      if (e.status !== 401) throw e;
      text = "That is not this server's token. Try again.";
    }
  }
}

async function main() {
  try {
    let session;
    try {
      session = await api("GET", "session");
    } catch (e) {
      if (e.status !== 401) throw e;
      // A server with a token: ask for it once; the server keeps it in an HttpOnly cookie.
      await login();
      session = await api("GET", "session");
    }
    state.csrf = session.csrf;
    state.readOnly = session.read_only;
    state.boards = await api("GET", "boards");
  } catch (e) {
    say(`Cannot reach the server: ${e.message}`);
    return;
  }
  if (state.readOnly) {
    $("new-card").disabled = true;
    say("This server is read-only: the board is shown, nothing can be changed.", "info");
  }
  if (!state.boards.length) {
    say("This home has no board yet (kanban board create NAME).");
    return;
  }
  const select = $("board-select");
  select.replaceChildren(...state.boards.map((b) => h("option", { value: b.slug, text: b.name === b.slug ? b.slug : `${b.name} (${b.slug})` })));
  $("board-switch").hidden = state.boards.length < 2;
  select.addEventListener("change", () => showBoard(select.value));
  const wanted = decodeURIComponent(location.hash.slice(1));
  const start = state.boards.find((b) => b.slug === wanted) || state.boards.find((b) => b.current) || state.boards[0];
  select.value = start.slug;

  setupCreate();
  $("drawer-close").addEventListener("click", closeDrawer);
  $("bulk-clear").addEventListener("click", clearSelection);
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape" || document.querySelector("dialog[open]")) return;
    if (state.drawerId) closeDrawer();
    else if (state.selected.size) clearSelection();
  });
  $("show-archived").addEventListener("change", (e) => {
    state.showArchived = e.target.checked;
    reload();
  });
  let filterTimer = null;
  const filtered = () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => {
      state.filter = $("filter").value.trim();
      state.assignee = $("assignee-filter").value.trim();
      reload();
    }, 250);
  };
  $("filter").addEventListener("input", filtered);
  $("assignee-filter").addEventListener("input", filtered);
  setInterval(tick, 5000);
  setInterval(refreshHealth, 10000);
  $("show-diagnostics").addEventListener("click", () => showDiagnostics(false));
  $("diagnostics-run").addEventListener("click", () => showDiagnostics(true));
  $("diagnostics-close").addEventListener("click", () => $("diagnostics-dialog").close());
  $("show-plugins").addEventListener("click", showPlugins);
  $("plugins-close").addEventListener("click", () => $("plugins-dialog").close());
  await showBoard(start.slug);
  // For the browser tests: the first pages are on the board, this long after the page started loading.
  document.body.dataset.readyMs = String(Math.round(performance.now()));
  document.body.dataset.ready = "true";
}

main();
