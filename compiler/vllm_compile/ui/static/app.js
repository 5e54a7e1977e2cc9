// vllm-compile ui: sortable tables and the what-if form's instant re-plan. Part of vllm-compile
// (Apache-2.0); no third-party code, nothing fetched from the network.
"use strict";
function sortTable(table, col, type) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const th = table.tHead.rows[0].cells[col];
  const dir = th.dataset.dir === "asc" ? "desc" : "asc";
  for (const h of table.tHead.rows[0].cells) delete h.dataset.dir;
  th.dataset.dir = dir;
  const key = (row) => {
    const cell = row.cells[col];
    if (!cell) return type === "num" ? -Infinity : "";
    const raw = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
    if (type === "num") { const n = parseFloat(raw); return isNaN(n) ? -Infinity : n; }
    return raw.toLowerCase();
  };
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    const c = x < y ? -1 : x > y ? 1 : 0;
    return dir === "asc" ? c : -c;
  });
  for (const r of rows) body.appendChild(r);
}
document.addEventListener("DOMContentLoaded", () => {
  for (const table of document.querySelectorAll("table.sortable")) {
    Array.from(table.tHead.rows[0].cells).forEach((th, i) => {
      th.tabIndex = 0;
      th.addEventListener("click", () => sortTable(table, i, th.dataset.type || "text"));
    });
  }
  const form = document.getElementById("whatif");
  if (form) {
    // Re-plan as soon as a field changes (the server plans through the API in milliseconds).
    form.addEventListener("change", () => form.requestSubmit());
  }
});
