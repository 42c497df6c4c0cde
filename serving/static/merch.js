// The merchandisers' console: draws the charts from the JSON each page embeds (plotly.js, served by
// this app), and drives the rule form, the preview and the label decisions through /v1/merch.
"use strict";
const page = document.body.dataset.page;
const data = (() => { const el = document.getElementById("data"); return el ? JSON.parse(el.textContent) : null; })();
// The console's session is an HttpOnly cookie (serving/auth.py): no token is ever in page script or
// storage. Writes carry the header a page on another site cannot add.
const auth = () => ({ "X-Vitrine-Console": "1" });
const layout = (title, extra) => Object.assign({ title: { text: title }, margin: { t: 40, l: 60, r: 20, b: 60 } }, extra || {});
const plot = (id, traces, lay) => { if (document.getElementById(id)) Plotly.newPlot(id, traces, lay, { displaylogo: false, responsive: true }); };

async function call(method, url, body) {
  const r = await fetch(url, { method, headers: Object.assign({ "Content-Type": "application/json" }, auth()),
                               body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  const out = text ? JSON.parse(text) : {};
  if (!r.ok) throw new Error(typeof out.detail === "string" ? out.detail : JSON.stringify(out.detail));
  return out;
}

const charts = {
  tonight() {
    const d = data.filter(x => x.live !== null);
    plot("chart-deltas", [
      { type: "bar", name: "candidate", x: data.map(x => x.metric), y: data.map(x => x.candidate) },
      { type: "bar", name: "live", x: d.map(x => x.metric), y: d.map(x => x.live) }], layout("Candidate against live"));
  },
  quality() {
    const x = data.map(n => n.run);
    const keys = o => [...new Set(data.flatMap(n => Object.keys(n[o])))];
    plot("chart-headline", keys("headline").map(k => ({ x, y: data.map(n => n.headline[k] ?? null), name: k, mode: "lines+markers" })),
         layout("Headline metrics by night"));
    plot("chart-guards", keys("guards").map(k => ({ x, y: data.map(n => n.guards[k] ?? null), name: k, mode: "lines+markers",
                                                   yaxis: k === "novelty" ? "y2" : "y" })),
         layout("What gets recommended: coverage and Gini (left), novelty (right)",
                { yaxis2: { overlaying: "y", side: "right" } }));
  },
  online() {
    const places = [...new Set(data.daily.map(r => r.placement ?? "—"))].sort();
    const by = p => data.daily.filter(r => (r.placement ?? "—") === p);
    plot("chart-daily-ctr", places.map(p => ({ x: by(p).map(r => r.day), y: by(p).map(r => r.ctr), name: p, mode: "lines+markers" })),
         layout("CTR per placement and day", { yaxis: { tickformat: ".1%" } }));
    plot("chart-daily-revenue", places.map(p => ({ type: "bar", x: by(p).map(r => r.day), y: by(p).map(r => r.revenue), name: p })),
         layout("Attributed revenue per placement and day", { barmode: "stack" }));
    plot("chart-channels", [{ type: "bar", x: data.channels.map(r => r.channel), y: data.channels.map(r => r.ctr), name: "CTR" }],
         layout("CTR per recall channel", { yaxis: { tickformat: ".1%" } }));
    plot("chart-positions", [{ x: data.positions.map(r => r.position), y: data.positions.map(r => r.ctr), mode: "lines+markers" }],
         layout("CTR by position", { xaxis: { title: { text: "position" } }, yaxis: { tickformat: ".1%" } }));
  },
  experiments() {
    data.experiments.filter(c => c.analysis && c.analysis.comparisons.length).forEach(c => {
      const id = `chart-looks-${data.experiments.indexOf(c) + 1}`;
      plot(id, c.analysis.comparisons.flatMap(cmp => [
        { x: cmp.looks.map(l => l.at), y: cmp.looks.map(l => l.lift), name: `${cmp.variant}: lift`, mode: "lines+markers" },
        { x: cmp.looks.map(l => l.at), y: cmp.looks.map(l => l.p_value), name: `${cmp.variant}: p (any look)`, mode: "lines+markers",
          yaxis: "y2" }]),
        layout("Lift and always-valid p at each look", { yaxis: { tickformat: ".0%" }, yaxis2: { overlaying: "y", side: "right", type: "log" } }));
    });
  },
  exposure() {
    plot("chart-tail", [{ type: "bar", x: data.map(b => b.band), y: data.map(b => b.items) }],
         layout("Products by how often they were recommended", { xaxis: { title: { text: "times recommended" }, type: "category" },
                                                                   yaxis: { title: { text: "products" } } }));
  },
  map() {
    const cats = [...new Set(data.points.map(p => p.category))].sort();
    plot("chart-map", cats.map(c => { const ps = data.points.filter(p => p.category === c);
      return { type: "scatter", mode: "markers", name: c, x: ps.map(p => p.x), y: ps.map(p => p.y), text: ps.map(p => p.item_id),
               marker: { size: 4 } }; }), layout("Image embeddings (PCA)"));
    const m = data.confusion;
    plot("chart-confusion", [{ type: "heatmap", z: m.matrix, x: m.classes, y: m.classes, colorscale: "Blues" }],
         layout("Catalog category (rows) against the image model (columns)", { yaxis: { autorange: "reversed" }, margin: { l: 110, b: 110, t: 40 } }));
  },
};

function itemLine(i) {
  const li = document.createElement("li");
  const r = i.reason;
  if (r && r.rules.length) li.className = "pinned";
  li.dataset.item = i.item_id;
  const why = r ? [r.channels.join(" + ") || "—", r.because_of ? `because you viewed ${r.because_of}` : null,
                   r.retrieved_at ? `candidate #${r.retrieved_at}` + (r.ranked_at ? ` → ranked #${r.ranked_at}` : "") : null,
                   r.rules.length ? `rules: ${r.rules.join(", ")}` : null].filter(Boolean).join(" · ") : "";
  // DOM calls only: every field is data (an id may hold quotes and angle brackets), never markup
  const img = document.createElement("img");
  img.src = i.image_url;
  img.alt = "";
  const id = document.createElement("b");
  id.textContent = i.item_id;
  const what = document.createElement("span");
  what.textContent = `${i.title} · ${i.category} · ${i.price.toFixed(2)}`;
  const reason = document.createElement("div");
  reason.className = "why";
  reason.textContent = why;
  li.append(img, id, " ", what, reason);
  return li;
}

function draftRule() {
  const f = new FormData(document.getElementById("rule-form"));
  const v = k => { const x = (f.get(k) || "").trim(); return x === "" ? null : x; };
  const select = document.querySelector("#rule-form select[name=action]");
  const rule = { action: v("action"), item_id: v("item_id"), category: v("item_id") ? null : v("category"),
                 scope: v("scope"), starts_at: v("starts_at"), ends_at: v("ends_at"), note: v("note") || "" };
  // the fields this action reads, as serving/rules.py ACTIONS declares them (the template renders them)
  for (const k of (select.selectedOptions[0].dataset.fields || "").split(" ").filter(Boolean)) {
    if (v(k) !== null) rule[k] = Number(v(k));
  }
  return rule;
}

function previewRequest() {
  const u = document.getElementById("shopper").value;
  const s = document.getElementById("session").value.split(/[\s,]+/).filter(Boolean);
  const c = document.getElementById("page-category").value;
  const place = document.getElementById("placement");
  const ctx = document.getElementById("context");
  const only = document.getElementById("discovery-only");
  return { user_id: u || null, recent_item_ids: s, k: 10, categories: c ? [c] : null, in_stock_only: true,
           placement: place ? place.value : null, discovery_only: only ? only.checked : false,
           context_item_ids: ctx ? ctx.value.split(/[\s,]+/).filter(Boolean).slice(0, 100) : [] };
}

async function runPreview(withDraft) {
  const status = document.getElementById("form-status");
  status.textContent = "";
  try {
    const req = previewRequest();
    const rules = withDraft ? [draftRule()] : [];
    const out = await call("POST", "/v1/merch/preview", { request: req, rules });
    for (const [id, p] of [["page-with", out.page], ["page-without", out.baseline]]) {
      const ol = document.getElementById(id); ol.replaceChildren(...p.items.map(itemLine));
    }
    const hist = document.getElementById("history");
    if (req.user_id) {
      const s = await call("GET", `/v1/merch/shoppers/${encodeURIComponent(req.user_id)}`);
      hist.replaceChildren(...s.history.map(itemLine));
    } else hist.replaceChildren();
    status.textContent = withDraft ? "preview: the draft rule is not saved" : "";
  } catch (e) { status.textContent = e.message; }
}

function wireForm() {
  const form = document.getElementById("rule-form");
  if (!form) return;
  const anyItem = (location.hash || "").slice(1);
  if (anyItem) form.elements.item_id.value = anyItem;
  const hasDraft = () => Boolean(form.elements.item_id.value.trim() || form.elements.category.value);
  document.getElementById("preview-btn").addEventListener("click", () => runPreview(hasDraft()));
  document.getElementById("save-btn").addEventListener("click", async () => {
    const status = document.getElementById("form-status");
    try { const r = await call("POST", "/v1/merch/rules", draftRule()); status.textContent = `saved rule ${r.rule_id}`;
          if (page === "rules") location.reload(); else runPreview(false); }
    catch (e) { status.textContent = e.message; }
  });
  for (const b of document.querySelectorAll(".delete-rule")) b.addEventListener("click", async () => {
    const id = b.closest("tr").dataset.rule;
    try { await call("DELETE", `/v1/merch/rules/${encodeURIComponent(id)}`); location.reload(); }
    catch (e) { document.getElementById("form-status").textContent = e.message; }
  });
  runPreview(false);
}

function wirePhotos() {
  for (const fig of document.querySelectorAll("figure.photo")) {
    for (const [cls, decision] of [["accept", "accept"], ["dismiss", "dismiss"]]) {
      fig.querySelector("." + cls).addEventListener("click", async () => {
        const res = fig.querySelector(".result");
        try { const r = await call("POST", `/v1/merch/labels/${encodeURIComponent(fig.dataset.item)}`, { decision });
              res.textContent = decision === "accept" ? `now ${r.category}` : "dismissed"; fig.classList.add("decided"); }
        catch (e) { res.textContent = e.message; }
      });
    }
  }
}

if (data && charts[page]) charts[page]();
if (page === "preview" || page === "rules") wireForm();
if (page === "photos") wirePhotos();
if (page === "experiments") for (const b of document.querySelectorAll("button.stop")) b.addEventListener("click", async () => {
  const id = b.closest("section").dataset.id;
  try { await call("POST", `/v1/experiments/${encodeURIComponent(id)}/stop`, { reason: "stopped in the console" }); location.reload(); }
  catch (e) { b.parentElement.querySelector(".result").textContent = e.message; }
});
