// The storefront demo: recommendations for the chosen shopper or this session, updated on every
// click; every placement (docs/serving.md): home, product (more like this), cart (goes with your
// cart), continue shopping, buy it again; similar items by look; category and price filters; search by photo.
"use strict";
const $ = id => document.getElementById(id);
let session = JSON.parse(sessionStorage.getItem("vitrine-session") || "[]");
let cart = JSON.parse(sessionStorage.getItem("vitrine-cart") || "[]");
let current = null;  // the product open in the detail

async function api(method, url, body, form) {
  const r = await fetch(url, form ? { method, body: form } :
    { method, headers: { "Content-Type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
  const out = await r.json();
  if (!r.ok) throw new Error(typeof out.detail === "string" ? out.detail : JSON.stringify(out.detail));
  return out;
}

function card(i, onClick) {
  const d = document.createElement("div");
  d.className = "product"; d.dataset.item = i.item_id;
  // DOM calls only: every field is data (an id or a title may hold quotes and angle brackets)
  const img = document.createElement("img");
  img.alt = ""; img.loading = "lazy"; img.src = i.image_url;
  const title = document.createElement("b");
  title.textContent = i.title;
  const what = document.createElement("div");
  what.textContent = `${i.category} · ${i.price.toFixed(2)}`;
  d.append(img, title, what);
  d.addEventListener("click", () => onClick(i));
  return d;
}

function filters() {
  const c = $("category").value, lo = $("price-min").value, hi = $("price-max").value;
  return { categories: c ? [c] : null, price_min: lo === "" ? null : Number(lo), price_max: hi === "" ? null : Number(hi) };
}

async function placementRow(placement, el, body) {
  // one placement's row: hidden when the placement has nothing for this shopper
  const box = $(`${el}-box`);
  try {
    const out = await api("POST", "/v1/recommendations", Object.assign({ placement, k: 8 }, body));
    $(el).replaceChildren(...out.items.map(i => card(i, open)));
    box.hidden = out.items.length === 0 && placement !== "cart";
  } catch (e) { $(el).textContent = e.message; box.hidden = false; }
  $(el).dataset.version = String(Date.now());
}

async function load() {
  const user = $("shopper").value || null;
  $("session-line").textContent = session.length ? `this session: ${session.join(", ")}` : "";
  const recent = session.slice(0, 50);
  const rows = [];
  if (user || recent.length) {
    rows.push(placementRow("continue", "continue", { user_id: user, recent_item_ids: recent }));
    rows.push(placementRow("buy-again", "buy-again", { user_id: user }));
  } else { $("continue-box").hidden = true; $("buy-again-box").hidden = true; }
  $("cart-box").hidden = cart.length === 0;
  $("cart-line").textContent = cart.join(", ");
  if (cart.length) rows.push(placementRow("cart", "cart", { user_id: user, context_item_ids: cart.slice(0, 100) }));
  try {
    const out = await api("POST", "/v1/recommendations",
                          Object.assign({ placement: "home", user_id: user, recent_item_ids: recent, k: 24 }, filters()));
    $("grid-title").textContent = out.fallback ? "Popular now" : "Recommended for you";
    $("grid").replaceChildren(...out.items.map(i => card(i, open)));
    $("grid").dataset.version = String(Date.now());
  } catch (e) { $("grid-title").textContent = e.message; $("grid").replaceChildren(); }
  await Promise.all(rows);
}

async function open(i) {
  session = [i.item_id, ...session.filter(x => x !== i.item_id)].slice(0, 50);
  sessionStorage.setItem("vitrine-session", JSON.stringify(session));
  current = i;
  $("detail").hidden = false;
  $("detail-title").textContent = `${i.title} (${i.item_id})`;
  const sim = async (by, el) => {
    if (!$(el)) return;
    try { const out = await api("GET", `/v1/items/${encodeURIComponent(i.item_id)}/similar?by=${by}&k=8`);
          $(el).replaceChildren(...out.items.map(x => card(x, open))); }
    catch (e) { $(el).textContent = e.message; }
  };
  const more = async () => {  // the product placement: items like this one
    try { const out = await api("POST", "/v1/recommendations", { placement: "product", context_item_ids: [i.item_id], k: 8 });
          $("similar-behaviour").replaceChildren(...out.items.map(x => card(x, open))); }
    catch (e) { $("similar-behaviour").textContent = e.message; }
  };
  await Promise.all([more(), sim("image", "similar-image"), load()]);
}

async function upload() {
  const f = $("photo").files[0];
  if (!f) return;
  const form = () => { const fd = new FormData(); fd.append("image", f); return fd; };
  const box = $("photo-result");
  try {
    const c = await api("POST", "/v1/images/classify", null, form());
    const s = await api("POST", "/v1/images/search?k=8", null, form());
    const h = document.createElement("h3"), label = document.createElement("span"), grid = document.createElement("div");
    label.id = "photo-category";
    label.textContent = `${c.predicted} (${(100 * c.probabilities[0].probability).toFixed(0)} %)`;
    h.append("Your photo looks like: ", label);
    grid.className = "grid-items small";
    grid.replaceChildren(...s.items.map(x => card(x, open)));
    box.replaceChildren(h, grid);
  } catch (e) { box.textContent = e.message; }
}

for (const id of ["shopper", "category", "price-min", "price-max"]) $(id).addEventListener("change", load);
$("clear-session").addEventListener("click", () => {
  session = []; cart = []; sessionStorage.removeItem("vitrine-session"); sessionStorage.removeItem("vitrine-cart"); load();
});
$("add-to-cart").addEventListener("click", () => {
  if (!current) return;
  cart = [current.item_id, ...cart.filter(x => x !== current.item_id)].slice(0, 100);
  sessionStorage.setItem("vitrine-cart", JSON.stringify(cart));
  load();
});
if ($("photo")) $("photo").addEventListener("change", upload);
load();
