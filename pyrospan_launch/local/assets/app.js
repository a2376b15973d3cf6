// pyrospan-run local mode: the live page and the static report share this script.
// Every name from the program is put in the page with textContent (never as HTML), so a
// span named like an HTML tag shows as that text and never becomes markup.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("pyrospan-data").textContent);
  const live = data.mode === "live";
  const ROW = 18; // px per flame graph level
  const byId = (id) => document.getElementById(id);

  let summary = null; // the last summary document
  let view = "process"; // "process", "name:<name>" or "span:<id>"
  let flame = null; // the flame graph document on show
  let zoom = 0; // index of the node drawn as the top of the flame graph
  let zoomPath = null; // names from the root to the zoomed node, kept across refreshes

  // ---------------------------------------------------------------- data sources

  function fetchJson(url) {
    return fetch(url, { cache: "no-store" }).then((response) => {
      if (!response.ok) throw new Error(url + ": HTTP " + response.status);
      return response.json();
    });
  }

  const source = live
    ? {
        summary: () => fetchJson("api/summary"),
        flame: (v) => fetchJson("api/flame?view=" + encodeURIComponent(v)).catch(() => null),
      }
    : {
        summary: () => Promise.resolve(data.summary),
        flame: (v) =>
          Promise.resolve(Object.prototype.hasOwnProperty.call(data.flames, v) ? data.flames[v] : null),
      };

  // ---------------------------------------------------------------- formatting

  function duration(ns) {
    const ms = ns / 1e6;
    if (ms === 0) return "0 ms";
    if (ms < 1) return ms.toFixed(2) + " ms";
    if (ms < 10) return ms.toFixed(1) + " ms";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 100000) return (ms / 1000).toFixed(2) + " s";
    return (ms / 1000).toFixed(1) + " s";
  }

  function clock(ms) {
    const d = new Date(ms);
    const two = (n) => String(n).padStart(2, "0");
    return (
      two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds()) + "." +
      String(d.getMilliseconds()).padStart(3, "0")
    );
  }

  function percent(part, whole) {
    return whole > 0 ? Math.round((100 * part) / whole) + "%" : "";
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  // ---------------------------------------------------------------- tables

  function fillTable(tbody, rows, emptyText, columns) {
    const fragment = document.createDocumentFragment();
    for (const row of rows) fragment.appendChild(row);
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = cell(emptyText, "empty");
      td.colSpan = columns;
      tr.appendChild(td);
      fragment.appendChild(tr);
    }
    tbody.replaceChildren(fragment);
    markSelected();
  }

  function groupRow(group) {
    const tr = document.createElement("tr");
    tr.dataset.view = "name:" + group.name;
    tr.tabIndex = 0;
    const top = group.top.map((f) => f.name + " " + percent(f.self_ns, group.cpu_ns)).join(", ");
    tr.append(
      cell(group.name, "name"),
      cell(String(group.count), "num"),
      cell(duration(group.p50_ns), "num"),
      cell(duration(group.p95_ns), "num"),
      cell(duration(group.cpu_ns), "num"),
      cell(top || "no CPU samples", "name"),
    );
    return tr;
  }

  function spanRow(span) {
    const tr = document.createElement("tr");
    tr.dataset.view = "span:" + span.id;
    tr.tabIndex = 0;
    if (span.error) tr.className = "error";
    tr.title = "trace " + span.trace + ", span " + span.id;
    tr.append(
      cell(span.name, "name"),
      cell(span.service),
      cell(clock(span.start_ms)),
      cell(duration(span.duration_ns), "num"),
      cell(duration(span.cpu_ns), "num"),
      cell(String(span.samples), "num"),
    );
    return tr;
  }

  function renderSummary() {
    byId("services").textContent = summary.services.join(", ");
    document.title = "Span profiles " + summary.services.join(", ");
    fillTable(
      byId("groups").tBodies[0],
      summary.groups.map(groupRow),
      "No root spans yet: they appear when a span ends and its batch is exported.",
      6,
    );
    fillTable(
      byId("spans").tBodies[0],
      summary.spans.map(spanRow),
      "No root spans yet.",
      6,
    );
    const shown = summary.spans.length;
    byId("span-count").textContent =
      shown < summary.total_spans ? "(latest " + shown + " of " + summary.total_spans + ")" : "(" + shown + ")";
  }

  function statusText() {
    const n = summary.total_spans + " root span" + (summary.total_spans === 1 ? "" : "s");
    const cpu = "CPU " + duration(summary.process.cpu_ns);
    if (live) return "Live: " + n + ", " + cpu + ", updated " + clock(Date.now()) + ".";
    const meta = summary.meta || {};
    let text = "Report: " + n + ", " + cpu + ".";
    if (meta.command) text += " Command: " + meta.command + ".";
    if (meta.exit_code !== undefined) text += " Exit status " + meta.exit_code + ".";
    if (summary.generated) text += " Written " + summary.generated + ".";
    if (summary.flames_left_out) {
      text += " " + summary.flames_left_out + " spans with less CPU have no flame graph here (see pprof/).";
    }
    return text;
  }

  function setStatus(text, isError) {
    const status = byId("status");
    status.textContent = text;
    status.className = isError ? "error" : "";
  }

  function markSelected() {
    for (const tr of document.querySelectorAll("tbody tr[data-view]")) {
      tr.setAttribute("aria-selected", tr.dataset.view === view ? "true" : "false");
    }
  }

  // ---------------------------------------------------------------- flame graph

  function hue(name) {
    let h = 0;
    for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    return h;
  }

  function color(name, isRoot) {
    if (isRoot) return "hsl(210, 10%, 80%)";
    const h = hue(name);
    return "hsl(" + (h % 45) + ", " + (65 + (h % 20)) + "%, " + (62 + (h % 12)) + "%)";
  }

  function subtreeEnd(nodes, start) {
    const depth = nodes[start][2];
    let end = start + 1;
    while (end < nodes.length && nodes[end][2] > depth) end++;
    return end;
  }

  function parentOf(nodes, index) {
    const depth = nodes[index][2];
    for (let i = index - 1; i >= 0; i--) if (nodes[i][2] < depth) return i;
    return 0;
  }

  function pathOf(index) {
    const path = [];
    for (let i = index; i > 0; i = parentOf(flame.nodes, i)) path.unshift(flame.strings[flame.nodes[i][0]]);
    return path;
  }

  function findPath(path) {
    // Walk the pre-order list keeping the names from the root to the current node.
    const names = [];
    for (let i = 1; i < flame.nodes.length; i++) {
      const depth = flame.nodes[i][2];
      names.length = depth - 1;
      names.push(flame.strings[flame.nodes[i][0]]);
      if (depth === path.length && names.every((name, k) => name === path[k])) return i;
    }
    return 0;
  }

  function frameTitle(node, total) {
    const name = flame.strings[node[0]];
    const file = flame.strings[node[1]];
    return (
      name + (file ? "  (" + file + ")" : "") + "\n" +
      duration(node[3]) + ", " + percent(node[3], total) + " of this graph; self " + duration(node[4])
    );
  }

  function drawFlame() {
    const box = byId("flame");
    const note = byId("flame-note");
    box.replaceChildren();
    box.style.height = "";
    byId("reset-zoom").hidden = zoom === 0;
    if (!flame) {
      byId("flame-title").textContent = "Flame graph";
      byId("flame-total").textContent = "";
      note.textContent = live
        ? "Nothing stored for this view yet."
        : "This span's flame graph is not in the report (only the spans with the most CPU are); open its pprof file instead.";
      return;
    }
    byId("flame-title").textContent = flame.title;
    byId("flame-total").textContent = "CPU " + duration(flame.total);
    if (!flame.total) {
      note.textContent = "No CPU samples here (yet): the work may have waited on I/O, or the profile is still to be uploaded.";
      return;
    }
    note.textContent = "Click a frame to zoom in, the top frame to zoom out; hover for its time.";
    const nodes = flame.nodes;
    const start = Math.min(zoom, nodes.length - 1);
    const end = subtreeEnd(nodes, start);
    const baseDepth = nodes[start][2];
    const total = nodes[start][3];
    const minValue = total / Math.max(box.clientWidth, 200); // narrower than a pixel: skip
    const next = [0]; // per level: where the next node starts
    let maxLevel = 0;
    const fragment = document.createDocumentFragment();
    for (let i = start; i < end; i++) {
      const node = nodes[i];
      const level = node[2] - baseDepth;
      const x = next[level] || 0;
      next[level] = x + node[3];
      next[level + 1] = x;
      if (node[3] < minValue) continue;
      const div = document.createElement("div");
      div.className = "frame";
      div.textContent = flame.strings[node[0]];
      div.title = frameTitle(node, total);
      div.dataset.index = String(i);
      div.style.left = (100 * x) / total + "%";
      div.style.width = (100 * node[3]) / total + "%";
      div.style.top = level * ROW + "px";
      div.style.backgroundColor = color(flame.strings[node[0]], i === 0);
      fragment.appendChild(div);
      if (level > maxLevel) maxLevel = level;
    }
    box.appendChild(fragment);
    box.style.height = (maxLevel + 1) * ROW + "px";
  }

  function setZoom(index) {
    zoom = index;
    zoomPath = index ? pathOf(index) : null;
    drawFlame();
  }

  function loadFlame() {
    const wanted = view;
    return source.flame(wanted).then((document_) => {
      if (wanted !== view) return; // another view was chosen meanwhile
      flame = document_;
      zoom = flame && zoomPath ? findPath(zoomPath) : 0;
      if (!zoom) zoomPath = null;
      drawFlame();
    });
  }

  function select(newView) {
    view = newView;
    zoom = 0;
    zoomPath = null;
    markSelected();
    loadFlame();
    const section = byId("flame-section");
    const rect = section.getBoundingClientRect();
    if (rect.top < 0 || rect.top > window.innerHeight) section.scrollIntoView({ block: "start" });
  }

  // ---------------------------------------------------------------- events

  for (const id of ["groups", "spans"]) {
    const tbody = byId(id).tBodies[0];
    tbody.addEventListener("click", (event) => {
      const tr = event.target.closest("tr[data-view]");
      if (tr) select(tr.dataset.view);
    });
    tbody.addEventListener("keydown", (event) => {
      const tr = event.target.closest("tr[data-view]");
      if (tr && (event.key === "Enter" || event.key === " ")) {
        event.preventDefault();
        select(tr.dataset.view);
      }
    });
  }
  byId("show-process").addEventListener("click", () => select("process"));
  byId("reset-zoom").addEventListener("click", () => setZoom(0));
  byId("flame").addEventListener("click", (event) => {
    const frame = event.target.closest(".frame");
    if (!frame || !flame) return;
    const index = Number(frame.dataset.index);
    setZoom(index === zoom ? parentOf(flame.nodes, index) : index);
  });
  let resizeTimer = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(drawFlame, 100);
  });

  // ---------------------------------------------------------------- updates

  function refresh() {
    return source.summary().then(
      (document_) => {
        const changed = !summary || document_.version !== summary.version;
        summary = document_;
        if (changed) {
          renderSummary();
          loadFlame();
        }
        setStatus(statusText(), false);
        if (live) setTimeout(refresh, 1000);
      },
      () => {
        setStatus(
          "Disconnected: the program has finished or the receiver stopped." +
            (data.report ? " The report is " + data.report : ""),
          true,
        );
        if (live) setTimeout(refresh, 2000);
      },
    );
  }

  refresh();
})();
